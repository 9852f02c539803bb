"""The learned method on a measurement (vrnn-ensemble): its training measurements, its reading of a measurement, its file, its command."""

from __future__ import annotations

import numpy as np
import pytest

from molmovie import InputError
from molmovie.fitting import EnsembleVRNN, get_measurement_method
from molmovie.fitting._learned import _onto_grid, on_frames
from molmovie.fitting._learned_sim import MeasurementSimulator
from molmovie.io.fit import read_fit
from molmovie.io.measurement import write_measurement
from molmovie.measurement import basis_signals, ensemble_signal, simulate_measurement

from _fit_fixtures import diatomic_ensemble
from _fixtures import assert_one_line_error, run_cli

Q = np.linspace(0.5, 6.0, 30)
DELAYS = np.arange(-100.0, 1001.0, 25.0)
TINY = dict(hidden=8, features=8, latent_free=1, epochs=2, examples=16, batch_size=8)


@pytest.fixture(scope="module")
def basis():
    return diatomic_ensemble(16, seed=5)


@pytest.fixture(scope="module")
def tiny(basis):
    return EnsembleVRNN(**TINY).train(basis, q=Q, dt=25.0)


def test_a_training_measurement_is_the_measurement_model_and_its_targets_the_truth(basis):
    sim = MeasurementSimulator.from_dataset(basis, Q, 25.0, EnsembleVRNN())
    bound = np.flatnonzero(~basis.dissociated)[:3]
    w = np.zeros(basis.n_trajectories)
    w[bound] = [0.5, 0.3, 0.2]
    dS_basis, _ = basis_signals(basis, Q)
    want = ensemble_signal(dS_basis, basis.time, DELAYS, weights=w, gamma=0.07, t0=35.0, irf_fs=60.0)
    got = sim.signal(w, np.zeros(0), 0.07, 35.0, 60.0, DELAYS)
    # the simulator keeps distances at float32 precision (a model file's): relative rounding 2^-24 moves each
    # I/I_gs by at most q R |sinc'| 2^-24 < q_max R_max 2^-24 (|sinc'| < 1), twice with the reference, times γ
    R_max = float(np.nanmax(np.linalg.norm(np.diff(basis.ensemble.positions, axis=2), axis=-1)))
    np.testing.assert_allclose(got, want, rtol=0, atol=0.07 * 2 * Q[-1] * R_max * 2.0**-24)
    # the targets are the Truth of simulate_measurement for the same ensemble: one channel, its mean distance
    truth = simulate_measurement(
        basis, q=Q, delays=DELAYS, weights=w[bound], trajectories=bound, gamma=0.07, t0=35.0, irf_fs=60.0
    ).truth
    target, _, share = sim.targets(w, np.zeros(0), DELAYS, 35.0)
    np.testing.assert_allclose(target[0], truth.distance_mean, rtol=2.0**-24)  # float32 distances: each rounded by <= 2^-24
    assert share == 0.0 and np.all(np.isnan(target[1]))


def test_a_drawn_measurement_has_the_photon_noise_it_states(basis):
    sim = MeasurementSimulator.from_dataset(basis, Q, 25.0, EnsembleVRNN(photons_range=(1e6, 1e6), keep_min=1.0))
    d = sim.draw(6, np.random.default_rng(3))
    assert d["observed"].all()
    np.testing.assert_allclose(d["sigma"], np.sqrt((1 + d["clean"]) / 1e6), rtol=1e-12)
    z = (d["dS"] - d["clean"]) / d["sigma"]
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05  # 6 x 45 x 30 = 8100 draws
    assert np.all((d["gamma"] >= 0.03) & (d["gamma"] <= 0.35)) and np.all((d["lead"] >= 0) & (d["lead"] <= 300))


def test_delays_are_placed_on_the_networks_frames_and_shared_frames_averaged_by_inverse_variance():
    delays = np.array([0.0, 10.0, 12.0, 40.0])
    dS = np.array([[1.0], [2.0], [4.0], [8.0]])
    sigma = np.array([[1.0], [1.0], [2.0], [0.5]])
    frame, x, s, observed = on_frames(delays, dS, sigma, 10.0)
    assert frame.tolist() == [0, 1, 1, 4] and observed.tolist() == [True, True, False, False, True]
    assert x[1, 0] == pytest.approx((2.0 / 1 + 4.0 / 4) / (1 + 1 / 4))
    assert s[1, 0] == pytest.approx(1 / np.sqrt(1 + 1 / 4)) and x[4, 0] == 8.0 and x[2, 0] == 0.0


def test_a_measurement_on_another_q_grid_is_interpolated_inside_the_models_range_or_refused():
    q = np.linspace(0.0, 8.0, 41)
    dS = np.outer([1.0, 2.0], 0.1 * q + 0.3)
    same = _onto_grid(q, dS, np.ones_like(dS), q)
    assert same[1] is dS and same[3] == "the measurement's own grid"
    qm, dSm, sm, note = _onto_grid(q, dS, np.ones_like(dS), Q)
    np.testing.assert_allclose(dSm, np.outer([1.0, 2.0], 0.1 * Q + 0.3), rtol=1e-12)
    assert qm is Q and "interpolated linearly from 41" in note
    with pytest.raises(InputError, match=r"covers only 0-3 1/Å.*--for"):
        _onto_grid(np.linspace(0, 3, 10), np.zeros((2, 10)), np.ones((2, 10)), Q)


def test_the_model_file_gives_the_same_answer_and_a_measurement_is_answered_per_channel(basis, tiny, tmp_path):
    meas = simulate_measurement(basis, q=Q, delays=DELAYS, gamma=0.1, t0=30.0, irf_fs=50.0, photons=1e7, seed=2)
    tiny.save(tmp_path / "m.safetensors")
    again = EnsembleVRNN.load(tmp_path / "m.safetensors")
    a, b = tiny.fit(meas).result, again.fit(meas).result
    e = a.ensemble
    assert e.channels == ("bound", "dissociated") and e.channel_distance_mean.shape == (2, DELAYS.size, 1)
    np.testing.assert_array_equal(e.channel_distance_mean, b.ensemble.channel_distance_mean)
    assert (e.gamma, e.t0, e.irf_fs) == (b.ensemble.gamma, b.ensemble.t0, b.ensemble.irf_fs)
    assert np.all(e.channel_distance_mean_std > 0) and 0 < e.gamma <= 1
    assert a.chi2 == pytest.approx(np.sum(((a.dS - a.dS_fit) / a.sigma) ** 2))


def test_invert_answers_a_measurement_with_a_learned_model_and_refuses_it_with_a_per_trajectory_one(
    basis, tiny, tmp_path, capsys
):
    from molmovie.inversion import get_method
    from molmovie.scattering import SignalSpec, simulate

    meas = simulate_measurement(basis, q=Q, delays=DELAYS, gamma=0.1, t0=30.0, irf_fs=50.0, photons=1e7, seed=2)
    write_measurement(meas, tmp_path / "meas.h5")
    tiny.save(tmp_path / "m.safetensors")
    code, out, err = run_cli(
        ["invert", "--model", tmp_path / "m.safetensors", tmp_path / "meas.h5", "-o", tmp_path / "r.h5"], capsys
    )
    assert code == 0, err
    assert "vrnn-ensemble answer" in out and "channels: bound" in out and "the measurement's own grid" in out
    res = read_fit(tmp_path / "r.h5")
    assert res.method == "vrnn-ensemble" and res.ensemble.channels == ("bound", "dissociated")
    np.testing.assert_array_equal(res.ensemble.channel_distance_mean, tiny.fit(meas).result.ensemble.channel_distance_mean)
    # a model of one trajectory's ΔS cannot read an ensemble average: one line saying what to train instead
    spec = SignalSpec(q=Q)
    nearest = get_method("nearest").fit(
        basis.with_signals(*simulate(basis.symbols, basis.positions, basis.length, basis.time, spec))
    )
    nearest.save(tmp_path / "n.safetensors")
    code, out, err = run_cli(
        ["invert", "--model", tmp_path / "n.safetensors", tmp_path / "meas.h5", "-o", tmp_path / "n.h5"], capsys
    )
    assert_one_line_error(
        code, err, r"is a measurement .* a 'nearest' model reads one trajectory's ΔS: train .*--method vrnn-ensemble"
    )
    assert not (tmp_path / "n.h5").exists()


def test_fit_trains_the_learned_method_for_the_measurement_it_is_given(basis):
    meas = simulate_measurement(basis, q=Q[::2], delays=DELAYS[::2], gamma=0.1, t0=30.0, irf_fs=50.0, photons=1e7, seed=2)
    m = get_measurement_method("vrnn-ensemble", **TINY).fit(meas, basis=basis)
    assert np.array_equal(m.q_, Q[::2]) and m.dt_ == 50.0
    assert m.result.ensemble.channel_distance_mean.shape == (2, DELAYS[::2].size, 1)
    with pytest.raises(InputError, match="needs a basis"):
        EnsembleVRNN().fit(meas)
