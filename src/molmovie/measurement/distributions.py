r"""Distance distributions: every atom-atom distance over a weighted ensemble at times after excitation.

What a simulated experiment's truth holds, and what a fit over a trajectory
basis reports: at each time the nearest frame (the cells of
:func:`molmovie.measurement.irf_operator`; each trajectory holds its last
valid frame past its length), without the IRF, the weighted mean, standard
deviation and quantiles (:func:`weighted_quantiles`) of every distance, and
the fraction of the ensemble whose fragments have parted by then
(:func:`parting_frames`); all of it in :func:`distance_distribution`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .._typing import Symbols
from ..datasets import Dataset
from ..geometry import distances as pair_distances, pair_labels as _pair_labels
from ..molecules import BOND_SCALE, covalent_radii
from ..trajectories import BREAK_SCALE, Ensemble
from ._checks import _check_size, _check_weights, _ensemble_of, _vector
from .model import _cell_edges

__all__ = [
    "DEFAULT_LEVELS",
    "weighted_quantiles",
    "parting_frames",
    "DistanceDistribution",
    "distance_distribution",
]

#: Quantile levels of the stored distance distributions.
DEFAULT_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)


def weighted_quantiles(values: ArrayLike, weights: ArrayLike, levels: ArrayLike, axis: int = 0) -> np.ndarray:
    r"""Weighted quantiles by linear interpolation between the weights' midpoints.

    Sorted values x_(k) with normalised weights w_(k) sit at the cumulative
    probabilities p_k = Σ_{l<k} w_(l) + w_(k)/2; a level p is interpolated
    linearly between them and clamped to the smallest and largest value
    outside [p_1, p_M]. With equal weights this is NumPy's ``method="hazen"``
    (Hyndman and Fan, *Am. Stat.* 50, 361 (1996), definition 5); it is
    continuous in the weights, which a fit of weights needs. Values of zero
    weight are left out.

    Parameters
    ----------
    values : array_like, shape (..., M, ...)
    weights : array_like, shape (M,)
        Non-negative, positive sum.
    levels : array_like, shape (K,), in [0, 1]
    axis : int, default 0
        The axis of ``values`` that the weights run along.

    Returns
    -------
    ndarray, shape of ``values`` without ``axis``, plus (K,) last
    """
    x = np.moveaxis(np.asarray(values, dtype=float), axis, 0)
    w = _check_weights(weights, x.shape[0], normalise=True)
    p = np.asarray(levels, dtype=float)
    if p.ndim != 1 or np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise InputError(f"The 'levels' parameter must be numbers in [0, 1]; got {levels!r}")
    keep = w > 0
    x, w = x[keep], w[keep]
    order = np.argsort(x, axis=0, kind="stable")
    xs = np.take_along_axis(x, order, axis=0)
    ws = w[order]
    mid = np.cumsum(ws, axis=0) - 0.5 * ws  # (M, ...) strictly increasing along axis 0
    out = np.empty(x.shape[1:] + (p.size,))
    m = x.shape[0]
    for k, level in enumerate(p):
        above = np.sum(mid <= level, axis=0)  # points at or below the level
        hi = np.clip(above, 1, m - 1) if m > 1 else np.zeros_like(above)
        lo = np.maximum(hi - 1, 0)
        x_lo = np.take_along_axis(xs, lo[None], axis=0)[0]
        x_hi = np.take_along_axis(xs, hi[None], axis=0)[0]
        p_lo = np.take_along_axis(mid, lo[None], axis=0)[0]
        p_hi = np.take_along_axis(mid, hi[None], axis=0)[0]
        if m > 1:
            frac = np.clip((level - p_lo) / (p_hi - p_lo), 0.0, 1.0)
        else:
            frac = np.zeros_like(p_lo)
        out[..., k] = x_lo + frac * (x_hi - x_lo)
    return out


def _fragment_counts(symbols: Symbols, positions: np.ndarray, scale: float) -> np.ndarray:
    """Number of covalent fragments of each geometry, shape (F,), for positions (F, N, 3)."""
    r = covalent_radii(symbols)
    d = np.linalg.norm(positions[:, :, None, :] - positions[:, None, :, :], axis=-1)
    adj = d < scale * (r[:, None] + r[None, :])  # the diagonal is bonded to itself: fine for labels
    n = len(symbols)
    labels = np.broadcast_to(np.arange(n), positions.shape[:1] + (n,)).copy()
    for _ in range(n):  # min-label propagation: converges within n steps
        new = np.where(adj, labels[:, None, :], n).min(axis=2)
        if np.array_equal(new, labels):
            break
        labels = new
    return (labels == np.arange(n)).sum(axis=1)


def parting_frames(dataset: Dataset | Ensemble) -> np.ndarray:
    """The frame from which each dissociating trajectory's fragments stay apart.

    The dataset flags dissociation per trajectory
    (:func:`molmovie.trajectories.is_dissociated`: more covalent fragments at
    the last frame, at 2 × the covalent radii, than in the first, at 1.3 ×).
    For a flagged trajectory the parting frame is the first frame from which,
    through its last valid frame, it has more fragments at 2 × the radii than
    its first frame has at 1.3 ×, the same test the flag applies to the last
    frame; if its last frame does not pass that test (a flag made some other
    way), the parting frame is its last frame. Trajectories not flagged never
    part.

    Parameters
    ----------
    dataset : molmovie.datasets.Dataset or molmovie.trajectories.Ensemble

    Returns
    -------
    ndarray of int, shape (M,)
        The parting frame, or -1 for a trajectory that does not dissociate.
    """

    ens = _ensemble_of(dataset)
    out = np.full(ens.n_trajectories, -1, dtype=np.int64)
    for i in np.flatnonzero(ens.dissociated):
        L = int(ens.length[i])
        pos = ens.positions[i, :L]
        start = _fragment_counts(ens.symbols, pos[:1], BOND_SCALE)[0]
        apart = _fragment_counts(ens.symbols, pos, BREAK_SCALE) > start
        if not apart[-1]:
            out[i] = L - 1
        else:
            together = np.flatnonzero(~apart)
            out[i] = together[-1] + 1 if together.size else 0
    return out


class DistanceDistribution(NamedTuple):
    """The weighted ensemble distribution of every distance at given times.

    Attributes
    ----------
    times : ndarray, shape (T_d,), fs after excitation (before clipping)
    frames : ndarray of int, shape (T_d,)
        The basis frame used for each time (before holding past a trajectory's end).
    pair_labels : tuple of str, length P
    levels : ndarray, shape (K,)
    mean, std : ndarray, shape (T_d, P), Angstrom
    quantiles : ndarray, shape (T_d, P, K), Angstrom
    dissociated_fraction : ndarray, shape (T_d,)
    """

    times: np.ndarray
    frames: np.ndarray
    pair_labels: tuple
    levels: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    quantiles: np.ndarray
    dissociated_fraction: np.ndarray


def distance_distribution(
    dataset: Dataset | Ensemble,
    times: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    levels: ArrayLike = DEFAULT_LEVELS,
    parting: ArrayLike | None = None,
) -> DistanceDistribution:
    r"""The weighted distribution over the ensemble of every atom-atom distance at times after excitation.

    At each time τ (for a measurement, τ = delay − t0) the time is clipped to
    the basis span [0, τ_end] (before excitation: the first frame), the
    nearest frame is taken (the cells of :func:`irf_operator`) and each
    trajectory past its length holds its last valid frame. The IRF is not
    applied: this is the ensemble's distribution at that instant. Then

    .. math::

        \bar R_p = \sum_i w_i R_{ip}, \qquad
        s_p = \Big(\sum_i w_i (R_{ip} - \bar R_p)^2\Big)^{1/2},

    quantiles by :func:`weighted_quantiles`, and the dissociated fraction
    Σ_i w_i [frame ≥ parting frame of i] (:func:`parting_frames`).

    Parameters
    ----------
    dataset : molmovie.datasets.Dataset or molmovie.trajectories.Ensemble
    times : array_like, shape (T_d,), fs after excitation
    weights : array_like, shape (M,), optional
        Non-negative; normalised to sum 1. Default uniform.
    levels : array_like, shape (K,), default :data:`DEFAULT_LEVELS`
    parting : ndarray of int, shape (M,), optional
        :func:`parting_frames` of the dataset, when already computed (e.g. in
        a bootstrap loop over weights); computed here otherwise.

    Returns
    -------
    DistanceDistribution
    """
    ens = _ensemble_of(dataset)
    tau = _vector("times", times, increasing=False)
    w = _check_weights(weights, ens.n_trajectories, normalise=True)
    lv = np.asarray(levels, dtype=float)
    n_pairs = len(ens.symbols) * (len(ens.symbols) - 1) // 2
    _check_size(ens.n_trajectories * tau.size * max(n_pairs, 1), "the distance distribution (trajectories × delays × pairs)")
    edges = _cell_edges(ens.time)
    frames = np.searchsorted(edges, np.clip(tau, 0.0, None), side="right") - 1
    held = np.minimum(frames[None, :], ens.length[:, None] - 1)  # (M, T_d)
    pos = np.take_along_axis(ens.positions, held[:, :, None, None], axis=1)
    r = pair_distances(pos)  # (M, T_d, P)
    mean = np.tensordot(w, r, axes=(0, 0))
    var = np.tensordot(w, (r - mean) ** 2, axes=(0, 0))
    quant = weighted_quantiles(r, w, lv, axis=0)
    part = parting_frames(ens) if parting is None else np.asarray(parting, dtype=np.int64)
    if part.shape != (ens.n_trajectories,):
        raise InputError(
            f"The 'parting' parameter must hold one frame per trajectory ({ens.n_trajectories}); got shape {part.shape}"
        )
    apart = (part[:, None] >= 0) & (held >= part[:, None])
    return DistanceDistribution(
        times=tau,
        frames=frames,
        pair_labels=tuple(_pair_labels(ens.symbols)),
        levels=lv,
        mean=mean,
        std=np.sqrt(var),
        quantiles=quant,
        dissociated_fraction=np.clip(w @ apart, 0.0, 1.0),
    )
