"""Transfer: how a trained inversion method does on dynamics it did not generate.

A learned method is trained on trajectories of one dynamics model (GFN2-xTB
with a given excited-state recipe). A scientist applies it to signals of the
real molecule, whose dynamics differ. This module scores a trained method on
*foreign* trajectories: real surface-hopping runs (SHARC), or a generated
dataset made with another dynamics model (``cs2-triplet`` against a model
trained on ``cs2-isc``, another lifetime, ...). For each foreign run:

1. its positions are put on the model's time grid (:func:`resample_ensemble`:
   frames every ``dt`` fs from the run's start, positions interpolated
   linearly between the run's own frames; a frame on one of the run's steps
   is that step's positions exactly);
2. its ΔS(q, t) is simulated with exactly the model's
   :class:`~molmovie.scattering.SignalSpec` (q grid, inelastic term,
   reference, photon noise, IRF; :func:`molmovie.scattering.simulate`);
3. the method predicts its distances, which are scored against the run's own.

The score of the issue ("transfer") is the symmetry-aware distance error:
per frame, the mean over atom pairs of :math:`|R_{pred} - R_{true}|`,
minimised over the permutations of equivalent atoms (the automorphisms of the
bond graph; scattering cannot tell identical atoms apart), then averaged over
each run's frames and over the runs. For CS2 this is the mean error of the
two C–S distances, sorted, and of the S–S distance. The study's scores
(labelled and symmetry-aware RMSD, SSR) come with it from
:func:`~molmovie.evaluation.score_method`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError, shorten
from .._guards import check_allocation
from .._typing import PathLike, Progress, Symbols
from ..datasets import Dataset
from ..geometry import automorphisms, pair_indices, pair_permutations
from ..inversion import InversionMethod
from ..io import read_dataset
from ..molecules import formula
from ..scattering import simulate
from ..trajectories import Ensemble, check_time_option, is_dissociated, read_ensemble
from .metrics import heavy_pairs
from .stage import score_method, score_prediction

__all__ = [
    "Transfer",
    "transfer",
    "score_transfer",
    "foreign_dataset",
    "read_foreign",
    "resample_ensemble",
    "symmetric_distance_error",
]


# --------------------------------------------------------------------------- the score


def symmetric_distance_error(
    pred: ArrayLike, true: ArrayLike, permutations: ArrayLike, *, pairs: ArrayLike | None = None
) -> np.ndarray:
    r"""Absolute distance errors after the best relabelling of equivalent atoms, frame by frame.

    For every frame, the relabelling :math:`\pi` (one of ``permutations``)
    that minimises the mean absolute error over the chosen pairs is applied
    to the prediction:

    .. math::

        e_{ab} = \left| R^{pred}_{\pi(a)\pi(b)} - R^{true}_{ab} \right|, \qquad
        \pi = \arg\min_{\pi} \frac{1}{|P|} \sum_{(a,b) \in P}
        \left| R^{pred}_{\pi(a)\pi(b)} - R^{true}_{ab} \right|

    For CS2 (the two S atoms exchangeable) this pairs the two predicted C–S
    distances with the two true ones in sorted order, the issue's score:
    for two values, the sorted pairing has the least summed absolute error.

    Parameters
    ----------
    pred, true : ndarray, shape (..., n_pairs), Angstrom
        Predicted and true distances, pairs in ``numpy.triu_indices`` order.
        NaN frames stay NaN.
    permutations : ndarray of int, shape (K, n_atoms)
        Atom permutations allowed (e.g. :func:`molmovie.geometry.automorphisms`);
        the identity is added when missing.
    pairs : ndarray of int, optional
        Pair indices the relabelling is chosen on (default: all pairs).

    Returns
    -------
    ndarray, shape (..., n_pairs), Angstrom
        Every pair's absolute error under each frame's chosen relabelling.

    Raises
    ------
    InputError
        For shapes that do not match, or permutations of another atom count.
    """
    pred = np.asarray(pred, dtype=float)
    true = np.asarray(true, dtype=float)
    if pred.shape != true.shape or pred.ndim < 1:
        raise InputError(f"predicted distances of shape {pred.shape} do not match the true ones' {true.shape}")
    perms = np.asarray(permutations)
    if perms.ndim != 2:
        raise InputError(f"The 'permutations' array must have shape (K, n_atoms); got shape {perms.shape}")
    n = perms.shape[1]
    if len(pair_indices(n)[0]) != pred.shape[-1]:
        raise InputError(f"permutations of {n} atoms do not fit {pred.shape[-1]} pairs")
    identity = np.arange(n)
    perms = np.vstack([identity, perms[~np.all(perms == identity, axis=1)]])
    index = pair_permutations(perms)  # (K, n_pairs)
    chosen = np.arange(pred.shape[-1]) if pairs is None else np.asarray(pairs, dtype=np.intp)
    # one relabelling at a time (memory of one error array, whatever the number of automorphisms);
    # a later one replaces the chosen only when strictly better, so the identity wins ties and NaN frames
    best = np.abs(pred - true)
    best_cost = best[..., chosen].sum(axis=-1)
    for k in range(1, len(index)):
        errors = np.abs(pred[..., index[k]] - true)
        cost = errors[..., chosen].sum(axis=-1)
        better = cost < best_cost
        best = np.where(better[..., None], errors, best)
        best_cost = np.where(better, cost, best_cost)
    return best


# --------------------------------------------------------------------------- the foreign trajectories


def resample_ensemble(ensemble: Ensemble, dt: float, *, tmax: float | None = None) -> Ensemble:
    r"""The trajectories on frames every ``dt`` fs from their start, by linear interpolation of the positions.

    Each run's frame k lies at :math:`t_0 + k\,\Delta t`, for as long as the run
    lasts (its last valid time) and at most ``tmax`` after its start:

    .. math::

        x(t) = (1 - w)\, x(t_i) + w\, x(t_{i+1}), \qquad
        w = \frac{t - t_i}{t_{i+1} - t_i}, \quad t_i \le t \le t_{i+1}

    A frame that falls on one of the run's own steps (the usual case: SHARC's
    0.5 fs steps to a model's 5 fs frames) has that step's positions exactly;
    in between, motion is taken as uniform, which is exact for linear motion
    and off by :math:`\lesssim \ddot x\,h^2/8` for a step h otherwise. A step
    coarser than ``dt`` is interpolated too (upsampled), which smooths any
    vibration faster than the step.

    Parameters
    ----------
    ensemble : molmovie.trajectories.Ensemble
        Times ``ensemble.time`` (T,) fs, strictly increasing.
    dt : float
        Frame interval of the result, fs (the model's).
    tmax : float, optional
        Keep frames with t - t0 <= tmax, fs.

    Returns
    -------
    Ensemble
        Times ``dt * arange(T')``, fs; positions (M, T', N, 3) Angstrom, NaN
        past each new length; energy and state taken from the step at or
        before each frame; dissociation flagged anew on the kept frames.
    """
    dt = check_time_option("dt", dt)
    tmax = check_time_option("tmax", tmax, zero=True)
    time = np.asarray(ensemble.time, dtype=float)
    if time.size > 1 and np.any(np.diff(time) <= 0):
        raise InputError("the trajectories' frame times must increase strictly to be resampled")
    M, _, N, _ = ensemble.positions.shape
    last = np.array([time[L - 1] - time[0] if L > 0 else -1.0 for L in ensemble.length])
    span = last.max(initial=0.0) if tmax is None else min(last.max(initial=0.0), tmax)
    tol = 1e-6 * dt
    count = math.floor(span / dt + 1e-6) + 1  # in Python numbers: a tiny dt cannot overflow or allocate first
    check_allocation((M, count, N, 3), f"The 'dt' parameter ({dt:g} fs over {span:g} fs: {count:,} frames of {M} trajectories)")
    grid = dt * np.arange(count)
    T = grid.size
    positions = np.full((M, T, N, 3), np.nan)
    energy = None if ensemble.energy is None else np.full((M, T), np.nan)
    state = None if ensemble.state is None else np.full((M, T), -1, dtype=np.int64)
    length = np.zeros(M, dtype=np.int64)
    dissociated = np.zeros(M, dtype=bool)
    for m in range(M):
        L = int(ensemble.length[m])
        if L == 0:
            continue
        t = time[:L] - time[0]
        k = int(np.count_nonzero(grid <= t[-1] + tol))
        g = grid[:k]
        p = ensemble.positions[m, :L]
        if L == 1:
            positions[m, :k] = p[0]
            i = np.zeros(k, dtype=np.intp)
        else:
            i = np.clip(np.searchsorted(t, g, side="right") - 1, 0, L - 2)
            w = np.clip((g - t[i]) / (t[i + 1] - t[i]), 0.0, 1.0)
            positions[m, :k] = (1.0 - w)[:, None, None] * p[i] + w[:, None, None] * p[i + 1]
            i = np.where(w >= 1.0, i + 1, i)  # the step at or before each frame
        if energy is not None and ensemble.energy is not None:  # both or neither
            energy[m, :k] = ensemble.energy[m, i]
        if state is not None and ensemble.state is not None:
            state[m, :k] = ensemble.state[m, i]
        length[m] = k
        dissociated[m] = is_dissociated(ensemble.symbols, positions[m], k) if k else False
    provenance = dict(ensemble.provenance)
    provenance["resampled"] = {"dt_fs": dt, "tmax_fs": tmax, "how": "positions interpolated linearly in time"}
    return replace(
        ensemble,
        time=grid,
        positions=positions,
        length=length,
        dissociated=dissociated,
        energy=energy,
        state=state,
        provenance=provenance,
    )


def read_foreign(paths: str | Path | Sequence[PathLike], *, split: str | None = None) -> Ensemble:
    """Foreign trajectories from files: SHARC run folders (or a folder of them), trajectory files, or a dataset.

    Parameters
    ----------
    paths : path-like or sequence of path-like
        One molmovie dataset file (``.h5``, e.g. made by ``molmovie generate
        --model cs2-triplet``), or anything :func:`molmovie.trajectories.read_ensemble`
        reads, on the trajectories' own time steps.
    split : {"train", "val", "test"}, optional
        Of a dataset, the trajectories of this split only (default: all).

    Returns
    -------
    Ensemble
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if len(paths) == 1 and Path(paths[0]).is_file() and Path(paths[0]).suffix.lower() in (".h5", ".hdf5"):
        ds = read_dataset(paths[0])
        return (ds if split is None else ds.split(split)).ensemble
    if split is not None:
        raise InputError("a split can be chosen only from one dataset file (.h5), not from trajectory files")
    return read_ensemble(paths)


def _model_order(symbols: Symbols, model_symbols: Symbols) -> np.ndarray:
    """Atom indices that put ``symbols`` in the model's order (stable per element), or an InputError for another molecule."""
    symbols, model_symbols = tuple(symbols), tuple(model_symbols)
    if sorted(symbols) != sorted(model_symbols):
        raise InputError(
            f"the foreign trajectories are of {formula(symbols)} ({shorten(' '.join(symbols), 80)}), the model of "
            f"{formula(model_symbols)} ({shorten(' '.join(model_symbols), 80)}): transfer is scored on the molecule the model was trained on"
        )
    pool = {s: [i for i, x in enumerate(symbols) if x == s] for s in set(symbols)}
    return np.array([pool[s].pop(0) for s in model_symbols], dtype=np.intp)


def foreign_dataset(
    method: InversionMethod, ensemble: Ensemble, *, dt: float | None = None, tmax: float | None = None, seed: int | None = None
) -> Dataset:
    """Foreign trajectories as the model sees them: on its time grid and atom order, with ΔS made as its training ΔS was.

    Parameters
    ----------
    method : molmovie.inversion.InversionMethod
        Fitted (or loaded); its ``spec_`` says how its training ΔS was made.
    ensemble : molmovie.trajectories.Ensemble
        The foreign trajectories, on their own time steps.
    dt : float, optional
        The model's frame interval, fs: the time step of its training
        dataset. Default: the method's ``dt_`` (recorded by ``fit`` and in
        its model file; model files written before it was recorded do not
        have it, and then it must be given).
    tmax : float, optional
        Keep frames up to this time after each run's start, fs.
    seed : int, optional
        Seed of the photon noise, when the model's spec has noise (default:
        the spec's own seed).

    Returns
    -------
    Dataset
        The resampled trajectories with their signals, no splits. With
        ``reference="ground"`` the reference is the mean first frame of the
        foreign runs themselves (their laser-off state), as
        :func:`~molmovie.scattering.simulate` makes it.

    Raises
    ------
    InputError
        Trajectories of another molecule than the model's ("the foreign
        trajectories are of CH4 ..., the model of CS2 ...").
    """
    if not getattr(method, "is_fitted", False):
        raise InputError("the method is not fitted: train it or load a model file before scoring its transfer")
    recorded = getattr(method, "dt_", None)
    if dt is None:
        dt = recorded
        if dt is None:
            raise InputError("the model does not record its frame interval; give dt, its training dataset's time step in fs")
    elif recorded is not None and not math.isclose(float(dt), float(recorded), rel_tol=1e-6):
        raise InputError(
            f"The 'dt' parameter ({dt:g} fs) differs from the frame interval the model was trained on ({float(recorded):g} fs); "
            "a model reads ΔS on its own time grid: leave dt out"
        )
    order = _model_order(ensemble.symbols, method.symbols_)
    if not np.array_equal(order, np.arange(len(order))):
        ensemble = replace(ensemble, symbols=tuple(ensemble.symbols[i] for i in order), positions=ensemble.positions[:, :, order])
    ens = resample_ensemble(ensemble, dt, tmax=tmax)
    if ens.n_trajectories == 0 or np.any(ens.length < 1):
        raise InputError("no foreign trajectory has a frame on the model's time grid")
    spec = method.spec_ if seed is None or method.spec_.photons is None else replace(method.spec_, seed=seed)
    dS, I_ref, spec = simulate(ens.symbols, ens.positions, ens.length, ens.time, spec)
    return Dataset(ens, dS=dS, I_ref=I_ref, spec=spec)


# --------------------------------------------------------------------------- the whole evaluation


@dataclass
class Transfer:
    """A trained method scored on foreign trajectories.

    Attributes
    ----------
    dataset : Dataset
        The foreign runs on the model's time grid, with the signals given to the method.
    scores : dict
        :func:`~molmovie.evaluation.score_method`'s answer (predictions,
        labelled and symmetry-aware RMSD, SSR, per frame and summed).
    error : ndarray, shape (M, T, n_pairs), Angstrom
        Each pair's absolute error under each frame's best relabelling
        (:func:`symmetric_distance_error`), NaN past each length.
    """

    dataset: Dataset
    scores: dict
    error: np.ndarray

    @property
    def frame_error(self) -> np.ndarray:
        """Mean over pairs of :attr:`error`, shape (M, T), Angstrom, NaN past each length."""
        return np.where(self.dataset.mask, np.mean(np.where(self.dataset.mask[..., None], self.error, 0.0), axis=-1), np.nan)

    @property
    def run_error(self) -> np.ndarray:
        """Mean of :attr:`frame_error` over each run's frames, shape (M,), Angstrom."""
        mask = self.dataset.mask
        return np.where(mask, self.frame_error, 0.0).sum(axis=1) / mask.sum(axis=1)

    def summary(self) -> dict:
        """The transfer scores and the study's.

        Returns
        -------
        dict
            ``transfer_error`` (Å): the mean over runs of each run's mean
            symmetry-aware distance error (the issue's score);
            ``transfer_error_frames``: the same pooled over all frames (long
            runs weigh more); ``transfer_error_heavy``: over heavy-atom pairs
            only, pooled; ``transfer_error_runs``: per run, in input order;
            ``runs``, ``sources`` and ``dissociated``; and every entry of
            :meth:`~molmovie.evaluation.Evaluation.summary` (``rmsd_sym_sum``,
            ``ssr_sum``, ...).
        """
        mask = self.dataset.mask
        heavy = heavy_pairs(self.dataset.symbols)
        out = {
            "transfer_error": float(np.mean(self.run_error)),
            "transfer_error_frames": float(np.mean(self.frame_error[mask])),
            "transfer_error_heavy": float(np.mean(self.error[mask][:, heavy])) if heavy.size else float("nan"),
            "transfer_error_runs": [float(x) for x in self.run_error],
            "runs": int(self.dataset.n_trajectories),
            "sources": list(self.dataset.ensemble.source),
            "dissociated": [bool(x) for x in self.dataset.dissociated],
        }
        out.update(self.scores["summary"])
        return out


def transfer(
    method: InversionMethod,
    foreign: Ensemble | Dataset,
    *,
    dt: float | None = None,
    tmax: float | None = None,
    seed: int | None = None,
    permutations: ArrayLike | None = None,
    progress: Progress | None = None,
) -> Transfer:
    """Score a trained method on foreign trajectories: its transfer to dynamics it did not train on.

    Parameters
    ----------
    method : molmovie.inversion.InversionMethod
        Fitted or loaded (``molmovie.inversion.load_method(path)``).
    foreign : Ensemble or Dataset
        The foreign trajectories, on their own time steps (a Dataset's own
        signals are not used: ΔS is made anew with the model's spec).
    dt : float, optional
        The model's frame interval, fs (see :func:`foreign_dataset`).
    tmax : float, optional
        Score frames up to this time after each run's start, fs.
    seed : int, optional
        Seed of the photon noise when the model's spec has noise.
    permutations : ndarray of int, shape (K, n_atoms), optional
        Equivalent-atom permutations; default: the automorphisms of the bond
        graph of the first foreign run's first frame.
    progress : callable, optional
        ``progress(done, info)`` as the runs are predicted.

    Returns
    -------
    Transfer

    Examples
    --------
    >>> from molmovie.inversion import load_method          # doctest: +SKIP
    >>> t = transfer(load_method("cs2-vrnn.safetensors"), read_foreign("sharc-cs2"), dt=5.0)  # doctest: +SKIP
    >>> t.summary()["transfer_error"]                       # doctest: +SKIP
    """
    ensemble = foreign.ensemble if isinstance(foreign, Dataset) else foreign
    if not isinstance(ensemble, Ensemble):
        raise InputError(f"foreign trajectories must be a molmovie Ensemble or Dataset; got {type(foreign).__name__}")
    ds = foreign_dataset(method, ensemble, dt=dt, tmax=tmax, seed=seed)
    return _transfer_of(ds, score_method(method, ds, progress=progress), permutations)


def score_transfer(
    dataset: Dataset, distances: ArrayLike, std: ArrayLike | None = None, *, permutations: ArrayLike | None = None
) -> Transfer:
    """Score an answer, made by any means (from noisy signals, after a signal fit), on foreign runs as :func:`transfer` does.

    Parameters
    ----------
    dataset : Dataset
        The foreign runs as the model sees them (:func:`foreign_dataset`): the truth, and for the SSR its clean signals.
    distances : array_like, shape (M, T, n_pairs), Angstrom
        The answer.
    std : array_like, same shape, Angstrom, optional
        Its standard deviations (for the ±2σ coverage).
    permutations : ndarray of int, shape (K, n_atoms), optional
        As for :func:`transfer`.

    Returns
    -------
    Transfer
    """
    R = np.asarray(distances, dtype=float)
    if R.shape != dataset.distances.shape:
        raise InputError(f"distances of shape {R.shape} do not match the foreign runs' {dataset.distances.shape}")
    sd = None if std is None else np.asarray(std, dtype=float)
    return _transfer_of(dataset, score_prediction(R, sd, dataset), permutations)


def _transfer_of(ds: Dataset, scores: dict, permutations: ArrayLike | None) -> Transfer:
    if permutations is None:
        permutations = automorphisms(ds.symbols, ds.positions[0, 0])
    pred = np.where(ds.mask[..., None], scores["distances"], np.nan)
    error = symmetric_distance_error(pred, ds.distances, permutations)
    return Transfer(ds, scores, error)
