"""Symmetry: the permutations of chemically equivalent atoms (bond-graph automorphisms) and their action on distances."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .._typing import Symbols
from ..molecules import BOND_SCALE, bond_graph, normalise_symbols
from ._checks import _as_permutations
from ._pairs import n_pairs, pair_indices


def automorphisms(symbols: Symbols, positions: ArrayLike, scale: float | None = None, *, max_count: int = 5000) -> np.ndarray:
    """Permutations of chemically equivalent atoms: automorphisms of the bond graph.

    A permutation p (atom i -> atom p[i]) is an automorphism when it maps every
    atom to one of the same element and bonded pairs to bonded pairs. The bond
    graph is :func:`molmovie.molecules.bond_graph` of the given geometry; the
    automorphisms are enumerated with networkx's VF2 matcher. They ignore
    geometry and chirality (the two H of a CH2 are interchangeable even where
    they are diastereotopic), which is what an observable that cannot tell
    identical atoms apart, like X-ray scattering, calls for. Relabelling a
    structure by any of them, ``positions[..., p, :]``, gives the same molecule
    with the same bond graph.

    Parameters
    ----------
    symbols : sequence of str, length n_atoms
    positions : ndarray, shape (n_atoms, 3), Angstrom
        Geometry that defines the bonds (the reference structure).
    scale : float, optional
        Bond tolerance of :func:`~molmovie.molecules.bond_graph` (its default if None).
    max_count : int
        Most permutations returned. A molecule with more automorphisms (many
        methyl groups: each multiplies the count by 6) gets the identity and the
        first ``max_count - 1`` others found, with a :class:`UserWarning`; a
        symmetry-aware RMSD over this subset is then an upper bound.

    Returns
    -------
    ndarray of int, shape (K, n_atoms)
        Distinct permutations, the identity first, the rest in lexicographic order.
    """
    import networkx as nx
    from networkx.algorithms.isomorphism import GraphMatcher

    if int(max_count) != max_count or max_count < 1:
        raise InputError(f"The 'max_count' parameter must be a positive integer; got {max_count!r}")
    max_count = int(max_count)
    symbols = normalise_symbols(symbols)
    pos = np.asarray(positions, dtype=float)
    n = len(symbols)
    if pos.shape != (n, 3):
        raise InputError(f"The 'positions' array must have shape ({n}, 3) for {n} symbols; got shape {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise InputError("The 'positions' array must be finite to define the bond graph")
    adj = bond_graph(symbols, pos, BOND_SCALE if scale is None else scale)
    graph = nx.Graph()
    graph.add_nodes_from((i, {"element": s}) for i, s in enumerate(symbols))
    graph.add_edges_from(zip(*np.nonzero(np.triu(adj)), strict=True))
    matcher = GraphMatcher(graph, graph, node_match=lambda a, b: a["element"] == b["element"])
    identity = tuple(range(n))
    found: list[tuple[int, ...]] = []
    truncated = False
    for mapping in matcher.isomorphisms_iter():
        perm = tuple(mapping[i] for i in range(n))
        if perm == identity:
            continue
        if len(found) == max_count - 1:
            truncated = True
            break
        found.append(perm)
    if truncated:
        import warnings

        warnings.warn(
            f"the bond graph has more than {max_count} automorphisms; returning {max_count} of them "
            "(raise 'max_count' for the full set: a symmetry-aware RMSD over a subset is an upper bound)",
            UserWarning,
            stacklevel=2,
        )
    return np.array([identity] + sorted(found), dtype=np.intp).reshape(-1, n)


def pair_permutations(perms: ArrayLike) -> np.ndarray:
    """Pair-index arrays that apply atom permutations to distances.

    Parameters
    ----------
    perms : ndarray of int, shape (K, n_atoms)
        Atom permutations (relabelling ``positions[..., perm, :]``).

    Returns
    -------
    ndarray of int, shape (K, n_pairs)
        ``distances[..., out[k]]`` are the pair distances of the molecule
        relabelled by ``perms[k]``: pair (i, j) of the relabelled molecule is
        pair (perm[i], perm[j]) of the original.
    """
    p = np.asarray(perms)
    if p.ndim != 2:
        raise InputError(f"The 'perms' array must have shape (K, n_atoms); got shape {p.shape}")
    p = _as_permutations(p, p.shape[1], "perms")
    n = p.shape[1]
    i, j = pair_indices(n)
    lookup = np.zeros((n, n), dtype=np.intp)
    lookup[i, j] = np.arange(i.size)
    lookup[j, i] = np.arange(i.size)
    return lookup[p[:, i], p[:, j]]


def permute_distances(distances: np.ndarray, perm: ArrayLike) -> np.ndarray:
    """Distances of the molecule relabelled by one atom permutation.

    Parameters
    ----------
    distances : ndarray, shape (..., n_pairs), Angstrom
    perm : ndarray of int, shape (n_atoms,)
        New atom i is old atom ``perm[i]``.

    Returns
    -------
    ndarray, shape (..., n_pairs), Angstrom
        Equal to ``distances(positions[..., perm, :])``.
    """
    d = np.asarray(distances)
    p = np.asarray(perm)
    if p.ndim != 1:
        raise InputError(f"The 'perm' array must have shape (n_atoms,); got shape {p.shape}")
    if d.ndim < 1 or d.shape[-1] != n_pairs(p.size):
        raise InputError(
            f"The 'distances' array must have shape (..., {n_pairs(p.size)}) for a permutation of {p.size} atoms; "
            f"got shape {d.shape}"
        )
    return d[..., pair_permutations(p[None, :])[0]]
