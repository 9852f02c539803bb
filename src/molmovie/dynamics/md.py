"""One trajectory: Wigner sample, excess energy, velocity Verlet on GFN2-xTB, switch, fate."""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..molecules import bond_graph, fragments
from ..trajectories import is_dissociated
from ._xtb import EngineFactory, RobustSurface, SCFError, single_thread
from .excess import direction_basis, excess_velocities
from .initial import Family
from .models import Model
from .wigner import _EV_IN_U_A2_PER_FS2, NormalModes, kinetic_energy, wigner_sample

__all__ = ["TrajectoryResult", "run_trajectory", "velocity_verlet"]


@dataclass
class TrajectoryResult:
    """One finished (or failed) trajectory.

    Attributes
    ----------
    positions : ndarray, shape (L, N, 3), Angstrom
        The L frames it reached (L = ``model.n_frames`` unless it failed).
    energy : ndarray, shape (L,), eV
        Total energy (kinetic + potential on the active surface).
    state : ndarray of int, shape (L,)
        Index into ``model.surfaces`` of the active surface.
    dissociated : bool
        By :func:`molmovie.trajectories.is_dissociated` (the rule of ``molmovie import``).
    record : dict
        JSON-serialisable: ``seed``, ``model``, ``fate`` ("bound" or
        "dissociated"), ``failure`` (None, or why it ended early),
        ``drift_eV`` (largest deviation of the total energy from its start),
        ``drift_flag`` (drift above the model's threshold), ``excess_eV``,
        ``switch_fs`` (time of the switch; None if none), ``frustrated``
        (switch attempts refused for lack of kinetic energy),
        ``scf_retries``, ``wall_s``, and ``stopped_fs`` when
        ``model.stop_dissociated`` ended it early.
    """

    positions: np.ndarray
    energy: np.ndarray
    state: np.ndarray
    dissociated: bool
    record: dict = field(default_factory=dict)

    @property
    def length(self) -> int:
        return len(self.positions)


def velocity_verlet(
    positions: np.ndarray,
    velocities: np.ndarray,
    masses: np.ndarray,
    forces: np.ndarray,
    force_fn: Callable[[np.ndarray], tuple[float, np.ndarray]],
    dt: float,
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """One velocity Verlet step (the algorithm of ``ase.md.verlet.VelocityVerlet``).

    Parameters
    ----------
    positions, velocities : ndarray, shape (N, 3), Angstrom and Angstrom/fs
    masses : ndarray, shape (N,), u
    forces : ndarray, shape (N, 3), eV/Angstrom, at ``positions``
    force_fn : callable
        ``force_fn(positions) -> (energy eV, forces eV/Angstrom)``.
    dt : float
        Time step, fs.

    Returns
    -------
    positions, velocities, energy, forces
        After the step (new arrays).
    """
    acc = _EV_IN_U_A2_PER_FS2 / np.asarray(masses, float)[:, None]  # (eV/Angstrom) -> Angstrom/fs^2 per u
    v = velocities + 0.5 * dt * forces * acc
    x = positions + dt * v
    energy, f = force_fn(x)
    v = v + 0.5 * dt * f * acc
    return x, v, energy, f


def run_trajectory(
    modes: NormalModes, model: Model, seed: int, *, factory: EngineFactory | None = None, initial: Family | None = None
) -> TrajectoryResult:
    """Run one trajectory of ``model`` from a Wigner sample about ``modes``.

    Everything random (the sample, the switch time, the direction of the
    excess energy) comes from ``numpy.random.default_rng(seed)``, so a seed
    fixes the trajectory.

    Parameters
    ----------
    modes : NormalModes
        Ground-state minimum and vibrations of the molecule.
    model : Model
    seed : int
    factory : callable, optional
        ``factory(symbols, surface, settings) -> engine`` (GFN2-xTB by
        default); a calculator of :mod:`molmovie.dynamics.calculators` is one.
    initial : family of :mod:`molmovie.dynamics.initial`, optional
        How the trajectory starts; None is the 0 K Wigner sample (and leaves
        the record as it was before the families existed). What the family
        drew is in ``record["initial"]``.

    Returns
    -------
    TrajectoryResult
        A trajectory whose SCF fails on every retry ends there; its frames so
        far are kept and ``record["failure"]`` says why.
    """
    single_thread()
    t_start = _time.perf_counter()
    rng = np.random.default_rng(seed)
    symbols, masses = modes.symbols, modes.masses
    surfaces = [RobustSurface(symbols, s, model.electronic_temperature, factory) for s in model.surfaces]
    drawn = None
    if initial is None:
        x, v = wigner_sample(modes, rng)
    else:
        x, v, drawn = initial.sample(modes, rng, surfaces[0].compute)
        engine = initial.engine(drawn) if hasattr(initial, "engine") else None
        if engine is not None:  # the family's own first surface (a repulsive wall)
            surfaces[0] = RobustSurface(symbols, model.surfaces[0], model.electronic_temperature, lambda *args: engine)
    switch_at = float(rng.exponential(model.switch_time)) if model.excited is not None else None
    record: dict[str, Any] = {
        "seed": int(seed),
        "model": model.name,
        "fate": "bound",
        "failure": None,
        "drift_eV": 0.0,
        "drift_flag": False,
        "excess_eV": 0.0,
        "switch_fs": None,
        "frustrated": 0,
        "scf_retries": 0,
        "wall_s": 0.0,
    }
    if drawn is not None:
        record["initial"] = drawn
    frames, energies, states = [x.copy()], [np.nan], [0]
    n_start = len(fragments(bond_graph(symbols, x)))
    state, shift = 0, 0.0  # shift: constant added to the first surface (excess="potential")
    try:
        if model.photon_energy is not None:
            ground = RobustSurface(symbols, model.ground, model.electronic_temperature, factory)
            excess = ground.energy(x) + model.photon_energy - surfaces[0].energy(x)
            record["scf_retries"] += ground.retries
            record["excess_eV"] = float(excess)
            if model.excess == "potential":
                shift = float(excess)
            elif model.excess_into and excess > 0:
                forces0 = surfaces[0].compute(modes.positions)[1] if "gradient" in model.excess_into else None
                bases = direction_basis(model.excess_into, modes, forces0)
                v, shares = excess_velocities(masses, v, bases, excess, model.partition, rng)
                record["excess_shares_eV"] = [round(float(s), 6) for s in shares]
        potential, forces = surfaces[0].compute(x)
        potential += shift
        energies[0] = potential + float(kinetic_energy(masses, v))

        def first(y: np.ndarray) -> tuple[float, np.ndarray]:  # the first surface, shifted up for excess="potential"
            e, f = surfaces[0].compute(y)
            return e + shift, f

        for step in range(1, model.n_steps + 1):
            x, v, potential, forces = velocity_verlet(
                x, v, masses, forces, first if state == 0 else surfaces[1].compute, model.timestep
            )
            t = step * model.timestep
            if switch_at is not None and state == 0 and t >= switch_at:
                e_new, f_new = surfaces[1].compute(x)
                ke = float(kinetic_energy(masses, v))
                released = potential - e_new  # conserve the total energy
                if model.switch_gap is not None and abs(released) > model.switch_gap:
                    pass  # not at a crossing yet
                elif model.excess == "potential" and model.excess_into and released > 0:
                    bases = direction_basis(model.excess_into, modes, f_new, positions=x)
                    v, _ = excess_velocities(masses, v, bases, released, model.partition, rng)
                    potential, forces, state = e_new, f_new, 1
                    record["switch_fs"] = float(t)
                elif ke > 0 and ke + released > 0:  # scale the velocities
                    v = v * np.sqrt((ke + released) / ke)
                    potential, forces, state = e_new, f_new, 1
                    record["switch_fs"] = float(t)
                else:
                    record["frustrated"] += 1
            if step % model.stride == 0:
                frames.append(x.copy())
                energies.append(potential + float(kinetic_energy(masses, v)))
                states.append(state)
                if model.stop_dissociated and len(fragments(bond_graph(symbols, x, scale=2.0))) > n_start:
                    record["stopped_fs"] = float(t)
                    break
    except SCFError as exc:
        record["failure"] = str(exc)
    positions = np.array(frames)
    energy = np.array(energies)
    finite = energy[np.isfinite(energy)]
    record["drift_eV"] = float(np.max(np.abs(finite - finite[0]))) if finite.size else None
    record["drift_flag"] = bool(finite.size and record["drift_eV"] > model.drift_threshold)
    record["scf_retries"] += sum(s.retries for s in surfaces)
    dissociated = bool(is_dissociated(symbols, positions))
    record["fate"] = "dissociated" if dissociated else "bound"
    record["wall_s"] = round(_time.perf_counter() - t_start, 3)
    return TrajectoryResult(positions, energy, np.array(states, dtype=np.int64), dissociated, record)
