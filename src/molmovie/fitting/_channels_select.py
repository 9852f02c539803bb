"""Nuisance terms of the channel fit chosen by an information criterion (:func:`select_nuisance`).

Forward selection over :data:`~molmovie.fitting._channels.NUISANCES` with the fit of
:mod:`molmovie.fitting._channels`: each round adds the term that lowers the criterion most, while one does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..datasets import Dataset
from ..measurement import Measurement
from ._channels import NUISANCES, ChannelFit, _check, fit_channels

__all__ = ["select_nuisance"]


def select_nuisance(
    meas: Measurement,
    basis: Dataset,
    *,
    candidates: Sequence[str] = NUISANCES,
    criterion: str = "bic",
    **options: Any,
) -> tuple[ChannelFit, list[tuple[tuple[str, ...], float, float]]]:
    """Add nuisance terms one at a time, the one that lowers the criterion most, while it falls.

    Returns the chosen fit and the path: (terms, criterion, χ²) of every fit tried. Once ``"qscale"`` is chosen,
    the later trials hold its s; the final fit (with the bootstrap) searches s again.
    """
    _check(
        meas,
        basis,
        options.get("orders", (0, 2)),
        options.get("alignments", "1par"),
        candidates,
        options.get("projection", "cos"),
        options.get("sigma", "measured"),
        criterion,
    )
    cache: dict = {}
    current: tuple[str, ...] = tuple(options.pop("nuisance", ()))
    boot = options.pop("bootstrap", 20)
    trial = dict(options, bootstrap=0)  # the trials need χ² only; the bootstrap runs once, on the choice
    fit = fit_channels(meas, basis, nuisance=current, _cache=cache, **trial)
    path = [(current, getattr(fit, criterion), fit.chi2)]
    while True:
        trials = []
        for kind in candidates:
            if kind in current:
                continue
            f = fit_channels(meas, basis, nuisance=(*current, kind), _cache=cache, **trial)
            path.append(((*current, kind), getattr(f, criterion), f.chi2))
            trials.append((getattr(f, criterion), kind, f))
        if not trials:
            break
        value, kind, f = min(trials, key=lambda x: x[0])
        if value >= getattr(fit, criterion):
            break
        current, fit = (*current, kind), f
        if kind == "qscale":  # later trials hold the scale found (each search refits the basis at every s tried)
            trial["qscale_grid"] = (f.qscale,)
    if boot:
        fit = fit_channels(meas, basis, nuisance=current, _cache=cache, bootstrap=boot, **options)
    return fit, path
