"""The learned method's signal fit through the measurement model: it finds a known answer, its σ, its gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from molmovie.fitting import EnsembleVRNN
from molmovie.fitting._learned_refine import _group, _Mix, refine_through_measurement
from molmovie.fitting._learned_sim import MeasurementSimulator
from molmovie.measurement import ensemble_signal, simulate_measurement
from molmovie.scattering import DebyeCompiled, intensity_from_distances

from _fit_fixtures import diatomic_ensemble

Q = np.linspace(0.5, 6.0, 30)
DELAYS = np.arange(-100.0, 1001.0, 25.0)
TRUE = dict(gamma=0.12, t0=35.0, irf_fs=60.0)
SHIFT = 1.04  # the dissociated channel's distances, 4 % longer than the basis's at every frame


@pytest.fixture(scope="module")
def sim():
    return MeasurementSimulator.from_dataset(diatomic_ensemble(16, seed=5), Q, 25.0, EnsembleVRNN())


def _channels(sim):
    members = [(sim.excited[sel], np.full(int(sel.sum()), 1.0 / sel.sum())) for _, sel in sim.excited_channels]
    names = [name for name, _ in sim.excited_channels]
    return names, members, np.array([0.6, 0.4])


def _truth(sim):
    """The measurement of the shifted ensemble by the NumPy measurement model (Eq. (1) and the IRF operator), noise-free."""
    names, members, shares = _channels(sim)
    R = sim.R.copy()
    moved = members[names.index("dissociated")][0]
    R[moved] *= SHIFT
    I_gs = intensity_from_distances(list(sim.symbols), sim.R[sim.reference, 0], Q).mean(axis=0)
    dS_basis = intensity_from_distances(list(sim.symbols), R, Q) / I_gs - 1.0
    w = np.zeros(len(R))
    for (idx, wk), c in zip(members, shares, strict=True):
        w[idx] = c * wk
    return ensemble_signal(dS_basis, sim.time, DELAYS, weights=w, **TRUE), R


def _prior(sim, rel):
    _, members, _ = _channels(sim)
    mean = np.stack([np.tensordot(w, sim.R[idx], axes=(0, 0)) for idx, w in members])
    return mean, np.full_like(mean, rel)


def test_the_fit_finds_a_known_shift_excitation_fraction_time_zero_and_irf(sim):
    names, members, shares = _channels(sim)
    data, R_true = _truth(sim)
    mean, rel = _prior(sim, 0.1)
    statics = dict(gamma=0.1, gamma_std=0.03, t0=10.0, t0_std=30.0, irf_fs=50.0, irf_fs_std=30.0)
    sigma = np.full_like(data, 1e-5)  # noise-free data, told a σ far below the signal (|ΔS| ~ 1e-2)
    out = refine_through_measurement(
        sim, members, shares, None, mean, rel, statics, DELAYS, data, sigma, knot_dt=25.0, max_iter=500
    )
    assert out.gamma == pytest.approx(TRUE["gamma"], rel=1e-3)
    assert out.t0 == pytest.approx(TRUE["t0"], abs=0.5)
    assert out.irf_fs == pytest.approx(TRUE["irf_fs"], abs=1.0)
    k = names.index("dissociated")
    tau = sim.time - sim.time[0]
    # basis frames the delays reach, after the first IRF width (there the onset mixes unexcited and excited molecules)
    seen = (tau >= TRUE["irf_fs"]) & (tau < DELAYS[-1] - TRUE["t0"] - 50.0)
    # the delays (25 fs) and the IRF (60 fs) resolve the motion on a 60 fs scale, not each 10 fs frame: compare that
    window = np.ones(6) / 6
    want = np.convolve(R_true[members[k][0]].mean(axis=0)[seen, 0], window, mode="valid")
    np.testing.assert_allclose(np.convolve(out.mean[k][seen, 0], window, mode="valid"), want, rtol=2e-3)
    # the data explain themselves to far below the 4 % shift's signal
    assert np.sqrt(np.mean((out.dS_fit - data) ** 2)) < 0.01 * np.sqrt(np.mean(data**2))
    assert out.laplace.startswith("joint")


def test_with_data_that_say_nothing_the_answer_and_its_sigma_are_the_priors(sim):
    _, members, shares = _channels(sim)
    data, _ = _truth(sim)
    mean, rel = _prior(sim, 0.05)
    statics = dict(gamma=0.1, gamma_std=0.02, t0=10.0, t0_std=30.0, irf_fs=50.0, irf_fs_std=30.0)
    out = refine_through_measurement(
        sim, members, shares, None, mean, rel, statics, DELAYS, data, np.full_like(data, 1e9), knot_dt=25.0, max_iter=0
    )
    np.testing.assert_allclose(out.mean, mean, rtol=1e-12)
    # σ² = 1 / (1 + JᵀJ) in prior units, with JᵀJ of order (signal / 1e9)²: the prior's σ to rounding
    np.testing.assert_allclose(out.std, mean * rel, rtol=1e-12)
    assert out.gamma_std == pytest.approx(0.02, rel=1e-12) and out.t0_std == pytest.approx(30.0, rel=1e-12)
    assert out.n_effective == pytest.approx(0.0, abs=1e-9)


def test_more_noise_widens_the_fits_sigma(sim):
    _, members, shares = _channels(sim)
    data, _ = _truth(sim)
    mean, rel = _prior(sim, 0.1)
    statics = dict(gamma=0.12, gamma_std=0.03, t0=35.0, t0_std=30.0, irf_fs=60.0, irf_fs_std=30.0)
    sd = [
        refine_through_measurement(
            sim, members, shares, None, mean, rel, statics, DELAYS, data, np.full_like(data, s), knot_dt=25.0, max_iter=0
        ).std
        for s in (1e-4, 1e-3, 1e-2)
    ]
    up = 1 + 1e-9  # frames the delays never see keep the prior's σ, equal to rounding at every noise level
    assert np.all(sd[0] <= sd[1] * up) and np.all(sd[1] <= sd[2] * up) and np.all(sd[2] <= mean * rel * up)
    reached = sim.time - sim.time[0] < DELAYS[-1] - 35.0  # frames the delays see
    # 100x the noise, a clearly wider σ; not 100x: 2.5 frames of 10 fs share each 25 fs delay, so each frame's σ
    # stays near the prior's while the delays' averages are what the data fix
    assert np.median(sd[0][:, reached] / sd[2][:, reached]) < 0.85


def test_the_mixture_node_has_the_gradient_of_its_values(sim):
    _, members, shares = _channels(sim)
    debye = DebyeCompiled(list(sim.symbols), Q)
    ref = sim.I_gs
    groups = [
        _group(debye, sim.R[idx][:, :6], w, float(c), np.zeros(0, dtype=np.int64), ref) for (idx, w), c in zip(members, shares)
    ]
    moved = np.array([0])
    delta = torch.tensor(np.random.default_rng(0).normal(0, 0.05, (len(groups), 6, 1)), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda d: _Mix.apply(d, debye.pairs(moved), groups, moved, ref), (delta,))


def test_the_learned_answer_after_the_fit_explains_the_data_at_least_as_well_as_the_network_alone():
    basis = diatomic_ensemble(16, seed=5)
    tiny = dict(hidden=8, features=8, latent_free=1, epochs=2, examples=16, batch_size=8)
    meas = simulate_measurement(basis, q=Q, delays=DELAYS, gamma=0.1, t0=40.0, irf_fs=80.0, photons=1e7, seed=1)
    alone = EnsembleVRNN(**tiny, refine=False).fit(meas, basis=basis).result_
    fitted = EnsembleVRNN(**tiny, refine=True).fit(meas, basis=basis).result_
    # the fit minimises χ²/2 + |z|²/2 from z = 0 (the network's answer, χ² = alone's), so its χ² can only be lower
    assert fitted.chi2 <= alone.chi2
    assert fitted.chi2 < 0.5 * alone.chi2
    assert "fitted to the data through the measurement model" in fitted.message
    assert np.all(np.isfinite(fitted.ensemble.channel_distance_mean_std))
