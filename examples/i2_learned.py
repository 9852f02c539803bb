"""The learned method's answer on the LCLS I2 run beside the ensemble fit's: the I–I distance per channel, with σ bands.

Run beside the files of the README's I2 commands (the ensemble fit with the hole, and `molmovie invert` with the
vrnn-ensemble model trained --for i2.h5 with hole=true):

    python examples/i2_learned.py i2-ensemble.h5 i2-learned.h5 [i2-learned-refined.h5] docs/figures/i2-learned.png

(the optional third file: `molmovie invert` of the same model with `--set refine=true`, the network's answer fitted
to the data through the measurement model).

Prints, for each method, the period, mean and amplitude of the molecules left in the ground state (a damped cosine
fitted after 200 fs) and the growth rate of the dissociating channel's mean I–I distance (a straight line over
500-3000 fs), and draws both answers.
"""

from __future__ import annotations

import sys

import numpy as np
from scipy.optimize import curve_fit

from molmovie.io.fit import read_fit


def damped(x, a, A, tau, P, ph):
    return a + A * np.exp(-(x - 200) / tau) * np.cos(2 * np.pi * x / P + ph)


def ground_oscillation(t, R):
    k = t > 200
    best = None
    for ph0 in np.linspace(0, 2 * np.pi, 8, endpoint=False):
        for P0 in (150.0, 157.0, 165.0):
            try:
                p, c = curve_fit(damped, t[k], R[k], p0=[R[k].mean(), R[k].std() * 1.4, 2000, P0, ph0], maxfev=20000)
            except RuntimeError:
                continue
            r = np.sum((damped(t[k], *p) - R[k]) ** 2)
            if best is None or r < best[0]:
                best = (r, p, np.sqrt(np.abs(np.diag(c))))
    return best[1], best[2]


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(sys.argv) not in (4, 5):
        sys.exit("usage: python examples/i2_learned.py ENSEMBLE.h5 LEARNED.h5 [LEARNED_REFINED.h5] OUT.png")
    answers = [
        ("ensemble fit (hole, 100 bootstrap refits)", read_fit(sys.argv[1])),
        ("learned: the network alone (default)", read_fit(sys.argv[2])),
    ]
    if len(sys.argv) == 5:
        answers.append(("learned + signal fit (refine=true)", read_fit(sys.argv[3])))
    out = sys.argv[-1]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for (name, res), colour in zip(answers, ("tab:blue", "tab:red", "tab:green")):
        e = res.ensemble
        t = res.delays
        print(
            f"{name}: γ = {e.gamma:.3f} ± {e.gamma_std:.3f}, t0 = {e.t0:.1f} ± {e.t0_std:.1f} fs, IRF {e.irf_fs:.1f} fs, "
            f"reduced χ² {res.reduced_chi2:.3f}, channels {e.channels} {np.round(e.channel_fraction, 3)}"
        )
        g = list(e.channels).index("ground")
        d = list(e.channels).index("dissociated")
        Rg, sg = e.channel_distance_mean[g, :, 0], e.channel_distance_mean_std[g, :, 0]
        Rd, sd = e.channel_distance_mean[d, :, 0], e.channel_distance_mean_std[d, :, 0]
        p, err = ground_oscillation(t, Rg)
        print(
            f"  molecules left in X: mean R {p[0]:.4f} Å, amplitude {abs(p[1]) * 1e3:.1f} mÅ, period {p[3]:.1f} ± {err[3]:.1f} fs, "
            f"damping time {p[2]:.0f} fs; median σ of the mean R {np.median(sg[t > 200]) * 1e3:.1f} mÅ"
        )
        k = (t >= 500) & (t <= 3000)
        slope, icpt = np.polyfit(t[k], Rd[k], 1)
        print(
            f"  dissociating channel: mean I–I distance grows at {slope:.4f} Å/fs (500-3000 fs); "
            f"median σ {np.median(sd[k]):.3f} Å; at the last delay {Rd[-1]:.2f} ± {sd[-1]:.2f} Å"
        )
        axes[0].plot(t, Rg, color=colour, label=name)
        axes[0].fill_between(t, Rg - sg, Rg + sg, color=colour, alpha=0.25, lw=0)
        axes[1].plot(t, Rd, color=colour, label=name)
        axes[1].fill_between(t, Rd - sd, Rd + sd, color=colour, alpha=0.25, lw=0)
    axes[0].set(
        xlabel="delay (fs, ingested axis)", ylabel="mean I–I distance (Å)", title="molecules left in the ground state (X)"
    )
    axes[1].set(xlabel="delay (fs, ingested axis)", ylabel="mean I–I distance (Å)", title="dissociating channel")
    for ax in axes:
        ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3)
    fig.suptitle("LCLS I2 (Glownia et al. 2016): the I–I distance per channel, ±1σ bands", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"figure: {out}")


if __name__ == "__main__":
    main()
