"""What every beamline reader returns: :class:`BeamlineData`, the file's arrays in its own units."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class BeamlineData:
    """What a beamline file holds, in the file's own units.

    Attributes
    ----------
    q : ndarray, shape (Q,)
    delays : ndarray, shape (T,)
    data : ndarray, shape (T, Q)
        The chosen Legendre order (or the only pattern per delay).
    variance : ndarray, shape (T, Q), or None
        Variance of ``data`` (from a variance or a squared standard deviation).
    isotropic, isotropic_variance : ndarray, shape (T, Q), or None
        Order 0 of the stack, when another order was chosen.
    legendre : int or None
        The chosen order (None: the file has no Legendre stack).
    units : dict
        Units found in the file: ``q``, ``delays``, ``data`` (None when absent).
    paths : dict
        Where each array came from (dataset paths, keys or table layout).
    """

    q: np.ndarray
    delays: np.ndarray
    data: np.ndarray
    variance: np.ndarray | None
    isotropic: np.ndarray | None = None
    isotropic_variance: np.ndarray | None = None
    legendre: int | None = None
    units: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)
