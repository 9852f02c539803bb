r"""The pair distribution function of electron diffraction: a damped sine transform of sM(s).

.. math::

    P(r) = r \int_{s_\mathrm{min}}^{s_\mathrm{max}} sM(s) \sin(s r)\, e^{-\alpha s^2}\, ds

over the measured s range, the convention of Centurion, Wolf and Yang,
*Annu. Rev. Phys. Chem.* 73, 21 (2022) and of IAM-XED (``"rpdf"``); the
r-less variant, the integral alone, is ``"pdf"``. α (Å²) damps the
truncation ripples of the finite s range; 0.04 Å² is IAM-XED's default. The
transform is linear, so the difference ΔP(r, t) is the transform of ΔsM(s, t).
The integral is the trapezoidal rule on the given s points (as IAM-XED).

For two atoms at distance R with amplitudes of one phase, sM(s) = c sin(sR)/R
and, over s from 0 to ∞,

.. math::

    P(r) = \frac{c\, r}{4 R} \sqrt{\frac{\pi}{\alpha}}
           \Big[e^{-(r - R)^2 / 4\alpha} - e^{-(r + R)^2 / 4\alpha}\Big],

a Gaussian peak at R of width √(2α).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .tables import check_q

__all__ = ["pair_distribution", "PDF_VARIANTS", "DEFAULT_ALPHA"]

#: The variants of :func:`pair_distribution`: r times the integral (IAM-XED's "rpdf"), or the integral.
PDF_VARIANTS = ("rpdf", "pdf")
#: Default damping α, Å² (IAM-XED's).
DEFAULT_ALPHA = 0.04


def pair_distribution(
    sM: ArrayLike, s: ArrayLike, r: ArrayLike, *, alpha: float = DEFAULT_ALPHA, variant: str = "rpdf"
) -> np.ndarray:
    r"""P(r) = r ∫ sM(s) sin(sr) e^{−αs²} ds (``variant="rpdf"``), or the integral alone (``"pdf"``).

    Parameters
    ----------
    sM : array_like, shape (..., n_s), 1/Angstrom
        Modified scattering intensity sM(s), or its difference ΔsM(s, t)
        (:func:`molmovie.scattering.modified_intensity`). NaN rows stay NaN.
    s : array_like, shape (n_s,), 1/Angstrom
        The measured s points, increasing; the integral runs over their range.
    r : array_like, shape (n_r,), Angstrom, >= 0
    alpha : float, default 0.04
        Damping, Å², >= 0.
    variant : {"rpdf", "pdf"}

    Returns
    -------
    ndarray, shape (..., n_r)

    Raises
    ------
    InputError
        For a bad s or r grid, α < 0, an unknown variant, or sM whose last axis is not n_s.
    """
    sa = check_q(s, "s")
    if sa.size < 2 or np.any(np.diff(sa) <= 0):
        raise InputError("The 's' parameter must hold at least two increasing points")
    ra = check_q(r, "r")
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        a = float("nan")
    if not (math.isfinite(a) and a >= 0):
        raise InputError(f"The 'alpha' parameter must be >= 0 (damping, Å²); got {alpha!r}")
    if variant not in PDF_VARIANTS:
        raise InputError(f"The 'variant' parameter must be one of {', '.join(PDF_VARIANTS)}; got {variant!r}")
    y = np.asarray(sM, dtype=float)
    if y.ndim == 0 or y.shape[-1] != sa.size:
        raise InputError(f"The 'sM' parameter must have shape (..., {sa.size}) for {sa.size} s points; got shape {y.shape}")
    # trapezoid weights on the s points
    w = np.zeros(sa.size)
    h = np.diff(sa)
    w[:-1] += h / 2
    w[1:] += h / 2
    kernel = np.sin(ra[:, None] * sa[None, :]) * (w * np.exp(-a * sa * sa))[None, :]  # (n_r, n_s)
    out = y @ kernel.T
    if variant == "rpdf":
        out = out * ra
    return out
