"""Inversion methods: from scattering signals ΔS(q, t) to atom-atom distances R_AB(t) ± σ.

Every method follows one protocol (see :class:`InversionMethod`)::

    from molmovie.inversion import get_method, load_method

    method = get_method("vrnn", hidden=64)     # settings only
    method.fit(train, val=val)                  # molmovie Dataset objects; returns the method
    pred = method.predict(dS, q=q, lengths=L)   # Prediction(distances, std), (M, T, n_pairs) Angstrom
    method.save("model.safetensors")
    method = load_method("model.safetensors")    # any method; never runs code from the file

Besides: ``check_settings()`` (validate, return warnings), ``get_params()``,
``set_params(**settings)``, ``clone()``, ``fit_summary()``; ``fit`` reports
progress as ``progress(done, info)``, ``info["total"]`` the steps it will take
at most (the one progress shape of molmovie).

Methods, by name (:data:`METHODS`):

* ``"nearest"`` -- :class:`NearestReference`, the paper's frame-by-frame
  baseline: the training frame of least sum of squared residuals.
* ``"vrnn"`` -- :class:`VRNN`, the paper's variational recurrent network,
  with a symmetry-invariant loss, an Eq. (1) physics term and log-scaled
  targets.
* ``"nearest-viterbi"`` -- :class:`NearestViterbi`, the baseline with
  dynamics-constrained decoding: each frame's k nearest reference frames,
  joined by the Viterbi path that penalises jumps in distance space.

Adding a method is one new module and one line in :data:`METHODS`: the CLI,
the study, its tables and its figures take their methods from it.
The VRNN's loss, term by term, is in :mod:`molmovie.inversion.losses`.
"""

from __future__ import annotations

from typing import Any

from .._errors import InputError
from .._typing import PathLike
from ._base import (
    InversionMethod,
    NotFittedError,
    Prediction,
    check_signals,
    interpolate_signals,
    read_model_file,
)
from ._nearest import NearestReference, nearest_frames
from ._refine import refine_distances
from ._viterbi import NearestViterbi, nearest_k_frames
from ._vrnn import REFINE_PRIOR_SCALE, REFINE_STD_SCALE, VRNN

__all__ = [
    "Prediction",
    "InversionMethod",
    "NotFittedError",
    "NearestReference",
    "NearestViterbi",
    "VRNN",
    "REFINE_PRIOR_SCALE",
    "REFINE_STD_SCALE",
    "METHODS",
    "DEFAULT_METHOD",
    "get_method",
    "load_method",
    "nearest_frames",
    "nearest_k_frames",
    "refine_distances",
    "check_signals",
    "interpolate_signals",
]

#: Inversion methods by name.
METHODS: dict[str, type[InversionMethod]] = {
    "nearest": NearestReference,
    "vrnn": VRNN,
    "nearest-viterbi": NearestViterbi,
}

#: The method ``molmovie train`` fits unless told otherwise.
DEFAULT_METHOD = "vrnn"


def get_method(name: str, **settings: Any) -> InversionMethod:
    """A new, unfitted inversion method by name.

    Parameters
    ----------
    name : str
        A key of :data:`METHODS`.
    **settings
        The method's keyword settings; an unknown one is an :class:`InputError`.
    """
    if name not in METHODS:
        raise InputError(f"unknown inversion method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]().set_params(**settings)


def load_method(path: PathLike) -> InversionMethod:
    """Load a saved model of any registered method (see :meth:`InversionMethod.save`)."""
    method, config, arrays = read_model_file(path)
    if method not in METHODS:
        raise InputError(f"{path} holds a model of method {method!r}, which this molmovie does not know")
    return METHODS[method]._from_parts(method, config, arrays, path)
