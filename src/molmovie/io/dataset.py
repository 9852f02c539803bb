"""The dataset file: trajectories of one molecule, their scattering signals, and splits, in HDF5.

::

    /                      attrs: format="molmovie", version, molmovie_version, molecule, provenance (JSON)
    /atoms/symbols (N)     /atoms/masses (N) [u]
    /time (T) [fs]
    /trajectories/positions (M, T, N, 3) [Angstrom], NaN past each length
    /trajectories/length (M)   /trajectories/dissociated (M)   /trajectories/source (M)
    /trajectories/energy (M, T) [eV], optional   /trajectories/state (M, T), optional
    /signals/q (Q) [1/Angstrom]   /signals/dS (M, T, Q)   /signals/I_ref (M, Q) [e.u.]
                           attrs (each JSON): inelastic, reference, photons, irf_fs, seed
                           (the :class:`~molmovie.scattering.SignalSpec` without q)
    /splits/{train,val,test} (indices)

Every array carries its unit in a ``units`` attribute. The file is written
atomically and an existing file is replaced only with ``force=True``; the
reader opens it read-only.
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
from ..datasets import Dataset, check_splits
from ..scattering.spec import SignalSpec
from ..trajectories import Ensemble
from ._files import atomic_hdf5, check_format, check_output, json_default, open_hdf5, read_array, write_array

if TYPE_CHECKING:
    import h5py

__all__ = ["DATASET_FORMAT", "DATASET_VERSION", "read_dataset", "write_dataset"]

DATASET_FORMAT = "molmovie"
DATASET_VERSION = 1


def write_dataset(ds: Dataset, path: PathLike, *, force: bool = False) -> Path:
    """Write a dataset file atomically.

    Parameters
    ----------
    ds : Dataset
    path : path-like
    force : bool
        Replace an existing file (otherwise that is an :class:`InputError`).

    Returns
    -------
    Path
        The file written.
    """
    import h5py

    path = check_output(path, force=force)
    ens = ds.ensemble
    comp = dict(compression="gzip", compression_opts=4, shuffle=True)
    with atomic_hdf5(path) as f:
        f.attrs["format"] = DATASET_FORMAT
        f.attrs["version"] = DATASET_VERSION
        f.attrs["molmovie_version"] = __version__
        f.attrs["molecule"] = ens.molecule
        f.attrs["provenance"] = json.dumps(with_command(ens.provenance), default=json_default)
        atoms = f.create_group("atoms")
        atoms.create_dataset("symbols", data=np.array(ens.symbols, dtype="S3"))
        write_array(atoms, "masses", ens.masses, "u")
        write_array(f, "time", ens.time, "fs")
        tr = f.create_group("trajectories")
        write_array(tr, "positions", ens.positions, "Angstrom", chunks=(1,) + ens.positions.shape[1:], **comp)
        write_array(tr, "length", ens.length, "frames")
        write_array(tr, "dissociated", ens.dissociated)
        tr.create_dataset("source", data=np.array(ens.source, dtype=h5py.string_dtype()))
        if ens.energy is not None:
            write_array(tr, "energy", ens.energy, "eV")
        if ens.state is not None:
            write_array(tr, "state", ens.state, "index")
        if ds.dS is not None and ds.I_ref is not None and ds.spec is not None:  # ds.has_signals: the three come together
            sg = f.create_group("signals")
            write_array(sg, "q", ds.spec.q, "1/Angstrom")
            write_array(sg, "dS", ds.dS, "fraction", chunks=(1,) + ds.dS.shape[1:], **comp)
            write_array(sg, "I_ref", ds.I_ref, "Angstrom^2" if ds.spec.probe == "electron" else "electron units")
            for k, v in ds.spec.attrs().items():
                sg.attrs[k] = json.dumps(v, default=json_default)
        sp = f.create_group("splits")
        for k, v in ds.splits.items():
            write_array(sp, k, np.asarray(v, dtype=np.int64), "index")
    return path


def read_dataset(path: PathLike) -> Dataset:
    """Read a dataset file (opened read-only).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    Dataset
        With its signals' :class:`~molmovie.scattering.SignalSpec` (attributes
        a file lacks take their defaults).

    Raises
    ------
    InputError
        If the file is missing, not HDF5, not a molmovie dataset, of a newer
        format version, or damaged.
    """
    path = Path(path)
    with open_hdf5(path, "file", "not an HDF5 file, so not a molmovie dataset") as f:
        check_format(f.attrs, path, DATASET_FORMAT, DATASET_VERSION, "molmovie dataset")
        what = "molmovie dataset"

        def array(group: h5py.Group, name: str, kinds: str = "fiub") -> Any:
            return read_array(group, name, path, kinds=kinds, what=what)

        try:
            symbols = tuple(_text(s) for s in array(f, "atoms/symbols", "SOU"))
            tr = f["trajectories"]
            ens = Ensemble(
                molecule=_text(f.attrs["molecule"]),
                symbols=symbols,
                time=array(f, "time"),
                positions=array(tr, "positions"),
                length=array(tr, "length"),
                dissociated=array(tr, "dissociated"),
                source=[_text(s) for s in array(tr, "source", "SOU")],
                energy=array(tr, "energy") if "energy" in tr else None,
                state=array(tr, "state") if "state" in tr else None,
                provenance=json.loads(f.attrs.get("provenance", "{}")),
            )
            signals: dict[str, Any] = {}
            if "signals" in f:
                sg = f["signals"]
                attrs = {k: json.loads(v) for k, v in sg.attrs.items()}
                signals = dict(dS=array(sg, "dS"), I_ref=array(sg, "I_ref"), spec=SignalSpec.from_attrs(array(sg, "q"), attrs))
            splits = {k: array(f["splits"], k) for k in f["splits"]} if "splits" in f else {}
            splits = check_splits(splits, ens.n_trajectories, where=path)
            return Dataset(ens, splits=splits, **signals)
        except InputError as exc:
            text = str(exc)
            raise InputError(text if text.startswith(str(path)) else f"{path}: damaged molmovie dataset ({text})") from None
        except (KeyError, ValueError, TypeError, AttributeError, UnicodeDecodeError, OSError, RuntimeError) as exc:
            raise InputError(f"{path}: damaged molmovie dataset ({shorten(str(exc), 200)})") from None


def _text(value: object) -> str:
    """A string from HDF5: bytes decoded (bad bytes replaced), anything else through ``str``."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
