r"""Initial-condition families: how each trajectory starts, looked up by name.

A family draws one trajectory's positions and velocities from a
``numpy.random.Generator`` (seeded per trajectory by the runner, so a seed
fixes them). Built in (:data:`INITIAL_CONDITIONS`, ``--initial NAME``):

``wigner``
    The 0 K Wigner distribution of the ground state
    (:func:`~molmovie.dynamics.wigner_sample`): what every model starts from.
``displaced``
    A displaced ground-state wavepacket: the coherent vibration an impulsive
    (Raman) kick leaves in the bound molecules (:class:`Displaced`).
``dissociation``
    The molecule breaking along one bond with a chosen energy above the
    dissociation limit, so the fragments separate at known speeds
    (:class:`Dissociation`).

Both new families act along one *bond*: the two fragments the bond joins
(for a diatomic, its two atoms) move rigidly along the bond axis, against
each other, the centre of mass at rest. A unit change of the bond length moves
fragment 1 (mass :math:`M_1`) by :math:`-M_2/M` and fragment 2 by
:math:`+M_1/M` along the axis (:math:`M = M_1 + M_2`); its reduced mass is
:math:`\mu = M_1 M_2/M` and its kinetic energy :math:`\tfrac12\mu\dot r^2`.

:class:`Mixture` runs several families in one dataset, in blocks of
trajectory indices (relative sizes, like ``--splits``).

What each trajectory drew is returned as a JSON-able dict (the runner keeps
it as ``record["initial"]``); its ``ground_start`` says whether the first
frame's positions are a sample of the ground state (Wigner; dissociation,
which changes only the momenta), so that a laser-off reference can be taken
from those trajectories alone: a displaced start is not the ground state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, overload

import numpy as np

from .._errors import InputError
from .._ranges import parse_range
from .._typing import Symbols
from ..molecules import bond_graph, fragments
from .excess import add_kinetic_energy
from .wigner import _EV_IN_U_A2_PER_FS2, NormalModes, kinetic_energy, wigner_sample

__all__ = [
    "Wigner",
    "Displaced",
    "Dissociation",
    "Mixture",
    "INITIAL_CONDITIONS",
    "get_initial",
    "BondStretch",
    "bond_stretch",
]

#: How far apart the fragments are put to find the dissociation limit, Angstrom.
LIMIT_SEPARATION = 50.0


class Family(Protocol):
    """What an initial-condition family does (:class:`Wigner`, :class:`Displaced`, :class:`Dissociation`).

    ``check`` refuses a molecule it cannot start; ``sample`` draws one start,
    positions (N, 3) Angstrom and velocities (N, 3) Angstrom/fs, and a record
    of what was drawn; ``to_dict`` is its record in the dataset's provenance.
    """

    name: ClassVar[str]
    description: ClassVar[str]

    def check(self, symbols: Symbols, positions: np.ndarray) -> None: ...
    def sample(
        self, modes: NormalModes, rng: np.random.Generator, potential: Callable | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict]: ...
    def to_dict(self) -> dict: ...


@dataclass(frozen=True)
class BondStretch:
    """The rigid stretch of one bond at the minimum.

    Attributes
    ----------
    bond : tuple of int
        The two atoms (i, j).
    displacement : ndarray, shape (N, 3)
        Cartesian displacement of every atom per Angstrom of bond length.
    direction : ndarray, shape (N, 3)
        The same as a unit vector in mass-weighted coordinates.
    mu : float
        Reduced mass of the two fragments, u.
    omega : float
        Harmonic angular frequency of the stretch, 1/fs:
        :math:`\\omega^2 = \\sum_k \\omega_k^2 c_k^2/\\sum_k c_k^2` over the sampled
        normal modes with overlaps :math:`c_k`; exactly the vibration of a diatomic.
    r0 : float
        Bond length at the minimum, Angstrom.
    """

    bond: tuple[int, int]
    displacement: np.ndarray
    direction: np.ndarray
    mu: float
    omega: float
    r0: float


def _sides(symbols: Symbols, positions: np.ndarray, bond: tuple[int, int] | None) -> tuple[int, int, np.ndarray, np.ndarray]:
    """The bond's atoms and the atoms on either side of it (validated)."""
    n = len(symbols)
    if bond is None:
        if n != 2:
            raise InputError(f"say which bond to act on (--bond I,J, atom indices from 0) for a molecule of {n} atoms")
        bond = (0, 1)
    i, j = (int(b) for b in bond)
    if not (0 <= i < n and 0 <= j < n) or i == j:
        raise InputError(f"the bond must be two different atom indices from 0 to {n - 1}; got {tuple(bond)}")
    pos = np.asarray(positions, float)
    adj = bond_graph(symbols, pos)
    if not adj[i, j]:
        raise InputError(f"atoms {i} and {j} are not bonded ({np.linalg.norm(pos[j] - pos[i]):.3f} Angstrom apart)")
    cut = adj.copy()
    cut[i, j] = cut[j, i] = False
    parts = fragments(cut)
    if len(parts) != len(fragments(adj)) + 1:
        raise InputError(f"the bond {i}-{j} is in a ring: breaking it does not make two fragments")
    f1 = np.array(sorted(next(p for p in parts if i in p)))
    f2 = np.array(sorted(next(p for p in parts if j in p)))
    return i, j, f1, f2


def bond_stretch(modes: NormalModes, bond: tuple[int, int] | None = None) -> BondStretch:
    """The rigid-fragment stretch of ``bond`` (None: the bond of a diatomic) about the minimum of ``modes``."""
    pos, masses = modes.positions, modes.masses
    i, j, f1, f2 = _sides(modes.symbols, pos, bond)
    m1, m2 = masses[f1].sum(), masses[f2].sum()
    axis = pos[j] - pos[i]
    r0 = float(np.linalg.norm(axis))
    axis = axis / r0
    disp = np.zeros_like(pos)
    disp[f1] = -m2 / (m1 + m2) * axis
    disp[f2] = m1 / (m1 + m2) * axis
    mu = float(m1 * m2 / (m1 + m2))
    direction = disp * np.sqrt(masses)[:, None] / math.sqrt(mu)
    c = modes.vectors.reshape(len(modes.omega), -1) @ direction.reshape(-1)
    if not np.sum(c * c) > 1e-12:
        raise InputError(f"the stretch of bond {i}-{j} has no component in the sampled vibrations")
    omega = float(np.sqrt(np.sum(modes.omega**2 * c * c) / np.sum(c * c)))
    return BondStretch((i, j), disp, direction, mu, omega, r0)


def _range(value: Any, name: str, unit: str, *, low: float | None = None) -> tuple[float, float]:
    """A (lo, hi) range from a number, a pair or ``"LO:HI"``, validated (:func:`molmovie._ranges.parse_range`)."""
    lo, hi = parse_range(value, f"the {name!r} range", unit, single=True, low=low, example="0.02:0.3")
    return lo, hi


def _start(modes: NormalModes, rng: np.random.Generator, wigner: bool) -> tuple[np.ndarray, np.ndarray]:
    if wigner:
        return wigner_sample(modes, rng)
    return modes.positions.copy(), np.zeros_like(modes.positions)


@dataclass(frozen=True)
class Wigner:
    """The 0 K Wigner distribution of the ground state (the models' own start)."""

    name: ClassVar[str] = "wigner"
    description: ClassVar[str] = "the 0 K Wigner sample of the ground state (the models' own start, the default)"

    def check(self, symbols: Symbols, positions: np.ndarray) -> None:
        """Any molecule."""

    def sample(
        self, modes: NormalModes, rng: np.random.Generator, potential: Callable | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict]:
        x, v = wigner_sample(modes, rng)
        return x, v, {"initial": self.name, "ground_start": True}

    def to_dict(self) -> dict:
        return {"name": self.name}


@dataclass(frozen=True)
class Displaced:
    r"""A displaced ground-state wavepacket: a coherent vibration of one bond.

    An impulsive (Raman) excitation leaves the ground-state wavepacket
    displaced in position and momentum; its Wigner function is the ground
    state's, shifted (a coherent state; W. P. Schleich, *Quantum Optics in
    Phase Space*, 2001, ch. 4). For a harmonic bond the centre then follows
    :math:`r(t) - r_0 = A\cos(\omega t + \varphi)`, so at t = 0

    .. math::

        \delta r = A\cos\varphi,\qquad p = \mu\,\dot r = -A\mu\omega\sin\varphi,

    with the amplitude :math:`A` and the phase :math:`\varphi` drawn uniformly
    from their ranges, :math:`\omega` and :math:`\mu` those of the bond
    (:class:`BondStretch`). :math:`\varphi = 0` starts at the outer turning
    point; 90° at the minimum, compressing. With ``wigner`` the zero-point
    spread of a 0 K Wigner sample is added (the coherent state); without it
    the trajectory starts exactly at the displaced point.

    Parameters
    ----------
    amplitude : float or (float, float)
        Range of :math:`A`, Angstrom, >= 0 and below half the bond length.
    phase : float or (float, float)
        Range of :math:`\varphi`, degrees (at most 360 wide).
    bond : (int, int), optional
        Atom indices from 0; None for a diatomic.
    wigner : bool
    """

    amplitude: tuple[float, float] = (0.0, 0.0)
    phase: tuple[float, float] = (0.0, 360.0)
    bond: tuple[int, int] | None = None
    wigner: bool = True
    name: ClassVar[str] = "displaced"
    description: ClassVar[str] = (
        "a coherent vibration of a bond: bond = A cos(phase), momentum = -A mu omega sin(phase), plus the Wigner width"
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "amplitude", _range(self.amplitude, "amplitude", "Angstrom", low=0.0))
        object.__setattr__(self, "phase", _range(self.phase, "phase", "degrees"))
        if self.phase[1] - self.phase[0] > 360.0:
            raise InputError(f"the 'phase' range must be at most 360 degrees wide; got {self.phase[0]:g}:{self.phase[1]:g}")
        if self.bond is not None:
            object.__setattr__(self, "bond", tuple(int(b) for b in self.bond))

    def check(self, symbols: Symbols, positions: np.ndarray) -> None:
        """Raise :class:`InputError` if the bond does not exist or the amplitude would fold it.

        ``positions`` (N, 3), Angstrom: the molecule's reference geometry.
        """
        i, j, _, _ = _sides(symbols, positions, self.bond)
        half = float(np.linalg.norm(np.asarray(positions)[j] - np.asarray(positions)[i])) / 2
        if self.amplitude[1] >= half:
            raise InputError(
                f"the 'amplitude' must stay below half the bond length ({half:.3f} Angstrom); got up to {self.amplitude[1]:g}"
            )

    def sample(
        self, modes: NormalModes, rng: np.random.Generator, potential: Callable | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict]:
        """Positions (N, 3) Angstrom, velocities (N, 3) Angstrom/fs, and what was drawn."""
        stretch = bond_stretch(modes, self.bond)
        x, v = _start(modes, rng, self.wigner)
        amp = float(rng.uniform(*self.amplitude))
        phase = float(rng.uniform(*self.phase))
        phi = math.radians(phase)
        x = x + amp * math.cos(phi) * stretch.displacement
        v = v - amp * stretch.omega * math.sin(phi) * stretch.displacement
        return (
            x,
            v,
            {
                "initial": self.name,
                "amplitude_A": amp,
                "phase_deg": phase,
                "bond": list(stretch.bond),
                "omega_per_fs": stretch.omega,
                "ground_start": self.wigner and amp * math.cos(phi) == 0.0,
            },
        )

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "amplitude_A": list(self.amplitude),
            "phase_deg": list(self.phase),
            "bond": None if self.bond is None else list(self.bond),
            "wigner": self.wigner,
        }


@dataclass(frozen=True)
class Dissociation:
    r"""Dissociation along one bond with an energy :math:`E` above the dissociation limit.

    From a 0 K Wigner sample (or the minimum, without ``wigner``), kinetic
    energy is added along the bond stretch (outwards; exactly, with
    :func:`~molmovie.dynamics.excess.add_kinetic_energy`) so that the total
    energy on the first surface is :math:`E_\infty + E`, with :math:`E` drawn
    uniformly from ``excess`` and :math:`E_\infty` the dissociation limit: the
    energy of the minimum with the two fragments moved rigidly
    :data:`LIMIT_SEPARATION` apart along the bond, or ``limit`` above the
    minimum's energy if given. Far apart, the fragments' relative motion then
    carries :math:`E` less what stays in the fragments' own vibration and
    rotation; for a diatomic all of it, so the atoms separate at

    .. math::

        v_\infty = \sqrt{2E/\mu}

    (each atom of a homonuclear diatomic at :math:`v_\infty/2` in the centre-of-mass frame).

    That is dissociation *on the same potential*: the atoms leave the well
    fast and slow down climbing out of it, so they run ahead of a free flight
    from the start (by 5-70 fs for I2 at E = 3.4-0.35 eV). With ``repulsive``
    (a diatomic only) the trajectory instead runs on a repulsive wall, as
    after a vertical excitation to a dissociative state: nothing is added to
    the Wigner sample, and the potential is

    .. math::

        V(r) = E_\infty + W e^{-\beta (r - r_0)},\qquad W = (E - K)\,e^{\beta (r(0) - r_0)},

    with :math:`K` the sample's kinetic energy and :math:`r_0` the bond
    length at the minimum, so the total energy is again :math:`E_\infty + E`
    and the atoms start at rest (up to the zero-point motion), accelerate,
    and lag behind a free flight (the reflection-principle picture of
    photodissociation; R. Schinke, *Photodissociation Dynamics*, 1993, ch. 6).

    Parameters
    ----------
    excess : float or (float, float)
        Range of :math:`E`, eV, >= 0 (> 0 with ``repulsive``).
    bond : (int, int), optional
        Atom indices from 0; None for a diatomic.
    limit : float, optional
        :math:`E_\infty` above the energy of the minimum, eV; None computes it.
    wigner : bool
    repulsive : float, optional
        Steepness :math:`\beta` of the repulsive wall, 1/Angstrom; None
        dissociates on the model's own surface.
    """

    excess: tuple[float, float] = (0.0, 0.0)
    bond: tuple[int, int] | None = None
    limit: float | None = None
    wigner: bool = True
    repulsive: float | None = None
    name: ClassVar[str] = "dissociation"
    description: ClassVar[str] = (
        "kinetic energy along a bond, E above the dissociation limit: a diatomic's atoms separate at sqrt(2E/mu)"
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "excess", _range(self.excess, "excess", "eV", low=0.0))
        if self.bond is not None:
            object.__setattr__(self, "bond", tuple(int(b) for b in self.bond))
        if self.limit is not None and not (math.isfinite(self.limit) and self.limit > 0):
            raise InputError(f"the dissociation 'limit' must be > 0 eV above the minimum; got {self.limit!r}")
        if self.repulsive is not None:
            if not (math.isfinite(self.repulsive) and self.repulsive > 0):
                raise InputError(f"the steepness of the 'repulsive' wall must be > 0 1/Angstrom; got {self.repulsive!r}")
            if not self.excess[0] > 0:
                raise InputError(
                    f"dissociation on a repulsive wall needs an 'excess' range > 0 eV; got {self.excess[0]:g}:{self.excess[1]:g}"
                )

    def check(self, symbols: Symbols, positions: np.ndarray) -> None:
        """Raise :class:`InputError` if the bond does not exist or does not split the molecule."""
        if self.repulsive is not None and len(symbols) != 2:
            raise InputError(f"dissociation on a repulsive wall is for a diatomic molecule; this one has {len(symbols)} atoms")
        _sides(symbols, positions, self.bond)

    def asymptote(self, modes: NormalModes, potential: Callable) -> float:
        """:math:`E_\\infty`, eV (absolute, on the energy scale of ``potential``)."""
        if self.limit is not None:
            return modes.energy + float(self.limit)
        stretch = bond_stretch(modes, self.bond)
        return float(potential(modes.positions + LIMIT_SEPARATION * stretch.displacement)[0])

    def sample(
        self, modes: NormalModes, rng: np.random.Generator, potential: Callable | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict]:
        """Positions (N, 3) Angstrom, velocities (N, 3) Angstrom/fs, and what was drawn.

        ``potential(positions) -> (energy eV, forces)`` is the first surface of the dynamics.
        """
        if potential is None:
            raise ValueError("the dissociation family needs the potential of the first surface")
        stretch = bond_stretch(modes, self.bond)
        x, v = _start(modes, rng, self.wigner)
        excess = float(rng.uniform(*self.excess))
        limit = self.asymptote(modes, potential)
        if self.repulsive is not None:
            kinetic = float(kinetic_energy(modes.masses, v))
            if excess <= kinetic:
                raise InputError(f"the excess energy {excess:.4f} eV is below the sample's kinetic energy {kinetic:.4f} eV")
            r = float(np.linalg.norm(x[1] - x[0]))
            wall = (excess - kinetic) * math.exp(self.repulsive * (r - stretch.r0))
            return (
                x,
                v,
                {
                    "initial": self.name,
                    "excess_eV": excess,
                    "limit_eV": limit - modes.energy,
                    "bond": list(stretch.bond),
                    "speed_A_per_fs": math.sqrt(2 * excess * _ev() / stretch.mu),
                    "ground_start": self.wigner,
                    "repulsive": {"limit_abs_eV": limit, "wall_eV": wall, "steepness_per_A": self.repulsive, "r0_A": stretch.r0},
                },
            )
        now = float(potential(x)[0]) + float(kinetic_energy(modes.masses, v))
        added = limit + excess - now
        if added < 0:
            raise InputError(
                f"a start {now - limit:.3f} eV above the dissociation limit already exceeds the excess energy "
                f"{excess:.3f} eV; raise the 'excess' range"
            )
        v = add_kinetic_energy(modes.masses, v, stretch.direction, added)
        return (
            x,
            v,
            {
                "initial": self.name,
                "excess_eV": excess,
                "limit_eV": limit - modes.energy,
                "bond": list(stretch.bond),
                "speed_A_per_fs": math.sqrt(2 * excess * _ev() / stretch.mu),
                "ground_start": self.wigner,
            },
        )

    def engine(self, drawn: dict) -> RepulsiveEngine | None:
        """The repulsive wall a trajectory drew (``drawn["repulsive"]``), or None to keep the model's surface."""
        wall = drawn.get("repulsive")
        return (
            None
            if wall is None
            else RepulsiveEngine(wall["limit_abs_eV"], wall["wall_eV"], wall["steepness_per_A"], wall["r0_A"])
        )

    def to_dict(self) -> dict:
        out = {
            "name": self.name,
            "excess_eV": list(self.excess),
            "bond": None if self.bond is None else list(self.bond),
            "limit_eV": self.limit,
            "wigner": self.wigner,
        }
        if self.repulsive is not None:
            out["repulsive_per_A"] = self.repulsive
        return out


class RepulsiveEngine:
    r""":math:`V(r) = E_\infty + W e^{-\beta(r - r_0)}` between atoms 0 and 1: energy (eV) and forces (eV/Angstrom)."""

    def __init__(self, limit: float, wall: float, steepness: float, r0: float) -> None:
        self.limit, self.wall, self.beta, self.r0 = float(limit), float(wall), float(steepness), float(r0)

    def compute(self, positions: np.ndarray) -> tuple[float, np.ndarray]:
        x = np.asarray(positions, float)
        d = x[1] - x[0]
        r = math.sqrt(float(d @ d))
        w = self.wall * math.exp(max(-self.beta * (r - self.r0), -700.0))
        f1 = self.beta * w * d / r  # -dV/dr along the bond, on atom 1
        return self.limit + w, np.array([-f1, f1])


def _ev() -> float:

    return _EV_IN_U_A2_PER_FS2


#: name -> family class; ``get_initial(name, **settings)`` makes one.
INITIAL_CONDITIONS: dict[str, type[Wigner | Displaced | Dissociation]] = {
    cls.name: cls for cls in (Wigner, Displaced, Dissociation)
}


@overload
def get_initial(name: str | Family, **settings: Any) -> Family: ...
@overload
def get_initial(name: Mixture, **settings: Any) -> Mixture: ...
def get_initial(name: str | Family | Mixture, **settings: Any) -> Family | Mixture:
    """An initial-condition family by name, made with ``settings``; a family object is returned as it is."""
    if not isinstance(name, str):
        return name
    key = name.lower()
    if key not in INITIAL_CONDITIONS:
        raise InputError(f"unknown initial-condition family {name!r}; choose from {', '.join(INITIAL_CONDITIONS)}")
    try:
        return INITIAL_CONDITIONS[key](**settings)
    except TypeError as exc:
        raise InputError(f"initial-condition family {name!r} cannot be made with these settings ({exc})") from None


@dataclass(frozen=True)
class Mixture:
    """Several families in one run: consecutive blocks of trajectory indices.

    Parameters
    ----------
    parts : sequence of (family, weight)
        Weights are relative sizes (> 0). Of ``n`` trajectories, family k gets
        ``floor(n w_k / sum w)`` plus one for the largest remainders (ties to
        the earlier family), in the order given: the first block is indices
        0..n_1-1, and so on.
    """

    parts: tuple

    def __post_init__(self) -> None:
        parts = tuple((get_initial(f), float(w)) for f, w in self.parts)
        if not parts:
            raise InputError("a mixture of initial conditions needs at least one family")
        for fam, w in parts:
            if not (math.isfinite(w) and w > 0):
                raise InputError(f"the weight of {fam.name!r} in a mixture must be > 0; got {w:g}")
        object.__setattr__(self, "parts", parts)

    def counts(self, n: int) -> list[int]:
        """Trajectories per family for ``n`` in all."""
        w = np.array([p[1] for p in self.parts])
        exact = n * w / w.sum()
        counts = np.floor(exact).astype(int)
        order = sorted(range(len(w)), key=lambda k: (-(exact[k] - counts[k]), k))
        for k in order[: n - counts.sum()]:
            counts[k] += 1
        return counts.tolist()

    def assign(self, n: int) -> list[Family]:
        """The family of each of ``n`` trajectories, in index order."""
        out: list[Family] = []
        for (fam, _), c in zip(self.parts, self.counts(n), strict=True):
            out += [fam] * c
        return out

    def check(self, symbols: Symbols, positions: np.ndarray) -> None:
        for fam, _ in self.parts:
            fam.check(symbols, positions)

    def to_dict(self) -> dict:
        return {"name": "mixture", "parts": [dict(fam.to_dict(), weight=w) for fam, w in self.parts]}
