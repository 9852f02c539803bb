"""What every file format shares: checked outputs, atomic writes, HDF5 opening and arrays with units.

- :func:`check_output`: an output path may be written (an existing file only with ``force``);
- :class:`atomic_path`: write to a temporary file beside the target, rename onto it on success;
- :func:`open_hdf5`: an HDF5 file opened read-only, or one clear :class:`~molmovie.InputError`;
- :func:`check_format`: a file's ``format`` and ``version`` attributes are ones this molmovie reads;
- :func:`read_array`: an HDF5 array read only after its kind and size are checked;
- :func:`atomic_hdf5`: an HDF5 file built in memory and written atomically (a full disk is one line);
- :func:`write_array`: an HDF5 dataset with its ``units`` attribute;
- :func:`json_default`: NumPy scalars and arrays for :func:`json.dumps`.

h5py is imported inside the functions that need it, so that importing
:mod:`molmovie.io` stays light.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError, shorten
from .._guards import atomic_hdf5, atomic_write, check_allocation, check_output_path
from .._plan import scan_hdf5
from .._typing import PathLike

if TYPE_CHECKING:
    import h5py

__all__ = [
    "check_output",
    "atomic_path",
    "atomic_hdf5",
    "check_input_file",
    "open_hdf5",
    "reading_hdf5",
    "check_format",
    "file_version",
    "read_array",
    "dimension_scale",
    "attach_dimensions",
    "write_array",
    "json_default",
]


def check_output(path: PathLike, force: bool = False) -> Path:
    """Refuse to replace an existing file unless ``force``; the folder must exist and be writable.

    Parameters
    ----------
    path : path-like
        The file about to be written.
    force : bool
        Whether an existing file may be replaced.

    Returns
    -------
    Path

    Raises
    ------
    InputError
        If ``path`` exists and ``force`` is False ("... exists; use force=True
        to replace it"), is a folder, its folder does not exist or is a file,
        or it is read-only. :func:`molmovie._guards.check_output_path` also
        refuses an output that is one of a command's inputs.
    """
    return check_output_path(path, force=force)


def atomic_path(path: PathLike, suffix: str = ".tmp") -> AbstractContextManager[Path]:
    """Context manager giving a temporary path beside ``path``, renamed onto it on success.

    On an exception (or Ctrl-C) the temporary file is removed and ``path`` is
    untouched. A new file gets the permissions of any newly created file
    (0666 less the umask), a replaced one keeps its own; a full disk or a
    refused permission is a one-line error (:func:`molmovie._guards.atomic_write`).

    Parameters
    ----------
    path : path-like
        The file to write in the end.
    suffix : str
        Ending of the temporary file's name (some writers, such as
        :func:`numpy.savez`, append their own ending to any other).
    """
    return atomic_write(path, suffix=suffix)


def open_hdf5(path: PathLike, what: str, not_hdf5: str) -> h5py.File:
    """An HDF5 file opened read-only, refused when it reaches outside itself or holds a broken link.

    External links and virtual datasets read other files (which a command's
    output could replace, and which a user cannot see in the file), and a soft
    link round a loop makes the HDF5 library fail deep inside a read: all
    three are refused here with one line, before any array is read
    (:func:`molmovie._plan.scan_hdf5`).

    Parameters
    ----------
    path : path-like
    what : str
        What the file should be, for the message when it is missing ("no such {what}").
    not_hdf5 : str
        The message (after the path) when the file is not HDF5.

    Returns
    -------
    h5py.File
        Open read-only; use it in a ``with`` block.

    Raises
    ------
    InputError
        If the file is missing or not HDF5, or holds an external link, a
        virtual dataset or a soft link that leads nowhere.
    """
    import h5py

    path = Path(path)
    check_input_file(path, what)
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise InputError(f"{path}: {not_hdf5}") from None
    try:
        links = scan_hdf5(f)
    except Exception:  # noqa: BLE001  # the HDF5 library refuses to walk a damaged file
        f.close()
        raise InputError(f"{path}: damaged HDF5 file (its links cannot be walked)") from None
    problem = None
    if links.external:
        name, target = links.external[0]
        problem = f"/{name} is an external link to {target}"
    elif links.virtual:
        name, target = links.virtual[0]
        problem = f"/{name} is a virtual dataset reading {target}"
    elif links.broken:
        problem = f"/{links.broken[0]} is a soft link that leads nowhere (dangling, or a loop)"
    elif links.truncated:
        problem = "it holds more than 200,000 links"
    if problem is not None:
        f.close()
        raise InputError(
            f"{path}: {problem}; molmovie reads only self-contained {what}s (copy the data in, e.g. with h5repack or h5copy)"
        )
    return f


@contextmanager
def reading_hdf5(path: PathLike, what: str, not_hdf5: str) -> Iterator[h5py.File]:
    """:func:`open_hdf5` in a ``with`` block in which damage the HDF5 library meets as it reads is one InputError.

    A file can open cleanly and still fail deep inside a read (a byte flipped in an object header or a
    heap): h5py then raises ``OSError`` or ``RuntimeError`` ("ran off end of input buffer while
    decoding"), ``ValueError`` (a datatype it cannot map: "Insufficient precision ...") or ``KeyError``
    (an object header it cannot parse), the same kinds the measurement and beamline readers turn into
    one line. Inside this block each becomes "PATH: damaged WHAT (cannot be read: ...)"; an
    :class:`InputError` raised by the reader itself passes unchanged. (A file whose damage makes the
    HDF5 library itself spin or crash is beyond what a reader can catch: docs/weak.md.)
    """
    path = Path(path)
    with open_hdf5(path, what, not_hdf5) as f:
        try:
            yield f
        except InputError:
            raise
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise InputError(f"{path}: damaged {what} (cannot be read: {shorten(str(exc), 120)})") from None


def check_input_file(path: PathLike, what: str) -> Path:
    """Refuse a missing input, a folder, or something that is not a regular file (a FIFO would block, a device never end).

    Raises
    ------
    InputError
        "PATH: no such WHAT", "PATH is a folder, not a WHAT", "PATH is not a regular file".
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such {what}")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a {what}")
    if not path.is_file():
        raise InputError(f"{path} is not a regular file, so not a {what}")
    return path


def check_format(attrs: Mapping[str, Any], path: PathLike, format: str, version: int, what: str) -> int:
    """Refuse a file that is not of ``format``, or of a newer version than ``version``.

    Parameters
    ----------
    attrs : mapping
        The file's root attributes (``h5py.File.attrs``).
    path : path-like
        For the messages.
    format : str
        The ``format`` attribute the file must have.
    version : int
        The newest version this molmovie reads.
    what : str
        What the file should be, e.g. "molmovie dataset".

    Returns
    -------
    int
        The file's version (0 when it has none).

    Raises
    ------
    InputError
        "PATH: not a WHAT (no format=... attribute)", or "... is newer than this molmovie reads".
    """
    found_format = attrs.get("format")
    if isinstance(found_format, bytes):
        found_format = found_format.decode(errors="replace")
    if not isinstance(found_format, str) or found_format != format:
        raise InputError(f"{path}: not a {what} (no format={format!r} attribute)")
    found = file_version(attrs, path, what)
    if found > version:
        raise InputError(f"{path}: {what} format version {found} is newer than this molmovie reads ({version}); upgrade molmovie")
    return found


def file_version(attrs: Mapping[str, Any], path: PathLike, what: str) -> int:
    """A file's ``version`` attribute as a whole number >= 0 (0 when it has none).

    Raises
    ------
    InputError
        "PATH: damaged WHAT (version must be a whole number >= 0; got 'abc')".
    """
    raw = attrs.get("version", 0)
    if isinstance(raw, bytes):
        raw = raw.decode(errors="replace")
    value = -1
    if isinstance(raw, str):
        value = int(raw.strip()) if raw.strip().isdigit() else -1
    elif isinstance(raw, (int, np.integer, float, np.floating)) and not isinstance(raw, (bool, np.bool_)):
        value = int(raw) if np.isfinite(raw) and float(raw).is_integer() else -1
    ok = value >= 0
    if not ok:
        raise InputError(f"{path}: damaged {what} (version must be a whole number >= 0; got {shorten(raw, 40)!s})")
    return value


def read_array(group: h5py.Group, name: str, path: PathLike, *, kinds: str = "fiub", what: str = "file") -> Any:
    """Read the HDF5 dataset ``name`` of ``group``, after checking its kind and its size.

    The header says the shape and type; a forged (or chunked, never written)
    dataset can claim any size, so the size is checked against the memory
    limit (:func:`molmovie._guards.check_allocation`) before anything is read.

    Parameters
    ----------
    group : h5py.Group
    name : str
    path : path-like
        The file, for the messages.
    kinds : str
        NumPy dtype kinds accepted ("f" float, "i"/"u" integers, "b" bool,
        "S"/"O"/"U" strings).
    what : str
        What the file is, for the messages ("molmovie dataset").

    Returns
    -------
    ndarray

    Raises
    ------
    InputError
        Missing, not an array, of another kind, larger than the memory limit.
    """
    import h5py

    node = group.get(name)
    full = f"{group.name.rstrip('/')}/{name}"
    if not isinstance(node, h5py.Dataset):
        raise InputError(f"{path}: damaged {what} (no array {full})")
    kind = node.dtype.kind
    if kind not in kinds:
        expect = "numbers" if set(kinds) <= set("fiub") else "text"
        raise InputError(f"{path}: damaged {what} ({full} holds {node.dtype} values, not {expect})")
    itemsize = node.dtype.itemsize if kind != "O" else 64  # variable-length strings: a pointer and their text
    check_allocation(node.shape, f"{path}: {full} (shape {node.shape})", itemsize=max(1, itemsize))
    try:
        return node[()]
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: damaged {what} ({full} cannot be read: {shorten(str(exc), 120)})") from None


def write_array(group: h5py.Group, name: str, data: ArrayLike, units: str | None = None, **kwargs: Any) -> h5py.Dataset:
    """Create the dataset ``name`` in an HDF5 group, with a ``units`` attribute when given.

    ``kwargs`` go to :meth:`h5py.Group.create_dataset` (chunks, compression).
    """
    ds = group.create_dataset(name, data=data, **kwargs)
    if units is not None:
        ds.attrs["units"] = units
    return ds


def dimension_scale(group: h5py.Group, name: str, data: ArrayLike, units: str) -> h5py.Dataset:
    """A coordinate that netCDF readers (xarray's h5netcdf and netCDF4 engines) take as the dimension ``name``.

    An HDF5 dimension scale (``Dataset.make_scale``) named as the dimension: the
    netCDF-4 data model reads a scale's dataset name as the dimension's name and
    its values as the coordinate. Attach it to the arrays along that dimension
    with :func:`attach_dimensions`.
    """
    ds = write_array(group, name, data)
    ds.attrs["units"] = np.bytes_(units.encode("utf-8"))
    ds.make_scale(name)
    return ds


def attach_dimensions(group: h5py.Group, dims: dict[str, tuple[h5py.Dataset | None, ...]]) -> None:
    """Attach dimension scales to the arrays of ``group``: ``{array name: (scale of axis 0, axis 1, ...)}``.

    ``None`` leaves an axis unnamed (netCDF readers then call it a phony dimension); an array
    that is not in the group is skipped (an optional one not written).
    """
    for name, scales in dims.items():
        if name not in group:
            continue
        ds = group[name]
        for axis, scale in enumerate(scales):
            if scale is not None:
                ds.dims[axis].attach_scale(scale)


def json_default(obj: object) -> int | float | list | str:
    """:func:`json.dumps` ``default``: NumPy integers, floats and arrays as Python numbers and lists."""
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-able")
