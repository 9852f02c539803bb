"""The molmovie dataset type: trajectories of one molecule, their scattering signals, and splits.

:class:`Dataset` holds an :class:`~molmovie.trajectories.Ensemble`, optionally
the difference signals of its trajectories with the
:class:`~molmovie.scattering.SignalSpec` that says what they are, and the
train/val/test splits (:func:`make_splits`). Its file format lives in
:mod:`molmovie.io.dataset` (:func:`molmovie.io.read_dataset`,
:func:`molmovie.io.write_dataset`).
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field, replace

import numpy as np
from numpy.typing import ArrayLike

from ._errors import InputError
from ._guards import check_seed
from ._typing import PathLike
from .scattering.spec import SignalSpec
from .trajectories import Ensemble, _index_array

__all__ = ["SPLITS", "DEFAULT_SPLITS", "Dataset", "make_splits", "check_splits"]

SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    """Trajectories of one molecule, optionally with their signals and splits.

    Attributes
    ----------
    ensemble : Ensemble
        The trajectories.
    dS : ndarray, shape (M, T, Q), or None
        Difference signal (I - I_ref) / I_ref, a fraction; NaN past each length.
    I_ref : ndarray, shape (M, Q), electron units, or None
    spec : SignalSpec or None
        What the signals are: q grid, inelastic, reference, noise, IRF, seed.
        ``dS``, ``I_ref`` and ``spec`` are given together or not at all.
    splits : dict of str -> ndarray of int
        Trajectory indices of "train", "val" and "test".
    """

    ensemble: Ensemble
    _: KW_ONLY
    dS: np.ndarray | None = None
    I_ref: np.ndarray | None = None
    spec: SignalSpec | None = None
    splits: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        given = [name for name in ("dS", "I_ref", "spec") if getattr(self, name) is not None]
        if given and len(given) < 3:
            raise InputError(f"a dataset's signals need dS, I_ref and spec together; got only {', '.join(given)}")
        if not given:
            return
        if not isinstance(self.spec, SignalSpec):
            raise InputError(f"a dataset's spec must be a molmovie.scattering.SignalSpec; got {type(self.spec).__name__}")
        self.dS = np.asarray(self.dS, dtype=float)
        self.I_ref = np.asarray(self.I_ref, dtype=float)
        M, T, Q = self.n_trajectories, self.n_frames, self.spec.q.size
        if self.dS.shape != (M, T, Q) or self.I_ref.shape != (M, Q):
            raise InputError(
                f"a dataset's dS must have shape (trajectories, frames, q) = {(M, T, Q)} and I_ref {(M, Q)}; "
                f"got {self.dS.shape} and {self.I_ref.shape}"
            )

    @property
    def q(self) -> np.ndarray | None:
        """The signals' q grid, shape (Q,), 1/Angstrom (``spec.q``); None without signals."""
        return None if self.spec is None else self.spec.q

    @property
    def signal_attrs(self) -> dict:
        """The spec without q as a dict (``spec.attrs()``), as the file stores it; empty without signals."""
        return {} if self.spec is None else self.spec.attrs()

    # ----------------------------------------------------------- forwarding
    @property
    def molecule(self) -> str:
        return self.ensemble.molecule

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.ensemble.symbols

    @property
    def masses(self) -> np.ndarray:
        return self.ensemble.masses

    @property
    def time(self) -> np.ndarray:
        return self.ensemble.time

    @property
    def positions(self) -> np.ndarray:
        return self.ensemble.positions

    @property
    def length(self) -> np.ndarray:
        return self.ensemble.length

    @property
    def dissociated(self) -> np.ndarray:
        return self.ensemble.dissociated

    @property
    def distances(self) -> np.ndarray:
        return self.ensemble.distances

    @property
    def mask(self) -> np.ndarray:
        return self.ensemble.mask

    @property
    def n_trajectories(self) -> int:
        return self.ensemble.n_trajectories

    @property
    def n_frames(self) -> int:
        return self.ensemble.n_frames

    @property
    def n_atoms(self) -> int:
        return self.ensemble.n_atoms

    @property
    def has_signals(self) -> bool:
        return self.dS is not None

    # ----------------------------------------------------------- selections
    def subset(self, indices: ArrayLike) -> Dataset:
        """The trajectories at ``indices`` (integers or a boolean mask); splits are dropped."""
        idx = np.arange(self.n_trajectories)[_index_array(indices)]
        return replace(
            self,
            ensemble=self.ensemble.subset(idx),
            dS=None if self.dS is None else self.dS[idx],
            I_ref=None if self.I_ref is None else self.I_ref[idx],
            splits={},
        )

    def split(self, name: str) -> Dataset:
        """The trajectories of split ``name`` ("train", "val" or "test")."""
        if name not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise InputError(f"the dataset has no {name!r} split (splits: {have})")
        return self.subset(self.splits[name])

    def without_dissociating(self) -> Dataset:
        """The same dataset without the trajectories that dissociate; splits are re-indexed."""
        keep = np.flatnonzero(~self.dissociated)
        new_index = -np.ones(self.n_trajectories, dtype=np.int64)
        new_index[keep] = np.arange(len(keep))
        out = self.subset(keep)
        out.splits = {k: new_index[v][new_index[v] >= 0] for k, v in self.splits.items()}
        return out

    def with_signals(self, dS: ArrayLike, I_ref: ArrayLike, spec: SignalSpec) -> Dataset:
        """A copy with signals replaced (the trajectories and splits are kept).

        Parameters
        ----------
        dS : array_like, shape (M, T, Q)
        I_ref : array_like, shape (M, Q), electron units
        spec : SignalSpec

        Examples
        --------
        ``ds.with_signals(*simulate(ds.symbols, ds.positions, ds.length, ds.time, spec))``
        """
        return replace(self, dS=np.asarray(dS, dtype=float), I_ref=np.asarray(I_ref, dtype=float), spec=spec)


# --------------------------------------------------------------------------- splits

#: The train,val,test sizes every command and function splits trajectories by unless told otherwise.
DEFAULT_SPLITS: tuple[float, float, float] = (85.0, 11.0, 11.0)


def make_splits(n: int, sizes: ArrayLike = DEFAULT_SPLITS, seed: int = 0) -> dict[str, np.ndarray]:
    """Random train/val/test split of ``n`` trajectories.

    Parameters
    ----------
    n : int
        Number of trajectories.
    sizes : three numbers
        Relative sizes of train, val and test. When they add up to ``n`` they
        are taken as exact counts (``753,94,95`` of 942); otherwise as
        proportions (``80,10,10``), rounded, with train taking the remainder;
        a split with a non-zero size gets at least one trajectory when train
        can spare it.
    seed : int
    """
    seed = check_seed(seed)
    sizes = np.asarray(sizes, dtype=float)
    if sizes.shape != (3,) or not np.all(np.isfinite(sizes)) or np.any(sizes < 0) or sizes.sum() <= 0:
        raise InputError(f"splits must be three non-negative numbers train,val,test; got {','.join(map(str, sizes))}")
    if np.isclose(sizes.sum(), n) and np.all(sizes == np.round(sizes)):
        counts = sizes.astype(int)
    else:
        frac = sizes / sizes.sum()
        n_val, n_test = (int(round(n * f)) for f in frac[1:])
        # a split that was asked for gets at least one trajectory while train keeps one
        n_val = max(n_val, 1) if sizes[1] > 0 and n - n_val - n_test > 1 else n_val
        n_test = max(n_test, 1) if sizes[2] > 0 and n - n_val - n_test > 1 else n_test
        counts = np.array([n - n_val - n_test, n_val, n_test])
        if counts[0] < 0:
            raise InputError(f"splits {','.join(f'{s:g}' for s in sizes)} leave no training trajectories out of {n}")
    order = np.random.default_rng(seed).permutation(n)
    edges = np.cumsum(counts)[:-1]
    return {name: np.sort(part) for name, part in zip(SPLITS, np.split(order, edges), strict=True)}


def check_splits(splits: dict, n: int, where: PathLike = "the dataset") -> dict[str, np.ndarray]:
    """Validate splits read from a file: known names, whole indices in range, no index twice.

    Parameters
    ----------
    splits : dict of str -> array_like
        Split name ("train", "val", "test") to trajectory indices.
    n : int
        Number of trajectories.
    where : str or path-like
        Named in the error (the file).

    Returns
    -------
    dict of str -> ndarray of int64, in the order given

    Raises
    ------
    InputError
        An unknown split name; indices that are not whole numbers, not in
        0 .. n-1 (e.g. -1), repeated within a split, or shared by two splits
        (a trajectory in train and val would leak between them).
    """
    out: dict[str, np.ndarray] = {}
    owner: dict[int, str] = {}
    for name, raw in splits.items():
        if name not in SPLITS:
            raise InputError(f"{where}: unknown split {name!r} (splits are {', '.join(SPLITS)})")
        idx = np.asarray(raw)
        if idx.size and (idx.ndim != 1 or idx.dtype.kind not in "iu"):
            raise InputError(
                f"{where}: split {name!r} must be a list of whole trajectory indices; got {idx.dtype} of shape {idx.shape}"
            )
        idx = idx.reshape(-1).astype(np.int64)
        bad = idx[(idx < 0) | (idx >= n)]
        if bad.size:
            raise InputError(f"{where}: split {name!r} holds index {bad[0]}, outside 0 to {n - 1} ({n} trajectories)")
        values, counts = np.unique(idx, return_counts=True)
        if np.any(counts > 1):
            raise InputError(f"{where}: split {name!r} holds trajectory {values[counts > 1][0]} twice")
        for i in values.tolist():
            if i in owner:
                raise InputError(f"{where}: trajectory {i} is in both the {owner[i]!r} and the {name!r} split")
            owner[i] = name
        out[name] = idx
    return out
