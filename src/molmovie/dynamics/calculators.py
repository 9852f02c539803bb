r"""Where the generator's energies and forces come from: calculators looked up by name.

A *calculator* gives the energy and forces of a molecule on the surfaces a
:class:`~molmovie.dynamics.Model` names. It is an engine factory,
``calculator(symbols, surface, settings) -> engine`` with
``engine.compute(positions) -> (energy eV, forces eV/Angstrom)``, plus a
JSON record of itself (``to_dict``) and a check that it fits a molecule and a
model (``check``). Built in (:data:`CALCULATORS`, ``--calculator NAME``):

``xtb``
    GFN2-xTB through tblite (the default): every surface a model names
    (charge, multiplicity, spin polarisation).
``morse``
    A diatomic Morse potential from spectroscopic constants (:class:`Morse`):
    ``get_calculator("morse", omega_e=214.5, r_e=2.666, D0=1.54)``.
``morse-i2-x``
    The Morse potential of I2's ground state X :math:`^1\Sigma_g^+`.

Any ASE calculator works too: :class:`ASECalculator` wraps a function that
makes one for a molecule, and :func:`register_calculator` adds it by name.
A calculator other than xTB has one surface: models that switch surfaces are
refused with it, and the surface labels of other models are only labels.

Why molmovie's own Morse and not ``ase.calculators.morse.MorsePotential``:
ASE's has the same functional form (with ``epsilon`` = :math:`D_e`,
``r0`` = :math:`r_e`, ``rho0`` = :math:`a r_e`; the tests check the two agree),
but it multiplies the curve by a smooth cutoff between ``rcut1·r0`` and
``rcut2·r0`` (1.9 and 2.7 by default: an I2 bond stretched past 5.1 Å would
feel no force long before it reaches the dissociation limit, and the limit
itself moves), it applies one set of parameters to every pair of atoms, and
each call through ``Atoms`` and a neighbour list costs 0.5-1 ms, against about
10 µs for the two-atom formula: the difference between seconds and ten
minutes per core for a picosecond basis of a few hundred trajectories.
:meth:`Morse.ase_calculator` gives the equivalent ASE calculator (cutoff
pushed out of reach) for use elsewhere in ASE.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .._typing import Symbols
from ..molecules import atomic_masses, normalise_symbols
from ._xtb import Engine, Surface, XTBEngine, xtb_engine
from .wigner import _C_CM_PER_FS, _EV_IN_U_A2_PER_FS2, HBAR_EV_FS

__all__ = [
    "Morse",
    "XTB",
    "ASECalculator",
    "ASEEngine",
    "MorseEngine",
    "CALCULATORS",
    "get_calculator",
    "register_calculator",
    "morse_dissociation_energy",
]

#: Most negative exponent evaluated, so a far-apart pair gives exactly 0 instead of an underflow.
_MIN_EXPONENT = -700.0


if TYPE_CHECKING:
    from ase.calculators.calculator import Calculator as AseCalculator
    from ase.calculators.morse import MorsePotential

    from .models import Model


class Calculator(Protocol):
    """What the generator asks of a calculator: :class:`XTB`, :class:`Morse`, :class:`ASECalculator`, or one's own.

    Called with a molecule's symbols, a :class:`Surface` and settings, it gives
    the engine of energies and forces; ``check`` refuses a molecule or model it
    cannot serve; ``to_dict`` is its record in the dataset's provenance.
    """

    @property
    def name(self) -> str: ...
    @property
    def multi_surface(self) -> bool: ...
    def __call__(self, symbols: Symbols, surface: Surface, settings: dict) -> Engine: ...
    def check(self, symbols: Symbols, model: Model | None) -> None: ...
    def to_dict(self) -> dict: ...


# --------------------------------------------------------------------------- xTB


@dataclass(frozen=True)
class XTB:
    """GFN2-xTB (tblite) on every surface a model names: the generator's default."""

    name: str = "xtb"
    description: str = "GFN2-xTB through tblite, on every surface a model names (the default)"
    multi_surface: bool = field(default=True, init=False)

    def __call__(self, symbols: Symbols, surface: Surface, settings: dict) -> XTBEngine:
        return xtb_engine(symbols, surface, settings)

    def check(self, symbols: Symbols, model: Model | None) -> None:
        """Any molecule and model (the model checks its own surfaces)."""

    def to_dict(self) -> dict:
        return {"name": self.name}


# --------------------------------------------------------------------------- Morse


def morse_dissociation_energy(omega_e: float, D0: float) -> float:
    r"""The well depth :math:`D_e` of a Morse potential with harmonic wavenumber ``omega_e`` and bond energy ``D0``.

    The levels of a Morse oscillator are exactly
    :math:`E_v = \hbar\omega_e (v + \tfrac12) - \hbar\omega_e x_e (v + \tfrac12)^2`
    with :math:`\omega_e x_e = \omega_e^2 / 4D_e` (P. M. Morse, Phys. Rev. 34, 57
    (1929)), so :math:`D_e = D_0 + E_0 = D_0 + \hbar\omega_e/2 - (\hbar\omega_e)^2/16 D_e`,
    solved exactly (the larger root of the quadratic):

    .. math::

        D_e = \tfrac12\left[s + \sqrt{s^2 - (\hbar\omega_e)^2/4}\right],\qquad s = D_0 + \hbar\omega_e/2.

    The zero-point correction uses the Morse's own anharmonicity, not a
    measured :math:`\omega_e x_e` (a Morse has three parameters; given
    :math:`\omega_e`, :math:`r_e` and :math:`D_0` its :math:`\omega_e x_e` follows).

    Parameters
    ----------
    omega_e : float
        Harmonic wavenumber, cm^-1.
    D0 : float
        Dissociation energy from the lowest level, eV.

    Returns
    -------
    float
        :math:`D_e`, eV, measured from the minimum.
    """
    hw = HBAR_EV_FS * 2 * math.pi * _C_CM_PER_FS * float(omega_e)  # eV
    s = float(D0) + hw / 2
    return 0.5 * (s + math.sqrt(s * s - hw * hw / 4))


@dataclass(frozen=True)
class Morse:
    r"""A diatomic Morse potential from spectroscopic constants.

    .. math::

        V(r) = D_e\left[e^{-2a(r - r_e)} - 2 e^{-a(r - r_e)}\right],\qquad
        a = \omega\sqrt{\frac{\mu}{2 D_e}},\quad \omega = 2\pi c\,\tilde\omega_e,

    so that :math:`V(r_e) = -D_e`, :math:`V(\infty) = 0` (the energy zero is the
    dissociation limit) and the curvature at the minimum,
    :math:`V''(r_e) = 2 a^2 D_e = \mu\omega^2`, gives the harmonic wavenumber
    :math:`\tilde\omega_e` (P. M. Morse, Phys. Rev. 34, 57 (1929); G. Herzberg,
    *Spectra of Diatomic Molecules*, 1950). Units: :math:`\tilde\omega_e` in
    cm^-1 and :math:`c` = 2.99792458e-5 cm/fs give :math:`\omega` in 1/fs;
    :math:`\mu = m_1 m_2/(m_1 + m_2)` in u and :math:`D_e` in eV turned into
    u Angstrom^2/fs^2 (1 eV = 0.0096485 u Angstrom^2 fs^-2) give :math:`a` in
    1/Angstrom. For I2 (:math:`\tilde\omega_e` = 214.5 cm^-1, :math:`\mu` =
    63.45 u, :math:`D_e` = 1.553 eV): :math:`a` = 1.859 1/Angstrom, force
    constant 10.74 eV/Angstrom^2, period :math:`1/c\tilde\omega_e` = 155.5 fs.

    Give the well depth ``D_e`` or the bond energy ``D0`` (from the lowest
    level; :func:`morse_dissociation_energy` adds the Morse's zero-point
    energy). The Morse's anharmonicity is then fixed,
    :math:`\omega_e x_e = \tilde\omega_e^2/4D_e`: for I2, 0.918 cm^-1 against
    0.614 cm^-1 measured, so large-amplitude vibrations slow down faster
    with energy than the real molecule's.

    Parameters
    ----------
    omega_e : float
        Harmonic wavenumber, cm^-1, > 0.
    r_e : float
        Equilibrium bond length, Angstrom, > 0.
    D_e, D0 : float
        Well depth or bond energy, eV; exactly one of them.
    name : str
        The name it is recorded under.
    """

    omega_e: float
    r_e: float
    D_e: float | None = None
    D0: float | None = None
    name: str = "morse"
    description: str = "a diatomic Morse potential from spectroscopic constants (omega_e, r_e, D_e or D0)"
    multi_surface: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        for key in ("omega_e", "r_e"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise InputError(f"the Morse parameter {key!r} must be a number > 0; got {value!r}")
        if (self.D_e is None) == (self.D0 is None):
            raise InputError("a Morse potential needs exactly one of D_e (well depth) and D0 (bond energy), in eV")
        given = self.D_e if self.D_e is not None else self.D0
        if isinstance(given, bool) or not isinstance(given, (int, float)) or not math.isfinite(given) or given <= 0:
            raise InputError(
                f"the Morse parameter {'D_e' if self.D_e is not None else 'D0'!r} must be a number > 0 eV; got {given!r}"
            )
        if self.well_depth <= self.hbar_omega / 2:
            raise InputError(
                f"a Morse well of D_e = {self.well_depth:g} eV holds no vibrational level of "
                f"{self.omega_e:g} cm^-1 (hbar omega_e / 2 = {self.hbar_omega / 2:g} eV)"
            )

    @property
    def hbar_omega(self) -> float:
        """:math:`\\hbar\\omega_e`, eV."""
        return HBAR_EV_FS * self.omega

    @property
    def omega(self) -> float:
        """Harmonic angular frequency :math:`2\\pi c\\tilde\\omega_e`, 1/fs."""
        return 2 * math.pi * _C_CM_PER_FS * self.omega_e

    @property
    def well_depth(self) -> float:
        """:math:`D_e`, eV (given, or from ``D0`` by :func:`morse_dissociation_energy`)."""
        if self.D_e is not None:
            return float(self.D_e)
        assert self.D0 is not None  # __post_init__ asks for one of them
        return morse_dissociation_energy(self.omega_e, self.D0)

    @property
    def period(self) -> float:
        """Harmonic period :math:`1/c\\tilde\\omega_e`, fs."""
        return 1.0 / (_C_CM_PER_FS * self.omega_e)

    def reduced_mass(self, symbols: Symbols) -> float:
        """:math:`\\mu` of the two atoms, u."""
        m = atomic_masses(self._diatomic(symbols))
        return float(m[0] * m[1] / (m[0] + m[1]))

    def exponent(self, symbols: Symbols) -> float:
        """:math:`a = \\omega\\sqrt{\\mu/2D_e}`, 1/Angstrom, for this pair of atoms."""
        mu = self.reduced_mass(symbols)
        return self.omega * math.sqrt(mu / (2 * self.well_depth * _EV_IN_U_A2_PER_FS2))

    @staticmethod
    def _diatomic(symbols: Symbols) -> tuple[str, ...]:
        symbols = normalise_symbols(symbols)
        if len(symbols) != 2:
            raise InputError(
                f"the Morse calculator describes a diatomic molecule; this one has {len(symbols)} atoms "
                f"(use --calculator xtb for it)"
            )
        return symbols

    def __call__(self, symbols: Symbols, surface: Surface | None = None, settings: dict | None = None) -> MorseEngine:
        return MorseEngine(self.well_depth, self.exponent(symbols), self.r_e)

    def check(self, symbols: Symbols, model: Model | None = None) -> None:
        """Raise :class:`InputError` unless the molecule is a diatomic and the model stays on one surface."""
        self._diatomic(symbols)
        _check_single_surface(self, model)

    def ase_calculator(self, symbols: Symbols) -> MorsePotential:
        """The same potential as ``ase.calculators.morse.MorsePotential`` (cutoff pushed beyond 10^4 r_e)."""
        from ase.calculators.morse import MorsePotential

        a = self.exponent(symbols)
        return MorsePotential(epsilon=self.well_depth, rho0=a * self.r_e, r0=self.r_e, rcut1=1e4, rcut2=1.1e4)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "form": "morse",
            "omega_e_cm-1": self.omega_e,
            "r_e_A": self.r_e,
            "D_e_eV": self.well_depth,
            "D0_eV": self.D0,
            "D_e_given": self.D_e is not None,
            "zero": "dissociation limit",
        }


class MorseEngine:
    """Energy and forces of a Morse bond between atoms 0 and 1 (see :class:`Morse`).

    Parameters
    ----------
    D_e : float
        Well depth, eV.
    a : float
        Exponent, 1/Angstrom.
    r_e : float
        Minimum, Angstrom.
    """

    def __init__(self, D_e: float, a: float, r_e: float) -> None:
        self.D_e, self.a, self.r_e = float(D_e), float(a), float(r_e)

    def energy_at(self, r: ArrayLike) -> np.ndarray:
        """:math:`V(r)`, eV, for bond lengths in Angstrom (any shape)."""
        y = np.exp(np.maximum(-self.a * (np.asarray(r, float) - self.r_e), _MIN_EXPONENT))
        return self.D_e * (y * y - 2 * y)

    def compute(self, positions: np.ndarray) -> tuple[float, np.ndarray]:
        """Energy (eV) and forces (eV/Angstrom, shape (2, 3)) at ``positions`` (2, 3), Angstrom."""
        x = np.asarray(positions, float)
        d = x[1] - x[0]
        r = math.sqrt(float(d @ d))
        y = math.exp(max(-self.a * (r - self.r_e), _MIN_EXPONENT))
        energy = self.D_e * (y * y - 2 * y)
        dv_dr = 2 * self.a * self.D_e * (y - y * y)
        f1 = -dv_dr * d / r
        return energy, np.array([-f1, f1])


# --------------------------------------------------------------------------- any ASE calculator


class ASEEngine:
    """Energy and forces from an ASE calculator (``atoms.calc``), for one molecule.

    Parameters
    ----------
    symbols : sequence of str
    calculator : ase.calculators.calculator.Calculator
    """

    def __init__(self, symbols: Symbols, calculator: AseCalculator) -> None:
        from ase import Atoms

        self.atoms = Atoms(list(normalise_symbols(symbols)), positions=np.zeros((len(symbols), 3)))
        self.atoms.calc = calculator

    def compute(self, positions: np.ndarray) -> tuple[float, np.ndarray]:
        """Energy (eV) and forces (eV/Angstrom, (N, 3)); a calculator error propagates as it is."""
        self.atoms.set_positions(np.asarray(positions, float))
        return float(self.atoms.get_potential_energy()), np.array(self.atoms.get_forces())


@dataclass(frozen=True)
class ASECalculator:
    """Any ASE calculator as a molmovie calculator (one surface).

    Parameters
    ----------
    make : callable
        ``make(symbols) -> ase Calculator``, a fresh calculator for a molecule.
        Picklable (a module-level function or class) when trajectories run on
        Dask workers.
    name : str
    description : str
    settings : dict
        Recorded in the dataset's provenance (JSON-able), e.g. the
        calculator's parameters.
    """

    make: Callable
    name: str
    description: str = "an ASE calculator"
    settings: dict = field(default_factory=dict)
    multi_surface: bool = field(default=False, init=False)

    def __call__(self, symbols: Symbols, surface: Surface | None = None, settings: dict | None = None) -> ASEEngine:
        return ASEEngine(symbols, self.make(tuple(symbols)))

    def check(self, symbols: Symbols, model: Model | None = None) -> None:
        _check_single_surface(self, model)

    def to_dict(self) -> dict:
        return {"name": self.name, "form": "ase", "settings": dict(self.settings)}


def _check_single_surface(calc: Morse | ASECalculator, model: Model | None) -> None:
    if model is not None and model.excited is not None:
        raise InputError(
            f"calculator {calc.name!r} has one potential energy surface; model {model.name!r} switches from "
            f"{model.excited.label} to {model.surface.label} (use --calculator xtb, or a one-surface model such as 'ground')"
        )


# --------------------------------------------------------------------------- registry

#: name -> (constructor taking keyword settings, one-line description). ``--calculator`` lists these.
CALCULATORS: dict[str, tuple[Callable[..., Calculator], str]] = {}


def register_calculator(name: str, make: Callable[..., Calculator], description: str) -> None:
    """Add a calculator by name: ``make(**settings)`` returns it (an :class:`XTB`, :class:`Morse` or :class:`ASECalculator`)."""
    CALCULATORS[str(name).lower()] = (make, description)


def _morse_i2_x(**changes: float) -> Morse:
    base: dict[str, Any] = dict(omega_e=214.5, r_e=2.666, D0=1.54)
    base.update(changes)
    if "D_e" in changes:
        base.pop("D0", None)
    return Morse(**base, name="morse-i2-x")


register_calculator("xtb", XTB, XTB.description)
register_calculator(
    "morse", Morse, "diatomic Morse potential from spectroscopic constants: --morse we=CM-1,re=A,D0=EV (or De=EV)"
)
register_calculator(
    "morse-i2-x",
    _morse_i2_x,
    "Morse potential of I2's ground state X: omega_e = 214.5 cm^-1, r_e = 2.666 A, D0 = 1.54 eV "
    "(Huber and Herzberg, Constants of Diatomic Molecules, 1979)",
)


def get_calculator(name: str | Calculator | None, **settings: Any) -> Calculator:
    """A calculator by name, made with ``settings``; a calculator object is returned as it is.

    >>> get_calculator("morse", omega_e=214.5, r_e=2.666, D0=1.54).period   # doctest: +ELLIPSIS
    155.5...
    """
    if name is None:
        return XTB()
    if not isinstance(name, str):
        if settings:
            raise InputError("settings are for a calculator given by name, not for a calculator object")
        return name
    key = name.lower()
    if key not in CALCULATORS:
        raise InputError(f"unknown calculator {name!r}; choose from {', '.join(CALCULATORS)}")
    try:
        return CALCULATORS[key][0](**settings)
    except TypeError as exc:
        raise InputError(f"calculator {name!r} cannot be made with these settings ({exc})") from None
