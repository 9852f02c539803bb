"""Reading a beamline file: the format from the suffix or the file's magic bytes, the reader from :data:`READERS`."""

from __future__ import annotations

from pathlib import Path

from ..._errors import InputError
from ..._typing import PathLike
from ._arrays import _read_hdf5, _read_npz
from ._data import BeamlineData
from ._text import _read_text


def read_beamline(
    path: PathLike,
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
        path,
        q_path=q_path,
        delays_path=delays_path,
        data_path=data_path,
        variance_path=variance_path,
        std_path=std_path,
        legendre_path=legendre_path,
        legendre=legendre,
        axes=axes,
        q_in=q_in,
        single=single,
    )


def _guess_format(path: Path) -> str:
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if magic == b"\x89HDF\r\n\x1a\n":
        return "hdf5"
    if magic[:4] == b"PK\x03\x04":
        return "npz"
    return "text"


#: format name -> reader(path, **options) -> BeamlineData
READERS = {"hdf5": _read_hdf5, "npz": _read_npz, "text": _read_text}
