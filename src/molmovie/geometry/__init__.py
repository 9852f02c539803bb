"""Geometry: pair indexing, distances, coordinates from distances, superposition, RMSD, symmetry.

Pairs are atoms i < j in row-major order (``numpy.triu_indices(n, 1)``), and
every distances array is ``(..., n_pairs)``. Every function is vectorised over
leading (frame) dimensions, and a frame with NaN input gives NaN output
without floating-point warnings.

- :func:`n_pairs`, :func:`pair_indices`, :func:`pair_labels`,
  :func:`heavy_pairs`, :func:`distances` (``_pairs``): the pairs and their distances.
- :func:`coordinates_from_distances` (``_mds``): classical multidimensional scaling.
- :func:`kabsch`, :func:`align` (``_superposition``): mass-weighted optimal superposition.
- :func:`rmsd`, :func:`rmsd_from_distances` (``_rmsd``): mass-weighted RMSD after
  superposition, minimised over the mirror image and, optionally, over
  relabellings of chemically equivalent atoms (QCP); :func:`best_relabellings`,
  :func:`relabelling_per_trajectory`: the best relabelling per frame and per trajectory.
- :func:`automorphisms`, :func:`pair_permutations`, :func:`permute_distances` (``_symmetry``):
  the permutations of equivalent atoms (bond-graph automorphisms) and their
  action on distances.
"""

from __future__ import annotations

from ._checks import _as_masses, _as_permutations, _as_positions  # noqa: F401  (private names importable from here)
from ._mds import _MDS_RELATIVE_TOL, coordinates_from_distances  # noqa: F401
from ._pairs import distances, heavy_pairs, n_atoms_from_pairs, n_pairs, pair_indices, pair_labels
from ._rmsd import (  # noqa: F401
    _RMSD_BLOCK,
    _best_relabelling_per_frame,
    _largest_root,
    _permutation_residuals,
    best_relabellings,
    relabelling_per_trajectory,
    rmsd,
    rmsd_from_distances,
)
from ._superposition import _centre, _rotation_from_covariance, align, kabsch  # noqa: F401
from ._symmetry import automorphisms, pair_permutations, permute_distances

__all__ = [
    "n_pairs",
    "pair_indices",
    "pair_labels",
    "heavy_pairs",
    "distances",
    "n_atoms_from_pairs",
    "coordinates_from_distances",
    "kabsch",
    "align",
    "rmsd",
    "rmsd_from_distances",
    "best_relabellings",
    "relabelling_per_trajectory",
    "automorphisms",
    "pair_permutations",
    "permute_distances",
]
