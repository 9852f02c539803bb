"""Channels from S_0 and S_2: two dissociation channels of different photon order, recovered jointly, not from S_0."""

from __future__ import annotations

import numpy as np
import pytest

from molmovie._errors import InputError
from molmovie.fitting import fit_channels, select_nuisance
from molmovie.measurement import LegendreComponent, Measurement, irf_operator
from molmovie.scattering.anisotropy import axis_moments, legendre_intensity, rotational_dephasing
from molmovie.trajectories import Ensemble

R0 = 2.666
SPEEDS = np.linspace(0.004, 0.040, 19)  # relative speeds of the basis, Å/fs
TIME = np.arange(0.0, 1601.0, 10.0)
Q = np.linspace(1.0, 3.5, 36)
DELAYS = np.arange(-100.0, 1301.0, 25.0)


def _diatomic(R: np.ndarray, dissociated: bool, prefix: str) -> Ensemble:
    """An I2 ensemble whose bond lengths over TIME are the rows of R."""
    pos = np.zeros((R.shape[0], TIME.size, 2, 3))
    pos[:, :, 1, 2] = R
    m = R.shape[0]
    return Ensemble(
        molecule="I2",
        symbols=("I", "I"),
        time=TIME,
        positions=pos,
        length=np.full(m, TIME.size),
        dissociated=np.full(m, dissociated),
        source=[f"{prefix}{k}" for k in range(m)],
    )


def _basis() -> Ensemble:
    """I2 flying apart at constant relative speeds from r_e."""
    return _diatomic(R0 + SPEEDS[:, None] * TIME[None, :], True, "v")


def _measurement(channels, *, gamma=0.08, t0=30.0, irf=60.0, noise=2e-4, seed=0, temperature=None) -> Measurement:
    """ΔS_0, ΔS_2 of channels [(speed, photons, transition, population)], straight from legendre_intensity."""
    I_gs = legendre_intensity(("I", "I"), [[R0]], Q, orders=(0,))[0, 0]
    S = np.zeros((2, TIME.size, Q.size))
    G = np.ones(TIME.size)
    if temperature is not None:  # the anti-aligned ground state left behind turns thermally (I = μ r_e²)
        G = rotational_dephasing(TIME, (2,), temperature=temperature, inertia=126.904 / 2 * R0**2)[0]
    for v, n, kind, pop in channels:
        a = axis_moments(n, kind, (0, 2))
        R = (R0 + v * TIME)[:, None]
        now = legendre_intensity(("I", "I"), R, Q, orders=(0, 2), moments=a)  # (T, 2, Q)
        start = legendre_intensity(("I", "I"), [[R0]], Q, orders=(0, 2), moments=a)[0]
        S[0] += pop * (now[:, 0] - I_gs) / I_gs
        S[1] += pop * (now[:, 1] - G[:, None] * start[1]) / I_gs  # the aligned hole cancels the aligned start
    K = irf_operator(TIME, DELAYS, t0=t0, irf_fs=irf)
    clean = gamma * np.einsum("dt,ltq->ldq", K, S)
    rng = np.random.default_rng(seed)
    noisy = clean + noise * rng.standard_normal(clean.shape)
    sigma = np.full(clean[0].shape, noise)
    return Measurement(
        Q, DELAYS, noisy[0], sigma, ("I", "I"), "I2", {"made_by": "test"}, components=(LegendreComponent(2, noisy[1], sigma),)
    )


TRUTH = [(0.012, 1, "perpendicular", 0.6), (0.028, 2, "parallel", 0.4)]
SWAPPED = [(0.012, 2, "parallel", 0.6), (0.028, 1, "perpendicular", 0.4)]
OPTIONS = dict(alignments="1par,2par,1perp", t0_range=(0.0, 60.0), irf_range=(30.0, 120.0), grid=(4, 3), bootstrap=10)


def _by_name(fit):
    return {c.name: c for c in fit.channels}


@pytest.mark.parametrize("world", [TRUTH, SWAPPED])
def test_two_channels_recovered_from_s0_and_s2(world):
    basis = _basis()
    fit = fit_channels(_measurement(world), basis, orders=(0, 2), **OPTIONS)
    ch = _by_name(fit)
    for v, n, kind, pop in world:
        c = ch[f"{n}{'par' if kind == 'parallel' else 'perp'}"]
        assert abs(c.speed - v) < 0.10 * v, (c.name, c.speed, v)
        assert abs(c.population - pop) < 0.20 * pop, (c.name, c.population, pop)
    assert ch["1par"].population < 0.1  # the alignment no channel had
    assert abs(fit.gamma - 0.08) < 0.1 * 0.08
    assert abs(fit.t0 - 30.0) < 10.0
    assert fit.reduced_chi2 < 1.2


def test_s0_alone_cannot_tell_the_channels_apart():
    """The truth and its swap (photon orders exchanged between the two speeds) have the same ΔS_0 to rounding,
    so an S_0-only fit gives one answer for both worlds: wrong by > 2x in speed for one of them. ΔS_2 differs."""
    basis = _basis()
    a, b = _measurement(TRUTH), _measurement(SWAPPED)
    np.testing.assert_allclose(a.dS, b.dS, atol=1e-15)
    assert np.sqrt(np.mean((a.components[0].dS - b.components[0].dS) ** 2)) > 10 * 2e-4
    fa = fit_channels(a, basis, orders=(0,), **OPTIONS)
    fb = fit_channels(b, basis, orders=(0,), **OPTIONS)
    for ca, cb in zip(fa.channels, fb.channels):
        assert ca.population == pytest.approx(cb.population, abs=1e-9)
    # the 1-photon perpendicular channel flies at 0.012 Å/fs in one world and 0.028 in the other: one answer misses one
    speeds = {"truth": 0.012, "swapped": 0.028}
    got = _by_name(fa)["1perp"]
    pop_truth, pop_swap = 0.6, 0.4
    misses = [
        abs(got.speed - speeds["truth"]) > 0.10 * speeds["truth"] or abs(got.population - pop_truth) > 0.2 * pop_truth,
        abs(got.speed - speeds["swapped"]) > 0.10 * speeds["swapped"] or abs(got.population - pop_swap) > 0.2 * pop_swap,
    ]
    assert any(misses)
    # while the S_0 fit itself is as good as the joint one on S_0: the data, not the fit, lack the information
    joint = fit_channels(a, basis, orders=(0, 2), **OPTIONS)
    assert fa.chi2_by_order[0] <= joint.chi2_by_order[0] + 3 * np.sqrt(2 * fa.n_data)


def test_nuisance_offset_found_and_judged():
    basis = _basis()
    meas = _measurement(TRUTH)
    step = np.where(DELAYS > 30.0, 1.0, 0.0)[:, None] * 3e-3 * np.sin(2 * Q)[None, :]  # a step the basis cannot make
    meas2 = Measurement(
        meas.q, meas.delays, meas.dS + step, meas.sigma, meas.symbols, meas.molecule, {}, components=meas.components
    )
    opts = dict(OPTIONS, bootstrap=0, t0_range=(30.0, 30.0), irf_range=(60.0, 60.0))
    fit, path = select_nuisance(meas2, basis, candidates=("step", "background", "leak"), orders=(0, 2), **opts)
    assert "step" in fit.nuisance or "background" in fit.nuisance
    plain = fit_channels(meas2, basis, orders=(0, 2), **opts)
    assert fit.bic < plain.bic and fit.chi2 < plain.chi2
    clean, _ = select_nuisance(meas, basis, candidates=("step", "background"), orders=(0, 2), **opts)
    assert clean.nuisance == ()  # no term is kept where none is needed


def test_bad_input():
    basis = _basis()
    meas = _measurement(TRUTH)
    with pytest.raises(InputError, match="nuisance"):
        fit_channels(meas, basis, nuisance=("heat",))
    with pytest.raises(InputError, match="alignment"):
        fit_channels(meas, basis, alignments="1diag")
    with pytest.raises(InputError, match="Legendre order 4"):
        fit_channels(meas, basis, orders=(0, 4))


def test_rotational_dephasing_of_the_hole_is_fitted_and_its_temperature_found():
    basis = _basis()
    meas = _measurement(TRUTH, temperature=300.0)
    opts = dict(OPTIONS, bootstrap=0, t0_range=(30.0, 30.0), irf_range=(60.0, 60.0))
    frozen = fit_channels(meas, basis, orders=(0, 2), **opts)
    turning = fit_channels(meas, basis, orders=(0, 2), rotation=(150.0, 300.0, 600.0), **opts)
    assert turning.rotation_temperature == 300.0
    assert turning.reduced_chi2 < 1.1 < frozen.reduced_chi2
    ch = _by_name(turning)
    assert abs(ch["1perp"].population - 0.6) < 0.12 and abs(ch["2par"].speed - 0.028) < 0.0028


@pytest.mark.parametrize("bounded", [False, True])
def test_the_solver_eliminating_free_nuisance_equals_one_bounded_least_squares_over_all_columns(bounded):
    """The nuisance coefficients are projected out before the bounded solve: the minimum and the answer
    equal those of one bounded least squares (BVLS) over the basis and nuisance columns together, with the
    nuisance free, the Franck-Condon rows and the hole's equality row as in the solver."""
    from scipy.optimize import lsq_linear

    from molmovie.fitting._channels_system import _Solver
    from molmovie.fitting._ensemble_system import EQUALITY_WEIGHT, _Reduced

    rng = np.random.default_rng(3)
    M, T, T_d, FQ, n_nu = 7, 30, 20, 12, 5
    B = rng.normal(size=(M, T, FQ))
    K = np.abs(rng.normal(size=(T_d, T)))
    inv_sigma = rng.uniform(0.5, 2.0, (T_d, FQ))
    nuis = rng.normal(size=(n_nu, T_d * FQ))
    ground = rng.normal(size=(2, M))
    eq = np.r_[np.ones(M - 2), -np.ones(2)] if bounded else None
    upper = np.r_[np.full(M - 2, np.inf), np.full(2, 0.3)] if bounded else None
    red = _Reduced(B, np.ones(FQ), 1e-12)
    solver = _Solver(red, K, inv_sigma, nuis, ground, eq, upper)
    d = rng.normal(size=T_d * FQ)
    x, chi2 = solver.solve(d)

    cols = (np.einsum("dt,mtf->mdf", K, B) * inv_sigma).reshape(M, -1)  # the weighted basis columns
    A = np.hstack([np.vstack([cols, nuis]).T, np.zeros((T_d * FQ, 0))])
    rows = [np.hstack([ground, np.zeros((2, n_nu))])]
    if bounded:
        omega = EQUALITY_WEIGHT * np.linalg.norm(np.vstack([cols, nuis]), axis=1).max()
        rows.append(omega * np.r_[eq, np.zeros(n_nu)][None, :])
    full = np.vstack([A, *rows])
    lo = np.r_[np.zeros(M), np.full(n_nu, -np.inf)]
    hi = np.r_[upper if bounded else np.full(M, np.inf), np.full(n_nu, np.inf)]
    ref = lsq_linear(full, np.r_[d, np.zeros(full.shape[0] - d.size)], bounds=(lo, hi), method="bvls", tol=1e-14)
    u = x[M : M + n_nu] - x[M + n_nu :]
    np.testing.assert_allclose(np.r_[x[:M], u], ref.x, atol=1e-8 * np.abs(ref.x).max())
    chi2_ref = float(np.sum((A @ ref.x - d) ** 2))
    np.testing.assert_allclose(chi2, chi2_ref, rtol=1e-8)
    assert np.all(x[:M] >= 0) and (not bounded or np.all(x[M - 2 : M] <= 0.3 + 1e-12))


def _ion_family(periods, amplitudes, r_ion=2.58) -> Ensemble:
    """Bound cations vibrating about r_ion with each period and amplitude: R = r_ion + A cos(2πt/P)."""
    return _diatomic(np.array([r_ion + a * np.cos(2 * np.pi * TIME / p) for p in periods for a in amplitudes]), False, "ion")


ION = (2.58, 139.0, R0 - 2.58)  # the cation's bond (Å), period (fs), and amplitude from the neutral's bond


def _ion_world(q: np.ndarray) -> Measurement:
    """Neutral dissociation (0.028 Å/fs, 1perp, 60 %) and a bound cation (1par, 40 %), ΔS_0 and ΔS_2 on ``q``, labelled Q."""
    r_ion, period, amp = ION
    I_gs = legendre_intensity(("I", "I"), [[R0]], q, orders=(0,))[0, 0]
    S = np.zeros((2, TIME.size, q.size))
    for R, n, kind, pop in [
        ((R0 + 0.028 * TIME)[:, None], 1, "perpendicular", 0.6),
        ((r_ion + amp * np.cos(2 * np.pi * TIME / period))[:, None], 1, "parallel", 0.4),
    ]:
        a = axis_moments(n, kind, (0, 2))
        now = legendre_intensity(("I", "I"), R, q, orders=(0, 2), moments=a)
        start = legendre_intensity(("I", "I"), [[R0]], q, orders=(0, 2), moments=a)[0]
        S[0] += pop * (now[:, 0] - I_gs) / I_gs
        S[1] += pop * (now[:, 1] - start[1]) / I_gs
    K = irf_operator(TIME, DELAYS, t0=30.0, irf_fs=60.0)
    clean = 0.08 * np.einsum("dt,ltq->ldq", K, S)
    noisy = clean + 2e-4 * np.random.default_rng(4).standard_normal(clean.shape)
    sigma = np.full(clean[0].shape, 2e-4)
    return Measurement(Q, DELAYS, noisy[0], sigma, ("I", "I"), "I2", {}, components=(LegendreComponent(2, noisy[1], sigma),))


def test_a_named_family_of_bound_ions_is_found_with_its_period_population_and_alignment():
    """A measurement of two channels: neutral dissociation (0.028 Å/fs, 1-photon perpendicular, 60 %) and a bound
    cation vibrating about 2.58 Å with a 139 fs period (1-photon parallel, 40 %), made straight from the Legendre
    intensities. Fitted with the dissociation basis plus an ion family of several periods and amplitudes, each
    channel comes back under its family and alignment: speed, period and populations; without the family the
    bound signal has nothing to go to and χ² is many times the noise's."""
    r_ion, period, amp = ION
    meas = _ion_world(Q)
    ions = _ion_family(periods=(120.0, 130.0, 139.0, 150.0, 160.0), amplitudes=(0.06, amp, 0.11))
    opts = dict(OPTIONS, alignments="1par,1perp", t0_range=(30.0, 30.0), irf_range=(60.0, 60.0), bootstrap=0)
    fit = fit_channels(meas, _basis(), orders=(0, 2), families={"I2+": ions}, **opts)
    ch = _by_name(fit)
    assert fit.families == ("basis", "I2+")
    assert abs(ch["basis:1perp"].speed - 0.028) < 0.1 * 0.028
    assert abs(ch["basis:1perp"].population - 0.6) < 0.2 * 0.6
    assert abs(ch["I2+:1par"].population - 0.4) < 0.2 * 0.4
    assert ch["I2+:1par"].dissociated == 0.0 and abs(ch["I2+:1par"].period_fs - period) < 0.03 * period
    assert ch["I2+:1perp"].population + ch["basis:1par"].population < 0.1  # what no channel had
    assert abs(fit.gamma - 0.08) < 0.1 * 0.08
    assert fit.reduced_chi2 < 1.2
    alone = fit_channels(meas, _basis(), orders=(0, 2), **opts)
    assert alone.reduced_chi2 > 5 * fit.reduced_chi2
    boot = _by_name(fit_channels(meas, _basis(), orders=(0, 2), families={"I2+": ions}, **{**opts, "bootstrap": 8}))
    ion = boot["I2+:1par"]
    assert 0 < ion.period_std < 3.0 and abs(ion.period_fs - period) < 0.03 * period
    assert np.isnan(boot["basis:1perp"].period_std)  # a dissociating channel has no period


def test_the_period_of_a_vibration_is_found_between_fourier_bins():
    from molmovie.fitting._channels import _period

    t = np.arange(0.0, 3500.0, 10.0)
    for period in (139.4, 155.5, 157.9, 260.0):
        got = _period(2.6 + 0.05 * np.cos(2 * np.pi * t / period + 0.3) + 1e-4 * t, t)
        assert abs(got - period) < 0.002 * period, (got, period)


def test_a_family_must_share_the_basis_atoms_and_frame_times():
    meas = _measurement(TRUTH)
    short = _ion_family((139.0,), (0.086,))
    short = Ensemble(
        molecule="I2",
        symbols=("I", "I"),
        time=TIME[:50],
        positions=short.positions[:, :50],
        length=np.full(1, 50),
        dissociated=np.zeros(1, bool),
        source=["s"],
    )
    with pytest.raises(InputError, match="other times than the basis"):
        fit_channels(meas, _basis(), families={"I2+": short})
    with pytest.raises(InputError, match="family name"):
        fit_channels(meas, _basis(), families={"basis": _ion_family((139.0,), (0.086,))})


def test_the_q_scale_search_walks_past_the_grid_to_the_minimum_and_stops_at_its_limit():
    from molmovie.fitting._channels_system import QSCALE_LIMIT, _best_scale

    calls = []

    def chi2(s):
        calls.append(s)
        return (s - 1.037) ** 2

    assert _best_scale((0.99, 1.0, 1.01), chi2) == pytest.approx(1.04)
    assert len(calls) == 3 + 4  # 1.02, 1.03, 1.04 beyond the grid, then 1.05, worse, and it stops
    assert _best_scale((0.99, 1.0, 1.01), lambda s: -s) == pytest.approx(1 + QSCALE_LIMIT)
    assert _best_scale((0.99, 1.0, 1.01), lambda s: abs(s - 1.0)) == 1.0


def test_without_the_qscale_term_q_is_not_scaled():
    """s = 1 exactly when "qscale" is not asked for, whatever the grid: the fit equals one on the unscaled basis."""
    meas = _measurement(TRUTH)
    opts = dict(OPTIONS, bootstrap=0, t0_range=(30.0, 30.0), irf_range=(60.0, 60.0))
    plain = fit_channels(meas, _basis(), orders=(0, 2), **opts)
    wide = fit_channels(meas, _basis(), orders=(0, 2), qscale_grid=(0.9, 0.95, 1.05), **opts)
    assert plain.qscale == wide.qscale == 1.0 and plain.chi2 == wide.chi2
    held = fit_channels(meas, _basis(), orders=(0, 2), nuisance=("qscale",), qscale_grid=(1.02,), **opts)
    assert held.qscale == 1.02
