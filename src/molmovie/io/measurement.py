"""The measurement file: a measured (or simulated) ΔS(q, t) with its uncertainty.

This module owns the format (DESIGN.md, "File formats"; issue 11)::

    /                 attrs: format="molmovie-measurement", version, molmovie_version,
                             molecule (optional), provenance (JSON),
                             probe ("xray" or "electron"; absent: "xray"), energy_kev (electrons)
    /q (Q)            [1/Angstrom], strictly increasing
    /delays (T)       [fs] relative to time zero, strictly increasing (may be negative)
    /dS (T, Q)        [fraction]  ΔS = (I - I_ref) / I_ref
    /sigma (T, Q)     [fraction]  one standard deviation of dS (optional)
    /atoms/symbols (N)            (optional)
    /legendre/l{L}/dS (T, Q)      [fraction]  (optional) anisotropic Legendre order L > 0 (even):
                                  ΔS_L = (S_L − S̄_L) / S̄_0 against the reference; attrs: order
    /legendre/l{L}/sigma (T, Q)   [fraction]  its σ (optional)
    /truth/...                    (optional; simulated experiments only, see :class:`Truth`)

Every array carries its unit in a ``units`` attribute. Files are written
atomically (a temporary file in the same folder, then a rename); an existing
file is replaced only with ``force=True``. The reader opens files read-only,
checks shapes before it reads any array, and refuses files of another format
or of a newer version with one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import InputError, shorten
from .._provenance import with_command
from .._typing import PathLike
from .._version import __version__
from ..measurement import LegendreComponent, Measurement, Truth, check_molecule
from ._files import (
    atomic_hdf5,
    attach_dimensions,
    check_allocation,
    check_output,
    dimension_scale,
    file_version,
    json_default,
    open_hdf5,
    write_array,
)
from .dataset import DATASET_FORMAT

if TYPE_CHECKING:
    import h5py

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


def write_measurement(meas: Measurement, path: PathLike, *, force: bool = False) -> Path:
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

    path = check_output(path, force=force)
    try:
        provenance = json.dumps(with_command(meas.provenance), default=json_default)
    except (TypeError, ValueError) as exc:
        raise InputError(f"measurement provenance is not JSON-able ({exc})") from None
    with atomic_hdf5(path) as f:  # built in memory, written whole: a full disk is one line, never a crash
        f.attrs["format"] = _fixed(MEASUREMENT_FORMAT)
        f.attrs["version"] = MEASUREMENT_VERSION
        f.attrs["molmovie_version"] = _fixed(__version__)
        if meas.molecule is not None:
            f.attrs["molecule"] = _fixed(meas.molecule)
        f.attrs["provenance"] = _fixed(provenance) if len(provenance) < 32768 else provenance  # past 64 KB: heap only
        f.attrs["probe"] = _fixed(meas.probe)
        if meas.energy_kev is not None:
            f.attrs["energy_kev"] = meas.energy_kev
        _array(f, "q", meas.q, "1/Angstrom")
        _array(f, "delays", meas.delays, "fs")
        _array(f, "dS", meas.dS, "fraction")
        if meas.sigma is not None:
            _array(f, "sigma", meas.sigma, "fraction")
        if meas.components:
            lg = f.create_group("legendre")
            for comp in meas.components:
                g = lg.create_group(f"l{comp.order}")
                g.attrs["order"] = comp.order
                _array(g, "dS", comp.dS, "fraction")
                if comp.sigma is not None:
                    _array(g, "sigma", comp.sigma, "fraction")
        if meas.symbols is not None:
            f.create_group("atoms").create_dataset("symbols", data=np.array(meas.symbols, dtype="S3"))
        if meas.truth is not None:
            t = meas.truth
            g = f.create_group("truth")
            _array(g, "weights", t.weights, "1")
            _array(g, "trajectories", t.trajectories, "index")
            _array(g, "gamma", t.gamma, "fraction")
            _array(g, "t0", t.t0, "fs")
            _array(g, "irf_fs", t.irf_fs, "fs")
            if t.photons is not None:
                _array(g, "photons", t.photons, "photons per q bin")
            g.create_dataset("pair_labels", data=np.array([s.encode("utf-8") for s in t.pair_labels], dtype=bytes))
            _array(g, "quantile_levels", t.quantile_levels, "1")
            _array(g, "distance_mean", t.distance_mean, "Angstrom")
            _array(g, "distance_std", t.distance_std, "Angstrom")
            _array(g, "distance_quantiles", t.distance_quantiles, "Angstrom")
            _array(g, "dissociated_fraction", t.dissociated_fraction, "fraction")
            _array(g, "dS_clean", t.dS_clean, "fraction")
        _label_dimensions(f, meas)
    return path


def _label_dimensions(f: h5py.File, meas: Measurement) -> None:
    """Dimension scales ``delay`` and ``q`` (and ``pair`` in the truth), for netCDF readers such as xarray.

    ``/q`` is itself the scale of ``q``; ``/delay`` is a copy of ``/delays`` made the scale of
    ``delay`` (a netCDF dimension takes its scale's name, and ``/delays`` keeps its name for
    molmovie's readers); ``/truth/pair`` holds the pair labels, ``/truth/quantile`` the quantile levels
    (a netCDF array names all its axes or none).
    """
    q = f["q"]
    q.make_scale("q")
    delay = dimension_scale(f, "delay", meas.delays, "fs")
    attach_dimensions(f, {"delays": (delay,), "dS": (delay, q), "sigma": (delay, q)})
    for comp in meas.components:
        attach_dimensions(f[f"legendre/l{comp.order}"], {"dS": (delay, q), "sigma": (delay, q)})
    if meas.truth is not None:
        g = f["truth"]
        pair = dimension_scale(g, "pair", np.array([s.encode("utf-8") for s in meas.truth.pair_labels], dtype=bytes), "1")
        quantile = dimension_scale(g, "quantile", meas.truth.quantile_levels, "1")
        trajectory = dimension_scale(g, "trajectory", meas.truth.trajectories, "index")
        attach_dimensions(
            g,
            {
                "distance_mean": (delay, pair),
                "distance_std": (delay, pair),
                "distance_quantiles": (delay, pair, quantile),
                "dissociated_fraction": (delay,),
                "dS_clean": (delay, q),
                "weights": (trajectory,),
                "trajectories": (trajectory,),
            },
        )


# Text in a measurement file is stored as fixed-length strings, held in the attribute or dataset itself: a
# variable-length string is a pointer into the file's heap, and a damaged pointer crashed the HDF5 library
# (a segmentation fault, not an error) when the reader asked for it (found by the mutation fuzz test).
def _fixed(text: str) -> np.bytes_:
    """``text`` as a fixed-length UTF-8 string for an HDF5 attribute."""
    return np.bytes_(str(text).encode("utf-8"))


def _array(group: h5py.Group, name: str, data: Any, units: str) -> None:
    """:func:`write_array` with its ``units`` a fixed-length string."""
    write_array(group, name, data).attrs["units"] = _fixed(units)


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


def _get(group: h5py.Group, name: str, units: str, ndim: int, where: str, *, shape: tuple[int | None, ...] | None = None) -> Any:
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
        got = got.decode("utf-8", "backslashreplace")
    if not (isinstance(got, str) and got == units):
        raise InputError(f"{where}: {name} is in units {shorten(repr(got), 60)}; a measurement file stores it in {units!r}")
    stored = node.id.get_storage_size()
    if node.nbytes > 1000 * stored + (1 << 20):  # a header claiming far more than the file holds
        raise InputError(f"{where}: damaged measurement file ({name} claims {node.nbytes} bytes but stores {stored})")
    check_allocation(node.shape, f"{where}: {name} (shape {node.shape})", itemsize=node.dtype.itemsize)
    try:
        return node[()]
    except (OSError, ValueError, TypeError) as exc:  # damage the HDF5 library meets only as it reads
        raise InputError(f"{where}: damaged measurement file ({name} cannot be read: {shorten(str(exc), 100)})") from None


def _strings(node: h5py.Dataset) -> tuple[str, ...]:
    return tuple(s.decode("utf-8", "backslashreplace") if isinstance(s, bytes) else str(s) for s in node[()])


def read_measurement(path: PathLike) -> Measurement:
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

    path = Path(path)
    where = str(path)
    f = open_hdf5(path, "measurement file", "not an HDF5 file, so not a molmovie measurement")
    try:
        with f:
            q, delays, dS, sigma, symbols, molecule, provenance, truth, probe, energy_kev = _read_parts(f, path, where)
            components = _read_components(f, path, where, dS.shape)
    except InputError:
        raise
    except (OSError, RuntimeError, ValueError, TypeError, KeyError) as exc:  # damage the HDF5 library meets as it reads
        raise InputError(f"{path}: damaged measurement file ({type(exc).__name__}: {shorten(str(exc), 120)})") from None
    try:
        return Measurement(
            q, delays, dS, sigma, symbols, molecule, provenance, truth, probe=probe, energy_kev=energy_kev, components=components
        )
    except InputError as exc:
        raise InputError(f"{path}: damaged measurement file ({exc})") from None


def _read_components(f: h5py.File, path: Path, where: str, shape: tuple[int, int]) -> tuple[LegendreComponent, ...]:
    """The optional anisotropic Legendre orders (/legendre/l{L}), checked; () for a file without them."""
    import h5py

    if "legendre" not in f:
        return ()
    lg = f["legendre"]
    if not isinstance(lg, h5py.Group):
        raise InputError(f"{path}: damaged measurement file (/legendre is not a group)")
    out = []
    for name in lg:
        g = lg[name]
        order = g.attrs.get("order") if isinstance(g, h5py.Group) else None
        if order is None or name != f"l{int(order)}":
            raise InputError(f"{path}: damaged measurement file (/legendre/{name} is not an order's group l<order>)")
        dS = _get(g, "dS", "fraction", 2, where, shape=shape)
        sigma = _get(g, "sigma", "fraction", 2, where, shape=shape) if "sigma" in g else None
        try:
            out.append(LegendreComponent(int(order), dS, sigma))
        except InputError as exc:
            raise InputError(f"{path}: damaged measurement file ({exc})") from None
    return tuple(sorted(out, key=lambda c: c.order))


def _read_parts(f: h5py.File, path: Path, where: str) -> tuple:
    """The parts of an open measurement file, checked (see :func:`read_measurement`)."""
    import h5py

    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", "backslashreplace")
    if fmt is not None and not isinstance(fmt, str):
        raise InputError(f"{path}: not a molmovie measurement (its format attribute is not text)")
    if fmt != MEASUREMENT_FORMAT:
        if fmt == DATASET_FORMAT:
            raise InputError(
                f"{path}: a molmovie dataset, not a measurement; make one with `molmovie ingest` or `molmovie simulate-experiment`"
            )
        if fmt is None:
            raise InputError(f"{path}: not a molmovie measurement (no format attribute); `molmovie ingest` reads beamline files")
        raise InputError(f"{path}: a {fmt!r} file, not a molmovie measurement")
    if "version" not in f.attrs:
        raise InputError(f"{path}: damaged measurement file (no version attribute)")
    version = file_version(f.attrs, path, "measurement file")
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
        molecule = molecule.decode("utf-8", "backslashreplace")
    if molecule is not None and not isinstance(molecule, str):
        raise InputError(f"{path}: damaged measurement file (its molecule attribute is not text)")
    probe = f.attrs.get("probe", "xray")  # files written before electrons hold X-ray signals
    probe = probe.decode("utf-8", "backslashreplace") if isinstance(probe, bytes) else str(probe)
    energy_kev = f.attrs.get("energy_kev")
    energy_kev = None if energy_kev is None else float(energy_kev)
    q_node, d_node = f.get("q"), f.get("delays")
    Q = q_node.shape[0] if isinstance(q_node, h5py.Dataset) and q_node.ndim == 1 else None
    T = d_node.shape[0] if isinstance(d_node, h5py.Dataset) and d_node.ndim == 1 else None
    q = _get(f, "q", *_ROOT["q"], where)
    delays = _get(f, "delays", *_ROOT["delays"], where)
    dS = _get(f, "dS", *_ROOT["dS"], where, shape=(T, Q))
    sigma = _get(f, "sigma", *_ROOT["sigma"], where, shape=(T, Q)) if "sigma" in f else None
    symbols = None
    if "atoms" in f:
        if not isinstance(f["atoms"], h5py.Group):
            raise InputError(f"{path}: damaged measurement file (/atoms is not a group)")
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
        fields: dict[str, Any] = {}
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
    return q, delays, dS, sigma, symbols, molecule, provenance, truth, probe, energy_kev
