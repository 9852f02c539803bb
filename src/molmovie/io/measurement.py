"""The measurement file: a measured (or simulated) ΔS(q, t) with its uncertainty.

This module owns the format (DESIGN.md, "File formats"; issue 11)::

    /                 attrs: format="molmovie-measurement", version, molmovie_version,
                             molecule (optional), provenance (JSON)
    /q (Q)            [1/Angstrom], strictly increasing
    /delays (T)       [fs] relative to time zero, strictly increasing (may be negative)
    /dS (T, Q)        [fraction]  ΔS = (I - I_ref) / I_ref
    /sigma (T, Q)     [fraction]  one standard deviation of dS (optional)
    /atoms/symbols (N)            (optional)
    /truth/...                    (optional; simulated experiments only, see :class:`Truth`)

Every array carries its unit in a ``units`` attribute. Files are written
atomically (a temporary file in the same folder, then a rename); an existing
file is replaced only with ``force=True``. The reader opens files read-only,
checks shapes before it reads any array, and refuses files of another format
or of a newer version with one line.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._errors import InputError
from ..datasets import FORMAT as DATASET_FORMAT
from ..datasets import atomic_path, check_output
from ..molecules import formula, normalise_symbols

__all__ = [
    "MEASUREMENT_FORMAT",
    "MEASUREMENT_VERSION",
    "Truth",
    "Measurement",
    "write_measurement",
    "read_measurement",
    "check_molecule",
]

MEASUREMENT_FORMAT = "molmovie-measurement"
MEASUREMENT_VERSION = 1


def _array(value, name: str, ndim: int, *, dtype=float) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be numbers") from None
    if arr.ndim != ndim:
        raise InputError(f"{name} must have {ndim} dimension(s); got shape {arr.shape}")
    return arr


def _finite(arr: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise InputError(f"{name} holds a non-finite value (NaN or inf) at index {tuple(int(i) for i in bad)}")


def _increasing(arr: np.ndarray, name: str) -> None:
    if arr.size and np.any(np.diff(arr) <= 0):
        i = int(np.flatnonzero(np.diff(arr) <= 0)[0])
        raise InputError(f"{name} must be strictly increasing; got {arr[i]:g} then {arr[i + 1]:g} at index {i + 1}")


@dataclass(frozen=True)
class Truth:
    """What a simulated experiment was made from (stored only by ``simulate-experiment``).

    Attributes
    ----------
    weights : ndarray, shape (M,)
        Non-negative weights over the basis trajectories used; they sum to 1.
    trajectories : ndarray of int, shape (M,)
        Indices of those trajectories in the source dataset.
    gamma : float
        Excitation fraction, 0 < gamma <= 1.
    t0 : float
        Time zero, fs.
    irf_fs : float
        FWHM of the Gaussian instrument response, fs (0: none).
    photons : float or None
        Expected photons per q bin of the laser-off pattern; None: no noise.
    pair_labels : tuple of str, length P
        Atom pairs in ``numpy.triu_indices(n, 1)`` order, e.g. ``("I1-I2",)``.
    quantile_levels : ndarray, shape (K,)
        Levels of ``distance_quantiles``, strictly increasing in [0, 1].
    distance_mean, distance_std : ndarray, shape (T, P), Angstrom
        Weighted mean and standard deviation over the excited ensemble of each
        distance at ``delays - t0`` (clipped to the basis time span; the first
        frame before time zero); the IRF is not applied.
    distance_quantiles : ndarray, shape (T, P, K), Angstrom
    dissociated_fraction : ndarray, shape (T,)
        Weighted fraction of trajectories dissociated by each delay, in [0, 1].
    dS_clean : ndarray, shape (T, Q), fraction
        The noise-free ΔS of the model.
    """

    weights: np.ndarray
    trajectories: np.ndarray
    gamma: float
    t0: float
    irf_fs: float
    photons: float | None
    pair_labels: tuple[str, ...]
    quantile_levels: np.ndarray
    distance_mean: np.ndarray
    distance_std: np.ndarray
    distance_quantiles: np.ndarray
    dissociated_fraction: np.ndarray
    dS_clean: np.ndarray

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        w = _array(self.weights, "truth weights", 1)
        _finite(w, "truth weights")
        if w.size == 0 or np.any(w < 0) or abs(w.sum() - 1.0) > 1e-6:
            raise InputError(f"truth weights must be non-negative and sum to 1; got sum {w.sum():g} over {w.size}")
        tr = _array(self.trajectories, "truth trajectories", 1, dtype=np.float64)
        if tr.shape != w.shape or np.any(tr != np.round(tr)) or np.any(tr < 0):
            raise InputError(f"truth trajectories must be {w.size} non-negative whole indices; got {tr!r}")
        set_(self, "weights", w)
        set_(self, "trajectories", tr.astype(np.int64))
        for name in ("gamma", "t0", "irf_fs"):
            try:
                v = float(getattr(self, name))
            except (TypeError, ValueError):
                raise InputError(f"truth {name} must be a number; got {getattr(self, name)!r}") from None
            if not np.isfinite(v):
                raise InputError(f"truth {name} must be finite; got {v}")
            set_(self, name, v)
        if not 0 < self.gamma <= 1:
            raise InputError(f"truth gamma must be in (0, 1]; got {self.gamma:g}")
        if self.irf_fs < 0:
            raise InputError(f"truth irf_fs must be >= 0; got {self.irf_fs:g}")
        if self.photons is not None:
            p = float(self.photons)
            if not (np.isfinite(p) and p > 0):
                raise InputError(f"truth photons must be > 0 or None; got {self.photons!r}")
            set_(self, "photons", p)
        set_(self, "pair_labels", tuple(str(s) for s in self.pair_labels))
        levels = _array(self.quantile_levels, "truth quantile_levels", 1)
        _finite(levels, "truth quantile_levels")
        _increasing(levels, "truth quantile_levels")
        if np.any((levels < 0) | (levels > 1)):
            raise InputError("truth quantile_levels must lie in [0, 1]")
        set_(self, "quantile_levels", levels)
        P, K = len(self.pair_labels), levels.size
        mean = _array(self.distance_mean, "truth distance_mean", 2)
        T = mean.shape[0]
        for name, shape in (("distance_mean", (T, P)), ("distance_std", (T, P)), ("distance_quantiles", (T, P, K))):
            arr = _array(getattr(self, name), f"truth {name}", len(shape))
            if arr.shape != shape:
                raise InputError(f"truth {name} must have shape {shape} (delays, pairs{', levels' if K and len(shape) == 3 else ''}); got {arr.shape}")
            _finite(arr, f"truth {name}")
            set_(self, name, arr)
        if np.any(self.distance_std < 0):
            raise InputError("truth distance_std must be >= 0")
        frac = _array(self.dissociated_fraction, "truth dissociated_fraction", 1)
        if frac.shape != (T,) or not np.all((frac >= 0) & (frac <= 1)):
            raise InputError(f"truth dissociated_fraction must be {T} values in [0, 1]")
        set_(self, "dissociated_fraction", frac)
        clean = _array(self.dS_clean, "truth dS_clean", 2)
        if clean.shape[0] != T:
            raise InputError(f"truth dS_clean must have {T} rows (one per delay); got shape {clean.shape}")
        _finite(clean, "truth dS_clean")
        set_(self, "dS_clean", clean)


@dataclass(frozen=True)
class Measurement:
    """A time-resolved difference signal ΔS(q, t), measured or simulated.

    The constructor validates and converts its arguments (an
    :class:`InputError` says what is wrong).

    Attributes
    ----------
    q : ndarray, shape (Q,), 1/Angstrom
        Strictly increasing, non-negative.
    delays : ndarray, shape (T,), fs
        Pump-probe delays relative to time zero, strictly increasing.
    dS : ndarray, shape (T, Q), fraction
        ΔS = (I - I_ref) / I_ref; finite.
    sigma : ndarray, shape (T, Q), fraction, or None
        One standard deviation of ``dS``; finite and non-negative.
    symbols : tuple of str or None
        Element symbols of the molecule (canonical case), e.g. ``("I", "I")``.
    molecule : str or None
        Its name, e.g. ``"I2"``.
    provenance : dict
        JSON-able: ``source``, ``reference`` ("pre-t0 mean of N delays",
        "laser-off file X", "given"), ``q_range``, ``units_read``,
        ``t0_shift_fs``, ``legendre``, ``made_by`` ("ingest",
        "simulate-experiment"), ...
    truth : Truth or None
        Only for simulated experiments; its arrays are on ``delays`` (and
        ``dS_clean`` on ``q``).
    """

    q: np.ndarray
    delays: np.ndarray
    dS: np.ndarray
    sigma: np.ndarray | None
    symbols: tuple[str, ...] | None
    molecule: str | None
    provenance: dict
    truth: Truth | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        q = _array(self.q, "q", 1)
        if q.size == 0:
            raise InputError("q is empty")
        _finite(q, "q")
        _increasing(q, "q")
        if q[0] < 0:
            raise InputError(f"q must be >= 0 1/Angstrom; got {q[0]:g}")
        delays = _array(self.delays, "delays", 1)
        if delays.size == 0:
            raise InputError("delays is empty")
        _finite(delays, "delays")
        _increasing(delays, "delays")
        shape = (delays.size, q.size)
        dS = _array(self.dS, "dS", 2)
        if dS.shape != shape:
            raise InputError(f"dS must have shape (delays, q) = {shape}; got {dS.shape}")
        _finite(dS, "dS")
        set_(self, "q", q)
        set_(self, "delays", delays)
        set_(self, "dS", dS)
        if self.sigma is not None:
            sigma = _array(self.sigma, "sigma", 2)
            if sigma.shape != shape:
                raise InputError(f"sigma must have shape (delays, q) = {shape}; got {sigma.shape}")
            _finite(sigma, "sigma")
            if np.any(sigma < 0):
                raise InputError(f"sigma must be >= 0; got {sigma.min():g}")
            set_(self, "sigma", sigma)
        if self.symbols is not None:
            set_(self, "symbols", normalise_symbols(self.symbols))
        if self.molecule is not None:
            set_(self, "molecule", str(self.molecule))
        if not isinstance(self.provenance, dict):
            raise InputError(f"provenance must be a dict; got {type(self.provenance).__name__}")
        if self.truth is not None:
            if not isinstance(self.truth, Truth):
                raise InputError(f"truth must be a Truth or None; got {type(self.truth).__name__}")
            if self.truth.distance_mean.shape[0] != delays.size or self.truth.dS_clean.shape != shape:
                raise InputError(
                    f"truth arrays must be on the measurement's {delays.size} delays and {q.size} q points; "
                    f"got distance_mean {self.truth.distance_mean.shape}, dS_clean {self.truth.dS_clean.shape}"
                )

    @property
    def n_delays(self) -> int:
        return int(self.delays.size)

    @property
    def n_q(self) -> int:
        return int(self.q.size)


# --------------------------------------------------------------------------- writing


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-able")


def _put(group, name, data, units):
    ds = group.create_dataset(name, data=data)
    ds.attrs["units"] = units
    return ds


def write_measurement(meas: Measurement, path, *, force: bool = False) -> Path:
    """Write a measurement file atomically.

    Parameters
    ----------
    meas : Measurement
    path : path-like
    force : bool
        Replace an existing file (otherwise that is an :class:`InputError`).

    Returns
    -------
    Path
        The path written.
    """
    import h5py

    from .. import __version__

    path = check_output(path, force=force)
    try:
        provenance = json.dumps(meas.provenance, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise InputError(f"measurement provenance is not JSON-able ({exc})") from None
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = MEASUREMENT_FORMAT
            f.attrs["version"] = MEASUREMENT_VERSION
            f.attrs["molmovie_version"] = __version__
            if meas.molecule is not None:
                f.attrs["molecule"] = meas.molecule
            f.attrs["provenance"] = provenance
            _put(f, "q", meas.q, "1/Angstrom")
            _put(f, "delays", meas.delays, "fs")
            _put(f, "dS", meas.dS, "fraction")
            if meas.sigma is not None:
                _put(f, "sigma", meas.sigma, "fraction")
            if meas.symbols is not None:
                f.create_group("atoms").create_dataset("symbols", data=np.array(meas.symbols, dtype="S3"))
            if meas.truth is not None:
                t = meas.truth
                g = f.create_group("truth")
                _put(g, "weights", t.weights, "1")
                _put(g, "trajectories", t.trajectories, "index")
                _put(g, "gamma", t.gamma, "fraction")
                _put(g, "t0", t.t0, "fs")
                _put(g, "irf_fs", t.irf_fs, "fs")
                if t.photons is not None:
                    _put(g, "photons", t.photons, "photons per q bin")
                g.create_dataset("pair_labels", data=np.array(t.pair_labels, dtype=h5py.string_dtype()))
                _put(g, "quantile_levels", t.quantile_levels, "1")
                _put(g, "distance_mean", t.distance_mean, "Angstrom")
                _put(g, "distance_std", t.distance_std, "Angstrom")
                _put(g, "distance_quantiles", t.distance_quantiles, "Angstrom")
                _put(g, "dissociated_fraction", t.dissociated_fraction, "fraction")
                _put(g, "dS_clean", t.dS_clean, "fraction")
    return path


# --------------------------------------------------------------------------- reading

#: name -> (units, ndim) of the arrays of a measurement file and its truth group
_ROOT = {"q": ("1/Angstrom", 1), "delays": ("fs", 1), "dS": ("fraction", 2), "sigma": ("fraction", 2)}
_TRUTH = {
    "weights": ("1", 1),
    "trajectories": ("index", 1),
    "gamma": ("fraction", 0),
    "t0": ("fs", 0),
    "irf_fs": ("fs", 0),
    "photons": ("photons per q bin", 0),
    "quantile_levels": ("1", 1),
    "distance_mean": ("Angstrom", 2),
    "distance_std": ("Angstrom", 2),
    "distance_quantiles": ("Angstrom", 3),
    "dissociated_fraction": ("fraction", 1),
    "dS_clean": ("fraction", 2),
}


def _get(group, name: str, units: str, ndim: int, where: str, *, shape=None):
    """A numeric array from ``group``, its unit, rank and shape checked before it is read."""
    import h5py

    node = group.get(name)
    if not isinstance(node, h5py.Dataset):
        raise InputError(f"{where}: damaged measurement file (no array {(group.name.strip('/') + '/' + name).lstrip('/')})")
    if node.dtype.kind not in "fiu":
        raise InputError(f"{where}: damaged measurement file ({name} is not numeric)")
    if len(node.shape) != ndim or (shape is not None and node.shape != shape):
        want = shape if shape is not None else f"{ndim} dimension(s)"
        raise InputError(f"{where}: damaged measurement file ({name} has shape {node.shape}, expected {want})")
    got = node.attrs.get("units")
    if isinstance(got, bytes):
        got = got.decode()
    if got != units:
        raise InputError(f"{where}: {name} is in units {got!r}; a measurement file stores it in {units!r}")
    stored = node.id.get_storage_size()
    if node.nbytes > 1000 * stored + (1 << 20):  # a header claiming far more than the file holds
        raise InputError(f"{where}: damaged measurement file ({name} claims {node.nbytes} bytes but stores {stored})")
    return node[()]


def _strings(node) -> tuple[str, ...]:
    return tuple(s.decode() if isinstance(s, bytes) else str(s) for s in node[()])


def read_measurement(path) -> Measurement:
    """Read a measurement file (opened read-only) and validate it.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    Measurement

    Raises
    ------
    InputError
        If the file is missing, not HDF5, of another format, of a newer
        version, or damaged (missing arrays, wrong shapes or units,
        non-finite values, delays or q not increasing, negative sigma).
    """
    import h5py

    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise InputError(f"{path}: no such measurement file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise InputError(f"{path}: not an HDF5 file, so not a molmovie measurement") from None
    with f:
        fmt = f.attrs.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode()
        if fmt != MEASUREMENT_FORMAT:
            if fmt == DATASET_FORMAT:
                raise InputError(f"{path}: a molmovie dataset, not a measurement; make one with `molmovie ingest` or `molmovie simulate-experiment`")
            if fmt is None:
                raise InputError(f"{path}: not a molmovie measurement (no format attribute); `molmovie ingest` reads beamline files")
            raise InputError(f"{path}: a {fmt!r} file, not a molmovie measurement")
        try:
            version = int(f.attrs.get("version"))
        except (TypeError, ValueError):
            raise InputError(f"{path}: damaged measurement file (no version attribute)") from None
        if version > MEASUREMENT_VERSION:
            raise InputError(
                f"{path}: measurement format version {version} is newer than this molmovie reads ({MEASUREMENT_VERSION}); upgrade molmovie"
            )
        if version < 1:
            raise InputError(f"{path}: damaged measurement file (version {version})")
        try:
            provenance = json.loads(f.attrs.get("provenance", "{}"))
        except (TypeError, ValueError):
            raise InputError(f"{path}: damaged measurement file (provenance is not JSON)") from None
        if not isinstance(provenance, dict):
            raise InputError(f"{path}: damaged measurement file (provenance is not a JSON object)")
        molecule = f.attrs.get("molecule")
        if isinstance(molecule, bytes):
            molecule = molecule.decode()
        q_node, d_node = f.get("q"), f.get("delays")
        Q = q_node.shape[0] if isinstance(q_node, h5py.Dataset) and q_node.ndim == 1 else None
        T = d_node.shape[0] if isinstance(d_node, h5py.Dataset) and d_node.ndim == 1 else None
        q = _get(f, "q", *_ROOT["q"], where)
        delays = _get(f, "delays", *_ROOT["delays"], where)
        dS = _get(f, "dS", *_ROOT["dS"], where, shape=(T, Q))
        sigma = _get(f, "sigma", *_ROOT["sigma"], where, shape=(T, Q)) if "sigma" in f else None
        symbols = None
        if "atoms" in f:
            node = f["atoms"].get("symbols")
            if not isinstance(node, h5py.Dataset) or node.ndim != 1:
                raise InputError(f"{path}: damaged measurement file (atoms without a list of symbols)")
            symbols = _strings(node)
        truth = None
        if "truth" in f:
            g = f["truth"]
            if not isinstance(g, h5py.Group):
                raise InputError(f"{path}: damaged measurement file (truth is not a group)")
            labels = g.get("pair_labels")
            if not isinstance(labels, h5py.Dataset) or labels.ndim != 1:
                raise InputError(f"{path}: damaged measurement file (truth without pair_labels)")
            pair_labels = _strings(labels)
            levels = g.get("quantile_levels")
            P = len(pair_labels)
            K = levels.shape[0] if isinstance(levels, h5py.Dataset) and levels.ndim == 1 else None
            shapes = {
                "distance_mean": (T, P),
                "distance_std": (T, P),
                "distance_quantiles": (T, P, K),
                "dissociated_fraction": (T,),
                "dS_clean": (T, Q),
            }
            fields = {}
            for name, (units, ndim) in _TRUTH.items():
                if name == "photons" and "photons" not in g:
                    fields[name] = None
                    continue
                value = _get(g, name, units, ndim, where, shape=shapes.get(name))
                fields[name] = value if ndim else float(value)
            if fields["weights"].shape != fields["trajectories"].shape:
                raise InputError(f"{path}: damaged measurement file (truth weights and trajectories differ in length)")
            try:
                truth = Truth(pair_labels=pair_labels, **fields)
            except InputError as exc:
                raise InputError(f"{path}: damaged measurement file ({exc})") from None
    try:
        return Measurement(q, delays, dS, sigma, symbols, molecule, provenance, truth)
    except InputError as exc:
        raise InputError(f"{path}: damaged measurement file ({exc})") from None


def check_molecule(meas: Measurement, symbols, *, what: str = "the dataset") -> None:
    """Refuse a dataset (or model) of another molecule than the measurement's.

    The composition is compared (atom order does not change ΔS). A
    measurement without symbols cannot be checked and passes.

    Parameters
    ----------
    meas : Measurement
    symbols : sequence of str
        Element symbols of the dataset's molecule.
    what : str
        How the message names the other side, e.g. ``"dataset cs2.h5"``.

    Raises
    ------
    InputError
        If the compositions differ.
    """
    if meas.symbols is None:
        return
    theirs = normalise_symbols(symbols)
    if Counter(theirs) != Counter(meas.symbols):
        ours = formula(meas.symbols)
        name = f"{meas.molecule} ({ours})" if meas.molecule and meas.molecule != ours else ours
        raise InputError(
            f"the measurement is of {name} but {what} holds {formula(theirs)}; "
            "use a dataset of the measured molecule"
        )
