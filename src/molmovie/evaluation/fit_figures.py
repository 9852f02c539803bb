"""Figures of a measurement fit (``molmovie fit --figures``).

Every function takes arrays (and optionally a matplotlib ``ax``), draws, and
returns the figure; nothing is shown or saved here (the caller saves).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .measurement_figures import _edges

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_fit_signals", "plot_distance_bands", "plot_parameters", "plot_pdf_map", "plot_hole"]


def plot_fit_signals(
    q: np.ndarray,
    delays: np.ndarray,
    dS: np.ndarray,
    dS_fit: np.ndarray,
    residual: np.ndarray,
    *,
    ax: Axes | Sequence[Axes] | np.ndarray | None = None,
    title: str = "",
) -> Figure:
    """Measured ΔS beside the fitted one, the residual / σ, and line-outs at three q.

    Parameters
    ----------
    q : ndarray, shape (Q,), 1/Angstrom
    delays : ndarray, shape (T,), fs
    dS, dS_fit : ndarray, shape (T, Q), fraction (drawn in percent)
    residual : ndarray, shape (T, Q)
        (dS - dS_fit) / σ.
    ax : sequence of 4 matplotlib Axes, optional
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, axes = plt.subplots(1, 4, figsize=(17, 4.2), constrained_layout=True)
    else:
        axes = np.atleast_1d(np.asarray(ax, dtype=object))
        fig = axes[0].figure
    qe, te = _edges(q), _edges(delays)
    lim = float(np.nanmax(np.abs(dS_fit))) * 100 or 1.0
    for a, data, name in ((axes[0], dS, "measured ΔS"), (axes[1], dS_fit, "fitted ΔS")):
        m = a.pcolormesh(qe, te, 100 * data, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="flat")
        a.set_title(name)
        a.set_xlabel("q (1/Å)")
        a.set_ylabel("delay (fs)")
    fig.colorbar(m, ax=axes[:2], label="ΔS (%)", shrink=0.9)
    m = axes[2].pcolormesh(qe, te, residual, cmap="PuOr", vmin=-4, vmax=4, shading="flat")
    axes[2].set_title(f"residual / σ (rms {np.sqrt(np.mean(residual**2)):.2f})")
    axes[2].set_xlabel("q (1/Å)")
    fig.colorbar(m, ax=axes[2], label="(ΔS − fit) / σ", shrink=0.9)
    a = axes[3]
    for k, color in zip(np.linspace(0, len(q) - 1, 3).round().astype(int), ("C0", "C1", "C2"), strict=True):
        a.plot(delays, 100 * dS[:, k], ".", color=color, ms=3, alpha=0.6)
        a.plot(delays, 100 * dS_fit[:, k], "-", color=color, lw=1.3, label=f"q = {q[k]:.2f} 1/Å")
    a.axhline(0, color="0.6", lw=0.6)
    a.set_xlabel("delay (fs)")
    a.set_ylabel("ΔS (%)")
    a.set_title("line-outs: measured (dots), fit (lines)")
    a.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_distance_bands(
    delays: np.ndarray,
    pair_labels: Sequence[str],
    mean: np.ndarray,
    mean_std: np.ndarray,
    quantiles: np.ndarray,
    levels: np.ndarray,
    *,
    channel_mean: np.ndarray | None = None,
    channel_mean_std: np.ndarray | None = None,
    channels: Sequence[str] = ("bound", "dissociated"),
    dissociated_fraction: np.ndarray | None = None,
    dissociated_fraction_std: np.ndarray | None = None,
    truth_mean: np.ndarray | None = None,
    ax: Axes | Sequence[Axes] | np.ndarray | None = None,
) -> Figure:
    """Every distance's distribution against delay: ensemble mean ± 2σ and the outer quantile band; each channel's mean
    ± 2σ on its own panel (own scale: a bound vibration of hundredths of an Å beside fragments tens of Å apart); and the
    dissociated fraction.

    Parameters
    ----------
    delays : ndarray, shape (T,), fs
    pair_labels : sequence of str, length P
    mean, mean_std : ndarray, shape (T, P), Angstrom
        Weighted ensemble mean and its bootstrap spread.
    quantiles : ndarray, shape (T, P, K), Angstrom
    levels : ndarray, shape (K,)
    channel_mean, channel_mean_std : ndarray, shape (C, T, P), optional
        Per-channel means (NaN for an empty channel, which gets no panel).
    channels : sequence of str, length C
        Channel names; "ground" is the molecules left in the ground state (a fit with the hole).
    dissociated_fraction, dissociated_fraction_std : ndarray, shape (T,), optional
        Of the excited ensemble.
    truth_mean : ndarray, shape (T, P), optional
        Drawn in black when known (simulated experiments).
    ax : sequence of Axes, optional
        P + (non-empty channels) + (1 with a dissociated fraction).
    """
    import matplotlib.pyplot as plt

    P = len(pair_labels)
    shown = [] if channel_mean is None else [c for c in range(len(channels)) if not np.all(np.isnan(channel_mean[c]))]
    n_panels = P + len(shown) + (dissociated_fraction is not None)
    if ax is None:
        fig, axes = plt.subplots(n_panels, 1, figsize=(8, 2.6 * n_panels), sharex=True, constrained_layout=True, squeeze=False)
        axes = axes[:, 0]
    else:
        axes = np.atleast_1d(np.asarray(ax, dtype=object))
        fig = axes[0].figure
    x = np.asarray(delays, dtype=float)
    colors = {"bound": "C2", "dissociated": "C3", "ground": "C7"}
    names = {"ground": "molecules left in the ground state"}
    for p, label in enumerate(pair_labels):
        a = axes[p]
        a.fill_between(
            x,
            quantiles[:, p, 0],
            quantiles[:, p, -1],
            color="C0",
            alpha=0.15,
            label=f"{100 * levels[0]:.0f}-{100 * levels[-1]:.0f} % of the excited ensemble",
        )
        a.fill_between(
            x,
            mean[:, p] - 2 * mean_std[:, p],
            mean[:, p] + 2 * mean_std[:, p],
            color="C0",
            alpha=0.45,
            label="mean ± 2σ (bootstrap and γ profile)",
        )
        a.plot(x, mean[:, p], color="C0", lw=1.2, label="excited-ensemble mean")
        if truth_mean is not None:
            a.plot(x, truth_mean[:, p], color="black", lw=1.0, label="truth")
        a.set_ylabel(f"R {label} (Å)")
        a.grid(alpha=0.3)
        a.legend(fontsize=7, ncol=2, loc="upper left")
    for k, c in enumerate(shown):
        assert channel_mean is not None  # shown is empty without it
        a = axes[P + k]
        name = str(channels[c])
        color = colors.get(name, f"C{4 + k}")
        for p, label in enumerate(pair_labels):
            m = channel_mean[c, :, p]
            a.plot(x, m, color=color if P == 1 else f"C{p}", lw=1.1, label=f"{label}")
            if channel_mean_std is not None:
                sd = channel_mean_std[c, :, p]
                a.fill_between(x, m - 2 * sd, m + 2 * sd, color=color if P == 1 else f"C{p}", alpha=0.3)
        a.set_ylabel("mean R (Å)")
        a.set_title(f"{names.get(name, name + ' trajectories')}: mean ± 2σ", fontsize=9)
        a.grid(alpha=0.3)
        if P > 1:
            a.legend(fontsize=7, ncol=min(P, 4), loc="upper left")
    if dissociated_fraction is not None:
        a = axes[P + len(shown)]
        a.plot(x, dissociated_fraction, color="C3")
        if dissociated_fraction_std is not None:
            a.fill_between(
                x,
                dissociated_fraction - 2 * dissociated_fraction_std,
                dissociated_fraction + 2 * dissociated_fraction_std,
                color="C3",
                alpha=0.3,
            )
        a.set_ylabel("dissociated\n(of the excited)")
        a.set_ylim(-0.02, 1.02)
        a.grid(alpha=0.3)
    axes[-1].set_xlabel("delay (fs)")
    return fig


def plot_parameters(
    gamma: float,
    gamma_std: float,
    t0: float,
    t0_std: float,
    irf: float,
    irf_std: float,
    boot_gamma: np.ndarray,
    boot_t0: np.ndarray,
    boot_irf: np.ndarray,
    *,
    profile: tuple[np.ndarray, np.ndarray, float] | None = None,
    ax: Axes | Sequence[Axes] | np.ndarray | None = None,
) -> Figure:
    """γ, t0 and the IRF with their bootstrap distributions (histograms) and spreads.

    ``profile = (gammas, chi2, birge_ratio)``, when given, adds γ's profile likelihood
    exp(−Δχ²/2R_B²) (right axis) to the γ panel: the spread in the title combines both.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), constrained_layout=True)
    else:
        axes = np.atleast_1d(np.asarray(ax, dtype=object))
        fig = axes[0].figure
    for a, value, std, reps, name, unit in (
        (axes[0], gamma, gamma_std, boot_gamma, "γ (excitation fraction)", ""),
        (axes[1], t0, t0_std, boot_t0, "t0", " fs"),
        (axes[2], irf, irf_std, boot_irf, "IRF FWHM", " fs"),
    ):
        if len(reps):
            a.hist(reps, bins=min(30, max(5, len(reps) // 4)), color="C0", alpha=0.6)
        a.axvline(value, color="C3", lw=1.5)
        a.set_title(f"{name} = {value:.4g} ± {std:.2g}{unit}")
        a.set_xlabel(f"{name}{' (fs)' if unit else ''}")
    axes[0].set_ylabel("bootstrap replicates")
    if profile is not None and len(profile[0]):
        g, chi2, rb = (np.asarray(profile[0], dtype=float), np.asarray(profile[1], dtype=float), float(profile[2]))
        twin = axes[0].twinx()
        with np.errstate(under="ignore"):
            like = np.exp(-(chi2 - chi2.min()) / (2 * rb**2))
        twin.plot(g, like, "C1.-", lw=1.2, ms=3)
        twin.set_ylim(0, 1.05)
        twin.set_ylabel("profile likelihood of γ", color="C1")
        axes[0].set_xlim(min(axes[0].get_xlim()[0], g.min()), max(axes[0].get_xlim()[1], g.max()))
    return fig


def plot_pdf_map(
    delays: np.ndarray,
    r: np.ndarray,
    dP: np.ndarray,
    dP_std: np.ndarray,
    pair_types: Sequence[str],
    *,
    sine: np.ndarray | None = None,
    ax: Axes | Sequence[Axes] | np.ndarray | None = None,
) -> Figure:
    """ΔP(R, t) maps (one per pair type), its 1-σ uncertainty, and the damped sine transform.

    Parameters
    ----------
    delays : ndarray, shape (T,), fs
    r : ndarray, shape (R,), Angstrom
    dP, dP_std : ndarray, shape (T, P, R), 1/Angstrom
    pair_types : sequence of str, length P
    sine : ndarray, shape (T, R), optional
    """
    import matplotlib.pyplot as plt

    P = len(pair_types)
    ncols = 2 + (sine is not None)
    if ax is None:
        fig, axes = plt.subplots(P, ncols, figsize=(5.2 * ncols, 3.8 * P), constrained_layout=True, squeeze=False)
    else:
        axes = np.atleast_2d(np.asarray(ax, dtype=object))
        fig = axes.flat[0].figure
    re, te = _edges(r), _edges(delays)
    for p, name in enumerate(pair_types):
        lim = float(np.nanmax(np.abs(dP[:, p]))) or 1.0
        m = axes[p, 0].pcolormesh(re, te, dP[:, p], cmap="RdBu_r", vmin=-lim, vmax=lim, shading="flat")
        fig.colorbar(m, ax=axes[p, 0], label="ΔP (1/Å)")
        axes[p, 0].set_title(f"ΔP {name}(R, t), regularised inversion")
        m = axes[p, 1].pcolormesh(re, te, dP_std[:, p], cmap="viridis", shading="flat")
        fig.colorbar(m, ax=axes[p, 1], label="σ of ΔP (1/Å)")
        axes[p, 1].set_title("its 1-σ uncertainty")
        if sine is not None:
            lim = float(np.nanmax(np.abs(sine))) or 1.0
            m = axes[p, 2].pcolormesh(re, te, sine, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="flat")
            fig.colorbar(m, ax=axes[p, 2], label="ΔP_sine (1/Å)")
            axes[p, 2].set_title("damped sine transform")
        for a in axes[p]:
            a.set_xlabel("R (Å)")
            a.set_ylabel("delay (fs)")
    return fig


def plot_hole(
    r0: np.ndarray,
    hole_weights: np.ndarray,
    pair_labels: Sequence[str],
    *,
    bins: int = 20,
    ax: Axes | Sequence[Axes] | np.ndarray | None = None,
) -> Figure:
    """The ground-state hole: which bond lengths the pump removed, against the ground-state distribution.

    Each panel shows the ground-state distribution (uniform over the samples), the removed molecules'
    (h / Σh) and, on the right axis, the removal probability per bin (removed / present, times γ / γ:
    G h_j averaged over the bin).

    Parameters
    ----------
    r0 : ndarray, shape (G, P), Angstrom
        Each ground-state sample's distances at excitation.
    hole_weights : ndarray, shape (G,), fraction
        h_j >= 0 (Σ h = γ).
    pair_labels : sequence of str, length P
        One label per pair, for the axes.
    bins : int, default 20
        Histogram bins per pair.
    ax : sequence of P Axes, optional
        Where to draw; a new figure when absent.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on.
    """
    import matplotlib.pyplot as plt

    r0 = np.asarray(r0, dtype=float)
    h = np.asarray(hole_weights, dtype=float)
    P = r0.shape[1]
    if ax is None:
        fig, axes = plt.subplots(1, P, figsize=(5.5 * P, 3.8), constrained_layout=True, squeeze=False)
        axes = axes[0]
    else:
        axes = np.atleast_1d(np.asarray(ax, dtype=object))
        fig = axes[0].figure
    G = h.size
    for p in range(P):
        a = axes[p]
        edges = np.linspace(r0[:, p].min(), r0[:, p].max(), bins + 1)
        n_all, _ = np.histogram(r0[:, p], edges)
        n_hole, _ = np.histogram(r0[:, p], edges, weights=h)
        width = np.diff(edges)
        a.stairs(n_all / G / width, edges, color="0.4", lw=1.5, label=f"ground state ({G} samples)")
        if h.sum() > 0:
            a.stairs(n_hole / h.sum() / width, edges, color="C3", lw=1.5, label=f"removed (hole), Σh = {h.sum():.3g}")
        a.set_xlabel(f"R {pair_labels[p]} at excitation (Å)")
        a.set_ylabel("density (1/Å)")
        b = a.twinx()
        with np.errstate(invalid="ignore", divide="ignore"):
            prob = np.where(n_all > 0, n_hole * G / np.maximum(n_all, 1), np.nan)
        b.plot(0.5 * (edges[1:] + edges[:-1]), prob, "o", color="C1", ms=3, label="removal probability (right axis)")
        b.set_ylabel("removal probability", color="C1")
        b.set_ylim(-0.05, 1.35)  # room above 1 for the legend
        a.set_ylim(0, 1.35 * a.get_ylim()[1])
        a.set_title(f"hole: mean R removed {h @ r0[:, p] / max(h.sum(), 1e-300):.3f} Å, ground {r0[:, p].mean():.3f} Å")
        handles = a.get_legend_handles_labels()[0] + b.get_legend_handles_labels()[0]
        b.legend(handles, [hd.get_label() for hd in handles], fontsize=7, loc="upper left", ncol=2)
    return fig
