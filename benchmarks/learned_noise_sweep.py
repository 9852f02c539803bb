"""Does the learned method's σ widen with the noise? One ensemble of held-out trajectories, measured at photon levels 1e4-1e9.

    python benchmarks/learned_noise_sweep.py DATA_DIR MODEL.safetensors MOLECULE [--experiments 4]

MODEL is the vrnn-ensemble model `benchmarks/learned_vs_ensemble.py` trained (OUT/MOLECULE-learned.safetensors);
each experiment draws its sub-ensemble, γ, t0 and IRF as that benchmark does, then measures the same noise-free
signal at every photon level (noise seeds differ). Prints the median σ of the per-channel mean distances (heavy-atom
pairs, the channels the experiment holds) and the error, per level: mean over the experiments.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from learned_vs_ensemble import SETUP, score
from threadpoolctl import threadpool_limits

from molmovie.fitting import EnsembleVRNN
from molmovie.fitting._ensemble_stats import _Stats
from molmovie.geometry import pair_labels
from molmovie.io import read_dataset
from molmovie.measurement import DEFAULT_LEVELS, simulate_measurement

LEVELS = (1e4, 1e5, 1e6, 1e7, 1e9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("model", type=Path)
    ap.add_argument("molecule")
    ap.add_argument("--experiments", type=int, default=4)
    args = ap.parse_args()
    cfg = SETUP[args.molecule]
    ds = read_dataset(args.data_dir / f"{args.molecule}.h5")
    held = ds.subset(np.concatenate([ds.splits["val"], ds.splits["test"]]))
    heavy = np.array(
        [not any(s.startswith("H") and not s.startswith("He") for s in lab.split("-")) for lab in pair_labels(ds.symbols)]
    )
    learned = EnsembleVRNN.load(args.model)
    delays = cfg["delays"]
    stats = _Stats(held, delays, np.asarray(DEFAULT_LEVELS))
    out = {p: [] for p in LEVELS}
    for k in range(args.experiments):
        rng = np.random.default_rng([100 + k])
        n = held.n_trajectories
        pick = np.sort(rng.choice(n, size=rng.integers(max(2, n // 3), n + 1), replace=False))
        w = rng.dirichlet(np.ones(pick.size))
        gamma, lead, irf = rng.uniform(0.05, 0.2), rng.uniform(*cfg["lead"]), rng.uniform(30.0, 150.0)
        t0 = float(delays[0] + lead)
        full = np.zeros(n)
        full[pick] = w
        tr = stats(full, t0)
        for photons in LEVELS:
            meas = simulate_measurement(
                held, q=ds.q, delays=delays, weights=w, trajectories=pick, gamma=gamma, t0=t0, irf_fs=irf, photons=photons, seed=k
            )
            with threadpool_limits(1, "blas"):
                e = learned.fit(meas).result.ensemble
            out[photons].append(score(e, tr["channel_distance_mean"], heavy, tr["channel_fraction"] > 0))
    print(f"\n{args.molecule}: learned method, {args.experiments} ensembles of held-out trajectories, each at every level")
    print("| photons/q bin | median σ of the channel means (Å) | error (Å) | ±2σ coverage |")
    print("|---|---|---|---|")
    for photons in LEVELS:
        r = out[photons]
        print(
            f"| {photons:.0e} | {np.mean([x['sigma'] for x in r]):.4f} | {np.mean([x['error'] for x in r]):.4f} | "
            f"{np.mean([x['coverage'] for x in r]):.3f} |"
        )


if __name__ == "__main__":
    main()
