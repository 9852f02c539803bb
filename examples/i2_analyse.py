"""Numbers of the README's I2 table: data FFT, the fitted oscillation, dissociation speeds, parameters.

Run beside the files of the README's four I2 commands:

    python examples/i2_analyse.py i2-ensemble.h5 i2-basis.h5     (reads i2.h5 too)
"""

import sys

import numpy as np
from scipy.optimize import curve_fit

from molmovie.io import read_dataset
from molmovie.io.fit import read_fit
from molmovie.io.measurement import read_measurement

meas = read_measurement("i2.h5")
t, q, dS, sig = meas.delays, meas.q, meas.dS, meas.sigma
# ---- the data: late-time oscillation per q band (FFT of the detrended signal after 300 fs)
late = t > 300
print("data FFT (delays > 300 fs, quadratic detrend, zero-padded x16):")
bands = [(1.0, 1.3), (1.3, 1.8), (1.8, 2.4), (2.4, 3.0), (3.0, 3.5)]
for lo, hi in bands:
    k = (q >= lo) & (q < hi)
    y = dS[late][:, k].mean(1)
    x = t[late]
    y = y - np.polyval(np.polyfit(x, y, 2), x)
    n = 16 * x.size
    f = np.fft.rfftfreq(n, d=30.0)
    p = np.abs(np.fft.rfft(y * np.hanning(y.size), n)) ** 2
    sel = f > 1 / 400
    fpk = f[sel][np.argmax(p[sel])]
    print(f"  q {lo}-{hi}: period {1 / fpk:.1f} fs, rms {y.std():.2e}")
# damped cosine on the projection of the late data on its dominant oscillating q pattern (band 1.0-3.5)
y_all = dS[late] - np.array([np.polyval(np.polyfit(t[late], dS[late][:, j], 2), t[late]) for j in range(q.size)]).T
U, s, Vt = np.linalg.svd(y_all / sig[late], full_matrices=False)
amp = U[:, 0] * s[0]


def dcos(x, A, tau, P, ph):
    return A * np.exp(-(x - 300) / tau) * np.cos(2 * np.pi * x / P + ph)


best = None
for P0 in (150, 155, 160, 165):
    for ph0 in np.linspace(0, 2 * np.pi, 8, endpoint=False):
        try:
            p, c = curve_fit(dcos, t[late], amp, p0=[amp.std() * 1.4, 2000, P0, ph0], maxfev=20000)
        except RuntimeError:
            continue
        r = np.sum((dcos(t[late], *p) - amp) ** 2)
        if best is None or r < best[0]:
            best = (r, p, np.sqrt(np.diag(c)))
_, p, e = best
print(
    f"data, leading late-time component (SVD of detrended ΔS/σ, {s[0] / s.sum():.2f} of the singular values' sum): "
    f"period {p[2]:.1f} ± {e[2]:.1f} fs, damping time {p[1]:.0f} ± {e[1]:.0f} fs"
)

res = read_fit(sys.argv[1])
ens = res.ensemble
print(f"\nfit {sys.argv[1]}: reduced χ² {res.reduced_chi2:.3f} (N = {res.n_data}), {res.message}")
print(
    f"γ = {ens.gamma:.4f} ± {ens.gamma_std:.4f}; t0 = {ens.t0:.1f} ± {ens.t0_std:.1f} fs (relative to the ingest's half-rise); "
    f"IRF = {ens.irf_fs:.1f} ± {ens.irf_fs_std:.1f} fs; Birge ratio {ens.birge_ratio:.3f}; bootstrap {len(ens.bootstrap_gamma)}"
)
print("channels", ens.channels, "fractions", np.round(ens.channel_fraction, 4), "±", np.round(ens.channel_fraction_std, 4))
print(
    f"dissociated fraction (of the excited) at the last delay {ens.dissociated_fraction[-1]:.3f} ± {ens.dissociated_fraction_std[-1]:.3f}"
)
basis = read_dataset(sys.argv[2])
recs = basis.ensemble.provenance["trajectories"]
exc = np.array([recs[i]["initial"].get("excess_eV", np.nan) for i in ens.trajectories])
w = ens.weights
mu = 126.904 / 2 * 1.66054e-27
E = np.where(np.isfinite(exc), exc, 0)
v = np.sqrt(2 * E * 1.602177e-19 / mu) * 1e-5  # Å/fs
diss = ens.dissociated
print(
    "dissociated weight by excess energy (eV) [0-0.5-1-1.5-2-2.5-3-3.5]:",
    np.round(np.histogram(exc[diss], [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5], weights=w[diss])[0] / w[diss].sum(), 3),
)
for lo, hi in ((0, 0.8), (0.8, 2.3), (2.3, 3.6)):
    k = diss & (exc >= lo) & (exc < hi)
    if w[k].sum() > 0:
        Em = w[k] @ exc[k] / w[k].sum()
        print(
            f"  {lo}-{hi} eV: weight {w[k].sum():.3f} of the excited, mean E {Em:.2f} eV, relative speed {np.sqrt(2 * Em * 1.602177e-19 / mu) * 1e-5:.4f} Å/fs"
        )
for n in (1, 2, 3):
    En = n * 1.55 - 1.54
    print(f"  {n}-photon I + I: E = {En:.2f} eV, v = {np.sqrt(2 * max(En, 0) * 1.602177e-19 / mu) * 1e-5:.4f} Å/fs")
if ens.hole_weights is not None:
    h, r0 = ens.hole_weights, ens.hole_r0[:, 0]
    print(
        f"hole: Σh = {h.sum():.4f}, {np.count_nonzero(h > 1e-12)} of {h.size} samples; mean R removed {h @ r0 / h.sum():.4f} Å vs ground {r0.mean():.4f} Å "
        f"(std {r0.std():.4f}); removed std {np.sqrt(h @ (r0 - h @ r0 / h.sum()) ** 2 / h.sum()):.4f}; largest removal probability {h.max() * h.size:.2f}"
    )
    # the molecules left in X: mean R against delay, damped cosine after 200 fs
    c = list(ens.channels).index("ground")
    R = ens.channel_distance_mean[c, :, 0]
    Rs = ens.channel_distance_mean_std[c, :, 0]
    k = res.delays > 200

    def f(x, a, A, tau, P, ph):
        return a + A * np.exp(-(x - 200) / tau) * np.cos(2 * np.pi * x / P + ph)

    best = None
    for ph0 in np.linspace(0, 2 * np.pi, 8, endpoint=False):
        try:
            pp, cc = curve_fit(f, res.delays[k], R[k], p0=[R[k].mean(), R[k].std() * 1.4, 2000, 156, ph0], maxfev=20000)
        except RuntimeError:
            continue
        rr = np.sum((f(res.delays[k], *pp) - R[k]) ** 2)
        if best is None or rr < best[0]:
            best = (rr, pp, np.sqrt(np.diag(cc)))
    _, pp, ee = best
    print(
        f"molecules left in X: mean R {pp[0]:.4f} Å (ground {r0.mean():.4f}), oscillation amplitude {abs(pp[1]) * 1e3:.2f} ± {ee[1] * 1e3:.2f} mÅ, "
        f"period {pp[3]:.1f} ± {ee[3]:.1f} fs, damping time {pp[2]:.0f} ± {ee[2]:.0f} fs; bootstrap σ of the mean R {np.median(Rs[k]) * 1e3:.2f} mÅ"
    )
for ch in range(len(ens.channels)):
    m = ens.channel_distance_mean[ch, :, 0]
    if np.all(np.isnan(m)):
        continue
    print(
        f"channel {ens.channels[ch]}: mean R at delays 0, 100, 500, 1000, 3000 fs:",
        np.round(np.interp([0, 100, 500, 1000, 3000], res.delays, m), 3),
    )
