r"""Anisotropic scattering: the Legendre components S_l(q) of an aligned ensemble, in the IAM.

A linearly polarised pump excites molecules whose transition dipole lies along
its polarisation ε, so the excited ensemble is aligned and its scattering
depends on the angle θ_q between q and ε. Written as a Legendre series,

.. math::

    S(\mathbf q) = \sum_{l\,\mathrm{even}} S_l(q)\, P_l(\cos\theta_q).

**The pair term.** In the independent atom model a molecule of fixed
orientation scatters Σ_A Σ_B f_A f_B cos(q·R_AB). With the plane-wave expansion
e^{iq·R} = Σ_l i^l (2l+1) j_l(qR) P_l(q̂·R̂) and an axis distribution
ρ(R̂) that is symmetric about ε (and under R̂ → −R̂), normalised to 1 over the
sphere, the addition theorem (Funk-Hecke) gives
∫ ρ(R̂) P_l(q̂·R̂) dR̂ = a_l P_l(cos θ_q), with a_l = ⟨P_l(R̂·ε)⟩_ρ the
Legendre moments of the distribution (a_0 = 1). Hence

.. math::

    S_l(q) = \delta_{l0} \Big[\sum_A f_A^2 + \sum_A S^\mathrm{inel}_A\Big]
        + (-1)^{l/2} (2l + 1)\, a_l \sum_A \sum_{B \ne A} f_A f_B\, j_l(q R_{AB}),

with j_l the spherical Bessel function (``scipy.special.spherical_jn``). The
sign (−1)^{l/2} is i^l for even l (odd l vanish for a distribution symmetric
under R̂ → −R̂); so for a parallel transition (a_2 > 0) the l = 2 component of
a pair is −5 a_2 j_2(qR): negative where j_2 > 0. For l = 0 this is Eq. (1) of
Asenov et al. (j_0(x) = sin x / x), which is tested. Lit.: Baskin and Zewail,
*ChemPhysChem* 6, 2261 (2005); Lorenz, Møller and Henriksen, *Phys. Rev. A* 81,
023422 (2010); Biasin et al., *J. Synchrotron Rad.* 25, 306 (2018).

**The axis distribution.** After an n-photon transition whose every step has
its dipole along the molecular axis (parallel, Σ←Σ) the excitation
probability of a molecule at angle θ to ε is cos^{2n}θ; with every step
perpendicular (Π←Σ) it is sin^{2n}θ (the weak-field, short-pulse limit:
no saturation, no rotation during the pump; Natan et al., arXiv:2011.06761).
:func:`axis_moments` gives a_l of either by Gauss-Legendre quadrature (exact:
the integrands are polynomials in cos θ); a fitted β_l set is any other a_l
with β_l = (2l + 1) a_l, in the photofragment convention
ρ ∝ 1 + Σ_l β_l P_l(cos θ).

**What is assumed for a molecule that is not linear.** Here R̂ is a pair's
direction, and the moments are those of the pair's axis; for a diatomic (or
any linear molecule, every pair along the axis) the pair axis is the
molecular axis, and the formula is exact. For a general molecule, a pair at
angle χ to the transition dipole has a_l(pair) = a_l(dipole) P_l(cos χ) (the
addition theorem again, for a distribution symmetric about the dipole), so the
caller scales the moments per pair; :func:`legendre_intensity` takes moments
per pair for that. The axis is taken as fixed after excitation (axial recoil
for dissociation, no rotation of a bound molecule during the delays used);
:func:`rotational_dephasing` gives the factor by which thermal rotation of
free linear rotors erodes a_l with time, for the bound molecules (the
ground-state molecules a pump leaves anti-aligned, and bound excited ones).

**The detector.** A flat detector sees q on the Ewald sphere: for a photon of
wavenumber k_0 = 2π/λ scattered at 2θ_B and detector azimuth φ (measured from
the pump polarisation, which lies in the detector plane for a co-propagating
pump), cos θ_q = cos θ_B cos φ with sin θ_B = q / 2k_0, so only
θ_q ≥ θ_B is seen at each q. The LCLS I2 file (``phil-trans-data.h5``, made by
``LegendreAnalysis.ipynb`` of github.com/mrware91/PhilTransA-TRXS-Limits,
commit 9d72609, k_0 = 4.5287 1/Å) rebins the detector onto (q, θ_q) with this
correction and the Thomson (X-ray polarisation) factor divided out, and then
fits, per q and delay, the orthonormal polynomials √((2l+1)/2) P_l(x),
l = 0, 2, 4, 6, evaluated at **x = θ_q itself** (radians, θ_B to π/2), not at
cos θ_q. Its components are therefore a q-dependent linear map of the S_l
above; :func:`file_projection` computes that map (least squares over the
θ_q range seen), so a model can be compared with the file on the file's own
terms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import eval_legendre, spherical_jn

from .._errors import InputError
from .._typing import Symbols
from .debye import atomic_intensity, scattering_factors
from .tables import check_q

__all__ = [
    "TRANSITIONS",
    "axis_moments",
    "legendre_intensity",
    "legendre_pair_terms",
    "file_projection",
    "rotational_dephasing",
    "I2_LCLS_K0",
]

#: Kinds of n-photon transition: the excitation probability ∝ cos^{2n}θ (parallel) or sin^{2n}θ (perpendicular).
TRANSITIONS = ("parallel", "perpendicular")
#: The X-ray wavenumber 2π/λ of the LCLS I2 run (1/Å, λ = 1.3874 Å, 8.94 keV), from its Legendre analysis.
I2_LCLS_K0 = 4.5287


def _orders(orders: Sequence[int] | ArrayLike) -> np.ndarray:
    try:
        arr = np.asarray(orders, dtype=float).ravel()
    except (TypeError, ValueError):
        raise InputError(f"The 'orders' parameter must be even whole numbers >= 0; got {orders!r}") from None
    if arr.size == 0 or np.any(arr < 0) or np.any(arr != np.round(arr)) or np.any(arr % 2 != 0):
        raise InputError(f"The 'orders' parameter must be even whole numbers >= 0; got {orders!r}")
    return arr.astype(np.int64)


def axis_moments(photons: int, transition: str = "parallel", orders: Sequence[int] = (0, 2, 4, 6)) -> np.ndarray:
    r"""Legendre moments a_l = ⟨P_l(cos θ)⟩ of the axes excited by an n-photon transition.

    .. math::

        a_l = \frac{\int_{-1}^{1} P_l(x)\, w(x)\, dx}{\int_{-1}^{1} w(x)\, dx},
        \qquad w(x) = x^{2n} \;(\text{parallel}), \quad (1 - x^2)^n \;(\text{perpendicular}),

    x = cos θ, θ the angle between the molecular axis and the pump
    polarisation. Examples: one photon, parallel: a_2 = 2/5 (β_2 = 2);
    perpendicular: a_2 = −1/5 (β_2 = −1). ``photons=0`` is the isotropic
    ensemble (a_l = δ_l0). Exact: Gauss-Legendre quadrature with enough nodes
    for the polynomial integrand.

    Parameters
    ----------
    photons : int
        n >= 0.
    transition : {"parallel", "perpendicular"}
    orders : sequence of even int

    Returns
    -------
    ndarray, shape (len(orders),)
    """
    if not isinstance(photons, (int, np.integer)) or isinstance(photons, bool) or photons < 0 or photons > 50:
        raise InputError(f"The 'photons' parameter must be a whole number from 0 to 50; got {photons!r}")
    if transition not in TRANSITIONS:
        raise InputError(f"The 'transition' parameter must be one of {', '.join(TRANSITIONS)}; got {transition!r}")
    ls = _orders(orders)
    n_nodes = int(photons) + int(ls.max()) // 2 + 2  # exact for degree 2n + l_max <= 2 n_nodes - 1
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    weight = x ** (2 * int(photons)) if transition == "parallel" else (1.0 - x**2) ** int(photons)
    norm = float(np.sum(w * weight))
    return np.array([float(np.sum(w * weight * eval_legendre(int(l), x))) / norm for l in ls])


def legendre_pair_terms(symbols: Symbols, distances: ArrayLike, q: ArrayLike, orders: Sequence[int]) -> np.ndarray:
    r"""Σ_{A≠B} f_A f_B j_l(q R_AB) per pair, for each order: the radial part of S_l.

    Parameters
    ----------
    symbols : sequence of str, length n
    distances : array_like, shape (..., P), Angstrom
        Pairs in ``numpy.triu_indices(n, 1)`` order.
    q : array_like, shape (Q,), 1/Angstrom
    orders : sequence of even int, length L

    Returns
    -------
    ndarray, shape (..., L, P, Q)
        2 f_A f_B j_l(q R_AB) for each pair (the factor 2: A-B and B-A).
    """
    qa = check_q(q)
    ls = _orders(orders)
    f = scattering_factors(symbols, qa)
    if np.iscomplexobj(f):
        raise InputError("legendre_pair_terms: X-rays only (real form factors)")
    n = f.shape[0]
    i, j = np.triu_indices(n, 1)
    R = np.asarray(distances, dtype=float)
    if R.shape[-1:] != (i.size,):
        raise InputError(f"The 'distances' parameter must end with {i.size} pairs for {n} atoms; got shape {R.shape}")
    if not np.all(np.isfinite(R)) or np.any(R < 0):
        raise InputError("The 'distances' parameter must be finite and >= 0")
    ff = 2.0 * f[i] * f[j]  # (P, Q)
    x = R[..., None] * qa  # (..., P, Q)
    out = np.stack([ff * spherical_jn(int(l), x) for l in ls], axis=-3)
    return out


def legendre_intensity(
    symbols: Symbols,
    distances: ArrayLike,
    q: ArrayLike,
    *,
    orders: Sequence[int] = (0, 2),
    moments: ArrayLike | None = None,
    inelastic: bool | None = None,
) -> np.ndarray:
    r"""The Legendre components S_l(q) of an aligned ensemble of geometries (X-rays, IAM).

    .. math::

        S_l(q) = \delta_{l0} I_\mathrm{at}(q)
            + (-1)^{l/2} (2l + 1) \sum_{A<B} a_l^{AB}\, 2 f_A f_B\, j_l(q R_{AB})

    (see the module docstring for the derivation, the sign and the sources).

    Parameters
    ----------
    symbols : sequence of str
    distances : array_like, shape (..., P), Angstrom
    q : array_like, shape (Q,), 1/Angstrom
    orders : sequence of even int, length L
    moments : array_like, shape (L,) or (L, P), optional
        a_l of the axis distribution (one per order, or per order and pair);
        default isotropic (a_0 = 1, others 0). a_0 must be 1 where l = 0 is asked.
    inelastic : bool, optional
        The Compton term in S_0 (default on, as Eq. (1)).

    Returns
    -------
    ndarray, shape (..., L, Q), electron units
    """
    ls = _orders(orders)
    qa = check_q(q)
    pairs = legendre_pair_terms(symbols, distances, qa, [int(v) for v in ls])  # (..., L, P, Q)
    P = pairs.shape[-2]
    if moments is None:
        a = np.broadcast_to((ls == 0).astype(float)[:, None], (ls.size, P))
    else:
        a = np.asarray(moments, dtype=float)
        if a.shape == (ls.size,):
            a = np.broadcast_to(a[:, None], (ls.size, P))
        if a.shape != (ls.size, P):
            raise InputError(f"The 'moments' parameter must have shape ({ls.size},) or ({ls.size}, {P}); got {a.shape}")
        if np.any(np.abs(a[ls == 0] - 1.0) > 1e-12):
            raise InputError("The 'moments' parameter must have a_0 = 1 (a normalised distribution)")
    sign = np.array([(-1.0) ** (int(l) // 2) * (2 * int(l) + 1) for l in ls])
    out = np.einsum("...lpq,lp->...lq", pairs, sign[:, None] * a)
    if np.any(ls == 0):
        out[..., ls == 0, :] += atomic_intensity(symbols, qa, inelastic=inelastic)
    return out


#: Boltzmann constant in eV/K (CODATA 2018) and 1 u Å²/fs² in eV.
_KB_EV = 8.617333262e-5
_U_A2_FS2_EV = 1.66053906660e-27 * 1e10 / 1.602176634e-19


def rotational_dephasing(
    time: ArrayLike, orders: Sequence[int], *, temperature: float, inertia: float, n_nodes: int = 4000
) -> np.ndarray:
    r"""How thermal rotation erodes the alignment of free linear rotors: G_l(t) = a_l(t) / a_l(0).

    A free linear rotor turns in the plane perpendicular to its angular
    momentum at a constant angular speed ω, so its axis makes the angle ωt with
    its start, and by the addition theorem an axially symmetric distribution's
    moments scale as a_l(t) = a_l(0) ⟨P_l(cos ωt)⟩. For a thermal ensemble the
    angular velocity, perpendicular to the axis, has two Maxwell components,
    so ω has the density (ω/σ²) e^{−ω²/2σ²}, σ² = k_B T / I (classical
    rotors; Gordon, *J. Chem. Phys.* 44, 1830 (1966)):

    .. math::

        G_l(t) = \int_0^\infty P_l(\cos \omega t)\, \frac{\omega}{\sigma^2}
            e^{-\omega^2 / 2\sigma^2}\, d\omega
          = \int_0^\infty P_l\big(\cos(\sigma t \sqrt{2u})\big)\, e^{-u}\, du .

    G_l(0) = 1; G_2 falls as 1 − 3σ²t² at first and tends to 1/4 (the rotation
    plane is kept). Quantum revivals (I2: ~ 450 ps) are far beyond a few ps.

    Parameters
    ----------
    time : array_like, fs
    orders : sequence of even int
    temperature : float, K (> 0)
    inertia : float, u Å² (> 0), e.g. μ r_e² for a diatomic
    n_nodes : int
        Points of the trapezoid rule in u on [0, 40].

    Returns
    -------
    ndarray, shape (L, T)
    """
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise InputError(f"The 'temperature' parameter must be > 0 K; got {temperature!r}")
    if not (isinstance(inertia, (int, float)) and math.isfinite(inertia) and inertia > 0):
        raise InputError(f"The 'inertia' parameter must be > 0 u Å²; got {inertia!r}")
    ls = _orders(orders)
    t = np.asarray(time, dtype=float)
    sigma = math.sqrt(_KB_EV * temperature / _U_A2_FS2_EV / inertia)  # rad/fs
    u = np.linspace(0.0, 40.0, int(n_nodes))
    w = np.exp(-u)
    w[[0, -1]] *= 0.5
    w /= w.sum()  # the trapezoid rule's weights, normalised: G_0 = 1 exactly
    x = np.cos(sigma * t[:, None] * np.sqrt(2 * u)[None, :])
    return np.stack([(eval_legendre(int(l), x) * w).sum(axis=1) for l in ls])


def file_projection(
    q: ArrayLike,
    *,
    model_orders: Sequence[int] = (0, 2, 4, 6, 8),
    file_orders: Sequence[int] = (0, 2, 4, 6),
    k0: float = I2_LCLS_K0,
    n_theta: int = 200,
    variable: str = "angle",
    pump_axis: str = "x",
) -> np.ndarray:
    r"""The linear map from S_l (coefficients of P_l(cos θ_q)) to a beamline file's Legendre components.

    At each q the file fits, by least squares over θ_q from θ_B = arcsin(q/2k_0)
    (the Ewald sphere's edge) to π/2, the functions √((2m+1)/2) P_m(u), m in
    ``file_orders``, with u = θ_q (``variable="angle"``, the LCLS I2 file:
    see the module docstring) or u = cos θ_q (``variable="cos"``, a textbook
    projection over the part of the sphere seen). A pattern
    Σ_l S_l P_l(cos θ_q) then gives the components x = M(q) S.

    Parameters
    ----------
    q : array_like, shape (Q,), 1/Angstrom; q < 2 k0
    model_orders : sequence of even int, length L
    file_orders : sequence of even int, length F
    k0 : float
        X-ray wavenumber 2π/λ, 1/Angstrom.
    n_theta : int
        Points of the uniform θ_q grid of each fit.
    variable : {"angle", "cos"}
    pump_axis : {"x", "y"}
        The pump polarisation along the axis the file's angle is measured from (``"x"``: the angle is
        θ_q itself), or along the perpendicular axis in the detector plane (``"y"``: a pixel at angle α
        to x, on the Ewald sphere, has cos θ_q = √(cos²θ_B − cos²α)).

    Returns
    -------
    ndarray, shape (Q, F, L)
    """
    qa = check_q(q)
    ml, fl = _orders(model_orders), _orders(file_orders)
    if not (isinstance(k0, (int, float)) and math.isfinite(k0) and k0 > 0) or np.any(qa >= 2 * k0):
        raise InputError(f"The 'k0' parameter must be > q_max / 2 = {qa.max() / 2:g} 1/Angstrom; got {k0!r}")
    if variable not in ("angle", "cos"):
        raise InputError(f"The 'variable' parameter must be 'angle' or 'cos'; got {variable!r}")
    if pump_axis not in ("x", "y"):
        raise InputError(f"The 'pump_axis' parameter must be 'x' or 'y'; got {pump_axis!r}")
    out = np.empty((qa.size, fl.size, ml.size))
    for k, qk in enumerate(qa):
        theta = np.linspace(math.asin(qk / (2 * k0)), math.pi / 2, int(n_theta))
        u = theta if variable == "angle" else np.cos(theta)
        A = np.stack([math.sqrt((2 * m + 1) / 2) * eval_legendre(int(m), u) for m in fl], axis=1)  # (n, F)
        if pump_axis == "x":
            c = np.cos(theta)
        else:
            c = np.sqrt(np.clip(math.cos(theta[0]) ** 2 - np.cos(theta) ** 2, 0.0, None))
        Y = np.stack([eval_legendre(int(l), c) for l in ml], axis=1)  # (n, L)
        out[k] = np.linalg.lstsq(A, Y, rcond=None)[0]
    return out
