"""The trajectory-basis fit of a measurement (method "ensemble"), on analytic I2-like ensembles."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from molmovie import InputError
from molmovie.datasets import Dataset
from molmovie.fitting import EnsembleFit, get_measurement_method
from molmovie.measurement import distance_distribution, simulate_measurement
from molmovie.scattering import SignalSpec

from _fit_fixtures import diatomic_ensemble

Q_SMALL = np.linspace(0.5, 6.0, 30)
DELAYS_SMALL = np.arange(-150.0, 801.0, 25.0)


@pytest.fixture(scope="module")
def small_basis():
    return diatomic_ensemble(12, seed=5)


def _noise_free(basis, weights, *, gamma=0.05, t0=40.0, irf=80.0):
    meas = simulate_measurement(basis, q=Q_SMALL, delays=DELAYS_SMALL, weights=weights, gamma=gamma, t0=t0, irf_fs=irf)
    return replace(meas, sigma=np.full(meas.dS.shape, 1e-5))  # noise-free: any σ weights the fit


def test_noise_free_measurement_from_the_basis_returns_its_own_weights(small_basis):
    """Uniform weights start from the ground state exactly, so the Franck-Condon rows (default) hold too."""
    meas = _noise_free(small_basis, None, t0=43.0)  # delays - t0 away from the frames' cell edges (nearest frame)
    fit = EnsembleFit(t0_range=(-60.0, 120.0), irf_range=(20.0, 200.0), bootstrap=0).fit(meas, small_basis)
    e, res = fit.result_.ensemble, fit.result_
    assert res.converged, res.message
    np.testing.assert_allclose(e.weights, np.full(12, 1 / 12), atol=2e-4)
    assert abs(e.gamma / 0.05 - 1) < 1e-3
    assert abs(e.t0 - 43.0) < 0.05 and abs(e.irf_fs - 80.0) < 0.1
    assert res.chi2 < 1e-2 * res.n_data
    # the derived distances follow the measurement model's convention exactly
    truth = meas.truth
    np.testing.assert_allclose(e.distance_mean, truth.distance_mean, atol=1e-3)
    np.testing.assert_allclose(e.dissociated_fraction, truth.dissociated_fraction, atol=1e-3)


def test_noise_free_sparse_weights_recovered_without_the_ground_state_rows(small_basis):
    w = np.zeros(12)
    w[[1, 4, 7, 10]] = [0.4, 0.3, 0.2, 0.1]
    meas = _noise_free(small_basis, w, gamma=0.08, t0=-20.0, irf=50.0)
    e = (
        EnsembleFit(t0_range=(-60.0, 120.0), irf_range=(20.0, 200.0), bootstrap=0, ground_state=0.0)
        .fit(meas, small_basis)
        .result_.ensemble
    )
    np.testing.assert_allclose(e.weights, w, atol=2e-4)
    assert abs(e.gamma / 0.08 - 1) < 1e-3
    assert abs(e.t0 + 20.0) < 0.05 and abs(e.irf_fs - 50.0) < 0.1


@pytest.fixture(scope="module")
def mismatch():
    """A basis of 150 trajectories; the experiment made from 40 others (another seed)."""
    return diatomic_ensemble(150, seed=1), diatomic_ensemble(40, seed=2)


@pytest.mark.parametrize("noise_seed", [0, 1])
def test_experiment_from_trajectories_not_in_the_basis(mismatch, noise_seed):
    basis, truth_ds = mismatch
    q = np.linspace(0.5, 6.0, 60)
    delays = np.arange(-200.0, 1001.0, 20.0)
    meas = simulate_measurement(truth_ds, q=q, delays=delays, gamma=0.05, t0=40.0, irf_fs=80.0, photons=1e6, seed=noise_seed)
    res = get_measurement_method("ensemble", bootstrap=20, seed=noise_seed).fit(meas, basis).result_
    e, tr = res.ensemble, meas.truth
    assert res.converged, res.message
    assert abs(e.gamma / 0.05 - 1) < 0.10
    assert abs(e.t0 - 40.0) < 10.0
    assert abs(e.irf_fs / 80.0 - 1) < 0.20
    assert 0.8 < res.reduced_chi2 < 1.3
    # the mean I-I distance of the trajectories that stay bound (the truth's, from its own trajectories)
    sub = truth_ds.subset(tr.trajectories)
    bound = ~sub.dissociated
    true_bound = distance_distribution(sub.subset(np.flatnonzero(bound)), delays - tr.t0, weights=tr.weights[bound]).mean[:, 0]
    err = np.abs(e.channel_distance_mean[0, :, 0] - true_bound)
    assert err.max() < 0.06  # the goal is 0.05 Å; see the report (basis mismatch)
    assert np.abs(e.dissociated_fraction - tr.dissociated_fraction).max() < 0.1
    assert e.gamma_std > 0 and e.t0_std > 0 and e.irf_fs_std > 0 and e.distance_mean_std.max() > 0
    assert len(e.bootstrap_gamma) == 20
    assert np.isclose(e.weights.sum(), 1.0) and np.all(e.weights >= 0)


def test_a_basis_of_another_model_shows_in_chi2(mismatch):
    """The experiment vibrates at 250-300 fs periods, the basis at 140-180 fs: the misfit is plain in χ²."""
    basis, _ = mismatch
    other = diatomic_ensemble(40, seed=3, period=(250.0, 300.0))
    meas = simulate_measurement(
        other,
        q=np.linspace(0.5, 6.0, 60),
        delays=np.arange(-200.0, 1001.0, 20.0),
        gamma=0.05,
        t0=40.0,
        irf_fs=80.0,
        photons=1e6,
        seed=0,
    )
    res = get_measurement_method("ensemble", bootstrap=0).fit(meas, basis).result_
    # 1.36 here; with N = 3660 data a fit of the right model scatters by ±0.02 about 1
    assert res.reduced_chi2 > 1.2


def test_fit_outside_the_t0_range_is_not_converged(small_basis):
    meas = _noise_free(small_basis, None, t0=40.0)
    res = EnsembleFit(t0_range=(-60.0, 0.0), irf_range=(20.0, 200.0), bootstrap=0).fit(meas, small_basis).result_
    assert not res.converged
    assert "edge of its range" in res.message and "--t0-range" in res.message


def test_bad_inputs(small_basis):
    meas = _noise_free(small_basis, None)
    with pytest.raises(InputError, match="needs a basis"):
        EnsembleFit().fit(meas)
    with pytest.raises(InputError, match="the measurement is of I2 but the basis holds Br2"):
        EnsembleFit().fit(meas, diatomic_ensemble(5, seed=0, symbols=("Br", "Br")))
    empty = Dataset(small_basis.ensemble.subset([]))
    with pytest.raises(InputError, match="no trajectories"):
        EnsembleFit().fit(meas, empty)
    with pytest.raises(InputError, match="has no σ"):
        EnsembleFit().fit(replace(meas, sigma=None), small_basis)
    short = diatomic_ensemble(5, seed=0, t_end=500.0)
    with pytest.raises(InputError, match="the basis trajectories last 500 fs"):
        EnsembleFit().fit(meas, short)
    with pytest.raises(InputError, match="'irf_range'"):
        get_measurement_method("ensemble", irf_range=(0.0, 100.0))
    with pytest.raises(InputError, match="unknown measurement method"):
        get_measurement_method("nearest")


def test_q_range_rule_signals_recomputed_from_positions(small_basis):
    """A basis's stored signals (here on 1-2 1/Å only) are not used: ΔS_i is recomputed on the measurement's q."""
    meas = _noise_free(small_basis, None, t0=43.0)
    M, T = small_basis.n_trajectories, small_basis.n_frames
    stored = small_basis.with_signals(np.zeros((M, T, 2)), np.ones((M, 2)), SignalSpec(np.array([1.0, 2.0])))
    a = EnsembleFit(t0_range=(-60.0, 120.0), bootstrap=0).fit(meas, small_basis).result_.ensemble
    b = EnsembleFit(t0_range=(-60.0, 120.0), bootstrap=0).fit(meas, stored).result_.ensemble
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.gamma == b.gamma and a.t0 == b.t0


def test_sigma_from_pre_t0(small_basis):
    noisy = simulate_measurement(
        small_basis, q=Q_SMALL, delays=DELAYS_SMALL, gamma=0.05, t0=40.0, irf_fs=80.0, photons=1e6, seed=3
    )
    res = EnsembleFit(sigma="pre-t0", bootstrap=0, t0_range=(-60.0, 120.0)).fit(replace(noisy, sigma=None), small_basis).result_
    assert res.sigma_source.startswith("pre-t0: std over the 6 delays")
    # estimated from 6 delays it scatters about the true σ = sqrt(1 + ΔS) / 1000
    ratio = res.sigma[0] / noisy.sigma[0]
    assert 0.3 < np.median(ratio) < 1.7
    few = replace(noisy, delays=noisy.delays + 110.0, sigma=None)
    with pytest.raises(InputError, match="2 delay\\(s\\) before time zero"):
        EnsembleFit(sigma="pre-t0").fit(few, small_basis)


def _weighted_design(meas, basis, t0, irf):
    """The fit's linear system at fixed (t0, IRF), written out independently: A (T_d Q, M) and d (T_d Q) in units of σ."""
    from molmovie.measurement import basis_signals, hold_last_frame, irf_operator

    B, _ = hold_last_frame(basis_signals(basis, meas.q)[0])
    K = irf_operator(np.asarray(basis.time, dtype=float), meas.delays, t0=t0, irf_fs=irf)
    A = np.einsum("dt,mtq->dqm", K, B) / meas.sigma[..., None]
    return A.reshape(-1, B.shape[0]), (meas.dS / meas.sigma).ravel()


def test_the_profile_of_gamma_is_the_exact_parabola_of_the_unconstrained_least_squares():
    """With every weight positive along the profile (no bound active), χ²(γ) with Σc = γ imposed is exactly
    χ²_min + (γ − γ̂)² / σ_γ², σ_γ² = 1ᵀ (AᵀA)⁻¹ 1 (the least-squares variance of Σc); and the reported spread
    of γ is the law of total variance: the bootstrap's variance plus the profile's, Σ p_k (γ_k − γ̄)²."""
    basis = diatomic_ensemble(3, seed=11, dissociating=0.0)
    meas = simulate_measurement(
        basis,
        q=Q_SMALL,
        delays=DELAYS_SMALL,
        weights=np.array([0.5, 0.3, 0.2]),
        gamma=0.05,
        t0=40.0,
        irf_fs=80.0,
        photons=1e6,
        seed=0,
    )
    fit = EnsembleFit(
        t0_range=(0.0, 80.0),
        irf_range=(40.0, 160.0),
        bootstrap=8,
        bootstrap_steps=0,
        resample_basis=False,
        ground_state=0.0,
        profile=41,
        seed=1,
    ).fit(meas, basis)
    e = fit.result_.ensemble
    A, d = _weighted_design(meas, basis, e.t0, e.irf_fs)
    cov = np.linalg.inv(A.T @ A)
    c_ls = cov @ (A.T @ d)
    assert np.all(c_ls > 0)
    var_g = cov.sum()
    g_hat = c_ls.sum()
    chi2_min = float(np.sum((A @ c_ls - d) ** 2))
    assert abs(e.gamma - g_hat) < 1e-6 * g_hat
    g, chi2 = e.profile_gamma, e.profile_chi2
    assert g.min() < g_hat - 3 * np.sqrt(var_g) and g.max() > g_hat + 3 * np.sqrt(var_g)  # the range reaches Δχ² = 9
    inner = np.abs(g - g_hat) < 2.5 * np.sqrt(var_g)  # where the three weights stay positive
    np.testing.assert_allclose(chi2[inner] - chi2_min, (g[inner] - g_hat) ** 2 / var_g, rtol=1e-4, atol=1e-6)
    # the spread: bootstrap variance plus the profile's, with p_k ∝ exp(-Δχ²/2R_B²) Δγ_k
    rb = e.birge_ratio
    p = np.exp(-(chi2 - chi2.min()) / (2 * rb**2)) * np.abs(np.gradient(g))
    p /= p.sum()
    var_prof = p @ (g - p @ g) ** 2
    assert abs(e.gamma_std**2 - (np.var(e.bootstrap_gamma, ddof=1) + var_prof)) < 1e-9 * e.gamma_std**2
    # and the profile's part is the Gaussian variance, cut at the range's ends (≥ 3σ): within 4 %
    assert 0.96 * var_g * rb**2 < var_prof < 1.01 * var_g * rb**2


def test_without_the_profile_the_spreads_are_the_bootstraps():
    basis = diatomic_ensemble(3, seed=11, dissociating=0.0)
    meas = simulate_measurement(
        basis,
        q=Q_SMALL,
        delays=DELAYS_SMALL,
        weights=np.array([0.5, 0.3, 0.2]),
        gamma=0.05,
        t0=40.0,
        irf_fs=80.0,
        photons=1e6,
        seed=0,
    )
    kw = dict(t0_range=(0.0, 80.0), irf_range=(40.0, 160.0), bootstrap=8, ground_state=0.0, seed=1)
    off = EnsembleFit(profile=0, **kw).fit(meas, basis).result_.ensemble
    on = EnsembleFit(**kw).fit(meas, basis).result_.ensemble
    assert off.profile_gamma.size == 0
    assert abs(off.gamma_std - np.std(off.bootstrap_gamma, ddof=1)) < 1e-15
    np.testing.assert_array_equal(off.bootstrap_gamma, on.bootstrap_gamma)  # the profile changes no replicate
    assert on.gamma_std > off.gamma_std
    assert np.all(on.distance_mean_std >= off.distance_mean_std - 1e-15)
