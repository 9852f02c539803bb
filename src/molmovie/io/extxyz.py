"""Extended-XYZ export of predicted geometries (ASE's ``extxyz`` writer).

An inversion predicts distances, not coordinates; :func:`geometries_from_distances`
turns each frame's distances into Cartesian coordinates by classical MDS
(:func:`molmovie.geometry.coordinates_from_distances`) and superposes every
frame on the one before it (mass-weighted Kabsch, the mirror image allowed), so
that a series plays as a movie instead of tumbling between the arbitrary
orientations and handedness MDS gives each frame. :func:`write_extxyz` writes
them, one frame per time step, with the time (fs), the series and the method in
each frame's comment line, readable by ASE, OVITO, VMD and Jmol.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._errors import InputError
from .._typing import PathLike
from ..geometry import align, coordinates_from_distances
from ..molecules import atomic_masses
from ._files import atomic_path, check_output

__all__ = ["geometries_from_distances", "write_extxyz"]


def geometries_from_distances(distances: np.ndarray, symbols: Sequence[str]) -> np.ndarray:
    """Coordinates, shape (M, T, N, 3) Å, that reproduce each frame's distances (M, T, P), each frame superposed on the last.

    A frame with a NaN distance (past a series' length) stays NaN and is skipped by the superposition.
    """
    d = np.asarray(distances, dtype=float)
    if d.ndim == 2:
        d = d[None]
    if d.ndim != 3:
        raise InputError(f"distances must have shape (series, frames, pairs); got {d.shape}")
    xyz = coordinates_from_distances(d)
    masses = atomic_masses(tuple(symbols))
    for m in range(xyz.shape[0]):
        previous = None
        for t in range(xyz.shape[1]):
            frame = xyz[m, t]
            if not np.all(np.isfinite(frame)):
                continue
            if previous is not None:
                xyz[m, t] = align(frame, previous, masses, reflection=True)
            previous = xyz[m, t]
    return xyz


def write_extxyz(
    path: PathLike,
    symbols: Sequence[str],
    positions: np.ndarray,
    time: np.ndarray,
    *,
    lengths: Sequence[int] | np.ndarray | None = None,
    info: dict | None = None,
    force: bool = False,
) -> Path:
    """Write geometries (M, T, N, 3) Å as an extended-XYZ file, series after series, atomically.

    Each frame's comment line carries ``time`` (fs), ``series`` and whatever ``info`` holds
    (strings or numbers: the method, the molecule). Frames past a series' length, or with NaN
    coordinates, are left out.

    Returns
    -------
    Path
    """
    from ase import Atoms
    from ase.io import write

    path = check_output(path, force=force)
    pos = np.asarray(positions, dtype=float)
    if pos.ndim == 3:
        pos = pos[None]
    M, T = pos.shape[:2]
    frames = []
    for m in range(M):
        L = T if lengths is None else int(lengths[m])
        for t in range(L):
            if not np.all(np.isfinite(pos[m, t])):
                continue
            atoms = Atoms(symbols=list(symbols), positions=pos[m, t])
            atoms.info.update({"time": float(time[t]), "series": m, **(info or {})})
            frames.append(atoms)
    if not frames:
        raise InputError(f"{path}: no frame with finite coordinates to write")
    with atomic_path(path, suffix=".extxyz") as tmp:
        write(str(tmp), frames, format="extxyz")
    return path
