"""Argument checks shared by the modules of the measurement model, and its size limit :data:`MAX_ELEMENTS`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from ..datasets import Dataset
from ..trajectories import Ensemble

__all__ = ["MAX_ELEMENTS"]

#: Largest number of elements of any one array the model allocates (2**27
#: float64 values, 1 GiB): delays × frames (the IRF operator), delays × q,
#: trajectories × frames × q (a basis), trajectories × delays × pairs.
MAX_ELEMENTS = 2**27


def _check_size(count: int, what: str) -> None:
    if count > MAX_ELEMENTS:
        raise InputError(
            f"{what} would need {count:,} values, more than the limit of {MAX_ELEMENTS:,} (1 GiB of float64); "
            "use fewer delays, q points or trajectories"
        )


def _number(name: str, value: Any, *, low: float | None = None, low_open: bool = False, high: float | None = None) -> float:
    """A finite float within the bounds, or an InputError naming the parameter."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"The '{name}' parameter must be a number; got {value!r}") from None
    if not math.isfinite(x):
        raise InputError(f"The '{name}' parameter must be finite; got {value!r}")
    if low is not None and (x < low or (low_open and x == low)):
        raise InputError(f"The '{name}' parameter must be {'>' if low_open else '>='} {low:g}; got {x:g}")
    if high is not None and x > high:
        raise InputError(f"The '{name}' parameter must be <= {high:g}; got {x:g}")
    return x


def _vector(name: str, value: ArrayLike, *, increasing: bool) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"The '{name}' parameter must be numbers") from None
    if a.ndim != 1 or a.size == 0:
        raise InputError(f"The '{name}' parameter must be a non-empty 1-D array; got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"The '{name}' parameter must be finite")
    if increasing and a.size > 1 and np.any(np.diff(a) <= 0):
        i = int(np.flatnonzero(np.diff(a) <= 0)[0])
        raise InputError(f"The '{name}' parameter must be strictly increasing; got {a[i]:g} then {a[i + 1]:g} at index {i + 1}")
    return a


def _check_weights(weights: ArrayLike | None, m: int, *, normalise: bool) -> np.ndarray:
    if weights is None:
        return np.full(m, 1.0 / m)
    try:
        w = np.asarray(weights, dtype=float)
    except (TypeError, ValueError):
        raise InputError("The 'weights' parameter must be numbers, one per trajectory") from None
    if w.shape != (m,):
        raise InputError(f"The 'weights' parameter must hold one number per trajectory ({m}); got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise InputError("The 'weights' parameter must be finite")
    if normalise:
        if np.any(w < 0) or not w.sum() > 0:
            raise InputError(f"The 'weights' parameter must be >= 0 with a positive sum; got min {w.min():g}, sum {w.sum():g}")
        w = w / w.sum()
    return w


def _ensemble_of(dataset: Dataset | Ensemble) -> Ensemble:
    """The Ensemble of a Dataset (or the Ensemble itself), refusing one without trajectories."""
    ens: Any = getattr(dataset, "ensemble", dataset)  # duck-typed: checked next
    if not all(hasattr(ens, a) for a in ("symbols", "positions", "length", "time", "dissociated")):
        raise InputError(f"expected a molmovie Dataset or Ensemble; got {type(dataset).__name__}")
    if ens.n_trajectories == 0:
        raise InputError("the dataset has no trajectories")
    return ens
