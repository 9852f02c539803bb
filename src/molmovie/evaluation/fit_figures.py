"""Figures of a measurement fit (``molmovie fit --figures``).

Every function takes arrays (and optionally a matplotlib ``ax``), draws, and
returns the figure; nothing is shown or saved here (the caller saves, with
:func:`molmovie.evaluation._style.save_figure`: PNG at 300 dpi and PDF). Figures
are two journal columns wide (7.0 in) with text of 7 pt or more; maps put the
delay on the horizontal axis. Where the truth is known (a simulated
experiment), the ``truth_*`` arguments draw it in black.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ._style import DOUBLE_COLUMN, journal, signal_names
from .measurement_figures import _edges

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..io.fit import FitResult
    from ..measurement import Measurement

__all__ = [
    "plot_fit_signals",
    "plot_distance_bands",
    "plot_parameters",
    "plot_pdf_map",
    "plot_hole",
    "fit_figure_names",
    "fit_figures",
]


@journal
def plot_fit_signals(
    q: np.ndarray,
    delays: np.ndarray,
    dS: np.ndarray,
    dS_fit: np.ndarray,
    residual: np.ndarray,
    *,
    truth_dS: np.ndarray | None = None,
    ax: Axes | Sequence[Axes] | np.ndarray | None = None,
    title: str = "",
    probe: str = "xray",
) -> Figure:
    """Measured ΔS beside the fitted one, the residual / σ (maps: delay across, q up), and line-outs at three q.

    Parameters
    ----------
    q : ndarray, shape (Q,), 1/Angstrom
    delays : ndarray, shape (T,), fs
    dS, dS_fit : ndarray, shape (T, Q), fraction (drawn in percent)
    residual : ndarray, shape (T, Q)
        (dS - dS_fit) / σ.
    truth_dS : ndarray, shape (T, Q), fraction, optional
        The noiseless ΔS of a simulated experiment, drawn on the line-outs in black.
    ax : sequence of 4 matplotlib Axes, optional
        Measured map, fitted map, residual map, line-outs.
    probe : {"xray", "electron"}
        Names the axes: q and ΔS, or s and ΔI/I.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, grid = plt.subplots(2, 2, figsize=(DOUBLE_COLUMN, 4.6), layout="constrained")
        axes = grid.ravel()
    else:
        axes = np.atleast_1d(np.asarray(ax, dtype=object))
        fig = axes[0].figure
    qn, sn = signal_names(probe)
    qe, te = _edges(q), _edges(delays)
    lim = float(np.nanmax(np.abs(dS_fit))) * 100 or 1.0
    for a, data, name in ((axes[0], dS, f"measured {sn}"), (axes[1], dS_fit, f"fitted {sn}")):
        m = a.pcolormesh(te, qe, 100 * np.asarray(data).T, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="flat")
        a.set_title(name)
        a.set_xlabel("delay (fs)")
        a.set_ylabel(f"{qn} (1/Å)")
    fig.colorbar(m, ax=axes[:2], label=f"{sn} (%)", shrink=0.9)
    m = axes[2].pcolormesh(te, qe, np.asarray(residual).T, cmap="PuOr", vmin=-4, vmax=4, shading="flat")
    axes[2].set_title(f"residual / σ (rms {np.sqrt(np.mean(residual**2)):.2f})")
    axes[2].set_xlabel("delay (fs)")
    axes[2].set_ylabel(f"{qn} (1/Å)")
    fig.colorbar(m, ax=axes[2], label=f"({sn} − fit) / σ", shrink=0.9)
    a = axes[3]
    for k, color in zip(np.linspace(0, len(q) - 1, 3).round().astype(int), ("C0", "C1", "C2"), strict=True):
        a.plot(delays, 100 * dS[:, k], ".", color=color, ms=2.5, alpha=0.6)
        a.plot(delays, 100 * dS_fit[:, k], "-", color=color, lw=1.1, label=f"{qn} = {q[k]:.2f} 1/Å")
        if truth_dS is not None:
            a.plot(delays, 100 * truth_dS[:, k], "--", color="black", lw=0.8, label="truth" if k == 0 else None)
    a.axhline(0, color="0.6", lw=0.6)
    a.set_xlabel("delay (fs)")
    a.set_ylabel(f"{sn} (%)")
    a.set_title("line-outs: measured (dots), fit (lines)" + (", truth (dashed)" if truth_dS is not None else ""))
    a.legend()
    if title:
        fig.suptitle(title)
    return fig


@journal
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
    truth_dissociated: np.ndarray | None = None,
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
    truth_dissociated : ndarray, shape (T,), optional
        The true dissociated fraction, drawn in black.
    ax : sequence of Axes, optional
        P + (non-empty channels) + (1 with a dissociated fraction).
    """
    import matplotlib.pyplot as plt

    P = len(pair_labels)
    shown = [] if channel_mean is None else [c for c in range(len(channels)) if not np.all(np.isnan(channel_mean[c]))]
    n_panels = P + len(shown) + (dissociated_fraction is not None)
    if ax is None:
        fig, axes = plt.subplots(
            n_panels, 1, figsize=(DOUBLE_COLUMN, 0.4 + 1.6 * n_panels), sharex=True, layout="constrained", squeeze=False
        )
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
            a.plot(x, truth_mean[:, p], "--", color="black", lw=0.9, label="truth (mean)")
        a.set_ylabel(f"R {label} (Å)")
        a.grid(alpha=0.3)
        a.legend(ncol=2, loc="upper left")
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
        a.set_title(f"{names.get(name, name + ' trajectories')}: mean ± 2σ")
        a.grid(alpha=0.3)
        if P > 1:
            a.legend(ncol=min(P, 4), loc="upper left")
    if dissociated_fraction is not None:
        a = axes[P + len(shown)]
        a.plot(x, dissociated_fraction, color="C3", label="fit")
        if truth_dissociated is not None:
            a.plot(x, truth_dissociated, "--", color="black", lw=0.9, label="truth")
            a.legend(loc="upper left")
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


@journal
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
    truth: tuple[float, float, float] | None = None,
    ax: Axes | Sequence[Axes] | np.ndarray | None = None,
) -> Figure:
    """γ, t0 and the IRF with their bootstrap distributions (histograms) and spreads.

    ``truth = (γ, t0, IRF)``, when known (a simulated experiment), is drawn as a black dashed line.

    ``profile = (gammas, chi2, birge_ratio)``, when given, adds γ's profile likelihood
    exp(−Δχ²/2R_B²) (right axis) to the γ panel: the spread in the title combines both.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, axes = plt.subplots(1, 3, figsize=(DOUBLE_COLUMN, 2.4), layout="constrained")
    else:
        axes = np.atleast_1d(np.asarray(ax, dtype=object))
        fig = axes[0].figure
    for k, (a, value, std, reps, name, unit) in enumerate(
        (
            (axes[0], gamma, gamma_std, boot_gamma, "γ", ""),
            (axes[1], t0, t0_std, boot_t0, "t0", " fs"),
            (axes[2], irf, irf_std, boot_irf, "IRF FWHM", " fs"),
        )
    ):
        if len(reps):
            a.hist(reps, bins=min(30, max(5, len(reps) // 4)), color="C0", alpha=0.6)
        a.axvline(value, color="C3", lw=1.2, label="fit")
        if truth is not None:
            a.axvline(truth[k], color="black", ls="--", lw=0.9, label=f"truth {truth[k]:.4g}{unit}")
            a.legend(loc="best", frameon=True, framealpha=0.85)
        a.set_title(f"{name} = {value:.4g} ± {std:.2g}{unit}")
        a.set_xlabel(f"{name}{' (fs)' if unit else ' (excitation fraction)'}")
    axes[0].set_ylabel("bootstrap replicates")
    if profile is not None and len(profile[0]):
        g, chi2, rb = (np.asarray(profile[0], dtype=float), np.asarray(profile[1], dtype=float), float(profile[2]))
        twin = axes[0].twinx()
        with np.errstate(under="ignore"):
            like = np.exp(-(chi2 - chi2.min()) / (2 * rb**2))
        twin.plot(g, like, "C1.-", lw=1.0, ms=2.5)
        twin.set_ylim(0, 1.05)
        twin.set_ylabel("profile likelihood of γ", color="C1")
        axes[0].set_xlim(min(axes[0].get_xlim()[0], g.min()), max(axes[0].get_xlim()[1], g.max()))
    return fig


@journal
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
    """ΔP(R, t) maps (one per pair type; delay across, R up), its 1-σ uncertainty, and the damped sine transform.

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
        fig, axes = plt.subplots(P, ncols, figsize=(DOUBLE_COLUMN, 0.3 + 2.0 * P), layout="constrained", squeeze=False)
    else:
        axes = np.atleast_2d(np.asarray(ax, dtype=object))
        fig = axes.flat[0].figure
    re, te = _edges(r), _edges(delays)
    for p, name in enumerate(pair_types):
        lim = float(np.nanmax(np.abs(dP[:, p]))) or 1.0
        m = axes[p, 0].pcolormesh(te, re, dP[:, p].T, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="flat")
        fig.colorbar(m, ax=axes[p, 0], label="ΔP (1/Å)")
        axes[p, 0].set_title(f"ΔP {name}(R, t), regularised")
        m = axes[p, 1].pcolormesh(te, re, dP_std[:, p].T, cmap="viridis", shading="flat")
        fig.colorbar(m, ax=axes[p, 1], label="σ of ΔP (1/Å)")
        axes[p, 1].set_title("its 1-σ uncertainty")
        if sine is not None:
            lim = float(np.nanmax(np.abs(sine))) or 1.0
            m = axes[p, 2].pcolormesh(te, re, np.asarray(sine).T, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="flat")
            fig.colorbar(m, ax=axes[p, 2], label="ΔP_sine (1/Å)")
            axes[p, 2].set_title("damped sine transform")
        for a in axes[p]:
            a.set_xlabel("delay (fs)")
            a.set_ylabel("R (Å)")
    return fig


@journal
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
        fig, axes = plt.subplots(1, P, figsize=(DOUBLE_COLUMN, 2.6), layout="constrained", squeeze=False)
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
        a.stairs(n_all / G / width, edges, color="0.4", lw=1.2, label=f"ground state ({G} samples)")
        if h.sum() > 0:
            a.stairs(n_hole / h.sum() / width, edges, color="C3", lw=1.2, label=f"removed (hole), Σh = {h.sum():.3g}")
        a.set_xlabel(f"R {pair_labels[p]} at excitation (Å)")
        a.set_ylabel("density (1/Å)")
        b = a.twinx()
        with np.errstate(invalid="ignore", divide="ignore"):
            prob = np.where(n_all > 0, n_hole * G / np.maximum(n_all, 1), np.nan)
        b.plot(0.5 * (edges[1:] + edges[:-1]), prob, "o", color="C1", ms=3, label="removal probability (right axis)")
        b.set_ylabel("removal probability", color="C1")
        b.set_ylim(-0.05, 1.35)  # room above 1 for the legend
        a.set_ylim(0, 1.35 * a.get_ylim()[1])
        a.set_title(f"mean R removed {h @ r0[:, p] / max(h.sum(), 1e-300):.3f} Å, ground {r0[:, p].mean():.3f} Å")
        handles = a.get_legend_handles_labels()[0] + b.get_legend_handles_labels()[0]
        b.legend(handles, [hd.get_label() for hd in handles], loc="upper left")
    return fig


def fit_figure_names(method: str, hole: bool = False) -> list[str]:
    """The names (without suffix) of the figures :func:`fit_figures` draws for a method's result, known before the fit."""
    if method == "pdf":
        return ["pdf_fit_signals", "pdf_map"]
    # the ensemble fit and the learned methods answer in the ensemble layout (FitResult.ensemble)
    return [f"{method}_fit_signals", "ensemble_distances", "ensemble_parameters"] + (["ensemble_hole"] if hole else [])


def _on_grid(values: np.ndarray, grid: np.ndarray, full: np.ndarray, axis: int) -> np.ndarray | None:
    """``values`` (on ``full`` along ``axis``) taken at ``grid``, or None when a point of ``grid`` is not in ``full``."""
    full, grid = np.asarray(full, dtype=float), np.asarray(grid, dtype=float)
    idx = np.searchsorted(full, grid)
    if np.any(idx >= full.size) or not np.allclose(full[np.minimum(idx, full.size - 1)], grid, rtol=0, atol=1e-9):
        return None
    return np.take(values, idx, axis=axis)


def fit_figures(result: FitResult, measurement: Measurement | None = None) -> dict[str, Figure]:
    """Every figure of a fit result, by the names of :func:`fit_figure_names`.

    With the ``measurement`` fitted, when it carries its truth (a simulated
    experiment), the truth is drawn on the figures: the noiseless ΔS on the
    line-outs, the true mean distances and dissociated fraction on the
    distance bands, and the true γ, t0 and IRF on the parameters.
    """
    truth = None if measurement is None else measurement.truth
    t_delays = None if measurement is None else measurement.delays
    figs: dict[str, Figure] = {}
    truth_dS = None
    if truth is not None and t_delays is not None and measurement is not None:
        on_delays = _on_grid(truth.dS_clean, result.delays, t_delays, 0)
        truth_dS = None if on_delays is None else _on_grid(on_delays, result.q, measurement.q, 1)
    figs[f"{result.method}_fit_signals"] = plot_fit_signals(
        result.q,
        result.delays,
        result.dS,
        result.dS_fit,
        result.residual,
        truth_dS=truth_dS,
        title=f"{result.method} fit, reduced χ² {result.reduced_chi2:.3f}",
        probe="xray" if measurement is None else measurement.probe,
    )
    e = result.ensemble
    if e is not None:
        truth_mean = truth_dissociated = None
        truth_parameters = None
        if truth is not None and t_delays is not None:
            if tuple(truth.pair_labels) == tuple(e.pair_labels):
                truth_mean = _on_grid(truth.distance_mean, result.delays, t_delays, 0)
            truth_dissociated = _on_grid(truth.dissociated_fraction, result.delays, t_delays, 0)
            truth_parameters = (float(truth.gamma), float(truth.t0), float(truth.irf_fs))
        figs["ensemble_distances"] = plot_distance_bands(
            result.delays,
            e.pair_labels,
            e.distance_mean,
            e.distance_mean_std,
            e.distance_quantiles,
            e.quantile_levels,
            channel_mean=e.channel_distance_mean,
            channel_mean_std=e.channel_distance_mean_std,
            channels=e.channels,
            dissociated_fraction=e.dissociated_fraction,
            dissociated_fraction_std=e.dissociated_fraction_std,
            truth_mean=truth_mean,
            truth_dissociated=truth_dissociated,
        )
        figs["ensemble_parameters"] = plot_parameters(
            e.gamma,
            e.gamma_std,
            e.t0,
            e.t0_std,
            e.irf_fs,
            e.irf_fs_std,
            e.bootstrap_gamma,
            e.bootstrap_t0,
            e.bootstrap_irf_fs,
            profile=None
            if e.profile_gamma is None or e.profile_chi2 is None
            else (e.profile_gamma, e.profile_chi2, e.birge_ratio),
            truth=truth_parameters,
        )
        if e.hole_weights is not None and e.hole_r0 is not None:
            figs["ensemble_hole"] = plot_hole(e.hole_r0, e.hole_weights, e.pair_labels)
    p = result.pdf
    if p is not None:
        figs["pdf_map"] = plot_pdf_map(result.delays, p.r, p.dP, p.dP_std, p.pair_types, sine=p.dP_sine)
    return figs
