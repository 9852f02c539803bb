"""The input checks the geometry functions share: positions, masses, atom permutations."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError


def _as_positions(x: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim < 2 or arr.shape[-1] != 3:
        raise InputError(f"The '{name}' array must have shape (..., n_atoms, 3); got shape {arr.shape}")
    return arr


def _as_masses(masses: ArrayLike, n_atoms: int) -> np.ndarray:
    w = np.asarray(masses, dtype=float)
    if w.shape != (n_atoms,):
        raise InputError(f"The 'masses' array must have shape ({n_atoms},), one mass per atom; got shape {w.shape}")
    if not (np.all(np.isfinite(w)) and np.all(w > 0)):
        raise InputError("The 'masses' array must hold finite, positive masses (u)")
    return w


def _as_permutations(perms: ArrayLike, n_atoms: int, name: str = "permutations") -> np.ndarray:
    p = np.asarray(perms)
    if p.ndim == 1:
        p = p[None, :]
    if p.ndim != 2 or p.shape[1] != n_atoms or p.shape[0] < 1:
        raise InputError(
            f"The '{name}' array must have shape (K, {n_atoms}), one atom permutation per row; got shape {np.shape(perms)}"
        )
    if not np.issubdtype(p.dtype, np.integer):
        raise InputError(f"The '{name}' array must hold integer atom indices; got dtype {p.dtype}")
    if not np.array_equal(np.sort(p, axis=1), np.broadcast_to(np.arange(n_atoms), p.shape)):
        raise InputError(f"Every row of '{name}' must be a permutation of 0..{n_atoms - 1}")
    return p.astype(np.intp)
