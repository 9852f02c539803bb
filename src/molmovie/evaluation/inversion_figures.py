"""The figure of an inversion result (``molmovie invert --figures``): predicted distances against time.

One panel per distance (the heavy-atom pairs first when there are more than
``max_pairs``), a few series each, every prediction with its ±σ band, and
the true distances dotted in each series' colour where they are known (signals taken from a
dataset, whose trajectories carry their positions). Two journal columns wide,
text of 7 pt or more (:mod:`molmovie.evaluation._style`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..geometry import heavy_pairs
from ._style import DOUBLE_COLUMN, journal

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_inversion", "shown_pairs"]


def shown_pairs(symbols: Sequence[str], n_pairs: int, max_pairs: int = 6) -> np.ndarray:
    """Indices of the pairs drawn: all of them up to ``max_pairs``, else the heavy-atom pairs first, then the others."""
    if n_pairs <= max_pairs:
        return np.arange(n_pairs)
    heavy = list(heavy_pairs(tuple(symbols)))
    rest = [p for p in range(n_pairs) if p not in heavy]
    return np.array((heavy + rest)[:max_pairs])


@journal
def plot_inversion(
    time: np.ndarray,
    distances: np.ndarray,
    pair_labels: Sequence[str],
    *,
    std: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
    symbols: Sequence[str] | None = None,
    truth: np.ndarray | None = None,
    series: Sequence[int] | None = None,
    max_pairs: int = 6,
    title: str = "",
) -> Figure:
    """Predicted distances R_AB(t) ± σ for a few series, one panel per pair, the truth dotted where known.

    Parameters
    ----------
    time : ndarray, shape (T,), fs
    distances : ndarray, shape (M, T, P), Angstrom
        NaN past each series' length.
    pair_labels : sequence of str, length P
    std : ndarray, shape (M, T, P), Angstrom, optional
    lengths : ndarray of int, shape (M,), optional
    symbols : sequence of str, optional
        The atoms, to put the heavy-atom pairs first when there are more than ``max_pairs``.
    truth : ndarray, shape (M, T, P), Angstrom, optional
        The true distances of the same series.
    series : sequence of int, optional
        The series drawn (default: the first three).
    max_pairs : int
        Panels at most.
    """
    import matplotlib.pyplot as plt

    d = np.asarray(distances, dtype=float)
    M, T, P = d.shape
    pairs = shown_pairs(symbols, P, max_pairs) if symbols is not None else np.arange(min(P, max_pairs))
    chosen = list(range(min(M, 3))) if series is None else [int(s) for s in series]
    ncols = 1 if len(pairs) == 1 else 2
    nrows = -(-len(pairs) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(DOUBLE_COLUMN, 0.5 + 1.7 * nrows), sharex=True, layout="constrained", squeeze=False
    )
    t = np.asarray(time, dtype=float)
    for k, p in enumerate(pairs):
        a = axes.flat[k]
        for n, m in enumerate(chosen):
            L = T if lengths is None else int(lengths[m])
            color = f"C{n}"
            a.plot(t[:L], d[m, :L, p], color=color, lw=1.0, label=f"series {m}")
            if std is not None:
                s = np.asarray(std)[m, :L, p]
                a.fill_between(t[:L], d[m, :L, p] - s, d[m, :L, p] + s, color=color, alpha=0.25, lw=0)
            if truth is not None:  # in the series' colour (one black line per series could not be told apart)
                a.plot(t[:L], np.asarray(truth)[m, :L, p], ":", color=color, lw=1.4, label=f"series {m}, truth")
        a.set_ylabel(f"R {pair_labels[p]} (Å)")
        a.grid(alpha=0.3)
    for a in axes.flat[len(pairs) :]:
        a.set_axis_off()
    for column in range(ncols):  # the lowest drawn panel of each column carries the time axis
        drawn = [axes[r, column] for r in range(nrows) if r * ncols + column < len(pairs)]
        drawn[-1].xaxis.set_tick_params(labelbottom=True)
        drawn[-1].set_xlabel("time (fs)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6))
    hidden = P - len(pairs)
    note = f" ({hidden} more pairs not shown)" if hidden > 0 else ""
    fig.suptitle((title or "predicted distances ± σ") + note)
    return fig
