"""The molmovie dataset: trajectories, their scattering signals, and splits, in one HDF5 file.

This module owns the file format (DESIGN.md, "The dataset file")::

    /                      attrs: format="molmovie", version, molecule, provenance (JSON)
    /atoms/symbols (N)     /atoms/masses (N) [u]
    /time (T) [fs]
    /trajectories/positions (M, T, N, 3) [Angstrom], NaN past each length
    /trajectories/length (M)   /trajectories/dissociated (M)   /trajectories/source (M)
    /trajectories/energy (M, T) [eV], optional   /trajectories/state (M, T), optional
    /signals/q (Q) [1/Angstrom]   /signals/dS (M, T, Q)   /signals/I_ref (M, Q) [e.u.]
                           attrs: inelastic, reference, photons, irf_fs, seed
    /splits/{train,val,test} (indices)

It also reads the minimal signals file that ``molmovie invert`` accepts
(:func:`read_signals`) and writes the inversion result (:func:`write_inversion`).

Every array carries its unit in a ``units`` attribute. Files are written
atomically (a temporary file in the same folder, then a rename), and an
existing file is never replaced unless ``force=True``. Readers open files
read-only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ._errors import InputError
from ._guards import atomic_write, check_output_path, check_seed
from .trajectories import Ensemble, _index_array

__all__ = [
    "FORMAT",
    "VERSION",
    "SPLITS",
    "Dataset",
    "read_dataset",
    "write_dataset",
    "make_splits",
    "parse_splits",
    "check_splits",
    "atomic_path",
    "check_output",
    "read_signals",
    "write_inversion",
]

FORMAT = "molmovie"
VERSION = 1
SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    """Trajectories of one molecule, optionally with their signals and splits.

    Attributes
    ----------
    ensemble : Ensemble
        The trajectories.
    q : ndarray, shape (Q,), 1/Angstrom, or None
    dS : ndarray, shape (M, T, Q), or None
        Difference signal (I - I_ref) / I_ref, a fraction; NaN past each length.
    I_ref : ndarray, shape (M, Q), electron units, or None
    signal_attrs : dict
        How the signals were made: ``inelastic``, ``reference`` ("first" or
        "ground"), ``photons`` and ``irf_fs`` (None when off), ``seed``.
    splits : dict of str -> ndarray of int
        Trajectory indices of "train", "val" and "test".
    """

    ensemble: Ensemble
    q: np.ndarray | None = None
    dS: np.ndarray | None = None
    I_ref: np.ndarray | None = None
    signal_attrs: dict = field(default_factory=dict)
    splits: dict = field(default_factory=dict)

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
    def subset(self, indices) -> "Dataset":
        """The trajectories at ``indices`` (integers or a boolean mask); splits are dropped."""
        idx = np.arange(self.n_trajectories)[_index_array(indices)]
        return replace(
            self,
            ensemble=self.ensemble.subset(idx),
            dS=None if self.dS is None else self.dS[idx],
            I_ref=None if self.I_ref is None else self.I_ref[idx],
            signal_attrs=dict(self.signal_attrs),
            splits={},
        )

    def split(self, name: str) -> "Dataset":
        """The trajectories of split ``name`` ("train", "val" or "test")."""
        if name not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise InputError(f"the dataset has no {name!r} split (splits: {have})")
        return self.subset(self.splits[name])

    def without_dissociating(self) -> "Dataset":
        """The same dataset without the trajectories that dissociate; splits are re-indexed."""
        keep = np.flatnonzero(~self.dissociated)
        new_index = -np.ones(self.n_trajectories, dtype=np.int64)
        new_index[keep] = np.arange(len(keep))
        out = self.subset(keep)
        out.splits = {k: new_index[v][new_index[v] >= 0] for k, v in self.splits.items()}
        return out

    def with_signals(self, q, dS, I_ref, **attrs) -> "Dataset":
        """A copy with signals replaced (the trajectories and splits are kept)."""
        return replace(self, q=np.asarray(q, float), dS=np.asarray(dS, float), I_ref=np.asarray(I_ref, float), signal_attrs=dict(attrs))


# --------------------------------------------------------------------------- splits


def make_splits(n: int, sizes=(85, 11, 11), seed: int = 0) -> dict[str, np.ndarray]:
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
    return {name: np.sort(part) for name, part in zip(SPLITS, np.split(order, edges))}


def parse_splits(text: str) -> tuple[float, float, float]:
    """Parse ``"85,11,11"``; a teaching error for anything else."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise InputError(f"--splits must be three numbers train,val,test like 85,11,11; got {text!r}") from None
    if len(values) != 3 or not all(np.isfinite(values)) or any(v < 0 for v in values) or sum(values) <= 0 or values[0] <= 0:
        raise InputError(f"--splits must be three non-negative numbers train,val,test with train > 0, like 85,11,11; got {text!r}")
    return values  # type: ignore[return-value]


def check_splits(splits: dict, n: int, where="the dataset") -> dict[str, np.ndarray]:
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
            raise InputError(f"{where}: split {name!r} must be a list of whole trajectory indices; got {idx.dtype} of shape {idx.shape}")
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


# --------------------------------------------------------------------------- writing


def check_output(path, force: bool = False) -> Path:
    """Refuse to replace an existing file unless ``force``; the folder must exist and be writable.

    See :func:`molmovie._guards.check_output_path`, which also refuses an
    output that is one of the command's inputs.
    """
    return check_output_path(path, force=force)


def atomic_path(path, suffix: str = ".tmp"):
    """Context manager giving a temporary path beside ``path``, renamed onto it on success.

    On an exception (or Ctrl-C) the temporary file is removed and ``path`` is
    untouched. A new file gets the permissions of any newly created file
    (0666 less the umask), a replaced one keeps its own; a full disk or a
    refused permission is a one-line error (:func:`molmovie._guards.atomic_write`).
    """
    return atomic_write(path, suffix=suffix)


def _put(group, name, data, units=None, **kw):
    ds = group.create_dataset(name, data=data, **kw)
    if units is not None:
        ds.attrs["units"] = units
    return ds


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def write_dataset(ds: Dataset, path, *, force: bool = False) -> Path:
    """Write a dataset file atomically.

    Parameters
    ----------
    ds : Dataset
    path : path-like
    force : bool
        Replace an existing file (otherwise that is an :class:`InputError`).
    """
    import h5py
    from . import __version__

    path = check_output(path, force=force)
    ens = ds.ensemble
    comp = dict(compression="gzip", compression_opts=4, shuffle=True)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            f.attrs["molmovie_version"] = __version__
            f.attrs["molecule"] = ens.molecule
            f.attrs["provenance"] = json.dumps(ens.provenance, default=_json_default)
            atoms = f.create_group("atoms")
            atoms.create_dataset("symbols", data=np.array(ens.symbols, dtype="S3"))
            _put(atoms, "masses", ens.masses, "u")
            _put(f, "time", ens.time, "fs")
            tr = f.create_group("trajectories")
            _put(tr, "positions", ens.positions, "Angstrom", chunks=(1,) + ens.positions.shape[1:], **comp)
            _put(tr, "length", ens.length, "frames")
            _put(tr, "dissociated", ens.dissociated)
            tr.create_dataset("source", data=np.array(ens.source, dtype=h5py.string_dtype()))
            if ens.energy is not None:
                _put(tr, "energy", ens.energy, "eV")
            if ens.state is not None:
                _put(tr, "state", ens.state, "index")
            if ds.dS is not None:
                sg = f.create_group("signals")
                _put(sg, "q", ds.q, "1/Angstrom")
                _put(sg, "dS", ds.dS, "fraction", chunks=(1,) + ds.dS.shape[1:], **comp)
                _put(sg, "I_ref", ds.I_ref, "electron units")
                for k, v in ds.signal_attrs.items():
                    sg.attrs[k] = json.dumps(v, default=_json_default)
            sp = f.create_group("splits")
            for k, v in ds.splits.items():
                _put(sp, k, np.asarray(v, dtype=np.int64), "index")
    return path


# --------------------------------------------------------------------------- reading


def _open_hdf5(path: Path, what: str, not_hdf5: str):
    """An HDF5 file opened read-only, or an InputError naming ``path`` (missing, or ``not_hdf5``)."""
    import h5py

    if not path.is_file():
        raise InputError(f"{path}: no such {what}")
    try:
        return h5py.File(path, "r")
    except OSError:
        raise InputError(f"{path}: {not_hdf5}") from None


def read_dataset(path) -> Dataset:
    """Read a dataset file (opened read-only).

    Raises
    ------
    InputError
        If the file is missing, not HDF5, or not a molmovie dataset.
    """
    path = Path(path)
    f = _open_hdf5(path, "file", "not an HDF5 file, so not a molmovie dataset")
    with f:
        if f.attrs.get("format") != FORMAT:
            raise InputError(f"{path}: not a molmovie dataset (no format='molmovie' attribute)")
        version = int(f.attrs.get("version", 0))
        if version > VERSION:
            raise InputError(f"{path}: dataset format version {version} is newer than this molmovie reads ({VERSION}); upgrade molmovie")
        try:
            symbols = tuple(s.decode() for s in f["atoms/symbols"][()])
            tr = f["trajectories"]
            ens = Ensemble(
                molecule=str(f.attrs["molecule"]),
                symbols=symbols,
                time=f["time"][()],
                positions=tr["positions"][()],
                length=tr["length"][()],
                dissociated=tr["dissociated"][()],
                source=[s.decode() if isinstance(s, bytes) else str(s) for s in tr["source"][()]],
                energy=tr["energy"][()] if "energy" in tr else None,
                state=tr["state"][()] if "state" in tr else None,
                provenance=json.loads(f.attrs.get("provenance", "{}")),
            )
            q = dS = I_ref = None
            attrs: dict = {}
            if "signals" in f:
                sg = f["signals"]
                q, dS, I_ref = sg["q"][()], sg["dS"][()], sg["I_ref"][()]
                attrs = {k: json.loads(v) for k, v in sg.attrs.items()}
            splits = {k: v[()] for k, v in f["splits"].items()} if "splits" in f else {}
            splits = check_splits(splits, ens.n_trajectories, where=path)
        except (KeyError, ValueError) as exc:
            raise InputError(f"{path}: damaged molmovie dataset ({exc})") from None
    return Dataset(ens, q, dS, I_ref, attrs, splits)


def read_signals(path) -> dict:
    """Signals to invert: a molmovie dataset, or a minimal HDF5 file with ``q``, ``time`` and ``dS``.

    The minimal file holds, at its top level, ``q`` (Q) [1/Angstrom], ``time``
    (T) [fs] and ``dS`` ((T, Q) for one series or (M, T, Q), a fraction), and
    optionally ``length`` (M, valid frames per series) and ``symbols`` (N).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    dict
        ``q`` (Q,) [1/Angstrom], ``time`` (T,) [fs], ``dS`` (M, T, Q),
        ``length`` (M,) int or None, ``symbols`` (tuple or None) and
        ``series`` (M).

    Raises
    ------
    InputError
        If the file is missing or not HDF5, a dataset without signals, or
        a minimal file with missing, non-numeric or inconsistent arrays.
    """
    import h5py

    path = Path(path)
    f = _open_hdf5(path, "signals file", "not an HDF5 file; SIGNALS must be a molmovie dataset or an HDF5 file with q, time and dS")
    with f:
        is_dataset = f.attrs.get("format") == FORMAT
        if not is_dataset:
            missing = [k for k in ("q", "time", "dS") if k not in f or not isinstance(f[k], h5py.Dataset)]
            if missing:
                raise InputError(f"{path}: a signals file needs the datasets q, time and dS at its top level; missing {', '.join(missing)}")
            q = np.asarray(f["q"][()], dtype=float)
            time = np.asarray(f["time"][()], dtype=float)
            try:
                dS = np.asarray(f["dS"][()], dtype=float)
            except (TypeError, ValueError):
                raise InputError(f"{path}: dS must be numbers") from None
            length = np.asarray(f["length"][()]) if "length" in f and isinstance(f["length"], h5py.Dataset) else None
            symbols = None
            if "symbols" in f:
                symbols = tuple(s.decode() if isinstance(s, bytes) else str(s) for s in f["symbols"][()])
    if is_dataset:
        ds = read_dataset(path)
        if not ds.has_signals:
            raise InputError(f"{path} has no scattering signals; run `molmovie scatter {path}` first")
        return dict(q=ds.q, time=ds.time, dS=ds.dS, length=ds.length, symbols=tuple(ds.symbols), series=ds.n_trajectories)
    if dS.ndim == 2:
        dS = dS[None]
    if dS.ndim != 3:
        raise InputError(f"{path}: dS must have shape (frames, q) for one series or (series, frames, q); got {dS.shape}")
    if q.ndim != 1 or len(q) != dS.shape[2]:
        raise InputError(f"{path}: q must have one value per column of dS ({dS.shape[2]}); got shape {q.shape}")
    if time.ndim != 1 or len(time) != dS.shape[1]:
        raise InputError(f"{path}: time must have one value per frame of dS ({dS.shape[1]}); got shape {time.shape}")
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(time))):
        raise InputError(f"{path}: q and time must be finite")
    if length is not None:
        M, T = dS.shape[:2]
        ok = length.shape == (M,) and np.issubdtype(length.dtype, np.number) and np.all(np.isfinite(length))
        ok = ok and np.all(length == np.round(length)) and np.all((length >= 0) & (length <= T))
        if not ok:
            raise InputError(f"{path}: length must hold one whole number of valid frames (0 to {T}) per series ({M}); got {length!r}")
        length = length.astype(np.int64)
    return dict(q=q, time=time, dS=dS, length=length, symbols=symbols, series=dS.shape[0])


INVERSION_FORMAT = "molmovie-inversion"


def write_inversion(
    path,
    prediction,
    *,
    time: np.ndarray,
    lengths: np.ndarray,
    method: str,
    molecule: str,
    symbols,
    pair_labels,
    model="",
    signals="",
    interpolated_q: bool = False,
) -> Path:
    """Write an inversion result (``molmovie invert``) atomically::

        /                  attrs: format="molmovie-inversion", version, method, molecule, model, signals,
                                  interpolated_q, has_std
        /distances (M, T, P) [Angstrom], NaN past each length   /std (M, T, P) [Angstrom], optional
        /time (T) [fs]   /length (M) [frames]   /pairs (P) labels   /pair_index (P, 2)   /atoms/symbols (N)

    Parameters
    ----------
    path : path-like
        The file to write (the caller has checked that it may be written).
    prediction : molmovie.inversion.Prediction
        ``distances`` and ``std`` (or None), shape (M, T, P), Angstrom.
    time : ndarray, shape (T,), fs
    lengths : ndarray of int, shape (M,)
    method, molecule : str
    symbols : sequence of str, length N
    pair_labels : sequence of str, length P
    model, signals : path-like
        Where the model and the signals came from (recorded as attributes).
    interpolated_q : bool
        Whether the signals were interpolated onto the model's q grid.
    """
    import h5py

    from .geometry import pair_indices

    path = Path(path)
    i, j = pair_indices(len(symbols))
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = INVERSION_FORMAT
            f.attrs["version"] = 1
            f.attrs["method"] = method
            f.attrs["molecule"] = molecule
            f.attrs["model"] = str(model)
            f.attrs["signals"] = str(signals)
            f.attrs["interpolated_q"] = bool(interpolated_q)
            f.attrs["has_std"] = prediction.std is not None
            d = f.create_dataset("distances", data=prediction.distances)
            d.attrs["units"] = "Angstrom"
            d.attrs["description"] = "predicted atom-atom distances (series, frames, pairs); NaN past each length"
            if prediction.std is not None:
                s = f.create_dataset("std", data=prediction.std)
                s.attrs["units"] = "Angstrom"
                s.attrs["description"] = "one standard deviation of each predicted distance"
            f.create_dataset("time", data=np.asarray(time, dtype=float)).attrs["units"] = "fs"
            f.create_dataset("length", data=np.asarray(lengths).astype(np.int64)).attrs["units"] = "frames"
            f.create_dataset("pairs", data=np.array(list(pair_labels), dtype=h5py.string_dtype()))
            f.create_dataset("pair_index", data=np.stack([i, j], axis=1).astype(np.int64)).attrs["units"] = "index"
            f.create_group("atoms").create_dataset("symbols", data=np.array(list(symbols), dtype="S3"))
    return path
