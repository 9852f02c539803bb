"""The signals that ``molmovie invert`` reads: a molmovie dataset, or a minimal HDF5 file.

The minimal file holds, at its top level::

    q (Q) [1/Angstrom]   time (T) [fs]   dS ((T, Q) for one series, or (M, T, Q)) [fraction]
    length (M), optional: valid frames per series   symbols (N), optional

It has no ``format`` attribute: it is what a user writes by hand (with h5py)
from a measurement or another code's simulation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._errors import InputError, shorten
from .._typing import PathLike
from ._files import read_array, reading_hdf5
from .dataset import DATASET_FORMAT, read_dataset

__all__ = ["read_signals"]


def read_signals(path: PathLike) -> dict[str, Any]:
    """Signals to invert: a molmovie dataset, or a minimal HDF5 file with ``q``, ``time`` and ``dS``.

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
    not_hdf5 = "not an HDF5 file; SIGNALS must be a molmovie dataset or an HDF5 file with q, time and dS"
    with reading_hdf5(path, "signals file", not_hdf5) as f:
        fmt = f.attrs.get("format")
        is_dataset = (
            (fmt.decode("utf-8", "replace") if isinstance(fmt, bytes) else fmt) == DATASET_FORMAT
            if isinstance(fmt, (str, bytes))
            else False
        )
        if not is_dataset:
            missing = [k for k in ("q", "time", "dS") if k not in f or not isinstance(f[k], h5py.Dataset)]
            if missing:
                raise InputError(
                    f"{path}: a signals file needs the datasets q, time and dS at its top level; missing {', '.join(missing)}"
                )
            what = "signals file"
            for name in ("q", "time", "dS"):  # kinds first: q stored as strings is one line, not a traceback
                if f[name].dtype.kind not in "fiu":
                    raise InputError(f"{path}: {name} must be numbers; it holds {f[name].dtype} values")
            q = np.asarray(read_array(f, "q", path, kinds="fiu", what=what), dtype=float)
            time = np.asarray(read_array(f, "time", path, kinds="fiu", what=what), dtype=float)
            dS = np.asarray(read_array(f, "dS", path, kinds="fiu", what=what), dtype=float)
            length = read_array(f, "length", path, kinds="fiu", what=what) if "length" in f else None
            symbols = None
            if "symbols" in f:
                symbols = tuple(
                    s.decode(errors="replace") if isinstance(s, bytes) else str(s)
                    for s in read_array(f, "symbols", path, kinds="SOU", what=what)
                )
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
            raise InputError(
                f"{path}: length must hold one whole number of valid frames (0 to {T}) per series ({M}); got shape {length.shape}, "
                f"values {shorten(np.ravel(length)[:11].tolist())}"
            )
        length = length.astype(np.int64)
    return dict(q=q, time=time, dS=dS, length=length, symbols=symbols, series=dS.shape[0])
