"""Fitting: the methods that explain a measurement, by name, from a measured ΔS(q, t) to distances (and weights, or ΔP(R, t)).

A second registry beside :data:`molmovie.inversion.METHODS` (methods that
learn from trajectories), for methods that explain a whole measurement
(:class:`molmovie.measurement.Measurement`: an ensemble average, partly
excited, smeared by the instrument response, noisy) rather than one
trajectory's signal::

    from molmovie.fitting import get_measurement_method

    method = get_measurement_method("ensemble", bootstrap=100)   # settings only
    method.fit(measurement, basis=dataset, progress=None)        # returns self
    method.result_                        # molmovie.io.fit.FitResult

* ``"ensemble"`` -- :class:`EnsembleFit`: weights over a basis of simulated
  trajectories, the excitation fraction, time zero and the IRF (NNLS inside
  a search over t0 and the IRF; parametric bootstrap).
* ``"pdf"`` -- :class:`PairDistributionFit`: model-free ΔP(R, t) (damped sine
  transform and a regularised Debye-kernel inversion).
* ``"vrnn-ensemble"`` -- :class:`EnsembleVRNN`: the paper's VRNN trained on
  simulated measurements of the basis (random sub-ensembles, γ, t0, IRF,
  photon noise, hole), answering per channel in one pass (amortised).

Adding a method is one new module and one line in :data:`MEASUREMENT_METHODS`.

Modules:

=========================  ==========================================================
``_base``                  :class:`MeasurementMethod` (settings, fitted state,
                           ``result_``), where σ comes from
                           (:func:`sigma_from_pre_t0`)
``_ensemble``              :class:`EnsembleFit`: the model, the settings and the
                           fit's steps (search over t0 and the IRF, bootstrap,
                           result)
``_ensemble_system``       its least-squares system: the reduced basis, NNLS/BVLS
                           at one (t0, IRF), regularisation, Newton steps
``_ensemble_stats``        the distances its weights imply, per channel
``_ensemble_uncertainty``  the profile likelihood of γ and the spreads
``_pdf``                   :class:`PairDistributionFit`: model-free ΔP(R, t)
``_learned``               :class:`EnsembleVRNN`: the learned method on a measurement
``_learned_sim``           the simulated measurements it is trained on
=========================  ==========================================================

The measurement and its model are :mod:`molmovie.measurement`; the result's
file format is :mod:`molmovie.io.fit`; the shared signal fit of the learned
methods is :func:`molmovie.inversion.refine_distances`.
"""

from __future__ import annotations

from typing import Any

from .._errors import InputError
from ._base import MeasurementMethod, sigma_from_pre_t0
from ._channels import NUISANCES, Alignment, Channel, ChannelFit, fit_channels, parse_alignments
from ._channels_select import select_nuisance
from ._ensemble import EnsembleFit
from ._learned import EnsembleVRNN
from ._pdf import PairDistributionFit

__all__ = [
    "MEASUREMENT_METHODS",
    "get_measurement_method",
    "MeasurementMethod",
    "EnsembleFit",
    "PairDistributionFit",
    "EnsembleVRNN",
    "sigma_from_pre_t0",
    "Alignment",
    "parse_alignments",
    "Channel",
    "ChannelFit",
    "NUISANCES",
    "fit_channels",
    "select_nuisance",
]

#: Measurement methods by name.
MEASUREMENT_METHODS: dict[str, type[MeasurementMethod]] = {
    "ensemble": EnsembleFit,
    "pdf": PairDistributionFit,
    "vrnn-ensemble": EnsembleVRNN,
}


def get_measurement_method(name: str, **settings: Any) -> MeasurementMethod:
    """A new, unfitted measurement method by name.

    Parameters
    ----------
    name : str
        A key of :data:`MEASUREMENT_METHODS`.
    **settings
        The method's keyword settings; an unknown one, or a bad value, is an :class:`InputError`.
    """
    if name not in MEASUREMENT_METHODS:
        raise InputError(f"unknown measurement method {name!r}; choose one of {', '.join(MEASUREMENT_METHODS)}")
    method = MEASUREMENT_METHODS[name]().set_params(**settings)
    try:
        method.check_settings()  # before any file is read
    except InputError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:  # a value of another kind than the check expects (levels="abc")
        given = ", ".join(f"{k}={v!r}" for k, v in settings.items())
        raise InputError(f"a setting of the {name} method has a value of the wrong kind ({given}): {exc}") from None
    return method
