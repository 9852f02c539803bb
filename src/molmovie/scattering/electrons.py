r"""Electron scattering: complex elastic amplitudes f(s) at the beam energy, the inelastic background, sM(s).

In the independent atom model an electron beam sees each atom through its
elastic scattering amplitude f_A(s) = |f_A(s)| e^{iη_A(s)} (Å), a function of
the momentum transfer s = 4π sin(θ/2)/λ (1/Å; the same quantity as the X-ray
q, with θ the full scattering angle) and of the beam's kinetic energy E. Two
sources, chosen by the energy (``source="auto"``):

``"elsepa"`` (E = 3700 keV, the energy of SLAC's MeV-UED)
    Dirac partial-wave amplitudes of the free atoms computed with ELSEPA
    (Salvat, Jablonski and Powell, *Comput. Phys. Commun.* 165, 157 (2005)),
    as tabulated by IAM-XED (Suchan and Janoš, github.com/blevine37/IAM-XED,
    MIT licence; the licence is shipped beside the data as
    ``molmovie/data/elsepa_3700kev.LICENSE``). Complex and relativistic: the
    phases η_A matter for heavy atoms. The table (θ ≤ 10°, H to Cf, Re and Im
    of F in cm, as IAM-XED ships it) is interpolated by a cubic spline in θ,
    Re and Im apart, as IAM-XED does.

``"mott-bethe"`` (any other energy)
    The first Born approximation through the Mott-Bethe formula from the
    X-ray form factors that :func:`molmovie.scattering.form_factors` uses
    (xraylib, Hubbell et al., *J. Phys. Chem. Ref. Data* 4, 471 (1975)),
    with the relativistic mass correction γ = 1 + E/(m c²):

    .. math::

        f_A(s) = \frac{2 \gamma}{a_0} \frac{Z_A - f^X_A(s)}{s^2}, \qquad \eta_A = 0,

    a real amplitude (Kirkland, *Advanced Computing in Electron Microscopy*,
    2nd ed., §5.4; Mott, *Proc. R. Soc. A* 127, 658 (1930); Bethe, *Ann. Phys.*
    397, 325 (1930)). It is the energy-general choice; this is a deliberate
    departure from a fitted parametrisation such as Kirkland's or Lobato's,
    which fit the same Born amplitudes of the same kind of Hartree-Fock atoms:
    the Mott-Bethe form needs no further table. At s → 0 the limit is
    below s = 0.3 1/Å is an even polynomial through the values at s = 0.3,
    0.5 and 0.75 1/Å (xraylib's Z − f^X loses its digits to cancellation there).

The two differ most on heavy atoms. At 3.7 MeV over s = 0.5 to 12 1/Å
(measured, ``docs/electrons.md``): |f| of S differs by at most 0.6 % (|f|² by
1.2 %) and its ELSEPA phase reaches 0.24 rad; I by 5.3 % (|f|² by 10 %) and
0.62 rad; C by 1.4 %, O by 0.3 %, H by 0.07 % (phases 0.12, 0.13, 0.02 rad).
On ΔI/I of a molecule of light atoms the difference is a small part of the
signal (cyclobutanone: 0.25 % of the curve's range).

The inelastic background (an option, off by default for electrons) is
Morse's, from the incoherent X-ray function S_A(s) of the same tables:

.. math::

    I^{\mathrm{inel}}_A(s) = \Big(\frac{2\gamma}{a_0}\Big)^2 \frac{S_A(s)}{s^4}

(Morse, *Phys. Rev.* 40, 1 (1932)); it diverges as s → 0, so it needs s > 0.

Units: s in 1/Å, E in keV, f in Å, intensities |f|² in Å² (per steradian).
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .._typing import Symbols
from .tables import atomic_numbers_for_scattering, check_q, form_factors, incoherent

__all__ = [
    "PROBES",
    "check_probe",
    "ELSEPA_KEV",
    "DEFAULT_ENERGY_KEV",
    "SOURCES",
    "check_energy",
    "lorentz_factor",
    "wavenumber",
    "electron_amplitudes",
    "electron_inelastic",
    "amplitude_source",
    "modified_intensity",
]

#: Kinetic energy of the ELSEPA tables shipped (SLAC MeV-UED), keV.
ELSEPA_KEV = 3700.0
#: The default beam energy of the electron probe, keV.
DEFAULT_ENERGY_KEV = ELSEPA_KEV
#: The amplitude sources :func:`electron_amplitudes` knows ("auto" picks by the energy).
SOURCES = ("auto", "elsepa", "mott-bethe")

# CODATA 2018.
_MC2_KEV = 510.99895000  # electron rest energy
_HBARC_KEV_ANGSTROM = 1.973269804  # ħc
_BOHR_ANGSTROM = 0.529177210903  # a0
_CM_TO_ANGSTROM = 1e8

#: Beam energies accepted, keV: from a slow-electron 1 keV to 100 GeV.
_ENERGY_RANGE = (1.0, 1e8)
# Largest tabulated angle kept of the ELSEPA tables, degrees (s ≈ 369 1/Å at 3.7 MeV).
_ELSEPA_THETA_MAX = 10.0
# Below this s (1/Å) xraylib's Z - f^X loses its digits to cancellation (for H: 5 % wrong at s = 0.05), and the
# Mott-Bethe amplitude is the even polynomial c0 + c2 s² + c4 s⁴ through its values at _S_FIT instead.
_S_SMALL = 0.3
_S_FIT = (0.3, 0.5, 0.75)


#: What scattered: X-rays (Eq. (1), form factors) or electrons (complex amplitudes at a beam energy).
PROBES = ("xray", "electron")


def check_probe(probe: object, energy_kev: object = None) -> tuple[str, float | None]:
    """Validate a probe and its beam energy: ``(probe, energy_kev)``, the energy None for X-rays, 3700 keV by default for electrons.

    Raises
    ------
    InputError
        For an unknown probe, an energy given with X-rays, or a bad energy.
    """
    if probe not in PROBES:
        raise InputError(f"The 'probe' parameter must be one of {', '.join(PROBES)}; got {probe!r}")
    if probe == "xray":
        if energy_kev is not None:
            raise InputError(
                f"The 'energy_kev' parameter is the electron beam's energy; the X-ray model (Eq. (1)) takes none; got {energy_kev!r}"
            )
        return "xray", None
    return "electron", DEFAULT_ENERGY_KEV if energy_kev is None else check_energy(energy_kev)


def check_energy(energy_kev: object, name: str = "energy_kev") -> float:
    """Validate a beam kinetic energy in keV (finite, 1 keV to 1e8 keV) and return it as a float."""
    try:
        value = float(energy_kev)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = float("nan")
    lo, hi = _ENERGY_RANGE
    if isinstance(energy_kev, (bool, np.bool_)) or not (math.isfinite(value) and lo <= value <= hi):
        raise InputError(f"The '{name}' parameter must be a kinetic energy from {lo:g} to {hi:g} keV; got {energy_kev!r}")
    return value


def lorentz_factor(energy_kev: float) -> float:
    """γ = 1 + E/(m c²) of an electron of kinetic energy E (keV)."""
    return 1.0 + check_energy(energy_kev) / _MC2_KEV


def wavenumber(energy_kev: float) -> float:
    r"""k = 2π/λ of an electron of kinetic energy E, 1/Å, relativistic: :math:`\hbar c k = \sqrt{E (E + 2 m c^2)}`.

    At 3700 keV, k ≈ 2118 1/Å (λ ≈ 0.00297 Å); s = 2k sin(θ/2).
    """
    e = check_energy(energy_kev)
    return math.sqrt(e * (e + 2.0 * _MC2_KEV)) / _HBARC_KEV_ANGSTROM


def amplitude_source(energy_kev: float, source: str = "auto") -> str:
    """The amplitude source used at this energy: ``"elsepa"`` at 3700 keV, else ``"mott-bethe"`` (for ``"auto"``)."""
    if source not in SOURCES:
        raise InputError(f"The 'source' parameter must be one of {', '.join(SOURCES)}; got {source!r}")
    energy = check_energy(energy_kev)
    if source == "auto":
        return "elsepa" if energy == ELSEPA_KEV else "mott-bethe"
    if source == "elsepa" and energy != ELSEPA_KEV:
        raise InputError(f"The ELSEPA tables shipped are at {ELSEPA_KEV:g} keV only; got energy_kev={energy:g}")
    return source


def _check_s(s: ArrayLike, energy_kev: float, *, positive: bool = False) -> np.ndarray:
    sa = check_q(s, "s")
    k = wavenumber(energy_kev)
    if sa.max() > 2.0 * k:
        raise InputError(
            f"The 's' parameter must be <= 2k = {2.0 * k:.6g} 1/Å (backscattering) at {energy_kev:g} keV; got {sa.max():g}"
        )
    if positive and sa.min() <= 0.0:
        raise InputError("The 's' parameter must be > 0 with the inelastic electron background (it diverges as 1/s² at s = 0)")
    return sa


@lru_cache(maxsize=1)
def _elsepa_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(θ in degrees (T,), Re F (98, T), Im F (98, T)) in cm, for Z = 1..98."""
    with resources.files("molmovie").joinpath("data/elsepa_3700kev.npz").open("rb") as fh, np.load(fh) as data:
        return data["theta_deg"], data["re_cm"], data["im_cm"]


@lru_cache(maxsize=512)
def _elsepa_cached(z: int, s_bytes: bytes) -> np.ndarray:
    from scipy.interpolate import CubicSpline

    s = np.frombuffer(s_bytes, dtype=np.float64)
    theta, re, im = _elsepa_table()
    k = wavenumber(ELSEPA_KEV)
    angle = np.degrees(2.0 * np.arcsin(s / (2.0 * k)))
    if angle.max() > theta[-1]:
        s_max = 2.0 * k * math.sin(math.radians(theta[-1]) / 2.0)
        raise InputError(
            f"The ELSEPA tables shipped end at θ = {theta[-1]:g}° (s = {s_max:.4g} 1/Å at {ELSEPA_KEV:g} keV); got s = {s.max():g}"
        )
    f = (CubicSpline(theta, re[z - 1])(angle) + 1j * CubicSpline(theta, im[z - 1])(angle)) * _CM_TO_ANGSTROM
    f.setflags(write=False)
    return f


def _mott_bethe_reduced(symbols: Symbols, s: np.ndarray) -> np.ndarray:
    """(Z - f^X(s))/s² per atom (n_atoms, n_s), 1/Å⁻² (Å²), with its s → 0 limit below _S_SMALL."""
    z = atomic_numbers_for_scattering(symbols).astype(float)[:, None]
    small = s < _S_SMALL
    safe = np.where(small, 1.0, s)
    out = (z - form_factors(symbols, safe)) / (safe * safe)
    if small.any():
        x = np.asarray(_S_FIT)
        g = (z - form_factors(symbols, x)) / (x * x)  # (n_atoms, 3)
        basis = np.stack([np.ones_like(x), x * x, x**4], axis=1)  # g = basis @ c
        c = np.linalg.solve(basis, g.T)  # (3, n_atoms)
        t = s[small] ** 2
        out[:, small] = (c[0][:, None] + c[1][:, None] * t + c[2][:, None] * t * t).reshape(len(z), -1)
    return out


def electron_amplitudes(
    symbols: Symbols, s: ArrayLike, energy_kev: float = DEFAULT_ENERGY_KEV, *, source: str = "auto"
) -> np.ndarray:
    r"""Complex elastic electron scattering amplitudes f_A(s) = |f_A| e^{iη_A} of each atom, Å.

    .. math::

        \frac{d\sigma_A}{d\Omega} = |f_A(s)|^2, \qquad s = 2k \sin(\theta/2)

    ELSEPA at 3700 keV, the Mott-Bethe formula elsewhere (``source="auto"``;
    see the module docstring for both and their difference).

    Parameters
    ----------
    symbols : sequence of str, length n_atoms
    s : array_like, shape (n_s,), 1/Angstrom, 0 <= s <= 2k
    energy_kev : float, default 3700
        Kinetic energy of the beam, keV.
    source : {"auto", "elsepa", "mott-bethe"}

    Returns
    -------
    ndarray, complex128, shape (n_atoms, n_s), Angstrom
        (The imaginary part is zero for ``"mott-bethe"``.)

    Raises
    ------
    InputError
        For an unknown element, a bad s grid or energy, or ELSEPA away from 3700 keV.
    """
    used = amplitude_source(energy_kev, source)
    energy = check_energy(energy_kev)
    sa = _check_s(s, energy)
    if used == "elsepa":
        key = sa.tobytes()
        return np.stack([_elsepa_cached(int(z), key) for z in atomic_numbers_for_scattering(symbols)])
    reduced = _mott_bethe_reduced(symbols, sa)
    return (2.0 * lorentz_factor(energy) / _BOHR_ANGSTROM) * reduced + 0j


def electron_inelastic(symbols: Symbols, s: ArrayLike, energy_kev: float = DEFAULT_ENERGY_KEV) -> np.ndarray:
    r"""Morse's inelastic electron background of each atom, (2γ/a₀)² S_A(s)/s⁴, Å².

    Parameters
    ----------
    symbols : sequence of str, length n_atoms
    s : array_like, shape (n_s,), 1/Angstrom, > 0
    energy_kev : float, default 3700

    Returns
    -------
    ndarray, shape (n_atoms, n_s), Angstrom²
    """
    energy = check_energy(energy_kev)
    sa = _check_s(s, energy, positive=True)
    scale = (2.0 * lorentz_factor(energy) / _BOHR_ANGSTROM) ** 2
    return scale * incoherent(symbols, sa) / sa**4


def modified_intensity(I: ArrayLike, I_at: ArrayLike, s: ArrayLike) -> np.ndarray:
    r"""The modified scattering intensity sM(s) = s · I_mol(s) / I_at(s), I_mol = I − I_at.

    .. math::

        sM(s) = s \, \frac{I(s) - I_\mathrm{at}(s)}{I_\mathrm{at}(s)}

    For a difference between two patterns, ΔsM = sM(I) − sM(I_ref) =
    s (I − I_ref)/I_at (pass ``I - I_ref + I_at``, or subtract two sM).

    Parameters
    ----------
    I : array_like, shape (..., n_s)
    I_at : array_like, shape (n_s,) or broadcastable, > 0
        The atomic part Σ|f_A|² (+ the inelastic background when it is in I):
        :func:`molmovie.scattering.atomic_intensity`.
    s : array_like, shape (n_s,), 1/Angstrom

    Returns
    -------
    ndarray, 1/Angstrom
    """
    I = np.asarray(I, dtype=float)
    at = np.asarray(I_at, dtype=float)
    sa = np.asarray(s, dtype=float)
    if np.any(at <= 0):
        raise InputError(f"The 'I_at' parameter must be > 0 everywhere; got {np.min(at):g}")
    return sa * (I - at) / at
