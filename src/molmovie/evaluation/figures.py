"""Figures of the study, after the paper's Figure 2.

Every function takes arrays (and optionally a matplotlib ``ax``), draws, and
returns the figure; nothing is shown or saved here (the caller saves, PNG and
PDF: :func:`molmovie.evaluation._style.save_figure`). Sizes are journal columns
(3.4 or 7.0 in) with text of 7 pt or more; maps put time across and q up.
Methods come as a dict, label -> numbers, for any number of methods; each
gets the colour of its place in the dict (:data:`PALETTE`), in every figure.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .._typing import Symbols
from ..geometry import pair_indices, pair_labels
from ._style import DOUBLE_COLUMN, SINGLE_COLUMN, journal, signal_names

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "plot_rmsd_sums",
    "plot_distance_trace",
    "plot_per_time_step",
    "plot_signals",
    "plot_noise_ladder",
    "choose_pair",
    "PALETTE",
]

#: Colours of the methods, in the order they are given (seaborn's "deep" palette); the truth is black.
PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD")


def _colour(k: int) -> str:
    return PALETTE[k % len(PALETTE)]


def choose_pair(symbols: Symbols, distances: ArrayLike | None = None, name: str | None = None) -> tuple[int, str]:
    """The atom pair a figure follows: by name, or the one whose distance varies most.

    Parameters
    ----------
    symbols : sequence of str
    distances : ndarray, shape (..., n_pairs), Angstrom, optional
        Needed without ``name``: the pair of largest variance over all
        (finite) entries is chosen, the first on ties.
    name : str, optional
        A pair label as :func:`molmovie.geometry.pair_labels` writes it
        ("N2-O5"), or two elements ("O-N", either order): the first such pair.

    Returns
    -------
    index : int
        Position of the pair in ``numpy.triu_indices`` order.
    label : str
        Its pair label, e.g. "N2-O5".
    """
    labels = list(pair_labels(tuple(symbols)))
    if name is None:
        if distances is None:
            raise InputError("choose a pair by name, or give distances to choose the one that varies most")
        d = np.asarray(distances, dtype=float).reshape(-1, len(labels))
        var = np.array([np.var(col[np.isfinite(col)]) if np.isfinite(col).any() else -1.0 for col in d.T])
        k = int(np.argmax(var))
        return k, labels[k]
    if name in labels:
        return labels.index(name), name
    parts = [p.strip() for p in re.split("[-–]", name)]
    if len(parts) == 2:
        i, j = pair_indices(len(symbols))
        want = sorted(parts)
        for k, (a, b) in enumerate(zip(i, j, strict=True)):
            if sorted((symbols[a], symbols[b])) == want:
                return k, labels[k]
    raise InputError(f"the molecule ({' '.join(symbols)}) has no pair {name!r}; its pairs are {', '.join(labels)}")


def _axes(ax, ncols=1, figsize=(SINGLE_COLUMN, 2.5), sharey=False):
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, np.atleast_1d(ax)
    fig, axes = plt.subplots(1, ncols, figsize=figsize, constrained_layout=True, sharey=sharey)
    return fig, np.atleast_1d(axes)


@journal
def plot_rmsd_sums(
    experiments: list[str],
    sums: dict[str, dict[str, list[float]]],
    *,
    errors: dict[str, dict[str, list[float]]] | None = None,
    ax: Axes | None = None,
    titles: dict[str, str] | None = None,
) -> Figure:
    """Grouped bars: RMSD summed over all test frames, per experiment, one bar per method.

    Parameters
    ----------
    experiments : list of str
        Experiment labels (x axis).
    sums : dict panel -> dict method label -> list of float
        E.g. ``{"labelled": {"baseline": [...], "VRNN": [...]}, "symmetry-aware": {...}}``;
        one panel each, one bar per method (NaN: no bar). With ``errors``, the means over seeds.
    errors : dict panel -> dict method label -> list of float, optional
        The spread of each bar (e.g. the standard deviation over seeds), drawn
        as an error bar of ± that much; the same keys as ``sums``.
    """
    panels = list(sums)
    fig, axes = _axes(ax, ncols=len(panels), figsize=(DOUBLE_COLUMN, 2.9), sharey=True)  # panels compare
    x = np.arange(len(experiments))
    for a, panel in zip(axes, panels, strict=False):  # a given `ax` may hold fewer panels
        methods = list(sums[panel])
        width = 0.8 / len(methods)
        for k, m in enumerate(methods):
            vals = np.asarray(sums[panel][m], dtype=float)
            err = None if errors is None else np.asarray(errors[panel][m], dtype=float)
            bars = a.bar(
                x + (k - (len(methods) - 1) / 2) * width,
                vals,
                width,
                color=_colour(k),
                label=m,
                yerr=err,
                capsize=2 if err is not None else 0,
                error_kw=dict(lw=0.8, ecolor="black"),
            )
            a.bar_label(bars, fmt="%.0f", padding=1)
        a.set_xticks(x, experiments, rotation=20, ha="right")
        if a is axes[0]:
            a.set_ylabel("RMSD summed over test frames (Å)")
        a.set_title((titles or {}).get(panel, f"{panel} RMSD"))
        a.margins(y=0.12)
        a.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=len(labels))
    return fig


@journal
def plot_distance_trace(
    time: ArrayLike,
    truth: ArrayLike,
    predictions: dict[str, tuple[np.ndarray, np.ndarray | None]],
    *,
    pair_label: str,
    ax: Axes | None = None,
) -> Figure:
    """One distance along one trajectory: the truth and each method, with ±σ bands where given.

    Parameters
    ----------
    time : ndarray, shape (T,), fs
    truth : ndarray, shape (T,), Angstrom
    predictions : dict method label -> (distance (T,), std (T,) or None)
    pair_label : str
        E.g. "N2-O5".
    """
    fig, (a,) = _axes(ax, figsize=(DOUBLE_COLUMN, 2.6))
    a.plot(time, truth, color="black", lw=1.4, label="truth")
    for k, (m, (d, s)) in enumerate(predictions.items()):
        a.plot(time, d, color=_colour(k), lw=1.0, label=m)
        if s is not None:
            a.fill_between(time, d - s, d + s, color=_colour(k), alpha=0.25, lw=0, label=f"{m} ± σ")
    a.set_xlabel("time (fs)")
    a.set_ylabel(f"{pair_label} distance (Å)")
    a.legend(ncol=2)
    a.grid(alpha=0.3)
    return fig


@journal
def plot_per_time_step(
    time: ArrayLike, curves: dict[str, dict[str, np.ndarray]], *, title: str = "", ax: Axes | None = None
) -> Figure:
    """RMSD and SSR against time, averaged over test trajectories, for each method (two panels).

    Parameters
    ----------
    time : ndarray, shape (T,), fs
    curves : dict method label -> {"rmsd": (T,), "ssr": (T,)}
    """
    fig, axes = _axes(ax, ncols=2, figsize=(DOUBLE_COLUMN, 2.6))
    for k, (m, c) in enumerate(curves.items()):
        axes[0].plot(time, c["rmsd"], color=_colour(k), label=m)
        axes[1].plot(time, c["ssr"], color=_colour(k), label=m)
    axes[0].set_ylabel("mean RMSD (Å)")
    axes[1].set_ylabel("mean SSR of ΔS (fraction²)")
    if any(np.nanmax(np.asarray(c["ssr"], dtype=float), initial=0.0) > 0 for c in curves.values()):
        axes[1].set_yscale("log")  # an exact fit (SSR 0 everywhere: nearest on its own library) stays linear
    for a in axes:
        a.set_xlabel("time (fs)")
        a.grid(alpha=0.3)
    axes[0].legend()
    if title:
        fig.suptitle(title)
    return fig


@journal
def plot_signals(
    time: ArrayLike, q: ArrayLike, panels: dict[str, np.ndarray], *, title: str = "", ax: Axes | None = None, probe: str = "xray"
) -> Figure:
    """ΔS(q, t) maps side by side (percent; time across, q up), one shared colour scale (electrons: ΔI/I(s, t)).

    Parameters
    ----------
    time : ndarray, shape (T,), fs
    q : ndarray, shape (Q,), 1/Angstrom
    panels : dict label -> ndarray, shape (T, Q), a fraction
    """
    names = list(panels)
    fig, axes = _axes(ax, ncols=len(names), figsize=(DOUBLE_COLUMN, 2.5))
    stack = np.stack([np.asarray(panels[n], float) for n in names]) * 100
    lim = np.nanpercentile(np.abs(stack), 99.5) or 1.0
    for a, n, img in zip(axes, names, stack, strict=False):  # a given `ax` may hold fewer panels
        mesh = a.pcolormesh(time, q, img.T, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="nearest")
        a.set_title(n)
        a.set_xlabel("time (fs)")
    qn, sn = signal_names(probe)
    axes[0].set_ylabel(f"{qn} (1/Å)")
    fig.colorbar(mesh, ax=list(axes), label=f"{sn} (%)", shrink=0.9)
    if title:
        fig.suptitle(title)
    return fig


@journal
def plot_noise_ladder(
    levels: ArrayLike,
    panels: dict[str, dict[str, tuple[list, list | None]]],
    *,
    ncols: int = 4,
    title: str = "",
) -> Figure:
    """Each score against the noise level: one panel per (experiment, score), a line per method and variant, shaded spread.

    Parameters
    ----------
    levels : array_like, shape (L,)
        σ of ΔS of each level (0: noise free, drawn at the left end of the logarithmic axis).
    panels : dict panel title -> dict variant label -> (mean, spread or None), lists of L numbers
        A variant whose label ends with "+ signal fit" is drawn dashed, in its method's colour
        (the colour of the same label without that ending).
    ncols : int
        Panels per row.
    """
    import textwrap

    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    x = np.asarray(levels, dtype=float)
    positive = x[x > 0]
    zero_at = positive.min() / 3.0 if positive.size else 1.0
    xs = np.where(x > 0, x, zero_at)
    n = len(panels)
    rows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(rows, ncols, figsize=(DOUBLE_COLUMN, 0.8 + 1.9 * rows), layout="constrained", squeeze=False)
    colours: dict[str, str] = {}
    suffix = " + signal fit"
    for ax, (name, lines) in zip(axes.flat, panels.items(), strict=False):
        for label, (mean, spread) in lines.items():
            base = label[: -len(suffix)] if label.endswith(suffix) else label
            colour = colours.setdefault(base, _colour(len(colours)))
            m = np.asarray(mean, dtype=float)
            ax.plot(xs, m, color=colour, ls="--" if label.endswith(suffix) else "-", marker="o", ms=3, label=label)
            if spread is not None:
                s = np.asarray(spread, dtype=float)
                ax.fill_between(xs, m - s, m + s, color=colour, alpha=0.18, lw=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(xs, ["0" if v == 0 else f"{v:g}" for v in x], rotation=45, fontsize=7)
        ax.minorticks_off()
        # ticks at 1, 2 and 5 of each decade (a panel of more than three decades: at each decade), each labelled,
        # so that a panel that spans less than a decade keeps its scale
        low, high = ax.get_ylim()
        wide = high > 0 and low > 0 and np.log10(high / low) > 3
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0), numticks=12))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title("\n".join(textwrap.wrap(name, 26)), fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("σ of ΔS (noise)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)))
    if title:
        fig.suptitle(title)
    return fig
