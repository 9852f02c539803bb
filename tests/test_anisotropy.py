"""The Legendre components of an aligned ensemble against a brute-force orientation average."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import eval_legendre

from molmovie._errors import InputError
from molmovie.scattering import intensity_from_distances
from molmovie.scattering.anisotropy import axis_moments, file_projection, legendre_intensity
from molmovie.scattering.tables import form_factors


def _brute_force(R, q, photons, transition, orders, n=96):
    """S_l(q) of two I atoms at distance R whose axis is distributed ∝ cos^2n / sin^2n about z, by quadrature.

    For every q direction (angle θ_q to z) the pattern is averaged over a (cos θ, φ) grid of axis directions
    with the distribution's weight, then projected on P_l(cos θ_q): nothing of the analytic route is used.
    """
    f = form_factors(("I", "I"), q)[0]
    x, wx = np.polynomial.legendre.leggauss(n)  # axis: cos θ
    phi = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)
    rho = x ** (2 * photons) if transition == "parallel" else (1 - x**2) ** photons
    wts = (wx * rho)[:, None] * np.ones_like(phi)[None, :]
    wts /= wts.sum()
    axis = np.stack([np.sqrt(1 - x**2)[:, None] * np.cos(phi), np.sqrt(1 - x**2)[:, None] * np.sin(phi), x[:, None] + 0 * phi])
    u, wu = np.polynomial.legendre.leggauss(n)  # q direction: cos θ_q, in the x-z plane (the ensemble is symmetric about z)
    qhat = np.stack([np.sqrt(1 - u**2), 0 * u, u])  # (3, n)
    dot = np.einsum("kn,kab->nab", qhat, axis)  # (n_q dirs, n, 2n)
    out = np.zeros((len(orders), q.size))
    for k, qk in enumerate(q):
        pat = 2 * f[k] ** 2 + 2 * f[k] ** 2 * np.einsum("nab,ab->n", np.cos(qk * R * dot), wts)
        for i, l in enumerate(orders):
            out[i, k] = (2 * l + 1) / 2 * np.sum(wu * pat * eval_legendre(l, u))
    return out


@pytest.mark.parametrize(
    ("photons", "transition"), [(1, "parallel"), (1, "perpendicular"), (2, "parallel"), (3, "perpendicular")]
)
def test_two_atoms_match_a_brute_force_orientation_average(photons, transition):
    q = np.linspace(0.5, 4.0, 8)
    orders = (0, 2, 4, 6)
    R = 4.3
    analytic = legendre_intensity(
        ("I", "I"), [R], q, orders=orders, moments=axis_moments(photons, transition, orders), inelastic=False
    )
    brute = _brute_force(R, q, photons, transition, orders)
    scale = np.abs(brute[0]).max()
    np.testing.assert_allclose(analytic, brute, atol=1e-9 * scale, rtol=0)
    # beyond 2n the moments vanish, and so does the component
    for i, l in enumerate(orders):
        if l > 2 * photons:
            assert np.abs(analytic[i]).max() < 1e-12 * scale


def test_moments_exact():
    np.testing.assert_allclose(axis_moments(1, "parallel", (0, 2, 4)), [1, 2 / 5, 0], atol=1e-15)
    np.testing.assert_allclose(axis_moments(1, "perpendicular", (0, 2, 4)), [1, -1 / 5, 0], atol=1e-15)
    # cos^4: <cos^2> = 5/7, so a_2 = (3·5/7 − 1)/2 = 4/7
    np.testing.assert_allclose(axis_moments(2, "parallel", (2,)), [4 / 7], atol=1e-15)
    np.testing.assert_allclose(axis_moments(0, "parallel", (0, 2, 4)), [1, 0, 0], atol=1e-15)


def test_isotropic_component_is_equation_1():
    q = np.linspace(0.3, 5.0, 40)
    symbols = ("C", "S", "S")
    R = np.array([[1.56, 1.57, 3.1], [1.7, 1.5, 3.0]])
    S = legendre_intensity(symbols, R, q, orders=(0, 2), moments=[1.0, 0.4])
    np.testing.assert_allclose(S[:, 0], intensity_from_distances(symbols, R, q), rtol=1e-12)


def test_per_pair_moments_scale_each_pair():
    q = np.linspace(0.5, 3.0, 10)
    a = np.array([[1.0, 1.0, 1.0], [0.4, 0.0, 0.4]])
    S = legendre_intensity(("C", "S", "S"), [1.56, 1.56, 3.12], q, orders=(0, 2), moments=a)
    S1 = legendre_intensity(("C", "S", "S"), [1.56, 1.56, 3.12], q, orders=(0, 2), moments=[1.0, 0.4])
    S0 = legendre_intensity(("C", "S", "S"), [1.56, 1.56, 3.12], q, orders=(0, 2), moments=[1.0, 0.0])
    assert not np.allclose(S[1], S1[1])
    assert np.abs(S0[1]).max() == 0


def test_file_projection_cos_variable_is_orthonormal_on_the_full_sphere():
    q = np.array([1e-6, 1.0])
    M = file_projection(q, model_orders=(0, 2, 4), file_orders=(0, 2, 4), k0=1e6, variable="cos", n_theta=4000)
    # over θ in [0, π/2] the even P_l(cos θ) are orthogonal: x_m = S_m / sqrt((2m+1)/2)
    expect = np.diag([1 / np.sqrt(0.5), 1 / np.sqrt(2.5), 1 / np.sqrt(4.5)])
    np.testing.assert_allclose(M[0], expect, atol=2e-3)


def test_file_projection_of_an_isotropic_pattern_has_no_anisotropy():
    M = file_projection(np.linspace(1, 3.5, 5), model_orders=(0, 2), file_orders=(0, 2, 4, 6))
    # a constant in θ is √2 · (orthonormal P_0): x = (√2, 0, 0, 0) for S_0 = 1
    np.testing.assert_allclose(M[:, :, 0], np.tile([np.sqrt(2), 0, 0, 0], (5, 1)), atol=1e-10)
    assert np.abs(M[:, 1:, 1]).max() > 0.1  # P_2(cos θ) is not P_2 of the angle: it leaks into every order


def test_bad_input():
    with pytest.raises(InputError, match="photons"):
        axis_moments(-1)
    with pytest.raises(InputError, match="transition"):
        axis_moments(1, "diagonal")
    with pytest.raises(InputError, match="orders"):
        legendre_intensity(("I", "I"), [2.7], [1.0], orders=(0, 1))
    with pytest.raises(InputError, match="a_0 = 1"):
        legendre_intensity(("I", "I"), [2.7], [1.0], orders=(0, 2), moments=[0.5, 0.2])


def test_rotational_dephasing_against_rotating_vectors():
    """G_2(t) against axes turned by random thermal angular velocities (3D, the component along the axis dropped)."""
    from molmovie.scattering.anisotropy import rotational_dephasing

    T, inertia = 300.0, 451.0  # I2: μ r_e² = 63.45 u × (2.666 Å)²
    t = np.array([0.0, 300.0, 800.0, 1500.0, 3000.0, 20000.0])
    G = rotational_dephasing(t, (0, 2, 4), temperature=T, inertia=inertia)
    rng = np.random.default_rng(1)
    n = 200_000
    axis = rng.standard_normal((n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    sigma = np.sqrt(8.617333262e-5 * T / (1.66053906660e-27 * 1e10 / 1.602176634e-19) / inertia)
    omega = sigma * rng.standard_normal((n, 3))
    omega -= (omega * axis).sum(axis=1, keepdims=True) * axis  # a linear rotor has no spin about its axis
    speed = np.linalg.norm(omega, axis=1)
    for k, tk in enumerate(t):
        cos = np.cos(speed * tk)  # the axis turns by |ω| t in the plane ⟂ ω
        mc = np.mean(eval_legendre(2, cos))
        assert G[1, k] == pytest.approx(mc, abs=5e-3)
    np.testing.assert_allclose(G[0], 1.0, atol=1e-9)
    assert G[1, 0] == pytest.approx(1.0, abs=1e-9) and G[1, -1] == pytest.approx(0.25, abs=0.01)
    g50 = rotational_dephasing([50.0], (2,), temperature=T, inertia=inertia)[0, 0]
    assert 1 - g50 == pytest.approx(3 * sigma**2 * 50.0**2, rel=0.01)  # 1 − 3σ²t² at short times


def test_file_projection_pump_axis_y_is_the_other_detector_axis():
    """ε along y: a pattern P_2(cos θ_qε) read against the angle α to x. Checked by sampling the detector
    ring directly: q̂ = (cos θ_B cos φ, cos θ_B sin φ, sin θ_B), α = angle to x, θ_qε = angle to y."""
    q, k0 = 2.0, 4.5287
    M = file_projection([q], model_orders=(0, 2), file_orders=(0, 2, 4, 6), pump_axis="y", n_theta=400)[0]
    tb = np.arcsin(q / (2 * k0))
    phi = np.linspace(0, np.pi / 2, 200001)
    alpha = np.arccos(np.cos(tb) * np.cos(phi))
    pattern = eval_legendre(2, np.cos(tb) * np.sin(phi))
    grid = np.linspace(tb, np.pi / 2, 400)
    on_grid = np.interp(grid, alpha, pattern)  # alpha rises from θ_B to π/2 with φ
    A = np.stack([np.sqrt((2 * m + 1) / 2) * eval_legendre(m, grid) for m in (0, 2, 4, 6)], axis=1)
    direct = np.linalg.lstsq(A, on_grid, rcond=None)[0]
    np.testing.assert_allclose(M[:, 1], direct, atol=1e-4)
