"""GFN2-xTB through tblite: potential energy surfaces, robust single points, optimisation.

One trajectory runs on one core: OpenMP threads inside tblite make its small
matrices 10-30 times *slower* (measured with two threads), so every entry
point calls :func:`single_thread` first. It sets ``OMP_NUM_THREADS=1`` for
processes started later and, because libgomp reads that variable only once,
also calls ``omp_set_num_threads(1)`` for the calling thread.

Single points go straight to ``tblite.interface.Calculator`` (the engine
under ``tblite.ase.TBLite``), keeping the converged wavefunction as the
guess for the next step; for molecules of a few atoms the bookkeeping of an
ASE calculator costs more than the xTB step itself.

SCF failures are handled by a fixed ladder (:data:`SCF_LADDER`) of settings
that do not change the potential energy surface: restart from the previous
wavefunction, then a fresh superposition-of-atomic-densities guess, then a
fresh guess with more iterations and a gentler mixer. A higher electronic
temperature would also rescue some geometries, but it changes the surface
(Fermi smearing) and made the total energy jump by ~0.3 eV, so it is not on
the ladder: a geometry that no rung converges ends the trajectory instead.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .._errors import InputError
from .._typing import Symbols
from ..molecules import atomic_numbers

__all__ = ["Surface", "SCFError", "single_thread", "XTBEngine", "RobustSurface", "optimise", "SCF_LADDER"]

#: Bohr radius in Angstrom and Hartree in eV (CODATA 2018, as ASE).
BOHR = 0.529177210903
HARTREE = 27.211386245988


def single_thread() -> None:
    """Run xTB on one OpenMP thread in this process and in the processes it starts."""
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        ctypes.CDLL("libgomp.so.1").omp_set_num_threads(1)
    except (OSError, AttributeError):  # no GNU OpenMP runtime here: the variable suffices
        pass


@dataclass(frozen=True)
class Surface:
    """A GFN2-xTB potential energy surface.

    Attributes
    ----------
    label : str
        Short name used in records ("S0", "T1", "D0+").
    charge : int
        Total charge, elementary charges.
    multiplicity : int
        Spin multiplicity 2S+1 (number of unpaired electrons + 1).
    spin_polarization : bool
        Add GFN2's spin-polarisation term (tblite's ``spin-polarization``
        with scale 1). Without it an open-shell GFN2 energy is the
        spin-averaged energy of the configuration; with it, high-spin states
        gain their exchange stabilisation (CS + S(3P) comes out 4.52 eV above
        CS2, against 4.46 eV measured, instead of 5.37 eV).
    """

    label: str
    charge: int = 0
    multiplicity: int = 1
    spin_polarization: bool = False


class SCFError(RuntimeError):
    """The SCF of a single point did not converge on any rung of :data:`SCF_LADDER`."""


#: Settings tried in turn when an SCF fails. None of them changes the converged
#: energy, only how the SCF gets there. ``fresh`` drops the previous
#: wavefunction (a new superposition-of-atomic-densities guess).
SCF_LADDER: tuple[dict, ...] = (
    {"fresh": False},
    {"fresh": True},
    {"fresh": True, "max_iterations": 1000, "mixer_damping": 0.1},
)

#: tblite settings used unless a rung of the ladder overrides them
#: (tblite's own defaults; temperature in K).
DEFAULT_SETTINGS = {"accuracy": 1.0, "max_iterations": 250, "mixer_damping": 0.4, "electronic_temperature": 300.0}


class Engine(Protocol):
    def compute(self, positions: np.ndarray) -> tuple[float, np.ndarray]: ...


#: ``factory(symbols, surface, settings) -> Engine``.
EngineFactory = Callable[[tuple, Surface, dict], Engine]


class XTBEngine:
    """GFN2-xTB energy and forces on one surface (tblite), restarting from the last wavefunction.

    Parameters
    ----------
    symbols : sequence of str
    surface : Surface
    settings : dict
        Keys of :data:`DEFAULT_SETTINGS`.
    """

    def __init__(self, symbols: Symbols, surface: Surface, settings: dict | None = None) -> None:
        self.numbers = atomic_numbers(symbols)
        self.surface = surface
        self.settings = dict(DEFAULT_SETTINGS)
        self.settings.update(settings or {})
        self._calc: Any = None  # tblite's Calculator, built on the first call
        self._res: Any = None

    def _build(self, bohr: np.ndarray) -> Any:
        from tblite.interface import Calculator

        s = self.settings
        calc = Calculator("GFN2-xTB", self.numbers, bohr, self.surface.charge, self.surface.multiplicity - 1)
        calc.set("verbosity", 0)
        calc.set("accuracy", float(s["accuracy"]))
        calc.set("temperature", float(s["electronic_temperature"]) * 8.617333262e-5 / HARTREE)
        calc.set("max-iter", int(s["max_iterations"]))
        calc.set("mixer-damping", float(s["mixer_damping"]))
        if self.surface.spin_polarization:
            calc.add("spin-polarization", 1.0)
        return calc

    def compute(self, positions: np.ndarray) -> tuple[float, np.ndarray]:
        """Energy (eV) and forces (eV/Angstrom, (N, 3)); a failed SCF raises RuntimeError."""
        bohr = np.ascontiguousarray(positions, dtype=float) / BOHR
        if self._calc is None:
            self._calc = self._build(bohr)
        else:
            self._calc.update(positions=bohr)
        self._res = self._calc.singlepoint(self._res)
        energy = float(self._res.get("energy")) * HARTREE
        forces = -np.array(self._res.get("gradient")) * (HARTREE / BOHR)
        return energy, forces


def xtb_engine(symbols: Symbols, surface: Surface, settings: dict) -> XTBEngine:
    """The default engine factory."""
    single_thread()
    return XTBEngine(symbols, surface, settings)


class RobustSurface:
    """Energies and forces on one surface, with the SCF retry ladder.

    Parameters
    ----------
    symbols : sequence of str
    surface : Surface
    electronic_temperature : float
        Fermi smearing temperature, K (GFN2-xTB's default is 300 K).
    factory : callable, optional
        ``factory(symbols, surface, settings) -> engine`` with
        ``engine.compute(positions) -> (energy, forces)``; tblite by default.
        Tests pass one that fails on purpose.

    Attributes
    ----------
    retries : int
        Rungs of the ladder beyond the first that were needed so far.
    """

    def __init__(
        self, symbols: Symbols, surface: Surface, electronic_temperature: float = 300.0, factory: EngineFactory | None = None
    ) -> None:
        self.symbols = tuple(symbols)
        self.surface = surface
        self.base = {"electronic_temperature": float(electronic_temperature)}
        self.factory = factory or xtb_engine
        self.engine = self.factory(self.symbols, surface, dict(self.base))
        self.retries = 0

    def compute(self, positions: np.ndarray) -> tuple[float, np.ndarray]:
        """Potential energy (eV) and forces (eV/Angstrom, shape (N, 3)) at ``positions``.

        Raises
        ------
        SCFError
            If no rung of :data:`SCF_LADDER` converges.
        """
        last = ""
        for rung, extra in enumerate(SCF_LADDER):
            settings = dict(self.base)
            settings.update({k: v for k, v in extra.items() if k != "fresh"})
            if extra["fresh"]:
                self.engine = self.factory(self.symbols, self.surface, settings)
            try:
                energy, forces = self.engine.compute(positions)
            except RuntimeError as exc:
                text = str(exc).strip()
                last = text.splitlines()[-1] if text else type(exc).__name__
                continue
            if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
                last = "non-finite energy or forces"
                continue
            if rung:
                self.retries += rung
                if len(extra) > 1:  # later steps go back to the default settings
                    self.engine = self.factory(self.symbols, self.surface, dict(self.base))
            return energy, forces
        raise SCFError(f"SCF not converged on {self.surface.label} after {len(SCF_LADDER)} attempts ({last})")

    def energy(self, positions: np.ndarray) -> float:
        """Potential energy in eV."""
        return self.compute(positions)[0]


def optimise(
    symbols: Symbols,
    positions: np.ndarray,
    surface: Surface,
    *,
    fmax: float = 5e-4,
    steps: int = 2000,
    factory: EngineFactory | None = None,
) -> tuple[np.ndarray, float]:
    """Minimise the energy on ``surface`` (ASE's BFGS).

    Parameters
    ----------
    symbols : sequence of str, length N
    positions : ndarray, shape (N, 3), Angstrom
        Start geometry.
    surface : Surface
    fmax : float
        Convergence threshold on the largest force, eV/Angstrom.
    steps : int
        Most optimisation steps.

    Returns
    -------
    positions : ndarray, shape (N, 3), Angstrom
        Minimum, centred on the centre of mass.
    energy : float
        Energy at the minimum, eV.

    Raises
    ------
    molmovie.InputError
        If the SCF or the optimisation does not converge.
    """
    from ase import Atoms
    from ase.calculators.calculator import Calculator, all_changes
    from ase.optimize import BFGS

    robust = RobustSurface(symbols, surface, factory=factory)

    class _Calc(Calculator):
        implemented_properties = ["energy", "free_energy", "forces"]  # noqa: RUF012 -- ASE declares it list[str]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            e, f = robust.compute(self.atoms.positions)
            self.results = {"energy": e, "free_energy": e, "forces": f}

    atoms = Atoms(list(symbols), positions=np.asarray(positions, dtype=float))
    atoms.calc = _Calc()
    try:
        converged = BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps)
    except SCFError as exc:
        raise InputError(f"GFN2-xTB could not optimise the molecule on {surface.label}: {exc}") from None
    if not converged:
        raise InputError(f"the GFN2-xTB geometry optimisation on {surface.label} did not converge in {steps} steps")
    pos = atoms.get_positions()
    masses = atoms.get_masses()
    return pos - masses @ pos / masses.sum(), float(atoms.get_potential_energy())
