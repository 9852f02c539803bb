"""Atomic scattering factors: elastic form factors f(q) and incoherent functions S(q).

Both come from xraylib (Schoonjans et al., *Spectrochim. Acta B* 66, 776
(2011)), which tabulates the free-atom values of Hubbell et al., *J. Phys.
Chem. Ref. Data* 4, 471 (1975):

- ``xraylib.FF_Rayl(Z, x)``: the form factor f(x), with f(0) = Z;
- ``xraylib.SF_Compt(Z, x)``: the incoherent scattering function S(x), which
  rises from S(0) = 0 to S(∞) = Z.

xraylib takes the momentum-transfer variable x = sin(θ)/λ = q/(4π) in 1/Å,
while molmovie's q = 4π sin(θ)/λ is in 1/Å too. xraylib refuses x = 0 for S
(S(0) = 0 exactly) and refuses to extrapolate below the first tabulated point
(x = 1e-7 for f of Z > 1, x = 1e-3 for S). Below those points this module
uses the leading term of the small-x expansion, which both functions have by
symmetry (they are even in q): f(x) = Z - (Z - f(x₀)) (x/x₀)², and
S(x) = S(x₀) (x/x₀)². The first tabulated points are so small (q < 0.013
1/Å) that no realistic detector reaches them.

Values are cached per (element, q grid), so repeated calls on the same grid
(every trajectory of a data set) cost one dictionary look-up.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .._typing import Symbols
from ..molecules import atomic_numbers

__all__ = ["form_factors", "incoherent", "check_q", "atomic_numbers_for_scattering", "MAX_Z"]

#: Heaviest element that xraylib tabulates form factors and incoherent functions for.
MAX_Z = 98

# First tabulated x = q/4π of xraylib's splines (found by bisection on xraylib 4.3);
# below them xraylib raises "Spline extrapolation is not allowed".
_FF_X_MIN = 1e-7
_SF_X_MIN = 1e-3

#: Largest q accepted, 1/Å: the end of xraylib's tables, x = q/4π = 1e9 (beyond it xraylib raises
#: "Spline extrapolation is not allowed"); any experiment stays far below (q <= 4π/λ).
Q_MAX = 4.0 * np.pi * 1e9


def check_q(q: ArrayLike, name: str = "q") -> np.ndarray:
    """Validate a momentum-transfer grid and return it as a float64 1-D array.

    Parameters
    ----------
    q : array_like, shape (n_q,), 1/Angstrom
        Momentum transfer, q = 4π sin(θ)/λ; a scalar is taken as one point.
    name : str
        Name used in error messages.

    Returns
    -------
    ndarray, shape (n_q,), float64, C-contiguous

    Raises
    ------
    InputError
        If q is not 1-D, is empty, has non-finite values, negative values or
        values above :data:`Q_MAX` (4π·1e9 1/Å, where xraylib's tables end).
    """
    arr = np.asarray(q, dtype=float)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise InputError(f"The '{name}' parameter must be a 1-D array of momentum transfers; got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"The '{name}' parameter must hold at least one momentum transfer; got an empty array")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"The '{name}' parameter must be finite; got {arr[~np.isfinite(arr)][0]}")
    if np.any(arr < 0):
        raise InputError(f"The '{name}' parameter must be >= 0 (q = 4π sin(θ)/λ); got {arr.min():g}")
    if np.any(arr > Q_MAX):
        raise InputError(
            f"The '{name}' parameter must be <= {Q_MAX:.4g} 1/Å, where the tables of atomic scattering factors end; got {arr.max():g}"
        )
    return np.ascontiguousarray(arr)


def atomic_numbers_for_scattering(symbols: Symbols) -> np.ndarray:
    """Atomic numbers of ``symbols``, checked against the range xraylib tabulates.

    Raises
    ------
    InputError
        For an unknown symbol, an empty list, or an element heavier than Cf (Z = 98).
    """
    if isinstance(symbols, str):
        symbols = [symbols]
    z = atomic_numbers(symbols)
    if z.size == 0:
        raise InputError("The 'symbols' parameter must name at least one atom; got an empty list")
    if np.any(z > MAX_Z):
        bad = list(symbols)[int(np.argmax(z > MAX_Z))]
        raise InputError(f"xraylib tabulates scattering factors up to Z = {MAX_Z} (Cf); got {bad} (Z = {z.max()})")
    return z


def _tabulated(
    fn: Callable[[int, float], float], z: int, x: np.ndarray, x_min: float, at_zero: float, small: Callable[[float, float], float]
) -> np.ndarray:
    """Evaluate an xraylib function on x, with the small-x expansion below its first table point."""
    out = np.empty(x.size)
    first = None  # (first tabulated x for this element, its value), found on the first miss
    for k, xk in enumerate(x):
        xk = float(xk)
        if xk == 0.0:
            out[k] = at_zero
            continue
        try:
            out[k] = fn(z, xk)
        except ValueError:
            if first is None:
                first = _first_tabulated(fn, z, x_min)
            if first is None or xk >= first[0]:
                raise
            out[k] = small(first[1], xk / first[0])
    out.setflags(write=False)
    return out


def _first_tabulated(fn: Callable[[int, float], float], z: int, x_min: float) -> tuple[float, float] | None:
    """The first x >= ``x_min`` (up by factors of 2) where xraylib answers for element ``z``, with its value.

    The first table point differs between elements and xraylib versions
    (1e-7 for most elements in xraylib 4.3, about 1e-3 for carbon in others).
    """
    x = x_min
    while x < 0.1:
        try:
            return x, fn(z, x)
        except ValueError:
            x *= 2.0
    return None


@lru_cache(maxsize=512)
def _ff_cached(z: int, q_bytes: bytes) -> np.ndarray:
    import xraylib

    x = np.frombuffer(q_bytes, dtype=np.float64) / (4.0 * np.pi)
    return _tabulated(xraylib.FF_Rayl, z, x, _FF_X_MIN, float(z), lambda f0, t: z - (z - f0) * t * t)


@lru_cache(maxsize=512)
def _sf_cached(z: int, q_bytes: bytes) -> np.ndarray:
    import xraylib

    x = np.frombuffer(q_bytes, dtype=np.float64) / (4.0 * np.pi)
    return _tabulated(xraylib.SF_Compt, z, x, _SF_X_MIN, 0.0, lambda s0, t: s0 * t * t)


def form_factors(symbols: Symbols, q: ArrayLike) -> np.ndarray:
    r"""Elastic atomic form factors of each atom on a q grid.

    .. math::

        f_A(q) = \int \rho_A(\mathbf r)\, e^{i \mathbf q \cdot \mathbf r}\, d^3 r,
        \qquad f_A(0) = Z_A,

    the free-atom values tabulated by Hubbell et al., *J. Phys. Chem. Ref.
    Data* 4, 471 (1975), evaluated by ``xraylib.FF_Rayl(Z, q/4π)``.

    Parameters
    ----------
    symbols : sequence of str, length n_atoms
        Element symbols ("C", "H", ...), any case.
    q : array_like, shape (n_q,), 1/Angstrom
        Momentum transfer q = 4π sin(θ)/λ, >= 0.

    Returns
    -------
    ndarray, shape (n_atoms, n_q), electron units

    Raises
    ------
    InputError
        For an unknown element, Z > 98, or a bad q grid.
    """
    qa = check_q(q)
    key = qa.tobytes()
    return np.stack([_ff_cached(int(z), key) for z in atomic_numbers_for_scattering(symbols)])


def incoherent(symbols: Symbols, q: ArrayLike) -> np.ndarray:
    r"""Incoherent (Compton) scattering functions of each atom on a q grid.

    .. math::

        S_A(q) = Z_A - \sum_i |f_{ii}(q)|^2 - \sum_{i \ne j} |f_{ij}(q)|^2,
        \qquad S_A(0) = 0, \quad S_A(\infty) = Z_A,

    the Waller-Hartree incoherent function of the free atom (sums over its
    electrons' orbitals), tabulated by Hubbell et al., *J. Phys. Chem. Ref.
    Data* 4, 471 (1975), evaluated by ``xraylib.SF_Compt(Z, q/4π)``.

    Parameters
    ----------
    symbols : sequence of str, length n_atoms
    q : array_like, shape (n_q,), 1/Angstrom

    Returns
    -------
    ndarray, shape (n_atoms, n_q), electron units
    """
    qa = check_q(q)
    key = qa.tobytes()
    return np.stack([_sf_cached(int(z), key) for z in atomic_numbers_for_scattering(symbols)])
