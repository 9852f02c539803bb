"""Where the excess energy goes: named directions of motion, and the kick that adds it.

A photon leaves a molecule with more energy than the surface it is put on
accounts for. The models put that excess in as kinetic energy along a few
chosen directions, named here and built from the molecule's bond graph:

``"torsion"``
    Twist about the one bond between two non-terminal atoms (C=C of
    ethylene): each end rotates the opposite way about the bond axis.
``"bend"``
    Change of the angle at the one atom bonded to exactly two terminal atoms
    (the C of CS2); for a linear molecule both perpendicular bending
    directions, so the bending plane is random.
``"asymmetric-stretch"``
    Lengthen one bond to that atom and shorten the other.
``"gradient"``
    Along the force of the surface the energy is put on: the model's first
    surface at the minimum (the Franck-Condon active direction), or the new
    surface at a switch.
``"all"``
    Every vibrational mode (a random direction in the whole vibrational space).

Each direction is the gradient of its coordinate in mass-weighted space,
:math:`M^{-1/2}\\nabla s` (the direction in which the coordinate changes
fastest per unit kinetic energy, as in Wilson's G matrix), projected on the
sampled vibrational modes, so it carries no overall translation or rotation.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .._typing import Symbols
from ..molecules import bond_graph, fragments
from .wigner import _EV_IN_U_A2_PER_FS2, NormalModes, _external_basis

__all__ = ["DIRECTIONS", "direction_basis", "add_kinetic_energy", "excess_velocities"]

DIRECTIONS = ("torsion", "bend", "asymmetric-stretch", "gradient", "all")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _central_atom(symbols: Symbols, pos: np.ndarray, adj: np.ndarray, name: str) -> tuple[int, int, int]:
    """The one atom bonded to exactly two terminal atoms: (terminal, centre, terminal)."""
    deg = adj.sum(axis=1)
    centres = [b for b in range(len(symbols)) if deg[b] == 2 and all(deg[a] == 1 for a in np.flatnonzero(adj[b]))]
    if len(centres) != 1:
        raise InputError(
            f"the {name!r} excess-energy direction needs exactly one atom bonded to two terminal atoms "
            f"(like C in CS2); this molecule has {len(centres)}"
        )
    b = centres[0]
    a, c = np.flatnonzero(adj[b])
    return int(a), b, int(c)


def _torsion(symbols: Symbols, pos: np.ndarray, adj: np.ndarray) -> list[np.ndarray]:
    deg = adj.sum(axis=1)
    bonds = [(i, j) for i, j in zip(*np.nonzero(np.triu(adj)), strict=True) if deg[i] >= 2 and deg[j] >= 2]
    if len(bonds) != 1:
        raise InputError(
            f"the 'torsion' excess-energy direction needs exactly one bond between non-terminal atoms "
            f"(like C=C in ethylene); this molecule has {len(bonds)}"
        )
    i, j = bonds[0]
    cut = adj.copy()
    cut[i, j] = cut[j, i] = False
    side = {frozenset(f) for f in fragments(cut)}
    if len(side) != 2:
        raise InputError("the 'torsion' direction needs a bond that is not in a ring")
    axis = _unit(pos[j] - pos[i])
    g = np.zeros_like(pos)
    for group, origin, sign in ((next(f for f in side if i in f), i, 1.0), (next(f for f in side if j in f), j, -1.0)):
        for k in group:
            if k == origin:
                continue
            rho = pos[k] - pos[origin]
            rho = rho - axis * (rho @ axis)
            g[k] = sign * np.cross(axis, rho) / max(rho @ rho, 1e-12)
    return [g]


def _bend(symbols: Symbols, pos: np.ndarray, adj: np.ndarray) -> list[np.ndarray]:
    a, b, c = _central_atom(symbols, pos, adj, "bend")
    e_ba, e_bc = pos[a] - pos[b], pos[c] - pos[b]
    r_ba, r_bc = np.linalg.norm(e_ba), np.linalg.norm(e_bc)
    e_ba, e_bc = e_ba / r_ba, e_bc / r_bc
    cos = float(np.clip(e_ba @ e_bc, -1.0, 1.0))
    if cos < -0.996:  # linear (angle > ~175 degrees): both perpendicular bends
        axis = e_bc
        helper = np.eye(3)[np.argmin(np.abs(axis))]
        p1 = _unit(np.cross(axis, helper))
        p2 = np.cross(axis, p1)
        out = []
        for p in (p1, p2):
            g = np.zeros_like(pos)
            g[a], g[c] = -p / r_ba, -p / r_bc
            g[b] = p * (1 / r_ba + 1 / r_bc)
            out.append(g)
        return out
    sin = np.sqrt(1 - cos * cos)
    g = np.zeros_like(pos)
    g[a] = (cos * e_ba - e_bc) / (r_ba * sin)
    g[c] = (cos * e_bc - e_ba) / (r_bc * sin)
    g[b] = -g[a] - g[c]
    return [g]


def _asymmetric_stretch(symbols: Symbols, pos: np.ndarray, adj: np.ndarray) -> list[np.ndarray]:
    a, b, c = _central_atom(symbols, pos, adj, "asymmetric-stretch")
    e_ba, e_bc = _unit(pos[a] - pos[b]), _unit(pos[c] - pos[b])
    g = np.zeros_like(pos)
    g[a], g[c], g[b] = e_ba, -e_bc, -e_ba + e_bc
    return [g]


def direction_basis(
    names: Iterable[str], modes: NormalModes, forces: np.ndarray | None = None, positions: np.ndarray | None = None
) -> list[np.ndarray]:
    """Orthonormal mass-weighted bases of the named directions.

    Parameters
    ----------
    names : sequence of str
        Entries of :data:`DIRECTIONS`.
    modes : NormalModes
        The sampled vibrations (and the minimum the directions are built at).
    forces : ndarray, shape (N, 3), eV/Angstrom, optional
        Force of the first surface at the minimum; needed for ``"gradient"``.
    positions : ndarray, shape (N, 3), Angstrom, optional
        Build the directions at this geometry instead of the minimum (the
        atoms keep their roles from the minimum's bond graph); they are then
        projected off the translations and rotations at this geometry rather
        than onto the sampled modes.

    Returns
    -------
    list of ndarray, one per name, each of shape (d, N, 3) with d >= 1:
        orthonormal vectors in mass-weighted space, orthogonal to the
        previous names' vectors and free of overall translation and rotation.
    """
    adj = bond_graph(modes.symbols, modes.positions)
    inv_sq = 1.0 / np.sqrt(modes.masses)[:, None]
    if positions is None:
        pos = modes.positions
        vib = modes.vectors.reshape(len(modes.omega), -1)  # (K, 3N), orthonormal rows
    else:
        pos = np.asarray(positions, dtype=float)
        ext = _external_basis(pos, modes.masses)  # (3N, 5 or 6)
        q, _ = np.linalg.qr(np.hstack([ext, np.eye(pos.size)]))
        vib = q[:, ext.shape[1] : pos.size].T
    taken = np.zeros((0, vib.shape[1]))
    out = []
    for name in names:
        if name == "torsion":
            grads = _torsion(modes.symbols, pos, adj)
        elif name == "bend":
            grads = _bend(modes.symbols, pos, adj)
        elif name == "asymmetric-stretch":
            grads = _asymmetric_stretch(modes.symbols, pos, adj)
        elif name == "gradient":
            if forces is None:
                raise ValueError("the 'gradient' direction needs the forces at the minimum")
            grads = [np.asarray(forces, float)]
        elif name == "all":
            grads = list(vib.reshape(-1, *pos.shape) / inv_sq)
        else:
            raise InputError(f"unknown excess-energy direction {name!r}; choose from {', '.join(DIRECTIONS)}")
        vecs: list[np.ndarray] = []
        for g in grads:
            u = (g * inv_sq).reshape(-1)
            u = vib.T @ (vib @ u)  # onto the sampled vibrations
            u = u - taken.T @ (taken @ u)
            for v in vecs:
                u = u - v * (v @ u)
            norm = np.linalg.norm(u)
            if norm > 1e-8 * max(float(np.linalg.norm(g * inv_sq)), 1e-300):
                vecs.append(u / norm)
        if not vecs:
            raise InputError(f"the {name!r} direction has no component in the sampled vibrations of this molecule")
        taken = np.vstack([taken, np.array(vecs)])
        out.append(np.array(vecs).reshape(len(vecs), *pos.shape))
    return out


def add_kinetic_energy(masses: np.ndarray, velocities: np.ndarray, direction: np.ndarray, energy: float) -> np.ndarray:
    """Add exactly ``energy`` of kinetic energy along a mass-weighted unit direction.

    The momentum component along the direction ``u`` becomes
    :math:`\\sqrt{(P\\cdot u)^2 + 2\\Delta E}` (positive along ``u``); the
    other components are untouched, so the kinetic energy rises by exactly
    ``energy``.

    Parameters
    ----------
    masses : ndarray, shape (N,), u
    velocities : ndarray, shape (N, 3), Angstrom/fs
    direction : ndarray, shape (N, 3)
        Unit vector in mass-weighted space.
    energy : float
        eV, >= 0.

    Returns
    -------
    ndarray, shape (N, 3), Angstrom/fs
    """
    sq = np.sqrt(np.asarray(masses, float))[:, None]
    p = velocities * sq
    c = float(np.sum(p * direction))
    de = max(float(energy), 0.0) * _EV_IN_U_A2_PER_FS2
    delta = -c + np.sqrt(c * c + 2.0 * de)
    return (p + delta * direction) / sq


def excess_velocities(
    masses: np.ndarray, velocities: ArrayLike, bases: list[np.ndarray], energy: float, partition: str, rng: np.random.Generator
) -> tuple[np.ndarray, list[float]]:
    """Share ``energy`` among direction groups and add it as kinetic energy.

    Parameters
    ----------
    masses : ndarray, shape (N,), u
    velocities : ndarray, shape (N, 3), Angstrom/fs
    bases : list of ndarray (d_g, N, 3)
        From :func:`direction_basis`.
    energy : float
        Excess energy, eV (nothing is added when <= 0).
    partition : {"equal", "random"}
        ``"equal"``: each named direction gets the same share, along a random
        direction within its span (a random sign for one vector, a random
        bending plane for the two bends of a linear molecule). ``"random"``:
        the whole excess along one random direction, uniform on the sphere of
        the combined span, so the shares follow the statistics of a fixed
        kinetic energy spread over those degrees of freedom.
    rng : numpy.random.Generator

    Returns
    -------
    velocities : ndarray, shape (N, 3), Angstrom/fs
    shares : list of float
        Energy given to each named direction, eV (sums to ``energy``).
    """
    v = np.array(velocities, dtype=float)
    if energy <= 0 or not bases:
        return v, [0.0] * len(bases)
    if partition == "equal":
        shares = [energy / len(bases)] * len(bases)
        for basis, share in zip(bases, shares, strict=True):
            w = rng.standard_normal(len(basis))
            u = np.tensordot(w / np.linalg.norm(w), basis, axes=1)
            v = add_kinetic_energy(masses, v, u, share)
        return v, shares
    if partition == "random":
        allv = np.concatenate(bases)
        w = rng.standard_normal(len(allv))
        w /= np.linalg.norm(w)
        u = np.tensordot(w, allv, axes=1)
        v = add_kinetic_energy(masses, v, u, energy)
        sizes = np.cumsum([0] + [len(b) for b in bases])
        shares = [float(energy * np.sum(w[s:e] ** 2)) for s, e in itertools.pairwise(sizes)]
        return v, shares
    raise InputError(f"unknown partition {partition!r}; choose 'equal' or 'random'")
