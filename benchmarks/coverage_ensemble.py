"""±2σ coverage of the ensemble fit on test_ensemble's synthetic experiment, 8 noise seeds.

A basis of 150 analytic diatomic trajectories (seed 1); the experiment made from N others (seed 2),
γ 0.05, t0 40 fs, IRF 80 fs, 1e6 photons per q bin; 20 bootstrap refits. Prints, per noise seed, the
fraction of delays after t0 whose truth lies within ±2σ (whole excited ensemble's mean I-I distance,
the bound channel's, the dissociated fraction) and whether γ, t0, IRF lie within 2σ.

    python benchmarks/coverage_ensemble.py [birge|plain] [N=40]
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from molmovie.fitting import get_measurement_method
from molmovie.measurement import distance_distribution, simulate_measurement

from _fit_fixtures import diatomic_ensemble

basis, truth_ds = diatomic_ensemble(150, seed=1), diatomic_ensemble(int(sys.argv[2]) if len(sys.argv) > 2 else 40, seed=2)
q = np.linspace(0.5, 6.0, 60)
delays = np.arange(-200.0, 1001.0, 20.0)
birge = (sys.argv[1] if len(sys.argv) > 1 else "birge") == "birge"
rows = []
for s in range(8):
    t = time.time()
    meas = simulate_measurement(truth_ds, q=q, delays=delays, gamma=0.05, t0=40.0, irf_fs=80.0, photons=1e6, seed=s)
    res = get_measurement_method("ensemble", bootstrap=20, seed=s, birge=birge).fit(meas, basis).result_
    e, tr = res.ensemble, meas.truth
    after = delays > tr.t0
    cov_all = np.mean(np.abs(e.distance_mean[after, 0] - tr.distance_mean[after, 0]) <= 2 * e.distance_mean_std[after, 0])
    sub = truth_ds.subset(tr.trajectories)
    bound = ~sub.dissociated
    tb = distance_distribution(sub.subset(np.flatnonzero(bound)), delays - tr.t0, weights=tr.weights[bound]).mean[:, 0]
    cov_b = np.mean(np.abs(e.channel_distance_mean[0, after, 0] - tb[after]) <= 2 * e.channel_distance_mean_std[0, after, 0])
    cov_d = np.mean(
        np.abs(e.dissociated_fraction[after] - tr.dissociated_fraction[after]) <= 2 * e.dissociated_fraction_std[after]
    )
    g = abs(e.gamma - 0.05) <= 2 * e.gamma_std
    t0 = abs(e.t0 - 40) <= 2 * e.t0_std
    irf = abs(e.irf_fs - 80) <= 2 * e.irf_fs_std
    rows.append((cov_all, cov_b, cov_d, g, t0, irf))
    print(
        f"seed {s}: chi2r {res.reduced_chi2:.3f} RB {e.birge_ratio:.3f} coverage mean R {cov_all:.2f} bound R {cov_b:.2f} diss {cov_d:.2f} | γ {e.gamma:.4f}±{e.gamma_std:.4f} {g} t0 {e.t0:.1f}±{e.t0_std:.1f} {t0} irf {e.irf_fs:.1f}±{e.irf_fs_std:.1f} {irf} ({time.time() - t:.0f}s)",
        flush=True,
    )
r = np.array(rows, dtype=float)
print(
    "seeds with coverage >= 0.9: mean R",
    int((r[:, 0] >= 0.9).sum()),
    "bound R",
    int((r[:, 1] >= 0.9).sum()),
    "diss",
    int((r[:, 2] >= 0.9).sum()),
    "| γ, t0, IRF within 2σ:",
    r[:, 3].sum(),
    r[:, 4].sum(),
    r[:, 5].sum(),
)
