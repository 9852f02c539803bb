r"""The quantities of ultrafast electron diffraction from a measurement's ΔI/I: ΔsM(s, t) and ΔP(r, t).

A measurement stores ΔS = ΔI/I_gs for every probe. Electron diffraction
reports the modified scattering instead,

.. math::

    \Delta sM(s, t) = s \, \frac{\Delta I(s, t)}{I_\mathrm{at}(s)}
                    = \frac{s\, I_\mathrm{gs}(s)}{I_\mathrm{at}(s)}\, \frac{\Delta I}{I_\mathrm{gs}},

with I_at = Σ_A |f_A|² at the beam energy, and its damped sine transform
ΔP(r, t) (:func:`molmovie.scattering.pair_distribution`). The factor
s I_gs/I_at needs the ground state's intensity I_gs: the molecule's built-in
geometry when it has one, otherwise I_at (the ground state's own pair term
neglected); the functions say which.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from ..molecules import builtin
from ..scattering import atomic_intensity, intensity, pair_distribution
from ..scattering.pdf import DEFAULT_ALPHA
from .types import Measurement

__all__ = ["sm_factor", "modified_difference", "difference_pdf"]


def sm_factor(
    s: ArrayLike, symbols: tuple[str, ...] | None, molecule: str | None, *, energy_kev: float | None = None
) -> tuple[np.ndarray, str]:
    """The factor s I_gs/I_at that turns ΔI/I into ΔsM (1/Å), per s point, and how I_gs was had.

    Parameters
    ----------
    s : array_like, shape (Q,), 1/Angstrom, > 0
    symbols : tuple of str
        The molecule's atoms (needed for I_at).
    molecule : str or None
        Its name; a built-in molecule of these atoms gives I_gs.
    energy_kev : float, optional
        The electron beam's energy, keV (default 3700).

    Raises
    ------
    InputError
        Without atoms, or for s <= 0.
    """
    sa = np.asarray(s, dtype=float)
    if symbols is None:
        raise InputError("a ΔsM needs the molecule's atoms (I_at = Σ|f|²); give --molecule or --symbols")
    if np.any(sa <= 0):
        raise InputError(f"ΔsM and ΔI/I convert through s, so s must be > 0; the s range starts at {sa[0]:g} (use --qmin)")
    I_at = atomic_intensity(symbols, sa, probe="electron", energy_kev=energy_kev)
    I_gs, how = I_at, "I_gs = I_at = Σ|f|² (atoms only: the ground state's pair term neglected)"
    try:
        mol = builtin(molecule) if molecule else None
    except InputError:
        mol = None
    if mol is not None and sorted(mol.symbols) == sorted(symbols):
        I_gs = intensity(mol.symbols, mol.positions, sa, probe="electron", energy_kev=energy_kev)
        how = f"I_gs of the built-in geometry of {molecule}"
    return sa * I_gs / I_at, how


def modified_difference(meas: Measurement) -> tuple[np.ndarray, np.ndarray | None, str]:
    """ΔsM(s, t) of an electron measurement, its σ (None without), and how I_gs was had.

    Returns
    -------
    dsM, sigma : ndarray, shape (T, Q), 1/Angstrom
    how : str
    """
    if meas.probe != "electron":
        raise InputError("ΔsM is the modified scattering of electron diffraction; this measurement is of X-rays")
    factor, how = sm_factor(meas.q, meas.symbols, meas.molecule, energy_kev=meas.energy_kev)
    return meas.dS * factor, None if meas.sigma is None else meas.sigma * factor, how


def difference_pdf(
    meas: Measurement, r: ArrayLike, *, alpha: float = DEFAULT_ALPHA, variant: str = "rpdf"
) -> tuple[np.ndarray, np.ndarray, str]:
    """ΔP(r, t) = r ∫ ΔsM(s, t) sin(sr) e^{−αs²} ds over the measured s range, with ΔsM and how I_gs was had.

    Returns
    -------
    dP : ndarray, shape (T, R)
    dsM : ndarray, shape (T, Q), 1/Angstrom
    how : str
    """
    dsm, _, how = modified_difference(meas)
    return pair_distribution(dsm, meas.q, r, alpha=alpha, variant=variant), dsm, how
