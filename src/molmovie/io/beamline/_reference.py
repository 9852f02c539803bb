"""ΔS against a reference (pre-t0 delays or a laser-off pattern) with first-order uncertainties, and its pre-t0 check."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..._errors import InputError
from ..measurement import Measurement


def difference_signal(
    intensity: ArrayLike,
    variance: ArrayLike | None = None,
    *,
    reference_rows: np.ndarray | None = None,
    laser_off: tuple[ArrayLike, ArrayLike | None] | None = None,
    isotropic: ArrayLike | None = None,
    isotropic_variance: ArrayLike | None = None,
    isotropic_laser_off: tuple[ArrayLike, ArrayLike | None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    r"""ΔS against a reference: the mean of some delays (pre-t0) or a laser-off pattern.

    For the isotropic part (order 0, or data without a Legendre stack):

    .. math::

        \Delta S_i(q) = \frac{I_i(q)}{\bar I(q)} - 1, \qquad
        \bar I = \frac{1}{N}\sum_{j \in \mathrm{ref}} I_j .

    For an anisotropic order :math:`l > 0` the difference is normalised by the
    isotropic reference, :math:`\Delta S_{l,i} = (S_{l,i} - \bar S_l)/\bar S_0`,
    as is usual for Legendre-resolved scattering (e.g. Natan et al.,
    arXiv:2011.06761).

    Uncertainties are propagated to first order (the delta method; e.g.
    Bevington & Robinson, *Data Reduction and Error Analysis*, ch. 3), treating
    the bins and the Legendre orders as independent:

    .. math::

        \sigma^2(\Delta S_i) = \frac{\sigma_i^2}{\bar I^2}
            + \frac{I_i^2\,\sigma_{\bar I}^2}{\bar I^4}
            - 2\,[i \in \mathrm{ref}]\,\frac{I_i\,\sigma_i^2}{N\,\bar I^3},
        \qquad \sigma_{\bar I}^2 = \frac{1}{N^2}\sum_{j\in\mathrm{ref}} \sigma_j^2 ,

    the last term being the covariance of a delay that is part of its own
    reference. The result is the exact first-order variance of each bin; the
    covariance *between* delays through the shared reference (all delays
    move together with the reference's noise) is not stored.

    Parameters
    ----------
    intensity : ndarray, shape (T, Q)
        I(q, t) (the chosen order), any units.
    variance : ndarray, shape (T, Q), or None
        Its variance (the uncertainty of each bin's mean).
    reference_rows : ndarray of bool, shape (T,), optional
        Delays whose mean is the reference (pre-t0).
    laser_off : tuple (ndarray (Q,), ndarray (Q,) or None), optional
        A laser-off pattern of the chosen order and the variance of its mean,
        instead of ``reference_rows``.
    isotropic, isotropic_variance : ndarray, shape (T, Q), optional
        Order 0, for an order l > 0 with ``reference_rows``.
    isotropic_laser_off : tuple (ndarray (Q,), ndarray (Q,) or None), optional
        Order 0 of the laser-off pattern, for an order l > 0 with ``laser_off``.

    Returns
    -------
    dS : ndarray, shape (T, Q), fraction
    sigma : ndarray, shape (T, Q), fraction, or None (no variance given)

    Raises
    ------
    InputError
        If the reference is zero or negative in a q bin.
    """
    I = np.asarray(intensity, dtype=float)
    var = None if variance is None else np.asarray(variance, dtype=float)
    if (reference_rows is None) == (laser_off is None):
        raise InputError("give either reference rows (pre-t0) or a laser-off pattern")
    anisotropic = isotropic is not None or isotropic_laser_off is not None
    if laser_off is not None:
        A, var_A = _pattern(laser_off)
        own = np.zeros(I.shape[0], dtype=bool)
        N = 1
        if anisotropic:
            if isotropic_laser_off is None:
                raise InputError("an order l > 0 against a laser-off pattern needs the pattern's order 0 (isotropic_laser_off)")
            B, var_B = _pattern(isotropic_laser_off)
    else:
        own = np.asarray(reference_rows, dtype=bool)
        N = int(own.sum())
        if N == 0:
            raise InputError("no delay in the reference")
        A = I[own].mean(axis=0)
        var_A = None if var is None else var[own].sum(axis=0) / N**2
        if anisotropic:
            B = np.asarray(isotropic, dtype=float)[own].mean(axis=0)
            var_B = None if isotropic_variance is None else np.asarray(isotropic_variance, dtype=float)[own].sum(axis=0) / N**2
    norm = B if anisotropic else A
    if np.any(norm <= 0):
        k = int(np.flatnonzero(norm <= 0)[0])
        raise InputError(
            f"the reference intensity is {norm[k]:g} at q index {k}; ΔS needs a positive reference (raise --qmin past bins without data)"
        )
    if anisotropic:
        dS = (I - A) / B
    else:
        dS = I / A - 1.0
    if var is None:
        return dS, None
    var_A = np.zeros_like(A) if var_A is None else var_A
    cov = np.where(own[:, None], var / N, 0.0)  # Cov(I_i, mean of the reference)
    if anisotropic:
        var_B = np.zeros_like(B) if var_B is None else var_B
        s2 = (var + var_A - 2 * cov) / B**2 + (I - A) ** 2 * var_B / B**4
    else:
        s2 = var / A**2 + I**2 * var_A / A**4 - 2 * I * cov / A**3
    return dS, np.sqrt(np.maximum(s2, 0.0))


def _pattern(pattern: tuple[ArrayLike, ArrayLike | None]) -> tuple[np.ndarray, np.ndarray | None]:
    """A laser-off pattern and the variance of its mean (None: not given), as float arrays."""
    value, variance = pattern
    return np.asarray(value, dtype=float), None if variance is None else np.asarray(variance, dtype=float)


def pre_t0_chi2(meas: Measurement, before: float = 0.0) -> tuple[float, int]:
    r"""Mean of :math:`(\Delta S/\sigma)^2` over the delays before ``before`` (fs), and their number.

    Near 1 when ΔS is zero within σ there (σ must be stored; bins with
    σ = 0 are left out). With σ the exact first-order variance of each bin
    (:func:`difference_signal`), the expectation is 1 also for delays that
    are part of the reference. Returns ``(nan, n)`` when there is no σ or no
    such delay.
    """
    rows = meas.delays < before
    if meas.sigma is None:
        return float("nan"), int(rows.sum())
    s = meas.sigma[rows]
    ok = s > 0
    if not ok.any():
        return float("nan"), int(rows.sum())
    return float(np.mean((meas.dS[rows][ok] / s[ok]) ** 2)), int(rows.sum())
