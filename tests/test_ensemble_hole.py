"""The ground-state hole in the ensemble fit (hole=True), and spreads scaled by the Birge ratio."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from molmovie import InputError
from molmovie.datasets import Dataset
from molmovie.fitting import get_measurement_method
from molmovie.measurement import basis_signals, hold_last_frame, irf_operator, simulate_measurement
from molmovie.trajectories import Trajectory, ensemble_from_trajectories

from _fit_fixtures import R_E, diatomic_ensemble

Q = np.linspace(0.5, 6.0, 30)
DELAYS = np.arange(-150.0, 801.0, 25.0)
PERIOD = 156.0


def hole_basis(n_ground: int = 16, n_excited: int = 10, *, seed: int = 0, model: dict | None = None) -> Dataset:
    """Ground-state vibrations and excited trajectories.

    The ground-state ones vibrate with amplitudes 0.03-0.3 Å (wider than I2's zero-point spread, 0.035 Å:
    small vibrations at one period all give, to first order in the amplitude, the same two signals, cos and
    sin of ωt times one q pattern, so their weights could not be told apart) and a Morse-like period that
    grows with the amplitude.

    Records ``ground_start`` like the generator: true for the ground-state ones and the dissociating ones
    (they start from a ground-state sample), false for the bound excited ones (displaced starts).
    """
    rng = np.random.default_rng(seed)
    time = np.arange(0.0, 1000.0 + 5.0, 10.0)
    trajs, records = [], []
    for _ in range(n_ground):
        a, phi = rng.uniform(0.03, 0.3), rng.uniform(0, 2 * np.pi)
        r = R_E + a * np.cos(2 * np.pi * time / (PERIOD * (1 + 0.3 * a)) + phi)
        trajs.append(r)
        records.append({"initial": {"initial": "wigner", "ground_start": True}})
    for i in range(n_excited):
        delta = 0.03 * rng.standard_normal()
        if i % 2:
            r = R_E + delta + rng.uniform(0.005, 0.015) * time
            records.append({"initial": {"initial": "dissociation", "ground_start": True}})
        else:
            r = R_E + delta + rng.uniform(0.15, 0.3) * (1 - np.cos(2 * np.pi * time / rng.uniform(140, 180)))
            records.append({"initial": {"initial": "displaced", "ground_start": False}})
        trajs.append(r)
    objs = []
    for k, r in enumerate(trajs):
        pos = np.zeros((time.size, 2, 3))
        pos[:, 1, 2] = r
        objs.append(Trajectory(("I", "I"), time, pos, source=f"hole{seed}-{k}"))
    prov = {"trajectories": records}
    if model is not None:
        prov["model"] = model
    return Dataset(ensemble_from_trajectories(objs, molecule="I2", provenance=prov))


def hole_measurement(basis, c, h, *, t0=43.0, irf=70.0):
    """ΔS = K (Σ c_i ΔS_i − Σ h_j ΔS_j^gs), built from the measurement model's pieces (not the fit's code)."""
    B, _ = hold_last_frame(basis_signals(basis, Q)[0])
    K = irf_operator(basis.time, DELAYS, t0=t0, irf_fs=irf)
    coef = np.zeros(B.shape[0])
    coef[16:] = c
    coef[:16] -= h
    dS = K @ np.tensordot(coef, B, axes=(0, 0))
    meas = simulate_measurement(basis, q=Q, delays=DELAYS, gamma=0.1, t0=t0, irf_fs=irf)  # a Measurement to fill
    return replace(meas, dS=dS, sigma=np.full(dS.shape, 1e-5), truth=None)


@pytest.fixture(scope="module")
def basis():
    return hole_basis()


def _known_hole():
    c = np.zeros(10)
    c[[0, 1, 4, 7]] = [0.03, 0.02, 0.025, 0.005]  # γ = 0.08
    h = np.zeros(16)
    h[[2, 5, 11]] = [0.05, 0.02, 0.01]  # Σ h = γ: an R-dependent removal
    return c, h


def test_noise_free_hole_at_the_true_t0_and_irf_is_exact(basis):
    """The Franck-Condon rows are off: this synthetic truth's excited molecules do not start where the removed ones were."""
    c, h = _known_hole()
    meas = hole_measurement(basis, c, h)
    fit = get_measurement_method(
        "ensemble", hole=True, bootstrap=0, ground_state=0.0, t0_range=(43.0, 43.0), irf_range=(70.0, 70.0)
    ).fit(meas, basis)
    res, e = fit.result_, fit.result_.ensemble
    assert res.converged, res.message
    np.testing.assert_array_equal(e.hole_trajectories, np.arange(16))
    np.testing.assert_array_equal(e.trajectories, np.arange(16, 26))
    np.testing.assert_allclose(e.weights * e.gamma, c, atol=1e-9)
    np.testing.assert_allclose(e.hole_weights, h, atol=1e-9)
    assert abs(e.hole_weights.sum() - e.gamma) < 1e-8 * e.gamma  # the equality Σ h = Σ c
    assert res.chi2 < 1e-12 * res.n_data
    # three channels: fractions of all molecules; the remaining ground state 1 - γ
    assert e.channels == ("bound", "dissociated", "ground")
    bound = np.array([not d for d in basis.dissociated[16:]])
    np.testing.assert_allclose(e.channel_fraction, [c[bound].sum(), c[~bound].sum(), 0.92], atol=1e-9)
    # the hole's R-distribution: the removed samples' distances at excitation
    r0 = np.abs(basis.positions[:16, 0, 1, 2] - basis.positions[:16, 0, 0, 2])
    np.testing.assert_allclose(e.hole_r0[:, 0], r0, atol=1e-12)
    # the molecules left in the ground state: its samples weighted 1/16 - h_j, at delay - t0
    left = 1 / 16 - h
    k = np.searchsorted(DELAYS, 300.0)
    frame = int(round((DELAYS[k] - 43.0) / 10.0))
    r_gs = np.abs(basis.positions[:16, frame, 1, 2] - basis.positions[:16, frame, 0, 2])
    assert abs(e.channel_distance_mean[2, k, 0] - left @ r_gs / left.sum()) < 1e-9


def test_noise_free_hole_with_t0_and_irf_searched(basis):
    """t0 and the IRF found to 0.01 fs; the hole's weights are the least determined (small vibrations look alike)."""
    c, h = _known_hole()
    meas = hole_measurement(basis, c, h)
    e = (
        get_measurement_method(
            "ensemble", hole=True, bootstrap=0, ground_state=0.0, t0_range=(-60.0, 120.0), irf_range=(20.0, 200.0)
        )
        .fit(meas, basis)
        .result_.ensemble
    )
    assert abs(e.t0 - 43.0) < 0.01 and abs(e.irf_fs - 70.0) < 0.05
    np.testing.assert_allclose(e.weights * e.gamma, c, atol=2e-5)
    np.testing.assert_allclose(e.hole_weights, h, atol=5e-4)
    assert abs(e.gamma / 0.08 - 1) < 1e-3 and abs(e.hole_weights.sum() - e.gamma) < 1e-8 * e.gamma


def test_without_the_hole_the_depletion_is_not_expressed(basis):
    """The same data fitted with non-negative weights only: the misfit is plain."""
    c, h = _known_hole()
    meas = replace(hole_measurement(basis, c, h), sigma=np.full((DELAYS.size, Q.size), 1e-4))
    with_hole = (
        get_measurement_method(
            "ensemble", hole=True, bootstrap=0, ground_state=0.0, t0_range=(-60.0, 120.0), irf_range=(20.0, 200.0)
        )
        .fit(meas, basis)
        .result_
    )
    without = (
        get_measurement_method("ensemble", bootstrap=0, ground_state=0.0, t0_range=(-60.0, 120.0), irf_range=(20.0, 200.0))
        .fit(meas, basis)
        .result_
    )
    assert with_hole.reduced_chi2 < 1e-2 < 1.0 < without.reduced_chi2


def test_noisy_hole_fit_keeps_the_equality_and_reports_removal(basis):
    c = np.zeros(10)
    c[[1, 3, 4]] = [0.02, 0.02, 0.01]
    h = np.zeros(16)
    h[[0, 9]] = [0.03, 0.02]
    meas = hole_measurement(basis, c, h)
    rng = np.random.default_rng(7)
    noisy = replace(meas, dS=meas.dS + 2e-4 * rng.standard_normal(meas.dS.shape), sigma=np.full(meas.dS.shape, 2e-4))
    e = get_measurement_method("ensemble", hole=True, bootstrap=5, seed=1).fit(noisy, basis).result_.ensemble
    assert abs(e.hole_weights.sum() - e.gamma) < 1e-6 * e.gamma
    assert e.hole_weights.max() <= 1 / 16 + 1e-12  # a sample cannot lose more than it holds
    assert e.hole_weights_std.shape == (16,) and e.hole_weights_std.max() > 0
    assert abs(e.gamma / 0.05 - 1) < 0.1


def test_hole_bad_input(basis):
    meas = hole_measurement(basis, np.r_[0.05, np.zeros(9)], np.r_[0.05, np.zeros(15)])
    with pytest.raises(InputError, match="ground_start"):
        get_measurement_method("ensemble", hole=True, bootstrap=0).fit(meas, diatomic_ensemble(12, seed=5))
    with pytest.raises(InputError, match="excited model"):
        get_measurement_method("ensemble", hole=True, bootstrap=0).fit(
            meas, hole_basis(model={"name": "b-state", "excited": {"label": "B"}})
        )
    with pytest.raises(InputError, match="regularize"):
        get_measurement_method("ensemble", hole=True, regularize="discrepancy")
    with pytest.raises(InputError, match="no excited basis"):
        get_measurement_method("ensemble", hole=True, bootstrap=0).fit(meas, hole_basis(n_excited=0))
    with pytest.raises(InputError, match="'hole' setting"):
        get_measurement_method("ensemble", hole="yes")


def test_laser_off_reference_leaves_displaced_starts_out(basis):
    """I_gs is the mean first frame of the ground_start trajectories only: ΔS_i(τ=0) of those averages to 0."""
    dS, I_gs = basis_signals(basis, Q)
    flags = np.array([rec["initial"]["ground_start"] for rec in basis.ensemble.provenance["trajectories"]])
    np.testing.assert_allclose(dS[flags, 0].mean(axis=0), 0.0, atol=1e-12)
    assert np.abs(dS[:, 0].mean(axis=0)).max() > 1e-4  # with the displaced ones it would not


def test_birge_ratio_scales_the_spreads():
    """A basis of another vibration period (χ²_red > 1): the bootstrap noise grows by √χ²_red, and so do the spreads."""
    basis = diatomic_ensemble(60, seed=1)
    other = diatomic_ensemble(30, seed=3, period=(250.0, 300.0))
    meas = simulate_measurement(
        other,
        q=np.linspace(0.5, 6.0, 40),
        delays=np.arange(-200.0, 1001.0, 25.0),
        gamma=0.05,
        t0=40.0,
        irf_fs=80.0,
        photons=1e6,
        seed=0,
    )
    kw = dict(bootstrap=30, seed=2, resample_basis=False, bootstrap_steps=0)
    scaled = get_measurement_method("ensemble", **kw).fit(meas, basis).result_
    plain = get_measurement_method("ensemble", birge=False, **kw).fit(meas, basis).result_
    rb = np.sqrt(scaled.reduced_chi2)
    assert scaled.reduced_chi2 > 1.2
    assert abs(scaled.ensemble.birge_ratio - rb) < 1e-12 and plain.ensemble.birge_ratio == 1.0
    assert scaled.ensemble.gamma == plain.ensemble.gamma  # the fit itself is unchanged
    ratio = scaled.ensemble.gamma_std / plain.ensemble.gamma_std
    assert abs(ratio / rb - 1) < 0.15, (ratio, rb)


def test_hole_refuses_displaced_ground_state_trajectories():
    """On a ground-state model, bound trajectories that do not start from a ground-state sample are displaced X vibrations."""
    b = hole_basis(model={"name": "ground", "excited": None})
    meas = hole_measurement(b, np.r_[0.05, np.zeros(9)], np.r_[0.05, np.zeros(15)])
    with pytest.raises(InputError, match="displaced"):
        get_measurement_method("ensemble", hole=True, bootstrap=0).fit(meas, b)


def test_cli_hole_end_to_end(basis, tmp_path, capsys):
    """fit --hole: the hole's weights and R(0) round-trip through the result file; the hole figure is drawn."""
    from molmovie.io import write_dataset
    from molmovie.io.fit import read_fit
    from molmovie.io.measurement import write_measurement

    from _fixtures import assert_one_line_error, run_cli

    c, h = _known_hole()
    meas = hole_measurement(basis, c, h)
    write_dataset(basis, tmp_path / "basis.h5")
    write_measurement(replace(meas, sigma=np.full(meas.dS.shape, 1e-4)), tmp_path / "meas.h5")
    out = tmp_path / "fit.h5"
    code, stdout, err = run_cli(
        [
            "fit",
            tmp_path / "meas.h5",
            "--basis",
            tmp_path / "basis.h5",
            "--hole",
            "--output",
            out,
            "--figures",
            tmp_path / "figs",
            "--bootstrap",
            "4",
            "--set",
            "ground_state=0",
        ],
        capsys,
    )
    assert code == 0, err
    assert "hole: " in stdout
    e = read_fit(out).ensemble
    assert e.channels == ("bound", "dissociated", "ground") and e.hole_weights.shape == (16,) and e.hole_r0.shape == (16, 1)
    np.testing.assert_allclose(e.hole_weights, h, atol=2e-3)
    assert (tmp_path / "figs" / "ensemble_hole.png").stat().st_size > 10_000
    code, _, err = run_cli(["fit", tmp_path / "meas.h5", "--method", "pdf", "--hole", "--output", tmp_path / "p.h5"], capsys)
    assert_one_line_error(code, err, "--hole does not apply")
