"""The frame-by-frame baseline: nearest reference frame by sum of squared residuals.

For each query frame ΔS(q, t) the method searches every valid frame of every
training trajectory for the one with the smallest sum of squared residuals

.. math::

    \\mathrm{SSR}(a, b) = \\sum_q \\left(\\Delta S_a(q) - \\Delta S_b(q)\\right)^2

and answers that reference frame's distances. This is the traditional fit
against a library of simulated structures, the baseline of Asenov et al.

The search is exact and fast. Scores are first computed for a block of
query frames against the whole library with one matrix product in float32,
:math:`\\|b\\|^2 - 2 a \\cdot b` (the :math:`\\|a\\|^2` term is the same for a
query's every candidate), on data centred by the library mean. A rigorous
rounding bound :math:`\\delta_{ab} = c\\,(\\|a\\|^2 + \\|b\\|^2)` with
:math:`c = 8 (Q + 8)\\, 2^{-24}` then keeps every reference frame that could
be the true minimum; those few are re-scored exactly in float64 as
``((a - b) ** 2).sum()``, and the smallest wins, ties going to the lowest
reference index. The answer is therefore identical to a brute-force loop, at
the speed of BLAS. Memory is bounded by ``memory_mb`` (one block of scores).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .._numba import configure, parallel_lock
from .._typing import PathLike, Progress
from ..datasets import Dataset
from ..measurement.types import MAX_SIGNAL
from ._base import InversionMethod, Prediction, check_number, need_array
from ._refine import check_refine_settings, refine_distances

__all__ = ["NearestReference", "nearest_frames"]

#: Candidates kept per query frame by the fast pass before falling back to a full row scan.
_CAPACITY = 64
_U32 = 2.0**-24


def _kernel():
    """Compile (once, cached on disk) the numba scan that collects candidate frames."""
    global _SCAN
    if _SCAN is not None:
        return _SCAN
    import numba

    configure()  # the threading layer, before the kernel runs

    @numba.njit(parallel=True, cache=True)
    def scan(G, nb, na, c, cand, count):  # pragma: no cover - compiled
        n_rows, n_ref = G.shape
        cap = cand.shape[1]
        for i in numba.prange(n_rows):
            ca = c * na[i]
            upper = np.inf
            for j in range(n_ref):
                s = nb[j] - 2.0 * np.float64(G[i, j])
                hi = s + c * nb[j]
                if hi < upper:
                    upper = hi
            upper += 2.0 * ca
            k = 0
            for j in range(n_ref):
                s = nb[j] - 2.0 * np.float64(G[i, j])
                if s - c * nb[j] <= upper:
                    if k < cap:
                        cand[i, k] = j
                    k += 1
            count[i] = k

    _SCAN = scan
    return scan


_SCAN = None


def nearest_frames(
    query: np.ndarray,
    library: np.ndarray,
    *,
    memory_mb: float = 256.0,
    progress: Callable[[int, dict], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Index and SSR of the nearest library frame of each query frame.

    Parameters
    ----------
    query : ndarray, shape (n, Q)
        Finite query frames ΔS.
    library : ndarray, shape (R, Q)
        Finite reference frames ΔS.
    memory_mb : float
        Size of one block of float32 scores, MB; sets how many query frames
        are scored at once (at least one).
    progress : callable(done, info), optional
        Called after each block with the number of query frames done and
        ``{"total": n, "unit": "frames"}``.

    Returns
    -------
    index : ndarray of int64, shape (n,)
        Row of ``library`` with the smallest SSR; the lowest such row on ties.
    ssr : ndarray, shape (n,)
        That SSR, computed exactly as ``((query[i] - library[index]) ** 2).sum()``
        in float64.
    """
    query = np.ascontiguousarray(query, dtype=np.float64)
    library = np.ascontiguousarray(library, dtype=np.float64)
    n, Q = query.shape
    R = library.shape[0]
    index = np.empty(n, dtype=np.int64)
    ssr = np.empty(n, dtype=np.float64)
    if n == 0:
        return index, ssr
    if R == 0:
        raise InputError("the reference library is empty")
    centre = library.mean(axis=0)
    lib_c = library - centre
    nb = np.einsum("ij,ij->i", lib_c, lib_c)
    lib32 = lib_c.astype(np.float32)
    del lib_c
    c = 8.0 * (Q + 8) * _U32
    block = max(1, min(n, int(memory_mb * 2**20 / (4.0 * R))))
    scan = _kernel()
    cand = np.empty((block, _CAPACITY), dtype=np.int64)
    count = np.empty(block, dtype=np.int64)
    G = np.empty((block, R), dtype=np.float32)
    for start in range(0, n, block):
        stop = min(n, start + block)
        b = stop - start
        qc = query[start:stop] - centre
        na = np.einsum("ij,ij->i", qc, qc)
        g = G[:b]
        np.matmul(qc.astype(np.float32), lib32.T, out=g)
        with parallel_lock:
            scan(g, nb, na, c, cand[:b], count[:b])
        k = count[:b]
        few = np.flatnonzero(k <= _CAPACITY)
        if len(few):
            kk = k[few]
            rows = np.repeat(few, kk)
            cols = cand[:b][few][np.arange(_CAPACITY)[None, :] < kk[:, None]]
            exact = ((query[start + rows] - library[cols]) ** 2).sum(axis=1)
            order = np.lexsort((cols, exact, rows))  # by row, then SSR, then lowest index
            first = order[np.r_[0, np.cumsum(kk)[:-1]]]
            index[start + few] = cols[first]
            ssr[start + few] = exact[first]
        for i in np.flatnonzero(k > _CAPACITY):  # many near-ties: every frame within the bound
            s = nb - 2.0 * g[i].astype(np.float64)
            upper = np.min(s + c * nb) + 2.0 * c * na[i]
            cols = np.flatnonzero(s - c * nb <= upper)
            exact = ((query[start + i] - library[cols]) ** 2).sum(axis=1)
            best = np.argmin(exact)  # cols ascend, so the first minimum is the lowest index
            index[start + i] = cols[best]
            ssr[start + i] = exact[best]
        if progress is not None:
            progress(stop, {"total": n, "unit": "frames"})
    return index, ssr


class NearestReference(InversionMethod):
    """The paper's baseline: answer the distances of the training frame with the smallest SSR.

    Parameters
    ----------
    memory_mb : float, default 256
        Working memory for one block of scores, MB. The library itself
        (reference ΔS in float64 and float32, and the distances) comes on top.
    refine : bool, default False
        Refine the answer by a signal fit (:func:`molmovie.inversion.refine_distances`),
        under a Gaussian prior in log R centred on the nearest frame's distances
        with relative width ``refine_std`` (heavy-atom pairs); ``std`` becomes the
        Laplace approximation's, or for noise-free training signals ``refine_std`` relative.
    refine_std : float, default 0.1
        The prior's width in log R (a relative error of the nearest frame's distances).
    refine_weight : float, default 1.0
        The prior term's multiplier in that fit (> 0).

    Attributes
    ----------
    library_ : ndarray, shape (R, Q)
        ΔS of every valid training frame, trajectory after trajectory.
    library_distances_ : ndarray, shape (R, n_pairs), Angstrom
    library_source_ : ndarray of int, shape (R, 2)
        (trajectory, frame) of each library row in the training data.
    q_ : ndarray, shape (Q,), 1/Angstrom
    symbols_, molecule_, pair_labels_
        The molecule the model was trained on.

    Notes
    -----
    It has no uncertainty (``Prediction.std`` is None) and no dynamics: every
    frame is inverted on its own. Saving the model saves its library.
    """

    name = "nearest"
    label = "baseline"
    _fitted_attr = "library_"

    def __init__(self, *, memory_mb: float = 256.0, refine: bool = False, refine_std: float = 0.1, refine_weight: float = 1.0):
        self.memory_mb = memory_mb
        self.refine = refine
        self.refine_std = refine_std
        self.refine_weight = refine_weight

    def check_settings(self) -> list[str]:
        """Validate the settings (see :meth:`InversionMethod.check_settings`)."""
        check_number("memory_mb", self.memory_mb, low=0, low_open=True)
        check_refine_settings(self)
        return []

    def fit(self, train: Dataset, val: Dataset | None = None, *, progress: Progress | None = None) -> NearestReference:
        """Build the reference library from the training trajectories.

        Parameters
        ----------
        train : Dataset
            Trajectories with signals; every valid frame becomes a reference.
        val : Dataset, optional
            Checked for consistency only (the method has nothing to tune).
        progress : callable(done, info), optional
            Called once, as ``progress(1, {"total": 1, "unit": "steps", "epoch": 1, "epochs": 1, "train_loss": None, "val_loss": None})``.

        Returns
        -------
        self
        """
        mask, val = self._start_fit(train, val)
        dist = np.asarray(train.distances, dtype=float)
        if not np.all(np.isfinite(dist[mask])):
            raise InputError("the training positions have NaN or inf within a trajectory's length")
        self._record_dataset(train)
        traj, frame = np.nonzero(mask)
        self.library_distances_ = np.ascontiguousarray(dist[traj, frame])
        self.library_source_ = np.stack([traj, frame], axis=1).astype(np.int64)
        self.library_ = np.ascontiguousarray(np.asarray(train.dS, dtype=float)[traj, frame])
        if progress is not None:
            progress(1, {"total": 1, "unit": "steps", "epoch": 1, "epochs": 1, "train_loss": None, "val_loss": None})
        return self

    def query(
        self, dS: ArrayLike, *, q: ArrayLike, lengths: ArrayLike | None = None, progress: Progress | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest library row of every frame.

        ``dS``, ``q`` and ``lengths`` as for :meth:`predict`; ``progress`` as
        for :func:`nearest_frames`.

        Returns
        -------
        index : ndarray of int64, shape (M, T)
            Library row (see ``library_source_``), -1 past each length.
        ssr : ndarray, shape (M, T)
            Its SSR, NaN past each length.
        """
        dS, lengths, mask = self._signals(dS, q, lengths, "query")
        index = np.full(mask.shape, -1, dtype=np.int64)
        ssr = np.full(mask.shape, np.nan)
        idx, val = nearest_frames(dS[mask], self.library_, memory_mb=self.memory_mb, progress=progress)
        index[mask] = idx
        ssr[mask] = val
        return index, ssr

    def predict(self, dS: ArrayLike, *, q: ArrayLike, lengths: ArrayLike | None = None) -> Prediction:
        """Distances of the nearest reference frame of every frame (parameters: :meth:`InversionMethod.predict`).

        Returns
        -------
        Prediction
            ``distances`` (M, T, n_pairs) Angstrom, NaN past each length; ``std`` None
            (with ``refine``: the refined distances and their std).
        """
        index, _ = self.query(dS, q=q, lengths=lengths)
        out = np.full(index.shape + (self.n_pairs_,), np.nan)
        ok = index >= 0
        out[ok] = self.library_distances_[index[ok]]
        if self.refine:
            out, std = refine_distances(
                out,
                self.refine_std * out,
                dS,
                symbols=self.symbols_,
                spec=self.spec_,
                lengths=ok.sum(axis=1),
                weight=self.refine_weight,
            )
            return Prediction(distances=out, std=std)
        return Prediction(distances=out, std=None)

    # -------------------------------------------------------------- persistence
    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "library": self.library_,
            "library_distances": self.library_distances_,
            "library_source": self.library_source_,
        }

    def _restore(self, config: dict, arrays: dict, path: PathLike) -> None:
        lib = np.asarray(need_array(arrays, "library", path), dtype=float)
        dist = np.asarray(need_array(arrays, "library_distances", path), dtype=float)
        src = np.asarray(need_array(arrays, "library_source", path, kinds="iu"), dtype=np.int64)
        if lib.ndim != 2 or lib.shape[1] != len(self.q_) or dist.shape != (lib.shape[0], self.n_pairs_) or len(src) != len(lib):
            raise InputError(f"{path}: damaged molmovie model file (library arrays of inconsistent shapes)")
        if not (np.all(np.isfinite(lib)) and np.all(np.isfinite(dist))):
            raise InputError(f"{path}: damaged molmovie model file (library has NaN or inf)")
        # what training lets in (check_signals): |ΔS| <= MAX_SIGNAL; distances of a molecule, not of light years
        if (lib.size and np.abs(lib).max() > MAX_SIGNAL) or (dist.size and (dist.min() < 0 or dist.max() > 1e6)):
            raise InputError(f"{path}: damaged molmovie model file (library values out of range)")
        if src.size and (src.min() < 0):
            raise InputError(f"{path}: damaged molmovie model file (negative library sources)")
        self.library_distances_ = np.ascontiguousarray(dist)
        self.library_source_ = src
        self.library_ = np.ascontiguousarray(lib)
