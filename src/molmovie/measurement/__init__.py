"""The measurement: what a pump-probe experiment records, and the model that makes it from trajectories.

- :mod:`~molmovie.measurement.types`: :class:`Measurement` (ΔS(q, t) on the
  experiment's q and delay grids, with σ and provenance), :class:`Truth`
  (what a simulated one was made from), :func:`check_molecule`;
- :mod:`~molmovie.measurement.model`: the measurement model (ensemble
  average, excitation fraction γ, time zero t0, IRF, noise), basis signals,
  distance distributions and synthetic experiments with their truth.

The file format is :mod:`molmovie.io.measurement`; the methods that explain a
measurement are in :mod:`molmovie.fitting`.
"""

from __future__ import annotations

from .model import (
    DEFAULT_LEVELS,
    MAX_ELEMENTS,
    DistanceDistribution,
    basis_signals,
    convolve_basis,
    distance_distribution,
    ensemble_signal,
    ensemble_signal_torch,
    ground_start_flags,
    hold_last_frame,
    irf_operator,
    irf_operator_torch,
    laser_off_reference,
    parting_frames,
    simulate_measurement,
    weighted_quantiles,
)
from .types import Measurement, Truth, check_molecule

__all__ = [
    "Measurement",
    "Truth",
    "check_molecule",
    "DEFAULT_LEVELS",
    "MAX_ELEMENTS",
    "irf_operator",
    "irf_operator_torch",
    "hold_last_frame",
    "ensemble_signal",
    "ensemble_signal_torch",
    "convolve_basis",
    "laser_off_reference",
    "basis_signals",
    "ground_start_flags",
    "DistanceDistribution",
    "distance_distribution",
    "parting_frames",
    "weighted_quantiles",
    "simulate_measurement",
]
