"""Distances -> coordinates: classical multidimensional scaling (MDS)."""

from __future__ import annotations

import math

import numpy as np

from .._errors import InputError
from ._pairs import n_atoms_from_pairs, pair_indices

#: Eigenvalues of the MDS Gram matrix below this fraction of the largest, times
#: the number of atoms, are rounding noise and set to zero: without it an exactly
#: planar or linear molecule would come back with ~1e-7 Angstrom of spurious
#: thickness (the square root of a ~1e-14 relative eigenvalue error).
_MDS_RELATIVE_TOL = 10 * np.finfo(float).eps


def coordinates_from_distances(distances: np.ndarray, n_dim: int = 3) -> np.ndarray:
    r"""Cartesian coordinates that reproduce a set of distances (classical MDS).

    Classical (Torgerson) multidimensional scaling: the squared-distance matrix
    :math:`D^{(2)}_{ij} = R_{ij}^2` is double-centred into the Gram matrix of
    centred coordinates,

    .. math::

        B = -\tfrac12 J D^{(2)} J, \qquad J = I - \tfrac1N \mathbf{1}\mathbf{1}^T,

    and the coordinates are :math:`X = V_k \Lambda_k^{1/2}` from its ``n_dim``
    largest eigenpairs (Torgerson 1952; Gower 1966). Negative eigenvalues (a
    distance set that no point set in 3D reproduces: noisy or violating the
    triangle inequality) are clipped to zero, which gives the least-squares
    closest Gram matrix of rank ``n_dim``, so any finite input has a finite answer.
    Eigenvalues below ``10 * N * eps`` of the largest are rounding noise and are
    zeroed too, so planar and linear molecules stay exactly flat.

    The result is centred at the origin (unweighted); its orientation and
    handedness are arbitrary: distances do not determine them.

    Parameters
    ----------
    distances : ndarray, shape (..., n_pairs), Angstrom
        Pair distances in :func:`pair_indices` order. A frame (row) with any
        non-finite distance gives an all-NaN frame.
    n_dim : int
        Number of dimensions of the embedding (3 for molecules). Molecules with
        fewer than ``n_dim`` atoms are padded with zero columns.

    Returns
    -------
    ndarray, shape (..., n_atoms, n_dim), Angstrom
    """
    d = np.asarray(distances, dtype=float)
    if d.ndim < 1:
        raise InputError("The 'distances' array must have shape (..., n_pairs); got a scalar")
    if int(n_dim) != n_dim or n_dim < 1:
        raise InputError(f"The 'n_dim' parameter must be a positive integer; got {n_dim!r}")
    n_dim = int(n_dim)
    try:
        n = n_atoms_from_pairs(d.shape[-1])
    except ValueError:
        raise InputError(f"The last axis of 'distances' must hold n(n-1)/2 pair distances; got length {d.shape[-1]}") from None
    lead = d.shape[:-1]
    flat = d.reshape(math.prod(lead), d.shape[-1])
    bad = ~np.all(np.isfinite(flat), axis=-1)
    flat = np.where(bad[:, None], 0.0, flat)

    i, j = pair_indices(n)
    d2 = np.zeros((flat.shape[0], n, n))
    sq = flat * flat
    d2[:, i, j] = sq
    d2[:, j, i] = sq
    row = d2.mean(axis=-1, keepdims=True)
    gram = -0.5 * (d2 - row - np.swapaxes(row, -1, -2) + row.mean(axis=-2, keepdims=True))

    k = min(n_dim, n)
    evals, evecs = np.linalg.eigh(gram)  # ascending
    evals = evals[:, ::-1][:, :k]
    evecs = evecs[:, :, ::-1][:, :, :k]
    top = evals[:, :1]
    evals = np.where(evals > _MDS_RELATIVE_TOL * n * np.maximum(top, 0.0), evals, 0.0)
    coords = np.zeros((flat.shape[0], n, n_dim))
    coords[:, :, :k] = evecs * np.sqrt(evals)[:, None, :]
    coords[bad] = np.nan
    return coords.reshape(*lead, n, n_dim)
