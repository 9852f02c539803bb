r"""Normal modes and zero-temperature Wigner sampling of initial conditions.

The vibrational ground state of a harmonic mode of angular frequency
:math:`\omega` has the Wigner function

.. math::

    W(Q, P) = \frac{1}{\pi\hbar} \exp\left(-\frac{\omega Q^2}{\hbar} - \frac{P^2}{\hbar\omega}\right),

a Gaussian in the mass-weighted normal coordinate :math:`Q` and its momentum
:math:`P`, with :math:`\langle Q^2\rangle = \hbar/2\omega` and
:math:`\langle P^2\rangle = \hbar\omega/2`. Each mode then carries on average
:math:`\hbar\omega/4` of kinetic and as much potential energy, so the mean
kinetic energy of a sample is half the zero-point energy (ZPE/2). This is the
standard way to start classical trajectories for photochemistry (e.g.
Newton-X, SHARC's ``wigner.py``; M. Barbatti and K. Sen, Int. J. Quantum
Chem. 116, 762 (2016)).

Units inside this module are ASE's (eV, Angstrom, u, and the ASE time unit);
the public functions take and return Angstrom, fs, eV and cm^-1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._errors import InputError
from .._typing import Symbols
from ..molecules import atomic_masses, normalise_symbols

__all__ = ["NormalModes", "hessian", "normal_modes", "wigner_sample", "HBAR_EV_FS"]

#: Reduced Planck constant, eV fs.
HBAR_EV_FS = 0.6582119569509066
#: Speed of light, cm/fs (to turn angular frequencies in 1/fs into wavenumbers).
_C_CM_PER_FS = 2.99792458e-5
#: Modes below this wavenumber (and imaginary ones) are not sampled, cm^-1.
MIN_WAVENUMBER = 50.0


@dataclass(frozen=True)
class NormalModes:
    """Harmonic vibrations about a minimum.

    Attributes
    ----------
    symbols : tuple of str, length N
    positions : ndarray, shape (N, 3), Angstrom
        The minimum, centred on the centre of mass.
    energy : float
        Energy at the minimum, eV.
    omega : ndarray, shape (K,), 1/fs
        Angular frequencies of the K sampled modes, ascending.
    vectors : ndarray, shape (K, N, 3)
        Orthonormal mass-weighted normal modes (dimensionless).
    frozen : ndarray, shape (F,), cm^-1
        Wavenumbers of modes left unsampled: imaginary ones (negative) and
        those below :data:`MIN_WAVENUMBER`, whose harmonic position spread
        (proportional to 1/omega) is unphysical.
    linear : bool
    """

    symbols: tuple[str, ...]
    positions: np.ndarray
    energy: float
    omega: np.ndarray
    vectors: np.ndarray
    frozen: np.ndarray
    linear: bool

    @property
    def masses(self) -> np.ndarray:
        """Atomic masses in u, shape (N,)."""
        return atomic_masses(self.symbols)

    @property
    def wavenumbers(self) -> np.ndarray:
        """Harmonic wavenumbers of the sampled modes, cm^-1, shape (K,)."""
        return self.omega / (2 * np.pi * _C_CM_PER_FS)

    @property
    def zpe(self) -> float:
        """Zero-point energy of the sampled modes, eV."""
        return float(0.5 * HBAR_EV_FS * self.omega.sum())

    def to_dict(self) -> dict:
        """JSON-serialisable form (lossless: floats are kept as Python floats)."""
        return {
            "symbols": list(self.symbols),
            "positions": self.positions.tolist(),
            "energy": self.energy,
            "omega": self.omega.tolist(),
            "vectors": self.vectors.tolist(),
            "frozen": self.frozen.tolist(),
            "linear": self.linear,
        }

    @classmethod
    def from_dict(cls, d: dict) -> NormalModes:
        return cls(
            tuple(d["symbols"]),
            np.asarray(d["positions"], float),
            float(d["energy"]),
            np.asarray(d["omega"], float),
            np.asarray(d["vectors"], float),
            np.asarray(d["frozen"], float),
            bool(d["linear"]),
        )


def hessian(
    symbols: Symbols, positions: np.ndarray, forces: Callable[[np.ndarray], np.ndarray], step: float = 5e-3
) -> np.ndarray:
    """Cartesian Hessian by central differences of the forces.

    Parameters
    ----------
    symbols : sequence of str, length N
    positions : ndarray, shape (N, 3), Angstrom
    forces : callable
        ``forces(positions) -> ndarray (N, 3)``, eV/Angstrom.
    step : float
        Displacement, Angstrom.

    Returns
    -------
    ndarray, shape (3N, 3N), eV/Angstrom^2, symmetrised.
    """
    x0 = np.asarray(positions, dtype=float).reshape(-1)
    n = x0.size
    h = np.empty((n, n))
    for i in range(n):
        xp, xm = x0.copy(), x0.copy()
        xp[i] += step
        xm[i] -= step
        fp = np.asarray(forces(xp.reshape(-1, 3))).reshape(-1)
        fm = np.asarray(forces(xm.reshape(-1, 3))).reshape(-1)
        h[i] = -(fp - fm) / (2 * step)
    return 0.5 * (h + h.T)


def _external_basis(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Orthonormal mass-weighted translations and rotations, shape (3N, 5 or 6)."""
    sq = np.sqrt(masses)
    com = masses @ positions / masses.sum()
    r = positions - com
    vecs = []
    for k in range(3):
        t = np.zeros_like(positions)
        t[:, k] = 1.0
        vecs.append((t * sq[:, None]).reshape(-1))
    for k in range(3):
        axis = np.zeros(3)
        axis[k] = 1.0
        vecs.append((np.cross(axis, r) * sq[:, None]).reshape(-1))
    u, s, _ = np.linalg.svd(np.array(vecs).T, full_matrices=False)
    return u[:, s > 1e-6 * s.max()]


def normal_modes(
    symbols: Symbols,
    positions: np.ndarray,
    cartesian_hessian: np.ndarray,
    energy: float = 0.0,
    min_wavenumber: float = MIN_WAVENUMBER,
) -> NormalModes:
    """Mass-weighted normal modes from a Cartesian Hessian.

    Translations and rotations are projected out exactly (the vibrational
    subspace is the orthogonal complement of the mass-weighted external
    motions: 3N-6 modes, 3N-5 for a linear molecule).

    Parameters
    ----------
    symbols : sequence of str, length N
    positions : ndarray, shape (N, 3), Angstrom
        The minimum.
    cartesian_hessian : ndarray, shape (3N, 3N), eV/Angstrom^2
    energy : float
        Energy at the minimum, eV (kept for the record).
    min_wavenumber : float
        Modes below this (and imaginary ones) are frozen, cm^-1.
    """
    symbols = normalise_symbols(symbols)
    pos = np.asarray(positions, dtype=float)
    masses = atomic_masses(symbols)
    n = len(symbols)
    if n < 2:
        raise InputError("a molecule needs at least two atoms to vibrate")
    ext = _external_basis(pos, masses)
    linear = ext.shape[1] == 5
    # Orthonormal basis of the vibrational subspace.
    q, _ = np.linalg.qr(np.hstack([ext, np.eye(3 * n)]))
    vib = q[:, ext.shape[1] : 3 * n]
    inv_sq = 1.0 / np.sqrt(np.repeat(masses, 3))
    hmw = cartesian_hessian * inv_sq[:, None] * inv_sq[None, :]
    evals, evecs = np.linalg.eigh(vib.T @ hmw @ vib)
    # eigenvalues in eV/(Angstrom^2 u); omega in 1/fs: sqrt(eV/u)/Angstrom -> 1/fs
    from ase import units

    def omega_of(ev: np.ndarray) -> np.ndarray:  # angular frequency, 1/fs
        return np.sign(ev) * np.sqrt(np.abs(ev)) * units.fs

    modes, evals = _canonical_modes(vib @ evecs, evals, omega_of(evals) / (2 * np.pi * _C_CM_PER_FS))
    vectors = modes.T.reshape(-1, n, 3)
    omega = omega_of(evals)
    wavenumber = omega / (2 * np.pi * _C_CM_PER_FS)
    keep = wavenumber >= min_wavenumber
    return NormalModes(
        symbols, pos - masses @ pos / masses.sum(), float(energy), omega[keep], vectors[keep], wavenumber[~keep], linear
    )


#: Modes whose wavenumbers differ by less than this (cm^-1) share one degenerate level (:func:`_canonical_modes`).
DEGENERATE_WAVENUMBERS = 0.5

#: A candidate direction enters a level's canonical basis when this much of it (its norm) is left outside the
#: directions already chosen (:func:`_canonical_modes`).
_CANDIDATE_NORM = 0.1


def _canonical_modes(vectors: np.ndarray, evals: np.ndarray, nu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The normal modes (columns, mass-weighted, orthonormal; eigenvalues ascending) in a basis fixed by the Hessian, not by its eigensolver.

    An eigensolver returns each mode up to its sign, and a degenerate level (CS2's two bends) in any
    orthonormal basis of its subspace: which one depends on the LAPACK build and the CPU's rounding, so
    the same seed drew different Wigner samples on different machines. Here each level (modes whose
    wavenumbers lie within :data:`DEGENERATE_WAVENUMBERS` of the next) is replaced by the basis that
    Gram-Schmidt makes from the projections P e_k of the Cartesian unit vectors onto the level's subspace
    (P = V Vᵀ does not depend on the basis), taken in the order of k, each kept while at least
    :data:`_CANDIDATE_NORM` of it (or half the most any has) is new; each mode then points along the first unit vector it
    overlaps; a level's modes share its mean eigenvalue (the numerical splitting of a degenerate level is
    rounding and finite-difference noise). The sample's distribution is the same for any basis; this makes
    the sample itself the same. ``nu``: the wavenumbers of ``evals``, cm^-1. Returns the modes and their
    eigenvalues. (Levels are chained: modes a, b, c
    with gaps below the threshold form one level even if a and c are further apart; in a spectrum that dense
    the sample's distribution changes by less than the gaps.)
    """
    out = np.empty_like(vectors)
    level = np.empty_like(evals)
    start = 0
    while start < len(nu):
        stop = start + 1
        while stop < len(nu) and nu[stop] - nu[stop - 1] < DEGENERATE_WAVENUMBERS:
            stop += 1
        V = vectors[:, start:stop]
        P = V @ V.T
        chosen: list[np.ndarray] = []
        while len(chosen) < stop - start:
            new = [_outside(P[:, k], chosen) for k in range(P.shape[0])]
            norms = np.array([np.linalg.norm(c) for c in new])
            # the first candidate with enough new direction (a large molecule's spread-out mode may leave every
            # P e_k below _CANDIDATE_NORM, as 1/sqrt(3N) < 0.1 beyond 33 atoms: then half the largest)
            low = _CANDIDATE_NORM if norms.max() >= _CANDIDATE_NORM else 0.5 * norms.max()
            k = int(np.flatnonzero(norms >= low)[0])
            chosen.append(new[k] / norms[k])
        out[:, start:stop] = np.array(chosen).T
        level[start:stop] = evals[start:stop].mean()
        start = stop
    return out, level


def _outside(column: np.ndarray, chosen: list[np.ndarray]) -> np.ndarray:
    """What ``column`` has outside the orthonormal directions ``chosen`` (Gram-Schmidt, one direction after another)."""
    c = column.copy()
    for b in chosen:
        c -= (b @ c) * b
    return c


def wigner_sample(
    modes: NormalModes, rng: np.random.Generator | int | None, size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities drawn from the 0 K Wigner distribution.

    Parameters
    ----------
    modes : NormalModes
    rng : numpy.random.Generator or int
        Random source (an int is a seed).
    size : int, optional
        Number of samples; None draws one (no leading axis).

    Returns
    -------
    positions : ndarray, shape (size, N, 3) or (N, 3), Angstrom
    velocities : ndarray, shape (size, N, 3) or (N, 3), Angstrom/fs
        Free of overall translation (and of rotation at the minimum).
    """
    rng = np.random.default_rng(rng)
    k = len(modes.omega)
    shape = (1 if size is None else int(size), k)
    # Q ~ N(0, hbar/(2 omega)) [sqrt(u) Angstrom]; P ~ N(0, hbar omega/2) [sqrt(u) Angstrom/fs]
    # hbar in u Angstrom^2/fs: 1 eV = 1/EV_U_A2_FS2 u Angstrom^2/fs^2
    hbar = HBAR_EV_FS * _EV_IN_U_A2_PER_FS2
    q = rng.standard_normal(shape) * np.sqrt(hbar / (2 * modes.omega))
    p = rng.standard_normal(shape) * np.sqrt(hbar * modes.omega / 2)
    inv_sq = 1.0 / np.sqrt(modes.masses)[:, None]
    pos = modes.positions + np.einsum("sk,kni->sni", q, modes.vectors) * inv_sq
    vel = np.einsum("sk,kni->sni", p, modes.vectors) * inv_sq
    if size is None:
        return pos[0], vel[0]
    return pos, vel


def kinetic_energy(masses: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    """Kinetic energy in eV of velocities in Angstrom/fs, shape (..., N, 3) -> (...)."""
    return 0.5 * np.einsum("n,...ni->...", np.asarray(masses, float), np.asarray(velocities) ** 2) / _EV_IN_U_A2_PER_FS2


def _ev_in_u_a2_per_fs2() -> float:
    from ase import units

    # 1 u Angstrom^2 / fs^2 in eV is 1 / units.fs**2 (ASE time unit is Angstrom sqrt(u/eV)).
    return units.fs**2


#: 1 eV expressed in u Angstrom^2 / fs^2.
_EV_IN_U_A2_PER_FS2 = _ev_in_u_a2_per_fs2()
