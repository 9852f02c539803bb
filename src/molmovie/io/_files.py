"""What every file format shares: checked outputs, atomic writes, HDF5 opening and arrays with units.

- :func:`check_output`: an output path may be written (an existing file only with ``force``);
- :class:`atomic_path`: write to a temporary file beside the target, rename onto it on success;
- :func:`open_hdf5`: an HDF5 file opened read-only, or one clear :class:`~molmovie.InputError`;
- :func:`check_format`: a file's ``format`` and ``version`` attributes are ones this molmovie reads;
- :func:`write_array`: an HDF5 dataset with its ``units`` attribute;
- :func:`json_default`: NumPy scalars and arrays for :func:`json.dumps`.

h5py is imported inside the functions that need it, so that importing
:mod:`molmovie.io` stays light.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._errors import InputError
from .._guards import atomic_write, check_output_path

__all__ = ["check_output", "atomic_path", "open_hdf5", "check_format", "write_array", "json_default"]


def check_output(path, force: bool = False) -> Path:
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


def atomic_path(path, suffix: str = ".tmp"):
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


def open_hdf5(path, what: str, not_hdf5: str):
    """An HDF5 file opened read-only.

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
        If the file is missing or not HDF5.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {what}")
    try:
        return h5py.File(path, "r")
    except OSError:
        raise InputError(f"{path}: {not_hdf5}") from None


def check_format(attrs, path, format: str, version: int, what: str) -> int:
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
    if attrs.get("format") != format:
        raise InputError(f"{path}: not a {what} (no format={format!r} attribute)")
    found = int(attrs.get("version", 0))
    if found > version:
        raise InputError(f"{path}: {what} format version {found} is newer than this molmovie reads ({version}); upgrade molmovie")
    return found


def write_array(group, name: str, data, units: str | None = None, **kwargs):
    """Create the dataset ``name`` in an HDF5 group, with a ``units`` attribute when given.

    ``kwargs`` go to :meth:`h5py.Group.create_dataset` (chunks, compression).
    """
    ds = group.create_dataset(name, data=data, **kwargs)
    if units is not None:
        ds.attrs["units"] = units
    return ds


def json_default(obj):
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
