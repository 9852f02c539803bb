"""Pairs of atoms and their distances: i < j in row-major order (``numpy.triu_indices(n, 1)``)."""

from __future__ import annotations

import numpy as np

from .._typing import Symbols


def n_pairs(n_atoms: int) -> int:
    """Number of atom pairs, n(n-1)/2."""
    return n_atoms * (n_atoms - 1) // 2


def n_atoms_from_pairs(n_pairs_: int) -> int:
    """Invert :func:`n_pairs`; raises ValueError if no atom count fits."""
    n = int(round((1 + np.sqrt(1 + 8 * n_pairs_)) / 2))
    if n * (n - 1) // 2 != n_pairs_:
        raise ValueError(f"{n_pairs_} is not a number of atom pairs n(n-1)/2")
    return n


def pair_indices(n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major pair indices (i, j) with i < j, each shape (n_pairs,)."""
    return np.triu_indices(n_atoms, 1)


def heavy_pairs(symbols: Symbols) -> np.ndarray:
    """Indices of the pairs of two non-hydrogen atoms, in the row-major pair order of :func:`pair_indices`."""
    i, j = pair_indices(len(symbols))
    heavy = np.array([s != "H" for s in symbols])
    return np.flatnonzero(heavy[i] & heavy[j])


def pair_labels(symbols: Symbols) -> list[str]:
    """Human labels of the pairs, e.g. ``["C1-S2", "C1-S3", "S2-S3"]`` (1-based)."""
    i, j = pair_indices(len(symbols))
    return [f"{symbols[a]}{a + 1}-{symbols[b]}{b + 1}" for a, b in zip(i, j, strict=True)]


def distances(positions: np.ndarray) -> np.ndarray:
    """All atom-atom distances.

    Parameters
    ----------
    positions : ndarray, shape (..., n_atoms, 3), Angstrom

    Returns
    -------
    ndarray, shape (..., n_pairs), Angstrom. NaN positions give NaN distances.
    """
    pos = np.asarray(positions, dtype=float)
    i, j = pair_indices(pos.shape[-2])
    # One Cartesian component at a time: the same sums (dx² + dy²) + dz² as
    # numpy.linalg.norm over the last axis, to the bit, at a quarter of the cost.
    square = 0.0
    for k in range(3):
        x = pos[..., k]
        d = x[..., i] - x[..., j]
        square = square + d * d
    return np.sqrt(square)
