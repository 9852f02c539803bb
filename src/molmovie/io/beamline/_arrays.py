"""HDF5 and NPZ beamline files: arrays found by name (or given paths), oriented, one Legendre order taken.

Shapes and dtypes are known before anything is read, so every array is
checked against the memory limit (and a claimed size against what the file
stores) before it is loaded.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._errors import NPZ_ERRORS, InputError
from ..._guards import check_allocation
from .._files import open_hdf5
from ._data import BeamlineData

if TYPE_CHECKING:
    import h5py

#: Array name -> (shape, dtype kind), known before any array is read.
_Arrays = dict[str, tuple[tuple[int, ...], str]]

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

    def __init__(self, path: Path, arrays: _Arrays, load: Callable[[str], Any], attrs: Callable[[str], str | None]) -> None:
        self.path, self.arrays, self._load, self._attrs = path, arrays, load, attrs

    def describe(self) -> str:
        return ", ".join(f"{k} {tuple(s)}" for k, (s, _) in self.arrays.items()) or "none"

    def find(
        self,
        what: str,
        given: str | None,
        *,
        ndim: tuple[int, ...] | None = None,
        shape: Sequence[int] | None = None,
        exclude: tuple[str | None, ...] = (),
    ) -> str | None:
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
        if 0 in tuple(shape):
            raise InputError(f"{self.path}: {key} ({what}) is empty (shape {tuple(shape)})")
        check_allocation(shape, f"{self.path}: {key} ({what}, shape {tuple(shape)})")  # as float64, before reading
        try:
            values = np.asarray(self._load(key), dtype=float)
        except InputError:
            raise
        except (*NPZ_ERRORS, TypeError, RuntimeError) as exc:
            raise InputError(f"{self.path}: {key} ({what}) cannot be read: damaged file ({exc.__class__.__name__})") from None
        if values.shape != tuple(shape):
            raise InputError(f"{self.path}: {key} ({what}) holds shape {values.shape}, not the {tuple(shape)} its header says")
        return values

    def units(self, key: str) -> str | None:
        return self._attrs(key)


def _hdf5_source(path: Path, f: h5py.File) -> _Source:
    import h5py

    arrays: _Arrays = {}

    def visit(name: str, node: object) -> None:
        if isinstance(node, h5py.Dataset):
            arrays[name] = (node.shape, node.dtype.kind)

    f.visititems(visit)

    def load(key: str) -> Any:
        node = f[key]
        stored = node.id.get_storage_size()
        if node.size and node.nbytes > 1000 * stored + (1 << 20):
            raise InputError(f"{path}: {key} claims {node.nbytes} bytes but stores {stored}; damaged file")
        return node[()]

    def attrs(key: str) -> str | None:
        for name in ("units", "unit", "Units"):
            if name in f[key].attrs:
                v = f[key].attrs[name]
                return v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else str(v)
        return None

    return _Source(path, arrays, load, attrs)


def _npz_source(path: Path) -> _Source:
    """An NPZ file, each member's header checked against its stored size before it is loaded."""
    arrays: _Arrays = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with z.open(info) as fp:
                    version = np.lib.format.read_magic(fp)
                    if version == (1, 0):
                        shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fp)
                    else:
                        shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fp)
                if dtype.hasobject:
                    raise InputError(f"{path}: {info.filename} holds Python objects; molmovie reads only numeric arrays")
                if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > info.file_size:
                    raise InputError(
                        f"{path}: {info.filename} claims shape {shape} but stores {info.file_size} bytes; damaged file"
                    )
                arrays[info.filename[:-4]] = (tuple(shape), dtype.kind)
    except InputError:
        raise
    except NPZ_ERRORS as exc:
        raise InputError(f"{path}: not a readable NPZ file ({exc.__class__.__name__}: {exc})") from None
    npz = np.load(path, allow_pickle=False)
    return _Source(path, arrays, lambda key: npz[key], lambda key: None)


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
        raise InputError(
            f"{where}: {what} has shape {arr.shape}, which does not fit {Q} q values and {T} delays with axes {axes}"
        )
    out = np.transpose(arr, order)
    return (out if out.ndim == 3 else out[None]), (order[0] if arr.ndim == 3 else None)


def _from_source(
    src: _Source,
    *,
    q_path: str | None,
    delays_path: str | None,
    data_path: str | None,
    variance_path: str | None,
    std_path: str | None,
    legendre_path: str | None,
    legendre: int,
    axes: str | None,
    single: bool = False,
    **_: Any,
) -> BeamlineData:
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
        named = src.find("variance", None, exclude=(dk,)) or src.find("std", None, exclude=(dk,))
        if vk is None and named is not None:  # an uncertainty by name, of another shape: never dropped in silence
            raise InputError(
                f"{where}: {named} has shape {tuple(src.arrays[named][0])}; an uncertainty must have the shape of {dk} "
                f"{tuple(shape)} (give --variance-path or --std-path to name another array)"
            )
    var = None
    if vk is not None:
        if tuple(src.arrays[vk][0]) != tuple(shape):
            raise InputError(f"{where}: {vk} has shape {tuple(src.arrays[vk][0])}; it must have the shape of {dk} {tuple(shape)}")
        var = _orient(pattern(src.get(vk, "variance")), q.size, delays.size, axes, where, vk)[0]
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
    paths: dict[str, str | int | None] = {"q": qk, "delays": tk, "data": dk, ("std" if is_std else "variance"): vk}
    if l_axis is not None:
        paths["legendre_axis"] = int(l_axis)
        paths["legendres"] = None if orders is None else lk
    return BeamlineData(
        q=q,
        delays=delays,
        data=data[index],
        variance=None if var is None else var[index],
        isotropic=iso,
        isotropic_variance=iso_var,
        legendre=None if l_axis is None else int(legendre),
        units=units,
        paths=paths,
    )


def _legendre_index(legendre: int, orders: np.ndarray | None, n: int, where: str, key: str) -> int:
    if orders is None:
        if not 0 <= legendre < n:
            raise InputError(
                f"{where}: {key} holds {n} Legendre components (no list of orders, so indices 0 to {n - 1}); got --legendre {legendre}"
            )
        return int(legendre)
    hits = np.flatnonzero(orders == legendre)
    if hits.size != 1:
        listed = ", ".join(f"{o:g}" for o in orders)
        raise InputError(f"{where}: Legendre order {legendre} is not in the file (orders there: {listed})")
    return int(hits[0])


def _read_hdf5(path: Path, **options: Any) -> BeamlineData:

    with open_hdf5(path, "beamline file", "not a readable HDF5 file") as f:
        try:
            return _from_source(_hdf5_source(path, f), **options)
        except InputError:
            raise
        except (OSError, RuntimeError, ValueError, TypeError, KeyError) as exc:  # damage the HDF5 library meets as it reads
            raise InputError(f"{path}: damaged HDF5 file ({type(exc).__name__}: {exc})") from None


def _read_npz(path: Path, **options: Any) -> BeamlineData:
    return _from_source(_npz_source(path), **options)
