"""Figures of a measurement ΔS(q, t): the map, line-outs with σ, q profiles and the signal-to-noise map.

Every function takes arrays (q in 1/Angstrom, delays in fs, ΔS and σ as
fractions, shown in percent) and an optional matplotlib ``ax``, and returns
the figure; nothing is shown or saved here. Maps put the delay across and q
up (the convention of every molmovie figure), and ``probe="electron"`` names
them s and ΔI/I, as electron diffraction does
(:func:`~molmovie.evaluation._style.signal_names`). Sizes are journal columns
(one panel 3.4 in, the whole measurement 7.0 in) with text of 7 pt or more
(:mod:`molmovie.evaluation._style`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ._style import DOUBLE_COLUMN, SINGLE_COLUMN, journal, signal_names

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "default_q_lines",
    "plot_dS_map",
    "plot_snr_map",
    "plot_lineouts",
    "plot_profiles",
    "plot_dsm_map",
    "plot_dp_map",
    "plot_measurement",
]


def _axes(ax, figsize=(SINGLE_COLUMN, 2.5)):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        return fig, ax
    return ax.figure, ax


def _time_scale(delays) -> tuple[float, str]:
    """Delays shown in ps when they span more than 2 ps, else in fs."""
    span = float(np.ptp(delays)) if np.size(delays) > 1 else 0.0
    return (1e-3, "ps") if span > 2000 else (1.0, "fs")


def _edges(x: np.ndarray) -> np.ndarray:
    """Cell edges around (possibly non-uniform) centres."""
    x = np.asarray(x, dtype=float)
    if x.size == 1:
        return np.array([x[0] - 0.5, x[0] + 0.5])
    mid = 0.5 * (x[1:] + x[:-1])
    return np.concatenate([[x[0] - (mid[0] - x[0])], mid, [x[-1] + (x[-1] - mid[-1])]])


def default_q_lines(q: ArrayLike, delays: ArrayLike, dS: np.ndarray, sigma: np.ndarray | None = None, n: int = 3) -> list[float]:
    """q values worth a line-out: the extremes of the mean ΔS after time zero.

    The interior local extremes (lobes) of the mean ΔS over delays >= 0,
    largest |ΔS| first; when there are fewer than ``n``, the ends of the q
    range follow, again by |ΔS|. Points closer than a tenth of the q range
    to one already taken are skipped.
    """
    q = np.asarray(q, dtype=float)
    after = np.asarray(delays) >= 0
    profile = (dS[after] if after.any() else dS).mean(axis=0)
    if q.size < 3:
        return [float(x) for x in q[:n]]
    inner = np.arange(1, q.size - 1)
    lobes = inner[((profile[inner] - profile[inner - 1]) * (profile[inner + 1] - profile[inner])) <= 0]
    order = list(lobes[np.argsort(-np.abs(profile[lobes]))]) + sorted([0, q.size - 1], key=lambda k: -abs(profile[k]))
    gap = 0.1 * (q[-1] - q[0])
    picks: list[int] = []
    for k in order:
        if len(picks) < n and all(abs(q[k] - q[p]) > gap for p in picks):
            picks.append(int(k))
    return sorted(float(q[p]) for p in picks)


def _delay_q_map(ax, q, delays, values, *, cmap, vmin, vmax, zero_line, title, label, extend, colorbar, ylabel="q (1/Å)"):
    """``values`` (T, Q) as a map, delays across and q up, time zero dotted in ``zero_line``; returns the figure."""
    fig, ax = _axes(ax)
    scale, unit = _time_scale(delays)
    mesh = ax.pcolormesh(_edges(np.asarray(delays) * scale), _edges(q), values.T, cmap=cmap, vmin=vmin, vmax=vmax, shading="flat")
    ax.axvline(0, color=zero_line, lw=0.6, ls=":")
    ax.set_xlabel(f"delay ({unit})")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if colorbar:
        fig.colorbar(mesh, ax=ax, label=label, extend=extend)
    return fig


@journal
def plot_dS_map(
    q: ArrayLike,
    delays: ArrayLike,
    dS: np.ndarray,
    *,
    ax: Axes | None = None,
    vmax: float | None = None,
    colorbar: bool = True,
    probe: str = "xray",
) -> Figure:
    """ΔS(q, t) in percent: delays across, q up, a diverging map centred at zero.

    ``vmax`` (percent) defaults to the 99.5th percentile of |ΔS|, so single
    noisy bins do not wash out the colours.
    """
    qn, sn = signal_names(probe)
    pct = 100 * np.asarray(dS, dtype=float)
    if vmax is None:
        vmax = float(np.percentile(np.abs(pct), 99.5)) or 1.0
    return _delay_q_map(
        ax,
        q,
        delays,
        pct,
        cmap="RdBu_r",
        vmin=-vmax,
        vmax=vmax,
        zero_line="k",
        title=f"{sn}({qn}, t)",
        label=f"{sn} (%)",
        extend="both",
        colorbar=colorbar,
        ylabel=f"{qn} (1/Å)",
    )


def _diverging(values: np.ndarray, vmax: float | None) -> float:
    """The colour limit: ``vmax``, or the 99.5th percentile of |values| (1 where that is 0)."""
    if vmax is not None:
        return float(vmax)
    return float(np.percentile(np.abs(values), 99.5)) or 1.0


@journal
def plot_dsm_map(
    s: ArrayLike, delays: ArrayLike, dsM: np.ndarray, *, ax: Axes | None = None, vmax: float | None = None, colorbar: bool = True
) -> Figure:
    """ΔsM(s, t) of electron diffraction, 1/Å: delays across, s up, a diverging map centred at zero (as UED papers draw it)."""
    values = np.asarray(dsM, dtype=float)
    v = _diverging(values, vmax)
    return _delay_q_map(
        ax,
        s,
        delays,
        values,
        cmap="RdBu_r",
        vmin=-v,
        vmax=v,
        zero_line="k",
        title="ΔsM(s, t)",
        label="ΔsM (1/Å)",
        extend="both",
        colorbar=colorbar,
        ylabel="s (1/Å)",
    )


@journal
def plot_dp_map(
    r: ArrayLike, delays: ArrayLike, dP: np.ndarray, *, ax: Axes | None = None, vmax: float | None = None, colorbar: bool = True
) -> Figure:
    """ΔP(r, t), the damped sine transform of ΔsM (:func:`molmovie.scattering.pair_distribution`): delays across, r up."""
    values = np.asarray(dP, dtype=float)
    v = _diverging(values, vmax)
    return _delay_q_map(
        ax,
        r,
        delays,
        values,
        cmap="RdBu_r",
        vmin=-v,
        vmax=v,
        zero_line="k",
        title="ΔP(r, t)",
        label="ΔP (arb. units)",
        extend="both",
        colorbar=colorbar,
        ylabel="r (Å)",
    )


@journal
def plot_snr_map(
    q: ArrayLike,
    delays: ArrayLike,
    dS: np.ndarray,
    sigma: np.ndarray,
    *,
    ax: Axes | None = None,
    vmax: float | None = None,
    colorbar: bool = True,
    probe: str = "xray",
) -> Figure:
    """|ΔS|/σ: where the measurement carries signal (bins with σ = 0 are left blank)."""
    qn, sn = signal_names(probe)
    sigma = np.asarray(sigma, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(sigma > 0, np.abs(dS) / np.where(sigma > 0, sigma, 1.0), np.nan)
    if vmax is None:
        finite = snr[np.isfinite(snr)]
        vmax = float(np.percentile(finite, 99)) if finite.size else 1.0
    return _delay_q_map(
        ax,
        q,
        delays,
        snr,
        cmap="magma",
        vmin=0,
        vmax=max(vmax, 1.0),
        zero_line="w",
        title=f"signal to noise |{sn}|/σ",
        label=f"|{sn}|/σ",
        extend="max",
        colorbar=colorbar,
        ylabel=f"{qn} (1/Å)",
    )


def _window_mean(q, dS, sigma, q0, width):
    """Inverse-variance weighted mean of ΔS over |q - q0| <= width/2 (at least the nearest bin)."""
    sel = np.abs(q - q0) <= width / 2
    if not sel.any():
        sel = np.abs(q - q0) == np.abs(q - q0).min()
    if sigma is None or np.any(sigma[:, sel] <= 0):
        return dS[:, sel].mean(axis=1), None, q[sel]
    w = 1.0 / sigma[:, sel] ** 2
    return (w * dS[:, sel]).sum(axis=1) / w.sum(axis=1), 1.0 / np.sqrt(w.sum(axis=1)), q[sel]


@journal
def plot_lineouts(
    q: ArrayLike,
    delays: ArrayLike,
    dS: np.ndarray,
    sigma: np.ndarray | None = None,
    q_lines: Sequence[float] | None = None,
    *,
    q_width: float = 0.1,
    ax: Axes | None = None,
    window: tuple[float, float] | None = None,
    probe: str = "xray",
) -> Figure:
    """ΔS against delay at a few q (percent), with ±σ error bars.

    Each line is the inverse-variance weighted mean over the bins within
    ``q_width`` (1/Angstrom) around its q; its σ ignores the correlation
    between delays through the shared reference. ``window`` (fs, fs) keeps
    the delays inside it (a zoom on the rise).
    """
    qn, sn = signal_names(probe)
    fig, ax = _axes(ax)
    q = np.asarray(q, dtype=float)
    if window is not None:
        rows = (np.asarray(delays) >= window[0]) & (np.asarray(delays) <= window[1])
        delays, dS = np.asarray(delays)[rows], np.asarray(dS)[rows]
        sigma = None if sigma is None else np.asarray(sigma)[rows]
    scale, unit = _time_scale(delays)
    t = np.asarray(delays) * scale
    if q_lines is None:
        q_lines = default_q_lines(q, delays, dS, sigma)
    for q0 in q_lines:
        y, s, qs = _window_mean(q, np.asarray(dS), None if sigma is None else np.asarray(sigma), q0, q_width)
        label = f"{qn} = {qs.mean():.2f} 1/Å" + (f" ({len(qs)} bins)" if len(qs) > 1 else "")
        if s is None:
            ax.plot(t, 100 * y, ".-", ms=3, lw=0.8, label=label)
        else:
            ax.errorbar(t, 100 * y, yerr=100 * s, fmt=".-", ms=3, lw=0.8, elinewidth=0.8, capsize=0, label=label)
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0, color="k", lw=0.6, ls=":")
    ax.set_xlabel(f"delay ({unit})")
    ax.set_ylabel(f"{sn} (%)")
    ax.set_title("line-outs (±σ)" if window is None else f"the rise: {window[0]:g} to {window[1]:g} fs")
    ax.legend()
    return fig


@journal
def plot_profiles(
    q: ArrayLike,
    delays: ArrayLike,
    dS: np.ndarray,
    sigma: np.ndarray | None = None,
    windows: Sequence[tuple[float, float]] | None = None,
    *,
    ax: Axes | None = None,
    probe: str = "xray",
) -> Figure:
    """ΔS(q) in percent, averaged over a few delay windows (fs), with ±σ bands.

    ``windows`` defaults to: before time zero, the first 200 fs, and the
    second half of the delays.
    """
    qn, sn = signal_names(probe)
    fig, ax = _axes(ax)
    q = np.asarray(q, dtype=float)
    d = np.asarray(delays, dtype=float)
    if windows is None:
        windows = []
        if (d < 0).any():
            windows.append((d[0], 0.0))
        if ((d >= 0) & (d <= 200)).any():
            windows.append((0.0, 200.0))
        late = d[d > 0]
        if late.size > 4:
            windows.append((float(np.median(late)), float(late[-1])))
    scale, unit = _time_scale(delays)
    for lo, hi in windows:
        rows = (d >= lo) & ((d < hi) if hi <= 0 else (d <= hi))
        if not rows.any():
            continue
        n = int(rows.sum())
        y = dS[rows].mean(axis=0)
        sc, un = (1.0, "fs") if hi - lo <= 1000 else (scale, unit)
        label = f"{lo * sc:.4g} to {hi * sc:.4g} {un} ({n} delays)"
        (line,) = ax.plot(q, 100 * y, lw=1.0, label=label)
        if sigma is not None:
            s = np.sqrt((np.asarray(sigma)[rows] ** 2).sum(axis=0)) / n
            ax.fill_between(q, 100 * (y - s), 100 * (y + s), color=line.get_color(), alpha=0.25, lw=0)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel(f"{qn} (1/Å)")
    ax.set_ylabel(f"{sn} (%)")
    ax.set_title(f"mean {sn}({qn}) in delay windows (±σ)")
    ax.legend()
    return fig


@journal
def plot_measurement(
    q: ArrayLike,
    delays: ArrayLike,
    dS: np.ndarray,
    sigma: np.ndarray | None = None,
    *,
    q_lines: Sequence[float] | None = None,
    tmax: float | None = None,
    title: str | None = None,
    ued: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    probe: str | None = None,
) -> Figure:
    """One figure of a measurement: ΔS map, |ΔS|/σ map, q profiles, line-outs and a zoom on the rise.

    With ``ued`` (an electron measurement), a third row: the ΔsM(s, t) and ΔP(r, t) maps.

    Parameters
    ----------
    q : ndarray, shape (Q,), 1/Angstrom
    delays : ndarray, shape (T,), fs
    dS : ndarray, shape (T, Q), fraction
    sigma : ndarray, shape (T, Q), fraction, or None
        Without σ, the signal-to-noise panel is left out.
    q_lines : list of float, optional
        q (1/Angstrom) of the line-outs; default :func:`default_q_lines`.
    tmax : float, optional
        Show delays up to this time, fs.
    title : str, optional
    ued : (dsM (T, Q), r (R,), dP (T, R)), optional
        Electron diffraction's ΔsM in 1/Å on ``q`` (s) and its ΔP on r (Å)
        (:func:`molmovie.measurement.difference_pdf`).
    probe : {"xray", "electron"}, optional
        Names the axes (q and ΔS, or s and ΔI/I); default "electron" with ``ued``, else "xray".

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    probe = probe or ("xray" if ued is None else "electron")
    q = np.asarray(q, dtype=float)
    delays = np.asarray(delays, dtype=float)
    dS = np.asarray(dS, dtype=float)
    if tmax is not None:
        keep = delays <= tmax
        delays, dS = delays[keep], dS[keep]
        sigma = None if sigma is None else np.asarray(sigma)[keep]
        if ued is not None:
            ued = (np.asarray(ued[0])[keep], np.asarray(ued[1]), np.asarray(ued[2])[keep])
    zoom = (max(float(delays[0]), -300.0), 600.0)
    zoomed = bool(np.count_nonzero((delays >= zoom[0]) & (delays <= zoom[1])) >= 2 and np.ptp(delays) > 1000)
    rows = ["MS", "PL"] + (["ZZ"] if zoomed else []) + (["DR"] if ued is not None else [])
    fig, axs = plt.subplot_mosaic(";".join(rows), figsize=(DOUBLE_COLUMN, 0.4 + 2.3 * len(rows)), layout="constrained")
    if ued is not None:
        plot_dsm_map(q, delays, ued[0], ax=axs["D"])
        plot_dp_map(ued[1], delays, ued[2], ax=axs["R"])
    plot_dS_map(q, delays, dS, ax=axs["M"], probe=probe)
    if sigma is not None:
        plot_snr_map(q, delays, dS, sigma, ax=axs["S"], probe=probe)
    else:
        axs["S"].set_axis_off()
        axs["S"].text(0.5, 0.5, "no σ in the file", ha="center", va="center", transform=axs["S"].transAxes)
    if q_lines is None:
        q_lines = default_q_lines(q, delays, dS, sigma)
    plot_lineouts(q, delays, dS, sigma, q_lines, ax=axs["L"], probe=probe)
    for q0 in q_lines:
        axs["M"].axhline(q0, color="k", lw=0.5, ls="--", alpha=0.6)
    plot_profiles(q, delays, dS, sigma, ax=axs["P"], probe=probe)
    if zoomed:
        plot_lineouts(q, delays, dS, sigma, q_lines, ax=axs["Z"], window=zoom, probe=probe)
    if title:
        fig.suptitle(textwrap.fill(title, 120))
    return fig
