"""What the measurement methods share: settings handling, σ, the measurement check.

A measurement method follows the scikit-learn shape of the other methods::

    method = get_measurement_method("pdf", r_max=8.0)   # settings only
    method.fit(measurement, basis=None, progress=None)   # returns self
    method.result_                                        # a molmovie.io.fit.FitResult
"""

from __future__ import annotations

import abc
from typing import Self

import numpy as np

from .._errors import InputError
from .._typing import Progress
from ..datasets import Dataset
from ..inversion._base import NotFittedError, _jsonable, _Settings, check_choice
from ..io.fit import FitResult
from ..measurement import Measurement

__all__ = ["MeasurementMethod", "measurement_sigma", "sigma_from_pre_t0", "SIGMA_SOURCES"]

#: Where σ comes from: the measurement's own, or the scatter of its pre-time-zero delays.
SIGMA_SOURCES = ("measured", "pre-t0")

#: Fewest delays before time zero that :func:`sigma_from_pre_t0` accepts.
MIN_PRE_T0 = 3


def sigma_from_pre_t0(delays: np.ndarray, dS: np.ndarray) -> np.ndarray:
    """σ(q) from the scatter of ΔS over the delays before time zero, the same at every delay.

    Before time zero nothing has happened yet, so ΔS there is noise alone:
    σ(q) is the sample standard deviation (``ddof=1``) over the delays < 0,
    at each q, assumed the same at every delay (stationary noise).

    Parameters
    ----------
    delays : ndarray, shape (T,), fs
    dS : ndarray, shape (T, Q), fraction

    Returns
    -------
    ndarray, shape (T, Q), fraction

    Raises
    ------
    InputError
        With fewer than 3 delays before time zero, or a q bin of zero scatter.
    """
    pre = np.asarray(delays) < 0
    n = int(pre.sum())
    if n < MIN_PRE_T0:
        raise InputError(
            f"the measurement has {n} delay(s) before time zero; estimating σ from the pre-t0 scatter needs at least {MIN_PRE_T0}"
        )
    s = np.std(dS[pre], axis=0, ddof=1)
    if np.any(s <= 0):
        raise InputError(f"ΔS does not scatter before time zero at {int(np.sum(s <= 0))} q point(s); σ cannot be estimated there")
    return np.broadcast_to(s, dS.shape).copy()


def measurement_sigma(meas: Measurement, source: str) -> tuple[np.ndarray, str]:
    """The σ a fit weights by, and a sentence saying where it came from.

    Parameters
    ----------
    meas : molmovie.io.measurement.Measurement
    source : {"measured", "pre-t0"}
        "measured": the measurement's σ; refused when it has none.
        "pre-t0": :func:`sigma_from_pre_t0` (replaces any σ the file has).
    """
    check_choice("sigma", source, SIGMA_SOURCES)
    if source == "pre-t0":
        n = int(np.sum(meas.delays < 0))
        return sigma_from_pre_t0(
            meas.delays, meas.dS
        ), f"pre-t0: std over the {n} delays before time zero, per q, the same at every delay"
    if meas.sigma is None:
        raise InputError(
            "the measurement has no σ (uncertainty of ΔS); a fit needs one: re-ingest it with variances, or estimate σ "
            "from the scatter before time zero (--sigma-from-pre-t0, setting sigma='pre-t0')"
        )
    if np.any(meas.sigma <= 0):
        raise InputError(
            f"the measurement's σ is zero at {int(np.sum(meas.sigma <= 0))} point(s); a fit weights by 1/σ, so σ must be > 0"
        )
    return np.asarray(meas.sigma, dtype=float), "measured"


class MeasurementMethod(_Settings, abc.ABC):
    """Base of the measurement methods: keyword settings, fitted state, a result.

    Subclasses set ``name``, take keyword-only settings in ``__init__``, check
    them in :meth:`check_settings` and implement ``fit(measurement, basis=None,
    progress=None)``, which sets ``result_`` (a :class:`molmovie.io.fit.FitResult`)
    and other attributes ending in ``_``. The settings protocol
    (:meth:`get_params`, :meth:`set_params`, :meth:`clone`) is that of the
    inversion methods (:class:`molmovie.inversion.InversionMethod`).
    """

    #: What :meth:`fit` found; a method is fitted when it exists.
    result_: FitResult
    #: Whether :meth:`fit` needs a basis of trajectories (``fit --basis``).
    needs_basis: bool = False
    #: Whether ``fit --figures`` draws this method's result.
    draws_figures: bool = True
    #: Whether its result is a trained network's answer (one pass) rather than a fit to the data.
    learned: bool = False

    @abc.abstractmethod
    def fit(self, measurement: Measurement, basis: Dataset | None = None, progress: Progress | None = None) -> Self:
        """Fit ``measurement`` (with the trajectories of ``basis``, for a method that takes them); sets ``result_``, returns self."""

    def settings_json(self) -> dict:
        """The settings as JSON-able values, for the result file."""
        return _jsonable(self.get_params())

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "result_")

    @property
    def result(self) -> FitResult:
        """What :meth:`fit` found (``result_``); a :class:`NotFittedError` before it."""
        if not self.is_fitted:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(measurement) first")
        return self.result_

    def _start_fit(self, measurement: Measurement) -> Measurement:
        """Check the settings and the measurement, then forget learned state; returns the measurement."""
        self.check_settings()
        self._check_measurement(measurement)
        self._reset()
        return measurement

    @staticmethod
    def _check_measurement(meas: object) -> None:
        for attr in ("q", "delays", "dS", "sigma", "symbols", "provenance"):
            if not hasattr(meas, attr):
                raise InputError(f"a measurement method fits a molmovie Measurement; got {type(meas).__name__}")
