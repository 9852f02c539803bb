"""The frame-by-frame baseline with dynamics-constrained decoding (nearest frames joined by Viterbi).

For every frame t of a series, the k reference frames of least sum of
squared residuals (the candidates c of :mod:`._nearest`'s baseline, best
first) are kept; then one candidate per frame is chosen, the path
:math:`c_1 \\dots c_T` of least total cost

.. math::

    C(c_1, \\dots, c_T) = \\sum_{t=1}^{T} \\frac{\\mathrm{SSR}_t(c_t)}{s^2}
        + \\lambda \\sum_{t=2}^{T} \\frac{\\lVert R(c_t) - R(c_{t-1}) \\rVert^2}{d^2},
    \\qquad
    \\mathrm{SSR}_t(c) = \\sum_q \\left(\\Delta S_t(q) - \\Delta S_c(q)\\right)^2,

found exactly by dynamic programming (the Viterbi algorithm; Viterbi, IEEE
Trans. Inf. Theory 13, 260 (1967); Rabiner, Proc. IEEE 77, 257 (1989)).
:math:`R(c)` are the reference frame's distances (Angstrom). The scales make
:math:`\\lambda` dimensionless: :math:`d^2` is the median squared change of
the distances between consecutive frames of the training trajectories, and
:math:`s^2` the larger of the training data's typical fit residual (median
SSR of a training frame's nearest frame in the other half of the training
trajectories) and the series' own (median SSR of its frames' best
candidates), so that noise in the data at hand, which raises every SSR,
does not silence the dynamics term. :math:`\\lambda = 0` or :math:`k = 1` is
the frame-by-frame baseline exactly (with ``symmetry=False``; with it, up to a
relabelling of equivalent atoms).

With ``symmetry=True`` (by default when a training trajectory dissociates)
each candidate enters in every relabelling :math:`g` of the bond graph's
automorphisms (:func:`molmovie.geometry.automorphisms`),
:math:`R(c)` becoming :math:`P_g R(c)`: a library frame and its mirror image
(the two S atoms of CS2 swapped) are then the same structure, and the path
jumps to neither for its labels' sake; the answer carries the labels of the
path, consistent from frame to frame.

The k-best search is exact, like :func:`~molmovie.inversion.nearest_frames`:
scores :math:`\\|b\\|^2 - 2 a \\cdot b` for a block of query frames by one
float64 matrix product on centred data, a rigorous rounding bound
:math:`c\\,(\\|a\\|^2 + \\|b\\|^2)`, :math:`c = 8 (Q + 8)\\, 2^{-53}`, keeps every
frame that could be among the k best, and those are re-scored exactly as
``((a - b) ** 2).sum()``; ties go to the lowest reference index. Memory is
bounded by ``memory_mb``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .._guards import check_allocation
from .._typing import PathLike, Progress
from ..datasets import Dataset
from ..geometry import automorphisms, pair_permutations
from ._base import Prediction, check_number, need_array
from ._nearest import NearestReference, nearest_frames

__all__ = ["NearestViterbi", "nearest_k_frames", "viterbi_path"]

_U64 = 2.0**-53
#: Bounds of the settings (a k of 1000 already costs T k^2 pair distances per series).
_MAX_K = 1000
_MAX_LAM = 1e6


def nearest_k_frames(
    query: np.ndarray,
    library: np.ndarray,
    k: int,
    *,
    memory_mb: float = 256.0,
    progress: Callable[[int, dict], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and SSRs of the k nearest library frames of each query frame, best first.

    Parameters
    ----------
    query : ndarray, shape (n, Q)
        Finite query frames ΔS.
    library : ndarray, shape (R, Q)
        Finite reference frames ΔS.
    k : int
        Candidates per query frame; at most R are returned.
    memory_mb : float
        Size of one block of float64 scores (and its work arrays), MB.
    progress : callable(done, info), optional
        Called after each block with the query frames done and ``{"total": n, "unit": "frames"}``.

    Returns
    -------
    index : ndarray of int64, shape (n, min(k, R))
        Library rows in increasing SSR, ties in increasing row.
    ssr : ndarray, shape (n, min(k, R))
        Their SSRs, exactly ``((query[i] - library[j]) ** 2).sum()`` in float64.
    """
    query = np.ascontiguousarray(query, dtype=np.float64)
    library = np.ascontiguousarray(library, dtype=np.float64)
    n, Q = query.shape
    R = library.shape[0]
    if R == 0:
        raise InputError("the reference library is empty")
    k = min(int(k), R)
    index = np.empty((n, k), dtype=np.int64)
    ssr = np.empty((n, k), dtype=np.float64)
    if n == 0:
        return index, ssr
    centre = library.mean(axis=0)
    lib_c = library - centre
    nb = np.einsum("ij,ij->i", lib_c, lib_c)
    c = 8.0 * (Q + 8) * _U64
    block = max(1, min(n, int(memory_mb * 2**20 / (4 * 8.0 * R))))  # G, s, its bounds: about four (block, R) arrays
    for start in range(0, n, block):
        stop = min(n, start + block)
        qc = query[start:stop] - centre
        na = np.einsum("ij,ij->i", qc, qc)
        s = nb[None, :] - 2.0 * (qc @ lib_c.T)
        slack = c * (na[:, None] + nb[None, :])
        upper = np.partition(s + slack, k - 1, axis=1)[:, k - 1]  # the true k-th best is at most this
        rows, cols = np.nonzero(s - slack <= upper[:, None])
        del s, slack
        exact = ((query[start + rows] - library[cols]) ** 2).sum(axis=1)
        order = np.lexsort((cols, exact, rows))  # by row, then SSR, then lowest index
        counts = np.bincount(rows, minlength=stop - start)
        first = np.r_[0, np.cumsum(counts)[:-1]]
        take = order[first[:, None] + np.arange(k)[None, :]]
        index[start:stop] = cols[take]
        ssr[start:stop] = exact[take]
        if progress is not None:
            progress(stop, {"total": n, "unit": "frames"})
    return index, ssr


def viterbi_path(
    unary: np.ndarray, states: np.ndarray, lam: float, lengths: np.ndarray | None = None, *, memory_mb: float = 256.0
) -> np.ndarray:
    """The path of least cost through candidate states, one per frame (exact dynamic programming).

    .. math::

        C = \\sum_t u_t(c_t) + \\lambda \\sum_{t \\ge 2} \\lVert x_t(c_t) - x_{t-1}(c_{t-1}) \\rVert^2

    Parameters
    ----------
    unary : ndarray, shape (M, T, k)
        Cost of each candidate of each frame (finite within each length).
    states : ndarray, shape (M, T, k, P)
        Each candidate's point x (e.g. distances over d).
    lam : float
        Weight of the squared jumps, >= 0.
    lengths : ndarray of int, shape (M,), optional
        Frames of each series that count (default: all T); past it the path is 0.
    memory_mb : float, default 256
        Working memory of the jumps between two frames' candidates, (k, k, P)
        float64 per series, MB: series, and if need be a series' current
        candidates, are taken in blocks of this size (at least one row).

    Returns
    -------
    ndarray of int64, shape (M, T)
        Chosen candidate per frame; among equal costs the lowest candidates
        (the path whose candidates, read from the last frame back, are lowest).
    """
    unary = np.asarray(unary, dtype=float)
    states = np.asarray(states, dtype=float)
    M, T, k = unary.shape
    lengths = np.full(M, T, dtype=np.int64) if lengths is None else np.asarray(lengths, dtype=np.int64)
    path = np.zeros((M, T), dtype=np.int64)
    if M == 0 or T == 0:
        return path
    check_allocation((M, T, k), f"a Viterbi path of {M} series x {T} frames x {k} candidates")
    back = np.zeros((M, T, k), dtype=np.int64)
    cost = np.where((lengths > 0)[:, None], unary[:, 0], 0.0)
    # blocks (series m0:m1, current candidates j0:j1) whose (·, ·, k, P) temporaries fit in memory_mb
    P = states.shape[-1]
    row = 3 * 8 * k * max(P, 1)  # bytes per (series, current candidate): the difference, its square, the total
    per_block = max(1, int(memory_mb * 2**20 // row))
    if per_block >= k:
        step = per_block // k
        blocks = [(m0, min(M, m0 + step), 0, k) for m0 in range(0, M, step)]
    else:
        blocks = [(m, m + 1, j0, min(k, j0 + per_block)) for m in range(M) for j0 in range(0, k, per_block)]
    for t in range(1, T):
        live = lengths > t
        if not live.any():
            break
        new_cost = cost.copy()
        for m0, m1, j0, j1 in blocks:
            sel = np.flatnonzero(live[m0:m1]) + m0
            if len(sel) == 0:
                continue
            diff = states[sel, t, j0:j1][:, :, None, :] - states[sel, t - 1][:, None, :, :]
            total = cost[sel][:, None, :] + lam * np.einsum("mjip,mjip->mji", diff, diff)  # (m, j now, i before)
            best = np.argmin(total, axis=2)
            back[sel, t, j0:j1] = best
            new_cost[sel, j0:j1] = np.take_along_axis(total, best[:, :, None], axis=2)[:, :, 0] + unary[sel, t, j0:j1]
        cost = new_cost
    last = lengths - 1
    end = np.argmin(cost, axis=1)
    rows = np.arange(M)
    for t in range(T - 1, -1, -1):
        path[last == t, t] = end[last == t]
        inner = last > t
        if inner.any():
            path[inner, t] = back[rows[inner], t + 1, path[inner, t + 1]]
    return path


def _typical(values: np.ndarray) -> float:
    """A positive scale: the median, else the mean (most values 0), else 1 (all 0)."""
    values = np.asarray(values, dtype=float)
    for scale in (np.median(values), np.mean(values)) if values.size else ():
        if scale > 0:
            return float(scale)
    return 1.0


class NearestViterbi(NearestReference):
    """The frame-by-frame baseline with a Viterbi path through each frame's k nearest reference frames.

    The path minimises the cost of the module docstring (:mod:`molmovie.inversion._viterbi`):
    the candidates' SSR over :math:`s^2` plus :math:`\\lambda` times their
    squared jumps in distance space over :math:`d^2`.

    Parameters
    ----------
    k : int, default 10
        Reference frames kept per time step, 1 to 1000 (1: the baseline).
    lam : float, default 0.3
        Weight λ of the jumps, dimensionless, 0 to 1e6 (0: the baseline).
        0.3 did no worse than 1 or 3 on every CS2 test tried (generated test
        trajectories with and without noise, the two shared SHARC runs), and
        no worse than the baseline except on weakly noisy data (+2 %).
    symmetry : {"auto", True, False}, default "auto"
        Measure jumps between relabellings of equivalent atoms too (see the
        module); "auto": when some training trajectory dissociates (as the
        VRNN's loss does), since a bound molecule keeps its labels from frame
        to frame. Each relabelling multiplies the states per frame (N-methyl
        morpholine's bond graph has 192 automorphisms).
    memory_mb : float, default 256
        Working memory for one block of scores, MB.

    Attributes
    ----------
    library_, library_distances_, library_source_, q_, symbols_, molecule_, pair_labels_
        As for :class:`~molmovie.inversion.NearestReference`.
    ssr_scale_ : float
        :math:`s^2` of the training data: the median SSR of a training frame's
        nearest frame among the other half of the training trajectories
        (alternate trajectories; alternate frames if there is one).
    jump_scale_ : float, Angstrom^2
        :math:`d^2`: the median of :math:`\\lVert R(t) - R(t-1) \\rVert^2` over
        consecutive frames of the training trajectories.
    pair_permutations_ : ndarray of int, shape (K, n_pairs)
        The relabellings of the distances tried (the identity first; only it
        with ``symmetry=False``), from the first training frame's bond graph.

    Notes
    -----
    No uncertainty (``Prediction.std`` is None).
    """

    name = "nearest-viterbi"
    label = "baseline + Viterbi"
    _fitted_attr = "jump_scale_"

    def __init__(self, *, k: int = 10, lam: float = 0.3, symmetry: bool | str = "auto", memory_mb: float = 256.0):
        self.k = k
        self.lam = lam
        self.symmetry = symmetry
        self.memory_mb = memory_mb

    def check_settings(self) -> list[str]:
        """Validate the settings (see :meth:`InversionMethod.check_settings`)."""
        check_number("k", self.k, low=1, high=_MAX_K, integer=True)
        check_number("lam", self.lam, low=0, high=_MAX_LAM)
        if not (isinstance(self.symmetry, (bool, np.bool_)) or self.symmetry == "auto"):
            raise InputError(f"The 'symmetry' setting must be true, false or 'auto'; got {self.symmetry!r}")
        check_number("memory_mb", self.memory_mb, low=0, low_open=True)
        return []

    def fit(self, train: Dataset, val: Dataset | None = None, *, progress: Progress | None = None) -> NearestViterbi:
        """Build the reference library and the two scales from the training trajectories.

        Parameters as for :meth:`NearestReference.fit`; ``progress`` is called once.
        """
        super().fit(train, val, progress=None)
        traj, frame = self.library_source_.T
        fold = (frame if traj.max() == traj.min() else traj) % 2
        a, b = np.flatnonzero(fold == 0), np.flatnonzero(fold == 1)
        if len(b) == 0:  # a single frame: nothing to compare it with
            ssr = np.zeros(1)
        else:
            ssr = np.concatenate(
                [nearest_frames(self.library_[x], self.library_[y], memory_mb=self.memory_mb)[1] for x, y in ((a, b), (b, a))]
            )
        step = (traj[1:] == traj[:-1]) & (frame[1:] == frame[:-1] + 1)
        jumps = np.sum((self.library_distances_[1:] - self.library_distances_[:-1])[step] ** 2, axis=1)
        self.ssr_scale_ = _typical(ssr)
        relabel = bool(np.any(train.dissociated)) if self.symmetry == "auto" else bool(self.symmetry)
        perms = (
            automorphisms(self.symbols_, np.asarray(train.positions)[0, 0]) if relabel else np.arange(len(self.symbols_))[None]
        )
        self.pair_permutations_ = pair_permutations(perms).astype(np.int64)
        self.jump_scale_ = _typical(jumps)
        if progress is not None:
            progress(1, {"total": 1, "unit": "steps", "epoch": 1, "epochs": 1, "train_loss": None, "val_loss": None})
        return self

    def fit_summary(self) -> str:
        """The two scales of the cost."""
        self._check_fitted("summarising its fit")
        return f"scales: s² = {self.ssr_scale_:.3g} (SSR), d² = {self.jump_scale_:.3g} Å² (jumps); λ = {self.lam:g}, k = {self.k}"

    def decode(
        self, dS: ArrayLike, *, q: ArrayLike, lengths: ArrayLike | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The Viterbi path of every series through its frames' k nearest library rows.

        ``dS``, ``q`` and ``lengths`` as for :meth:`predict`.

        Returns
        -------
        index : ndarray of int64, shape (M, T)
            Library row chosen per frame (see ``library_source_``), -1 past each length.
        relabel : ndarray of int64, shape (M, T)
            Row of ``pair_permutations_`` applied to its distances, -1 past each length.
        ssr : ndarray, shape (M, T)
            Its SSR, NaN past each length.
        """
        dS, lengths, mask = self._signals(dS, q, lengths, "decode")
        M, T = mask.shape
        cand, cand_ssr = nearest_k_frames(dS[mask], self.library_, self.k, memory_mb=self.memory_mb)
        k = cand.shape[1]
        perms = self.pair_permutations_
        K = len(perms)
        rows = np.zeros((M, T, k), dtype=np.int64)
        ssr = np.zeros((M, T, k))
        rows[mask], ssr[mask] = cand, cand_ssr
        best = np.where(mask, ssr[:, :, 0], np.nan)
        series = np.full(M, self.ssr_scale_)
        has = lengths > 0
        series[has] = np.maximum(self.ssr_scale_, np.nanmedian(best[has], axis=1))
        # states (candidate, relabelling), candidate-major: state c K + g is P_g R(c); built one series at a time
        P = perms.shape[1]
        check_allocation(
            (T, k * K, P), f"the Viterbi states of one series ({T} frames x {k} candidates x {K} relabellings x {P} pairs)"
        )
        unary = np.repeat(ssr / series[:, None, None], K, axis=2)
        path = np.zeros((M, T), dtype=np.int64)
        for m in range(M):
            states = self.library_distances_[rows[m]][..., perms].reshape(1, T, k * K, P) / np.sqrt(self.jump_scale_)
            path[m] = viterbi_path(unary[m : m + 1], states, float(self.lam), lengths[m : m + 1], memory_mb=self.memory_mb)[0]
        chosen, relabel = path // K, path % K
        index = np.where(mask, np.take_along_axis(rows, chosen[:, :, None], axis=2)[:, :, 0], -1)
        fit = np.where(mask, np.take_along_axis(ssr, chosen[:, :, None], axis=2)[:, :, 0], np.nan)
        return index, np.where(mask, relabel, -1), fit

    def predict(self, dS: ArrayLike, *, q: ArrayLike, lengths: ArrayLike | None = None) -> Prediction:
        """Distances of the reference frames on each series' Viterbi path (parameters: :meth:`InversionMethod.predict`).

        Returns
        -------
        Prediction
            ``distances`` (M, T, n_pairs) Angstrom, relabelled as on the path,
            NaN past each length; ``std`` None.
        """
        index, relabel, _ = self.decode(dS, q=q, lengths=lengths)
        out = np.full(index.shape + (self.n_pairs_,), np.nan)
        ok = index >= 0
        out[ok] = np.take_along_axis(self.library_distances_[index[ok]], self.pair_permutations_[relabel[ok]], axis=1)
        return Prediction(distances=out, std=None)

    # -------------------------------------------------------------- persistence
    def _config_state(self) -> dict:
        return {"ssr_scale": self.ssr_scale_, "jump_scale": self.jump_scale_}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {**super()._arrays(), "pair_permutations": self.pair_permutations_}

    def _restore(self, config: dict, arrays: dict, path: PathLike) -> None:
        super()._restore(config, arrays, path)
        scales: list[Any] = [config.get("ssr_scale"), config.get("jump_scale")]  # checked next
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v > 0 for v in scales):
            raise InputError(f"{path}: damaged molmovie model file (the cost's scales are missing or not positive numbers)")
        perms = np.asarray(need_array(arrays, "pair_permutations", path, kinds="iu"), dtype=np.int64)
        P = self.n_pairs_
        if (
            perms.ndim != 2
            or perms.shape[1] != P
            or len(perms) == 0
            or not np.array_equal(np.sort(perms, axis=1), np.broadcast_to(np.arange(P), perms.shape))
        ):
            raise InputError(f"{path}: damaged molmovie model file ('pair_permutations' are not permutations of the {P} pairs)")
        self.pair_permutations_ = perms
        self.ssr_scale_, self.jump_scale_ = float(scales[0]), float(scales[1])
