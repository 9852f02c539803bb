"""Beamline files in: HDF5, NPZ and text tables of I(q, t) or ΔS(q, t) -> a :class:`Measurement`.

A beamline file holds a q axis, a delay axis and a data array (absolute
intensities, often stacked Legendre components, or a ready difference
signal), with variances or standard deviations, each in its own units. This
module reads them (:func:`read_beamline`, one reader per format in
:data:`READERS`), converts the units at the edge (:data:`Q_UNITS`,
:data:`DELAY_UNITS`, :data:`SIGNAL_UNITS`), builds the difference signal
against a reference with first-order propagation of the uncertainties
(:func:`difference_signal`), and puts it all together (:func:`ingest`).

Conventions (they are the CLI's, ``molmovie ingest``):

- The data array has one axis of the length of q and one of the length of
  the delays, in any order; a third axis is the Legendre stack. When the
  lengths are ambiguous, ``axes`` names them (e.g. ``"l,q,t"``).
- ``t0`` and ``reference_before`` are in the file's delay units; the q range
  (``qmin``, ``qmax``) is in 1/Angstrom.
- Intensities or a ready ΔS (``kind``): ``"auto"`` takes the data as
  intensities when the isotropic component (order 0 of a stack, else the
  data) is positive everywhere in the q range, and as a ready ΔS otherwise.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._errors import InputError
from .._guards import check_allocation
from ..molecules import builtin, normalise_symbols
from .measurement import Measurement

__all__ = [
    "Q_UNITS",
    "DELAY_UNITS",
    "SIGNAL_UNITS",
    "READERS",
    "BeamlineData",
    "read_beamline",
    "difference_signal",
    "pre_t0_chi2",
    "molecule_symbols",
    "ingest",
]

BOHR = 0.529177210903  # Angstrom (CODATA 2018)

#: unit name -> factor to 1/Angstrom
Q_UNITS = {"1/Angstrom": 1.0, "1/nm": 0.1, "1/bohr": 1.0 / BOHR}
#: unit name -> factor to fs
DELAY_UNITS = {"fs": 1.0, "ps": 1000.0}
#: unit name -> factor to a fraction
SIGNAL_UNITS = {"fraction": 1.0, "percent": 0.01}

_ALIASES = {
    "1/angstrom": "1/Angstrom", "1/a": "1/Angstrom", "a-1": "1/Angstrom", "angstrom-1": "1/Angstrom",
    "1/ang": "1/Angstrom", "inverseangstrom": "1/Angstrom", "1/nm": "1/nm", "nm-1": "1/nm",
    "1/bohr": "1/bohr", "bohr-1": "1/bohr", "1/a0": "1/bohr", "a0-1": "1/bohr",
    "fs": "fs", "femtosecond": "fs", "femtoseconds": "fs", "ps": "ps", "picosecond": "ps", "picoseconds": "ps",
    "fraction": "fraction", "1": "fraction", "percent": "percent", "%": "percent",
}


def _unit(text: str, table: dict, what: str, option: str) -> str:
    key = re.sub(r"\s+", "", str(text)).lower().replace("å", "a").replace("^-1", "-1").replace("^{-1}", "-1")
    name = _ALIASES.get(key)
    if name not in table:
        raise InputError(f"unknown units {text!r} for {what}; {option} takes {', '.join(table)}")
    return name


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class BeamlineData:
    """What a beamline file holds, in the file's own units.

    Attributes
    ----------
    q : ndarray, shape (Q,)
    delays : ndarray, shape (T,)
    data : ndarray, shape (T, Q)
        The chosen Legendre order (or the only pattern per delay).
    variance : ndarray, shape (T, Q), or None
        Variance of ``data`` (from a variance or a squared standard deviation).
    isotropic, isotropic_variance : ndarray, shape (T, Q), or None
        Order 0 of the stack, when another order was chosen.
    legendre : int or None
        The chosen order (None: the file has no Legendre stack).
    units : dict
        Units found in the file: ``q``, ``delays``, ``data`` (None when absent).
    paths : dict
        Where each array came from (dataset paths, keys or table layout).
    """

    q: np.ndarray
    delays: np.ndarray
    data: np.ndarray
    variance: np.ndarray | None
    isotropic: np.ndarray | None = None
    isotropic_variance: np.ndarray | None = None
    legendre: int | None = None
    units: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)


_NAMES = {
    "q": ("q", "qs", "q_values", "qvalues", "qbins", "q_bins", "qgrid", "q_grid", "scattering_vector"),
    "delays": ("delays", "delay", "timebins", "time_bins", "time", "times", "t", "tau", "delay_fs", "delay_ps"),
    "data": ("ds", "delta_s", "difference", "mean", "intensity", "intensities", "signal", "data", "i", "s", "counts"),
    "variance": ("variance", "variances", "var"),
    "std": ("std", "sigma", "stderr", "error", "errors", "err", "uncertainty"),
    "legendre": ("legendres", "legendre", "legendre_orders", "orders", "l"),
}


class _Source:
    """Arrays by name in one file: HDF5 datasets or NPZ members (shape and dtype known before reading)."""

    def __init__(self, path: Path, arrays: dict, load, attrs):
        self.path, self.arrays, self._load, self._attrs = path, arrays, load, attrs

    def describe(self) -> str:
        return ", ".join(f"{k} {tuple(s)}" for k, (s, _) in self.arrays.items()) or "none"

    def find(self, what: str, given: str | None, *, ndim=None, shape=None, exclude=()) -> str | None:
        if given is not None:
            key = given.strip("/") if given.strip("/") in self.arrays else given
            if key not in self.arrays:
                raise InputError(f"{self.path}: no array {given!r} (arrays there: {self.describe()})")
            return key
        names = _NAMES[what]
        candidates = []
        for key, (s, kind) in self.arrays.items():
            base = key.rsplit("/", 1)[-1].lower()
            if key in exclude or base not in names or kind not in "fiu":
                continue
            if ndim is not None and len(s) not in ndim:
                continue
            if shape is not None and tuple(s) != tuple(shape):
                continue
            candidates.append((names.index(base), key.count("/"), key))
        return min(candidates)[2] if candidates else None

    def get(self, key: str, what: str) -> np.ndarray:
        shape, kind = self.arrays[key]
        if kind not in "fiu":
            raise InputError(f"{self.path}: {key} ({what}) is not numeric")
        check_allocation(shape, f"{self.path}: {key} ({what}, shape {tuple(shape)})")  # as float64, before reading
        return np.asarray(self._load(key), dtype=float)

    def units(self, key: str) -> str | None:
        return self._attrs(key)


def _hdf5_source(path: Path, f) -> _Source:
    import h5py

    arrays: dict = {}

    def visit(name, node):
        if isinstance(node, h5py.Dataset):
            arrays[name] = (node.shape, node.dtype.kind)

    f.visititems(visit)

    def load(key):
        node = f[key]
        stored = node.id.get_storage_size()
        if node.size and node.nbytes > 1000 * stored + (1 << 20):
            raise InputError(f"{path}: {key} claims {node.nbytes} bytes but stores {stored}; damaged file")
        return node[()]

    def attrs(key):
        for name in ("units", "unit", "Units"):
            if name in f[key].attrs:
                v = f[key].attrs[name]
                return v.decode() if isinstance(v, bytes) else str(v)
        return None

    return _Source(path, arrays, load, attrs)


def _npz_source(path: Path) -> _Source:
    """An NPZ file, each member's header checked against its stored size before it is loaded."""
    arrays: dict = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with z.open(info) as fp:
                    version = np.lib.format.read_magic(fp)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
                    else:
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
                if dtype.hasobject:
                    raise InputError(f"{path}: {info.filename} holds Python objects; molmovie reads only numeric arrays")
                if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > info.file_size:
                    raise InputError(f"{path}: {info.filename} claims shape {shape} but stores {info.file_size} bytes; damaged file")
                arrays[info.filename[:-4]] = (tuple(shape), dtype.kind)
    except InputError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable NPZ file ({exc})") from None
    npz = np.load(path, allow_pickle=False)
    return _Source(path, arrays, lambda key: npz[key], lambda key: None)


def _parse_text(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text table (use an .h5 or .npz suffix for those formats)") from None
    rows = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if len(rows) < 2:
        raise InputError(f"{path}: a text table needs a header row and at least one row of values")
    sep = "," if "," in rows[1] else None
    split = [[tok.strip() for tok in (r.split(sep) if sep else r.split())] for r in rows]
    return split[0], split[1:]


def _floats(tokens, path: Path, where: str) -> np.ndarray:
    try:
        return np.array([float(t) for t in tokens])
    except ValueError as exc:
        raise InputError(f"{path}: {where} must be numbers ({exc})") from None


def _read_table(path: Path, q_in: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q (Q,), delays (T,), values (T, Q)) of a text table."""
    header, body = _parse_text(path)
    width = len(body[0])
    if any(len(r) != width for r in body):
        raise InputError(f"{path}: every row of the table must have {width} cells")
    if len(header) == width:
        header = header[1:]  # a corner cell
    if len(header) != width - 1:
        raise InputError(f"{path}: the header row has {len(header)} values for {width - 1} columns of data")
    top = _floats(header, path, "the header row")
    side = _floats([r[0] for r in body], path, "the first column")
    values = _floats([t for r in body for t in r[1:]], path, "the table").reshape(len(body), width - 1)
    if q_in == "column":
        return side, top, values.T
    if q_in == "row":
        return top, side, values
    raise InputError(f"q_in must be 'column' or 'row'; got {q_in!r}")


def _orient(arr: np.ndarray, Q: int, T: int, axes: str | None, where: str, what: str) -> tuple[np.ndarray, int | None]:
    """``arr`` as (L, T, Q) (L = 1 without a Legendre axis) and the index of the Legendre axis."""
    if axes is not None:
        names = [a.strip().lower() for a in axes.split(",")]
        if sorted(names) not in (["q", "t"], ["l", "q", "t"]) or len(names) != arr.ndim:
            raise InputError(f"axes must name the {arr.ndim} axes of {what} with q, t (and l); got {axes!r}")
        order = [names.index(a) for a in ("l", "t", "q") if a in names]
    else:
        if arr.ndim not in (2, 3):
            raise InputError(f"{where}: {what} has shape {arr.shape}; expected (delays, q) or a Legendre stack of them")
        q_axes = [i for i, n in enumerate(arr.shape) if n == Q]
        t_axes = [i for i, n in enumerate(arr.shape) if n == T]
        if len(q_axes) != 1 or len(t_axes) != 1 or q_axes == t_axes:
            raise InputError(
                f"{where}: cannot tell the axes of {what} {arr.shape} apart with {Q} q values and {T} delays; "
                "give --axes (e.g. l,q,t)"
            )
        rest = [i for i in range(arr.ndim) if i not in (q_axes[0], t_axes[0])]
        order = rest + [t_axes[0], q_axes[0]]
    if arr.shape[order[-1]] != Q or arr.shape[order[-2]] != T:
        raise InputError(f"{where}: {what} has shape {arr.shape}, which does not fit {Q} q values and {T} delays with axes {axes}")
    out = np.transpose(arr, order)
    return (out if out.ndim == 3 else out[None]), (order[0] if arr.ndim == 3 else None)


def read_beamline(
    path,
    *,
    format: str | None = None,
    q_path: str | None = None,
    delays_path: str | None = None,
    data_path: str | None = None,
    variance_path: str | None = None,
    std_path: str | None = None,
    legendre_path: str | None = None,
    legendre: int = 0,
    axes: str | None = None,
    q_in: str = "column",
    single: bool = False,
) -> BeamlineData:
    """Read q, delays, one Legendre order of the data and its variance from a beamline file.

    Parameters
    ----------
    path : path-like
        HDF5 (``.h5``, ``.hdf5``, ``.hdf``, ``.nxs``), NPZ (``.npz``) or a
        text table (anything else: whitespace or comma separated, ``#``
        comments; q in the first column and the delays in the header row,
        or the other way round with ``q_in="row"``).
    format : {"hdf5", "npz", "text"}, optional
        Overrides the guess from the suffix.
    q_path, delays_path, data_path, variance_path, std_path, legendre_path : str, optional
        Dataset paths (HDF5) or keys (NPZ); guessed from common names when
        absent. For a text table, ``variance_path``/``std_path`` name a
        second table of the same layout.
    legendre : int
        Order to take from a stacked array, looked up in the array of orders
        (``legendre_path``, guessed as ``legendres``); without one, the index.
    axes : str, optional
        Names of the data axes in order, e.g. ``"l,q,t"``, when their lengths
        do not tell them apart.
    q_in : {"column", "row"}
        Text tables: where the q values are.
    single : bool
        Accept a file without a delay axis (one pattern, e.g. laser off);
        it is read as one delay at 0.

    Returns
    -------
    BeamlineData

    Raises
    ------
    InputError
        Missing file or arrays, shapes that do not fit, a Legendre order not
        in the file, negative variances.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if variance_path is not None and std_path is not None:
        raise InputError("give a variance or a standard deviation, not both")
    fmt = format or _guess_format(path)
    if fmt not in READERS:
        raise InputError(f"unknown format {fmt!r}; formats are {', '.join(READERS)}")
    return READERS[fmt](
        path, q_path=q_path, delays_path=delays_path, data_path=data_path, variance_path=variance_path,
        std_path=std_path, legendre_path=legendre_path, legendre=legendre, axes=axes, q_in=q_in, single=single,
    )


def _guess_format(path: Path) -> str:
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if magic == b"\x89HDF\r\n\x1a\n":
        return "hdf5"
    if magic[:4] == b"PK\x03\x04":
        return "npz"
    return "text"


def _from_source(src: _Source, *, q_path, delays_path, data_path, variance_path, std_path, legendre_path,
                 legendre, axes, single=False, **_) -> BeamlineData:
    where = str(src.path)
    qk = src.find("q", q_path, ndim=(1,))
    if qk is None:
        raise InputError(f"{where}: no q axis found; give --q-path (arrays there: {src.describe()})")
    tk = src.find("delays", delays_path, ndim=(1,), exclude=(qk,))
    q = src.get(qk, "q")
    if tk is None and single:  # one pattern (a laser-off file): a delay axis of length 1 is added
        delays, axes = np.zeros(1), None
        pattern = lambda arr: arr[..., None]  # noqa: E731
    elif tk is None:
        raise InputError(f"{where}: no delay axis found; give --delays-path (arrays there: {src.describe()})")
    else:
        delays = src.get(tk, "delays")
        pattern = lambda arr: arr  # noqa: E731
    dk = src.find("data", data_path, ndim=(1, 2) if tk is None else (2, 3), exclude=(qk, tk))
    if dk is None:
        raise InputError(f"{where}: no data array found; give --data-path (arrays there: {src.describe()})")
    shape = src.arrays[dk][0]
    data, l_axis = _orient(pattern(src.get(dk, "data")), q.size, delays.size, axes, where, dk)
    if variance_path is not None or std_path is not None:
        vk = src.find("variance" if std_path is None else "std", variance_path or std_path)
        is_std = std_path is not None
    else:
        vk = src.find("variance", None, shape=shape, exclude=(dk,))
        is_std = vk is None
        vk = vk or src.find("std", None, shape=shape, exclude=(dk,))
    var = None
    if vk is not None:
        if tuple(src.arrays[vk][0]) != tuple(shape):
            raise InputError(f"{where}: {vk} has shape {tuple(src.arrays[vk][0])}; it must have the shape of {dk} {tuple(shape)}")
        var, _ = _orient(pattern(src.get(vk, "variance")), q.size, delays.size, axes, where, vk)
        if is_std:
            if np.any(var < 0):
                raise InputError(f"{where}: negative standard deviation {var.min():g} in {vk}")
            var = var**2
    orders = None
    if l_axis is not None:
        lk = src.find("legendre", legendre_path, ndim=(1,), shape=None, exclude=(qk, tk, dk))
        if lk is not None:
            orders = src.get(lk, "Legendre orders")
            if orders.shape != (data.shape[0],):
                raise InputError(f"{where}: {lk} lists {orders.size} Legendre orders for {data.shape[0]} in {dk}")
    elif legendre_path is not None:
        raise InputError(f"{where}: {dk} has no Legendre axis, so --legendre-path {legendre_path} does not apply")
    index = _legendre_index(legendre, orders, data.shape[0], where, dk)
    iso = iso_var = None
    if l_axis is not None and legendre != 0 and (orders is None or 0 in orders):
        zero = _legendre_index(0, orders, data.shape[0], where, dk)
        iso = data[zero]
        iso_var = None if var is None else var[zero]
    units = {"q": src.units(qk), "delays": None if tk is None else src.units(tk), "data": src.units(dk)}
    paths = {"q": qk, "delays": tk, "data": dk, ("std" if is_std else "variance"): vk}
    if l_axis is not None:
        paths["legendre_axis"] = int(l_axis)
        paths["legendres"] = None if orders is None else lk
    return BeamlineData(
        q=q, delays=delays, data=data[index], variance=None if var is None else var[index],
        isotropic=iso, isotropic_variance=iso_var, legendre=None if l_axis is None else int(legendre),
        units=units, paths=paths,
    )


def _legendre_index(legendre: int, orders, n: int, where: str, key: str) -> int:
    if orders is None:
        if not 0 <= legendre < n:
            raise InputError(f"{where}: {key} holds {n} Legendre components (no list of orders, so indices 0 to {n - 1}); got --legendre {legendre}")
        return int(legendre)
    hits = np.flatnonzero(orders == legendre)
    if hits.size != 1:
        listed = ", ".join(f"{o:g}" for o in orders)
        raise InputError(f"{where}: Legendre order {legendre} is not in the file (orders there: {listed})")
    return int(hits[0])


def _read_hdf5(path: Path, **options) -> BeamlineData:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError:
        raise InputError(f"{path}: not a readable HDF5 file") from None
    with f:
        return _from_source(_hdf5_source(path, f), **options)


def _read_npz(path: Path, **options) -> BeamlineData:
    return _from_source(_npz_source(path), **options)


def _read_text(path: Path, *, variance_path, std_path, legendre, legendre_path, axes, q_in,
               q_path=None, delays_path=None, data_path=None, single=False) -> BeamlineData:
    given = [name for name, v in (("--q-path", q_path), ("--delays-path", delays_path), ("--data-path", data_path),
                                  ("--legendre-path", legendre_path), ("--axes", axes)) if v is not None]
    if given:
        raise InputError(f"{path}: a text table has one q axis, one delay axis and one pattern per delay; {', '.join(given)} do not apply")
    if legendre != 0:
        raise InputError(f"{path}: a text table holds one pattern per delay, no Legendre stack; Legendre order {legendre} is not in the file")
    q, delays, data = _read_table(path, q_in)
    var = None
    other = variance_path or std_path
    if other is not None:
        vq, vd, var = _read_table(Path(other), q_in)
        if vq.shape != q.shape or vd.shape != delays.shape or not (np.array_equal(vq, q) and np.array_equal(vd, delays)):
            raise InputError(f"{other}: the uncertainty table must have the q values and delays of {path}")
        if std_path is not None:
            if np.any(var < 0):
                raise InputError(f"{other}: negative standard deviation {var.min():g}")
            var = var**2
    layout = "q in the first column, delays in the header row" if q_in == "column" else "q in the header row, delays in the first column"
    paths = {"layout": layout, ("std" if std_path else "variance"): None if other is None else str(Path(other).resolve())}
    return BeamlineData(q=q, delays=delays, data=data, variance=var, units={"q": None, "delays": None, "data": None}, paths=paths)


#: format name -> reader(path, **options) -> BeamlineData
READERS = {"hdf5": _read_hdf5, "npz": _read_npz, "text": _read_text}


# --------------------------------------------------------------------------- physics


def difference_signal(intensity, variance=None, *, reference_rows=None, laser_off=None,
                      isotropic=None, isotropic_variance=None, isotropic_laser_off=None):
    r"""ΔS against a reference: the mean of some delays (pre-t0) or a laser-off pattern.

    For the isotropic part (order 0, or data without a Legendre stack):

    .. math::

        \Delta S_i(q) = \frac{I_i(q)}{\bar I(q)} - 1, \qquad
        \bar I = \frac{1}{N}\sum_{j \in \mathrm{ref}} I_j .

    For an anisotropic order :math:`l > 0` the difference is normalised by the
    isotropic reference, :math:`\Delta S_{l,i} = (S_{l,i} - \bar S_l)/\bar S_0`,
    as is usual for Legendre-resolved scattering (e.g. Natan et al.,
    arXiv:2011.06761).

    Uncertainties are propagated to first order (the delta method; e.g.
    Bevington & Robinson, *Data Reduction and Error Analysis*, ch. 3), treating
    the bins and the Legendre orders as independent:

    .. math::

        \sigma^2(\Delta S_i) = \frac{\sigma_i^2}{\bar I^2}
            + \frac{I_i^2\,\sigma_{\bar I}^2}{\bar I^4}
            - 2\,[i \in \mathrm{ref}]\,\frac{I_i\,\sigma_i^2}{N\,\bar I^3},
        \qquad \sigma_{\bar I}^2 = \frac{1}{N^2}\sum_{j\in\mathrm{ref}} \sigma_j^2 ,

    the last term being the covariance of a delay that is part of its own
    reference. The result is the exact first-order variance of each bin; the
    covariance *between* delays through the shared reference (all delays
    move together with the reference's noise) is not stored.

    Parameters
    ----------
    intensity : ndarray, shape (T, Q)
        I(q, t) (the chosen order), any units.
    variance : ndarray, shape (T, Q), or None
        Its variance (the uncertainty of each bin's mean).
    reference_rows : ndarray of bool, shape (T,), optional
        Delays whose mean is the reference (pre-t0).
    laser_off : tuple (ndarray (Q,), ndarray (Q,) or None), optional
        A laser-off pattern of the chosen order and the variance of its mean,
        instead of ``reference_rows``.
    isotropic, isotropic_variance : ndarray, shape (T, Q), optional
        Order 0, for an order l > 0 with ``reference_rows``.
    isotropic_laser_off : tuple (ndarray (Q,), ndarray (Q,) or None), optional
        Order 0 of the laser-off pattern, for an order l > 0 with ``laser_off``.

    Returns
    -------
    dS : ndarray, shape (T, Q), fraction
    sigma : ndarray, shape (T, Q), fraction, or None (no variance given)

    Raises
    ------
    InputError
        If the reference is zero or negative in a q bin.
    """
    I = np.asarray(intensity, dtype=float)
    var = None if variance is None else np.asarray(variance, dtype=float)
    if (reference_rows is None) == (laser_off is None):
        raise InputError("give either reference rows (pre-t0) or a laser-off pattern")
    anisotropic = isotropic is not None or isotropic_laser_off is not None
    if laser_off is not None:
        A, var_A = (np.asarray(a, dtype=float) if a is not None else None for a in laser_off)
        own = np.zeros(I.shape[0], dtype=bool)
        N = 1
        if anisotropic:
            B, var_B = (np.asarray(a, dtype=float) if a is not None else None for a in isotropic_laser_off)
    else:
        own = np.asarray(reference_rows, dtype=bool)
        N = int(own.sum())
        if N == 0:
            raise InputError("no delay in the reference")
        A = I[own].mean(axis=0)
        var_A = None if var is None else var[own].sum(axis=0) / N**2
        if anisotropic:
            B = np.asarray(isotropic, dtype=float)[own].mean(axis=0)
            var_B = None if isotropic_variance is None else np.asarray(isotropic_variance, dtype=float)[own].sum(axis=0) / N**2
    norm = B if anisotropic else A
    if np.any(norm <= 0):
        k = int(np.flatnonzero(norm <= 0)[0])
        raise InputError(f"the reference intensity is {norm[k]:g} at q index {k}; ΔS needs a positive reference (raise --qmin past bins without data)")
    if anisotropic:
        dS = (I - A) / B
    else:
        dS = I / A - 1.0
    if var is None:
        return dS, None
    var_A = np.zeros_like(A) if var_A is None else var_A
    cov = np.where(own[:, None], var / N, 0.0)  # Cov(I_i, mean of the reference)
    if anisotropic:
        var_B = np.zeros_like(B) if var_B is None else var_B
        s2 = (var + var_A - 2 * cov) / B**2 + (I - A) ** 2 * var_B / B**4
    else:
        s2 = var / A**2 + I**2 * var_A / A**4 - 2 * I * cov / A**3
    return dS, np.sqrt(np.maximum(s2, 0.0))


def pre_t0_chi2(meas: Measurement, before: float = 0.0) -> tuple[float, int]:
    r"""Mean of :math:`(\Delta S/\sigma)^2` over the delays before ``before`` (fs), and their number.

    Near 1 when ΔS is zero within σ there (σ must be stored; bins with
    σ = 0 are left out). With σ the exact first-order variance of each bin
    (:func:`difference_signal`), the expectation is 1 also for delays that
    are part of the reference. Returns ``(nan, n)`` when there is no σ or no
    such delay.
    """
    rows = meas.delays < before
    if meas.sigma is None:
        return float("nan"), int(rows.sum())
    s = meas.sigma[rows]
    ok = s > 0
    if not ok.any():
        return float("nan"), int(rows.sum())
    return float(np.mean((meas.dS[rows][ok] / s[ok]) ** 2)), int(rows.sum())


def molecule_symbols(molecule: str | None, symbols: str | None) -> tuple[str | None, tuple[str, ...] | None]:
    """The molecule's name and element symbols from ``--molecule`` and ``--symbols``.

    ``symbols`` ("I I" or "I,I") wins; otherwise a built-in molecule's name
    ("cs2") or a formula ("I2", "CS2") gives them.
    """
    if symbols is not None:
        syms = normalise_symbols([s for s in re.split(r"[\s,]+", symbols.strip()) if s])
        if not syms:
            raise InputError("--symbols is empty")
        return molecule, syms
    if molecule is None:
        return None, None
    try:
        return molecule, builtin(molecule).symbols
    except InputError:
        pass
    parts = re.findall(r"([A-Z][a-z]?)(\d*)", molecule)
    if not parts or "".join(e + n for e, n in parts) != molecule:
        raise InputError(f"cannot read the atoms of molecule {molecule!r} from its name; give --symbols (e.g. 'I I')")
    return molecule, normalise_symbols([e for e, n in parts for _ in range(int(n or 1))])


# --------------------------------------------------------------------------- ingest


def ingest(
    path,
    *,
    kind: str = "auto",
    q_units: str | None = None,
    delay_units: str | None = None,
    signal_units: str | None = None,
    t0: float = 0.0,
    reference_before: float | None = None,
    laser_off=None,
    qmin: float | None = None,
    qmax: float | None = None,
    molecule: str | None = None,
    symbols: str | None = None,
    **read_options,
) -> Measurement:
    """A beamline file as a :class:`Measurement`: units converted, ΔS and σ built, q range cut.

    Parameters
    ----------
    path : path-like
        The beamline file (see :func:`read_beamline`).
    kind : {"auto", "intensity", "difference"}
        Absolute intensities I(q, t) (ΔS is built against a reference) or a
        ready ΔS. ``"auto"``: intensities when the isotropic component is
        positive in the whole q range, a ready ΔS otherwise.
    q_units, delay_units, signal_units : str, optional
        Units of the file's q (:data:`Q_UNITS`), delays (:data:`DELAY_UNITS`)
        and, for a ready ΔS, of its values (:data:`SIGNAL_UNITS`); needed
        when the file's ``units`` attributes do not say, and they override
        them.
    t0 : float
        Time zero in the file's delay units; the stored delays are
        ``(delays - t0)`` in fs.
    reference_before : float, optional
        Intensities without ``laser_off``: the delays strictly before this
        time (file units; default ``t0``) form the reference.
    laser_off : path-like, optional
        A laser-off file as the reference instead: same format, dataset
        paths and Legendre stack; without a delay axis it is one pattern,
        with one its patterns are averaged. A text table is read without σ
        (``variance_path``/``std_path`` name the measurement's tables).
    qmin, qmax : float, optional
        q range kept, 1/Angstrom (inclusive).
    molecule, symbols : str, optional
        See :func:`molecule_symbols`.
    **read_options
        Passed to :func:`read_beamline` (paths, ``legendre``, ``axes``,
        ``q_in``, ``format``).

    Returns
    -------
    Measurement
        With provenance: source, arrays read, kind, reference, q range,
        units read, t0 shift, Legendre order, pre-t0 chi2/dof.
    """
    path = Path(path)
    raw = read_beamline(path, **read_options)
    name, syms = molecule_symbols(molecule, symbols)
    qu = _unit(q_units or raw.units.get("q") or _missing("q", "--q-units", Q_UNITS), Q_UNITS, "q", "--q-units")
    du = _unit(delay_units or raw.units.get("delays") or _missing("the delays", "--delay-units", DELAY_UNITS),
               DELAY_UNITS, "the delays", "--delay-units")
    q = raw.q * Q_UNITS[qu]
    if not np.all(np.isfinite(q)) or np.any(np.diff(q) <= 0):
        raise InputError(f"{path}: q ({raw.paths.get('q', 'axis')}) must be finite and strictly increasing")
    if not np.all(np.isfinite(raw.delays)) or np.any(np.diff(raw.delays) <= 0):
        i = int(np.flatnonzero(~(np.diff(raw.delays) > 0))[0]) if np.any(~(np.diff(raw.delays) > 0)) else 0
        raise InputError(f"{path}: the delays must be finite and strictly increasing (index {i + 1}: {raw.delays[i]:g} then {raw.delays[min(i + 1, raw.delays.size - 1)]:g})")
    lo = q[0] if qmin is None else qmin
    hi = q[-1] if qmax is None else qmax
    if hi < lo:
        raise InputError(f"the q range is empty: --qmax {hi:g} < --qmin {lo:g}")
    keep = (q >= lo - 1e-9 * max(1.0, abs(lo))) & (q <= hi + 1e-9 * max(1.0, abs(hi)))
    if not keep.any():
        raise InputError(f"no q point of the file lies in {lo:g} to {hi:g} 1/Angstrom (the file's q runs from {q[0]:g} to {q[-1]:g} 1/Angstrom)")
    data, var = raw.data[:, keep], None if raw.variance is None else raw.variance[:, keep]
    iso = None if raw.isotropic is None else raw.isotropic[:, keep]
    iso_var = None if raw.isotropic_variance is None else raw.isotropic_variance[:, keep]
    for arr, what in ((data, "the data"), (var, "the variance"), (iso, "the isotropic component"), (iso_var, "its variance")):
        if arr is not None and not np.all(np.isfinite(arr)):
            t, k = np.argwhere(~np.isfinite(arr))[0]
            raise InputError(f"{path}: {what} holds NaN or inf in the chosen q range (q = {q[keep][k]:g} 1/Angstrom, delay {raw.delays[t]:g}); narrow --qmin/--qmax")
    for arr, what in ((var, "variance"), (iso_var, "isotropic variance")):
        if arr is not None and np.any(arr < 0):
            t, k = np.argwhere(arr < 0)[0]
            raise InputError(f"{path}: negative {what} {arr[t, k]:g} at q = {q[keep][k]:g} 1/Angstrom, delay {raw.delays[t]:g}")
    if kind == "auto":
        kind = "intensity" if np.all((data if iso is None else iso) > 0) else "difference"
    if kind not in ("intensity", "difference"):
        raise InputError(f"kind must be intensity, difference or auto; got {kind!r}")
    delays_fs = (raw.delays - t0) * DELAY_UNITS[du]
    prov = dict(
        made_by="ingest",
        source=str(path.resolve()),
        arrays=raw.paths,
        kind=kind,
        units_read=dict(q=qu, delays=du, file_attributes=raw.units),
        t0_shift_fs=float(t0 * DELAY_UNITS[du]),
        t0_file_units=float(t0),
        q_range=[float(q[keep][0]), float(q[keep][-1])],
        q_range_asked=[qmin, qmax],
        legendre=raw.legendre,
    )
    if kind == "difference":
        if laser_off is not None or reference_before is not None:
            raise InputError("a ready ΔS (--kind difference) has its reference already; --laser-off and --reference-before do not apply")
        su = _unit(signal_units or raw.units.get("data") or _missing("the ΔS values", "--signal-units", SIGNAL_UNITS),
                   SIGNAL_UNITS, "the ΔS values", "--signal-units")
        dS = data * SIGNAL_UNITS[su]
        sigma = None if var is None else np.sqrt(var) * SIGNAL_UNITS[su]
        prov["units_read"]["signal"] = su
        prov["reference"] = "given"
    elif laser_off is not None:
        off_options = dict(read_options, single=True)
        off_path = Path(laser_off)
        if off_path.is_file() and (read_options.get("format") or _guess_format(off_path)) == "text":
            off_options.update(variance_path=None, std_path=None)
        off = read_beamline(laser_off, **off_options)
        if off.q.shape != raw.q.shape or not np.allclose(off.q, raw.q, rtol=1e-9, atol=0):
            raise InputError(f"{laser_off}: the laser-off file must have the q values of {path}")
        ref = (off.data[:, keep].mean(axis=0), None if off.variance is None else off.variance[:, keep].sum(axis=0) / off.data.shape[0] ** 2)
        iso_ref = None
        if raw.legendre:
            if off.isotropic is None:
                raise InputError(f"{laser_off}: Legendre order {raw.legendre} needs order 0 of the laser-off file too")
            iso_ref = (off.isotropic[:, keep].mean(axis=0),
                       None if off.isotropic_variance is None else off.isotropic_variance[:, keep].sum(axis=0) / off.data.shape[0] ** 2)
        if not np.all(np.isfinite(ref[0])):
            raise InputError(f"{laser_off}: NaN or inf in the chosen q range")
        dS, sigma = difference_signal(data, var, laser_off=ref, isotropic_laser_off=iso_ref)
        prov["reference"] = f"laser-off file {Path(laser_off).resolve()} (mean of {off.data.shape[0]} patterns)"
    else:
        before = t0 if reference_before is None else reference_before
        rows = raw.delays < before
        if not rows.any():
            raise InputError(
                f"{path}: no delay before {before:g} {du} (the first is {raw.delays[0]:g} {du}), so no pre-t0 reference; "
                "give --t0 or --reference-before inside the delays, or --laser-off"
            )
        if raw.legendre and iso is None:
            raise InputError(f"{path}: ΔS of Legendre order {raw.legendre} is normalised by order 0, which the file does not hold")
        dS, sigma = difference_signal(data, var, reference_rows=rows, isotropic=iso, isotropic_variance=iso_var)
        prov["reference"] = f"pre-t0 mean of {int(rows.sum())} delay{'s' if rows.sum() != 1 else ''}"
        prov["reference_delays_fs"] = delays_fs[rows].tolist()
    meas = Measurement(q[keep], delays_fs, dS, sigma, syms, name, prov)
    chi2, n = pre_t0_chi2(meas)
    if n and np.isfinite(chi2):
        prov["pre_t0_chi2_dof"] = chi2
    if "reference_delays_fs" in prov and before != t0:
        chi2, n = pre_t0_chi2(meas, before=(before - t0) * DELAY_UNITS[du])
        if np.isfinite(chi2):
            prov["reference_chi2_dof"] = chi2
    return meas


def _missing(what: str, option: str, table: dict):
    raise InputError(f"the file does not say the units of {what}; give {option} ({', '.join(table)})")
