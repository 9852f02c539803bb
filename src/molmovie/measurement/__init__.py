r"""The measurement: what a pump-probe experiment records, and the model that makes one from trajectories.

A measured ΔS(q, t) is the excited ensemble's average against the laser-off
ground state, scaled by the excitation fraction γ, shifted by time zero t0,
smeared by the instrument response (IRF), with noise:

.. math::

    \Delta S(q, t) = \gamma \sum_i w_i \,
        \big[\Delta S_i \otimes G_\mathrm{IRF}\big](q, t - t_0).

Modules, in the order a reader meets them:

=============================================  ==============================================================
:mod:`~molmovie.measurement.types`             :class:`Measurement` (ΔS on the experiment's q and delay
                                               grids, σ, provenance), :class:`Truth` (what a simulated one
                                               was made from), :func:`check_molecule`
:mod:`~molmovie.measurement.model`             the measurement model and its conventions:
                                               :func:`irf_operator`, :func:`ensemble_signal`,
                                               :func:`convolve_basis`, :func:`hold_last_frame` (and the
                                               PyTorch twins ``*_torch``, which import torch when called)
:mod:`~molmovie.measurement.basis`             each trajectory's ΔS_i against the laser-off reference:
                                               :func:`basis_signals`, :func:`laser_off_reference`,
                                               :func:`ground_start_flags`
:mod:`~molmovie.measurement.distributions`     the weighted ensemble's distances at each delay (the truth a
                                               fit is scored against): :func:`distance_distribution`,
                                               :func:`weighted_quantiles`, :func:`parting_frames`
:mod:`~molmovie.measurement.synthetic`         a synthetic experiment with noise and its truth:
                                               :func:`simulate_measurement`
:mod:`~molmovie.measurement.ued`               electron diffraction's ΔsM(s, t) and ΔP(r, t) from ΔI/I:
                                               :func:`modified_difference`, :func:`difference_pdf`,
                                               :func:`sm_factor`
=============================================  ==============================================================

:data:`MAX_ELEMENTS` caps any one array the model allocates. Elsewhere: the
file format is :mod:`molmovie.io.measurement` (and ``molmovie ingest`` reads
beamline files, :mod:`molmovie.io.beamline`); the forward model the basis is
made with is :mod:`molmovie.scattering`; the methods that explain a
measurement (ensemble fit, model-free ΔP(R, t)) are :mod:`molmovie.fitting`.
"""

from __future__ import annotations

from ._checks import MAX_ELEMENTS
from .basis import basis_signals, ground_start_flags, laser_off_reference
from .distributions import DEFAULT_LEVELS, DistanceDistribution, distance_distribution, parting_frames, weighted_quantiles
from .model import convolve_basis, ensemble_signal, ensemble_signal_torch, hold_last_frame, irf_operator, irf_operator_torch
from .synthetic import simulate_measurement
from .types import LegendreComponent, Measurement, Truth, check_molecule
from .ued import difference_pdf, modified_difference, sm_factor

__all__ = [
    "Measurement",
    "LegendreComponent",
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
    "modified_difference",
    "difference_pdf",
    "sm_factor",
]
