"""The inversion result (``molmovie invert``): predicted distances with their uncertainty, in HDF5.

::

    /                  attrs: format="molmovie-inversion", version, method, molecule, model, signals,
                              interpolated_q, has_std
    /distances (M, T, P) [Angstrom], NaN past each length   /std (M, T, P) [Angstrom], optional
    /time (T) [fs]   /length (M) [frames]   /pairs (P) labels   /pair_index (P, 2)   /atoms/symbols (N)
    /series (M), /pair (P), /pair_end (2): dimension scales (with /time), so that xarray opens the
    file with the dimensions series, time, pair

Written atomically; read read-only by :func:`read_inversion`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import InputError
from .._provenance import with_command
from .._typing import PathLike, Symbols
from ..geometry import pair_indices
from ._files import (
    atomic_hdf5,
    attach_dimensions,
    check_format,
    check_output,
    dimension_scale,
    read_array,
    reading_hdf5,
    write_array,
)

if TYPE_CHECKING:
    from ..inversion import Prediction

__all__ = ["INVERSION_FORMAT", "INVERSION_VERSION", "Inversion", "write_inversion", "read_inversion"]

INVERSION_FORMAT = "molmovie-inversion"
INVERSION_VERSION = 1


@dataclass(frozen=True)
class Inversion:
    """An inversion result as :func:`read_inversion` returns it.

    Attributes
    ----------
    distances : ndarray, shape (M, T, P), Angstrom
        NaN past each series' length.
    std : ndarray, shape (M, T, P), Angstrom, or None
    time : ndarray, shape (T,), fs
    length : ndarray of int, shape (M,)
    pair_labels : tuple of str, length P
    symbols : tuple of str, length N
    method, molecule, model, signals : str
        The method's name, the molecule, and where the model and the signals came from.
    interpolated_q : bool
        Whether the signals were interpolated onto the model's q grid.
    """

    distances: np.ndarray
    std: np.ndarray | None
    time: np.ndarray
    length: np.ndarray
    pair_labels: tuple[str, ...]
    symbols: tuple[str, ...]
    method: str
    molecule: str
    model: str
    signals: str
    interpolated_q: bool


def write_inversion(
    path: PathLike,
    prediction: Prediction,
    *,
    time: np.ndarray,
    lengths: np.ndarray,
    method: str,
    molecule: str,
    symbols: Symbols,
    pair_labels: Sequence[str],
    model: PathLike = "",
    signals: PathLike = "",
    interpolated_q: bool = False,
    force: bool = False,
) -> Path:
    """Write an inversion result atomically (the layout is in the module's docstring).

    Parameters
    ----------
    path : path-like
        The file to write.
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
    force : bool
        Replace an existing file (otherwise that is an :class:`InputError`).

    Returns
    -------
    Path
    """
    import h5py

    path = check_output(path, force=force)
    i, j = pair_indices(len(symbols))
    with atomic_hdf5(path) as f:  # built in memory, written whole: a full disk is one line, never a crash
        f.attrs["format"] = INVERSION_FORMAT
        f.attrs["version"] = INVERSION_VERSION
        f.attrs["method"] = method
        f.attrs["molecule"] = molecule
        f.attrs["model"] = str(model)
        f.attrs["signals"] = str(signals)
        f.attrs["interpolated_q"] = bool(interpolated_q)
        f.attrs["has_std"] = prediction.std is not None
        f.attrs["provenance"] = np.bytes_(json.dumps(with_command({})).encode("utf-8"))  # fixed-length, as measurements
        d = write_array(f, "distances", prediction.distances, "Angstrom")
        d.attrs["description"] = "predicted atom-atom distances (series, frames, pairs); NaN past each length"
        if prediction.std is not None:
            s = write_array(f, "std", prediction.std, "Angstrom")
            s.attrs["description"] = "one standard deviation of each predicted distance"
        write_array(f, "time", np.asarray(time, dtype=float), "fs")
        write_array(f, "length", np.asarray(lengths).astype(np.int64), "frames")
        f.create_dataset("pairs", data=np.array(list(pair_labels), dtype=h5py.string_dtype()))
        write_array(f, "pair_index", np.stack([i, j], axis=1).astype(np.int64), "index")
        f.create_group("atoms").create_dataset("symbols", data=np.array(list(symbols), dtype="S3"))
        # dimension scales for netCDF readers (xarray): series, time (its own scale), pair (a copy of the labels)
        f["time"].make_scale("time")
        series = dimension_scale(f, "series", np.arange(prediction.distances.shape[0]), "index")
        pair = dimension_scale(f, "pair", np.array(list(pair_labels), dtype=h5py.string_dtype()), "1")
        end = dimension_scale(f, "pair_end", np.array([0, 1]), "index")  # pair_index's columns: atoms i < j
        attach_dimensions(
            f,
            {
                "distances": (series, f["time"], pair),
                "std": (series, f["time"], pair),
                "length": (series,),
                "pairs": (pair,),
                "pair_index": (pair, end),
            },
        )
    return path


def read_inversion(path: PathLike) -> Inversion:
    """Read an inversion result written by :func:`write_inversion` (opened read-only).

    Raises
    ------
    InputError
        If the file is missing, not HDF5, not an inversion result, of a newer
        format version, or damaged.
    """
    path = Path(path)
    with reading_hdf5(path, "inversion result", "not an HDF5 file, so not a molmovie inversion result") as f:
        check_format(f.attrs, path, INVERSION_FORMAT, INVERSION_VERSION, "molmovie inversion result")
        what = "molmovie inversion result"

        def array(name: str, kinds: str = "fiub") -> Any:
            return read_array(f, name, path, kinds=kinds, what=what)

        try:
            return Inversion(
                distances=array("distances"),
                std=array("std") if "std" in f else None,
                time=array("time"),
                length=array("length"),
                pair_labels=tuple(s.decode(errors="replace") if isinstance(s, bytes) else str(s) for s in array("pairs", "SOU")),
                symbols=tuple(
                    s.decode(errors="replace") if isinstance(s, bytes) else str(s) for s in array("atoms/symbols", "SOU")
                ),
                method=str(f.attrs["method"]),
                molecule=str(f.attrs["molecule"]),
                model=str(f.attrs["model"]),
                signals=str(f.attrs["signals"]),
                interpolated_q=bool(f.attrs["interpolated_q"]),
            )
        except KeyError as exc:
            raise InputError(f"{path}: damaged molmovie inversion result ({exc})") from None
