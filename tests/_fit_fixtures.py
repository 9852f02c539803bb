"""Cheap analytic diatomic ensembles for the measurement-fit tests (no dynamics code runs)."""

from __future__ import annotations

import numpy as np

from molmovie.datasets import Dataset
from molmovie.trajectories import Trajectory, ensemble_from_trajectories

R_E = 2.666  # I2 bond length, Angstrom
PERIOD = 156.0  # I2 X-state vibration, fs (214.5 cm^-1)


def diatomic_ensemble(
    n: int,
    *,
    seed: int,
    symbols=("I", "I"),
    t_end: float = 1200.0,
    dt: float = 10.0,
    dissociating: float = 0.4,
    period=(140.0, 180.0),
) -> Dataset:
    """``n`` I2-like trajectories after an impulsive excitation at t = 0, all starting near r_e.

    Bound ones vibrate coherently, r = r_e + δ + A (1 - cos(2π t / P)), A in 0.15-0.3 Å and P in
    ``period`` (140-180 fs); a fraction ``dissociating`` fly apart at 0.005-0.015 Å/fs. δ ~ N(0, 0.03 Å) is the
    ground-state spread. Analytic, so a basis of hundreds costs milliseconds.
    """
    rng = np.random.default_rng(seed)
    time = np.arange(0.0, t_end + dt / 2, dt)
    trajs = []
    for i in range(n):
        delta = 0.03 * rng.standard_normal()
        if rng.random() < dissociating:
            r = R_E + delta + rng.uniform(0.005, 0.015) * time
        else:
            amp, p = rng.uniform(0.15, 0.3), rng.uniform(*period)
            r = R_E + delta + amp * (1 - np.cos(2 * np.pi * time / p))
        pos = np.zeros((time.size, 2, 3))
        pos[:, 1, 2] = r
        trajs.append(Trajectory(tuple(symbols), time, pos, source=f"toy{seed}-{i}"))
    ens = ensemble_from_trajectories(trajs, molecule="I2" if tuple(symbols) == ("I", "I") else None)
    return Dataset(ens)
