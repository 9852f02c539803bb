"""The measurement model (molmovie.measurement) against exact answers: the IRF convolution of a
step is an error function, NumPy and PyTorch agree, gradients pass gradcheck, the model is linear in
the weights and γ, the laser-off basis is Eq. (1) against the mean first frame, the distance
distributions and dissociated fractions are the weighted ones, and Poisson residuals / σ have unit
variance for any seed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import erf

from molmovie import InputError, measurement as mm
from molmovie.molecules import covalent_radii
from molmovie.scattering import form_factors, intensity
from molmovie.trajectories import BREAK_SCALE, Ensemble, is_dissociated

from _fixtures import CS2_SYMBOLS, cs2_positions

SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def small_ensemble(n: int = 5, n_frames: int = 61, dt: float = 2.5, lengths=None) -> Ensemble:
    """CS2 trajectories, every other one losing an S; some stop early (NaN past their length)."""
    pos = np.stack([cs2_positions(n_frames, dt=dt, seed=k, dissociate=k % 2 == 1) for k in range(n)])
    length = np.full(n, n_frames) if lengths is None else np.asarray(lengths)
    for k in range(n):
        pos[k, length[k] :] = np.nan
    diss = [is_dissociated(CS2_SYMBOLS, pos[k], length[k]) for k in range(n)]
    return Ensemble("cs2", CS2_SYMBOLS, np.arange(n_frames) * dt, pos, length, diss, [f"traj{k}" for k in range(n)])


def random_basis(rng, m=4, t=30, q=6, lengths=None):
    dS = 0.1 * rng.standard_normal((m, t, q))
    for i, L in enumerate(lengths or []):
        dS[i, L:] = np.nan
    return dS


# --------------------------------------------------------------------------- IRF: exact answers


@pytest.mark.parametrize("step_frame", [0, 7])
def test_step_convolved_with_gaussian_is_an_error_function(step_frame):
    dt, n_frames = 2.0, 80
    time = 100.0 + dt * np.arange(n_frames)  # the first frame is the excitation, whatever its clock time
    amplitude = np.array([0.3, -1.25])
    basis = np.zeros((1, n_frames, 2))
    basis[0, step_frame:] = amplitude
    delays = np.array([-300.0, -80.0, -7.3, 0.0, 3.1, 12.0, 40.0, 55.5, 90.0, 130.0])  # non-uniform
    gamma, t0, fwhm = 0.07, 12.5, 23.0
    out = mm.ensemble_signal(basis, time, delays, gamma=gamma, t0=t0, irf_fs=fwhm)
    # the step sits at its frame's lower cell edge: 0 for the first frame, the midpoint otherwise
    edge = 0.0 if step_frame == 0 else (step_frame - 0.5) * dt
    sigma = fwhm * SIGMA_PER_FWHM
    expected = gamma * 0.5 * (1.0 + erf((delays - t0 - edge) / (sigma * math.sqrt(2.0))))[:, None] * amplitude
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-15)


def test_irf_rows_sum_to_the_fraction_excited_and_zero_width_samples_the_nearest_frame():
    time = np.arange(40) * 5.0
    delays = np.array([-20.0, -2.0, 0.0, 1.0, 12.4, 12.6, 150.0, 195.0])
    sigma = 30.0 * SIGMA_PER_FWHM
    K = mm.irf_operator(time, delays, t0=0.0, irf_fs=30.0)
    assert K.shape == (8, 40) and np.all(K >= 0)
    np.testing.assert_allclose(K.sum(axis=1), 0.5 * (1 + erf(delays / (sigma * math.sqrt(2)))), rtol=1e-13, atol=1e-16)
    K0 = mm.irf_operator(time, delays, t0=0.0, irf_fs=0.0)
    expected = np.zeros((8, 40))
    for d, frame in enumerate([None, None, 0, 0, 2, 3, 30, 39]):  # 12.4 -> frame 2 (10 fs), 12.6 -> frame 3 (15 fs)
        if frame is not None:
            expected[d, frame] = 1.0
    np.testing.assert_array_equal(K0, expected)


def test_a_narrow_irf_tends_to_the_sampled_signal_and_past_the_end_the_last_frame_is_held():
    rng = np.random.default_rng(3)
    basis = random_basis(rng, m=3, t=30, q=4, lengths=[30, 12, 5])
    time = np.arange(30) * 10.0
    delays = np.array([57.0, 103.0, 250.0, 290.0])  # inside cells, far from their edges (55, 105, ...)
    out = mm.ensemble_signal(basis, time, delays, weights=[0.2, 0.3, 0.5], gamma=1.0, t0=0.0, irf_fs=1e-3)
    held = basis.copy()
    for i, L in enumerate([30, 12, 5]):
        held[i, L:] = held[i, L - 1]
    frames = [6, 10, 25, 29]  # nearest frames of 57, 103, 250, 290
    np.testing.assert_allclose(out, np.tensordot([0.2, 0.3, 0.5], held[:, frames], axes=1), rtol=1e-12)
    with pytest.raises(InputError, match="past the end of the basis"):
        mm.ensemble_signal(basis, time, [0.0, 300.0], gamma=1.0, t0=0.0, irf_fs=50.0)
    late = mm.ensemble_signal(
        basis, time, [1000.0], weights=[0.2, 0.3, 0.5], gamma=1.0, t0=0.0, irf_fs=50.0, allow_beyond_end=True
    )
    np.testing.assert_allclose(late[0], np.tensordot([0.2, 0.3, 0.5], held[:, -1], axes=1), rtol=1e-12)


def test_linear_in_weights_and_gamma():
    rng = np.random.default_rng(5)
    basis = random_basis(rng, m=5, t=40, q=7, lengths=[40, 33, 20, 40, 9])
    time, delays = np.arange(40) * 4.0, np.linspace(-50, 150, 23)
    kw = dict(t0=17.0, irf_fs=35.0)
    w1, w2 = rng.random(5), rng.random(5)

    def f(w, g):
        return mm.ensemble_signal(basis, time, delays, weights=w, gamma=g, **kw)

    scale = np.max(np.abs(f(w1, 1.0)))
    np.testing.assert_allclose(f(2.5 * w1 - 0.7 * w2, 1.0), 2.5 * f(w1, 1.0) - 0.7 * f(w2, 1.0), rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(f(w1, 0.03), 0.03 * f(w1, 1.0), rtol=1e-13)
    cols = mm.convolve_basis(basis, time, delays, **kw)  # the NNLS columns
    np.testing.assert_allclose(0.04 * np.tensordot(w2, cols, axes=1), f(w2, 0.04), rtol=0, atol=1e-14 * scale)
    uniform = f(None, 1.0)
    np.testing.assert_allclose(uniform, f(np.full(5, 0.2), 1.0), rtol=1e-14)


# --------------------------------------------------------------------------- PyTorch


def test_torch_agrees_with_numpy_to_1e10():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    basis = random_basis(rng, m=6, t=80, q=9, lengths=[80, 70, 31, 80, 5, 60])
    time = np.arange(80) * 2.5
    delays = np.sort(rng.uniform(-150, 190, 37))
    w = rng.random(6)
    for t0, fwhm in [(20.0, 80.0), (-3.3, 4.0), (10.0, 0.0)]:
        ref = mm.ensemble_signal(basis, time, delays, weights=w, gamma=0.05, t0=t0, irf_fs=fwhm)
        out = mm.ensemble_signal_torch(
            torch.as_tensor(basis),
            time,
            delays,
            weights=torch.as_tensor(w),
            gamma=torch.tensor(0.05, dtype=torch.float64),
            t0=t0,
            irf_fs=fwhm,
        )
        assert out.dtype == torch.float64 and out.shape == ref.shape
        np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-10 * np.max(np.abs(ref)))
        also = mm.ensemble_signal_torch(basis, time, delays, weights=w, gamma=0.05, t0=t0, irf_fs=fwhm)
        np.testing.assert_allclose(also.numpy(), ref, rtol=0, atol=1e-10 * np.max(np.abs(ref)))
    K = mm.irf_operator_torch(
        time, delays, t0=torch.tensor(5.0, dtype=torch.float64), irf_fs=torch.tensor(60.0, dtype=torch.float64)
    )
    # erfc by torch's and by SciPy's own code (a few ulp each) of z formed in another order, and K a difference of two
    # values <= 1
    np.testing.assert_allclose(
        K.numpy(), mm.irf_operator(time, delays, t0=5.0, irf_fs=60.0), rtol=0, atol=16 * np.finfo(float).eps
    )


def test_torch_gradients_pass_gradcheck():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    basis = torch.as_tensor(random_basis(rng, m=3, t=15, q=2, lengths=[15, 9, 4]))
    time = np.arange(15) * 10.0
    delays = np.array([-30.0, 0.0, 25.0, 61.0, 110.0])

    def model(gamma, t0, fwhm, w):
        return mm.ensemble_signal_torch(basis, time, delays, weights=w, gamma=gamma, t0=t0, irf_fs=fwhm)

    args = tuple(torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.05, 12.0, 40.0, [0.5, 0.2, 0.3]))
    assert torch.autograd.gradcheck(model, args, eps=1e-6, atol=1e-8, rtol=1e-6)
    # and the gradients are not trivially zero
    model(*args).sum().backward()
    assert all(float(a.grad.abs().sum()) > 0 for a in args)


# --------------------------------------------------------------------------- the laser-off basis


def test_basis_is_eq1_against_the_mean_first_frame():
    ens = small_ensemble(n=3, n_frames=21, lengths=[21, 10, 21])
    q = np.linspace(0.5, 5.0, 17)
    dS, I_gs = mm.basis_signals(ens, q)
    I = intensity(CS2_SYMBOLS, np.nan_to_num(ens.positions, nan=0.0), q)
    ref = I[:, 0].mean(axis=0)
    np.testing.assert_allclose(I_gs, ref, rtol=1e-12)
    np.testing.assert_allclose(mm.laser_off_reference(ens, q), ref, rtol=1e-12)
    expected = (I - ref) / ref
    expected[1, 10:] = np.nan
    np.testing.assert_allclose(dS, expected, rtol=1e-12, atol=1e-14)
    # a homonuclear diatomic, elastic only: I = 2 f^2 (1 + sin(qr)/(qr)), exactly
    r = np.array([2.60, 2.70, 2.75])
    pos = np.zeros((3, 1, 2, 3))
    pos[:, 0, 1, 2] = r
    i2 = Ensemble("I2", ("I", "I"), [0.0], pos, [1, 1, 1], [False] * 3, ["a", "b", "c"])
    f = form_factors(["I"], q)[0]
    exact = np.mean([2 * f**2 * (1 + np.sin(q * x) / (q * x)) for x in r], axis=0)
    np.testing.assert_allclose(mm.laser_off_reference(i2, q, inelastic=False), exact, rtol=1e-12)


# --------------------------------------------------------------------------- distance distributions


def test_weighted_quantiles_match_hazen_for_equal_weights_and_interpolate_midpoints():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 4))
    levels = [0.0, 0.05, 0.3, 0.5, 0.77, 1.0]
    got = mm.weighted_quantiles(x, np.ones(9), levels, axis=0)
    # an interpolation between neighbouring values, its fraction from a cumulative sum of the 9 weights: ~9 eps of the
    # values' scale, not of the result (a quantile near 0 has no relative precision)
    np.testing.assert_allclose(
        got,
        np.moveaxis(np.quantile(x, levels, axis=0, method="hazen"), 0, -1),
        rtol=0,
        atol=2 * len(x) * np.finfo(float).eps * np.abs(x).max(),
    )
    # weights 1, 3 on values 0, 10: midpoints at 1/8 and 5/8
    got = mm.weighted_quantiles([10.0, 0.0, 99.0], [3.0, 1.0, 0.0], [0.1, 0.125, 0.375, 0.625, 0.9])
    np.testing.assert_allclose(got, [0.0, 0.0, 5.0, 10.0, 10.0], rtol=1e-14)


def test_distance_distribution_is_the_weighted_one_at_the_nearest_held_frame():
    ens = small_ensemble(n=4, n_frames=41, dt=2.5, lengths=[41, 41, 20, 41])
    w = np.array([0.1, 0.2, 0.3, 0.4])
    times = np.array([-50.0, 0.0, 11.0, 60.0, 100.0, 400.0])
    dist = mm.distance_distribution(ens, times, weights=w, levels=[0.5])
    frames = [0, 0, 4, 24, 40, 40]  # 11 fs -> 10 fs; clipped to the basis
    np.testing.assert_array_equal(dist.frames, frames)
    r = ens.distances  # (M, T, P), NaN past each length
    for d, k in enumerate(frames):
        rk = np.stack([r[i, min(k, ens.length[i] - 1)] for i in range(4)])
        mean = w @ rk
        np.testing.assert_allclose(dist.mean[d], mean, rtol=1e-13)
        np.testing.assert_allclose(dist.std[d], np.sqrt(w @ (rk - mean) ** 2), rtol=1e-10, atol=1e-14)
        for p in range(3):
            assert rk[:, p].min() <= dist.quantiles[d, p, 0] <= rk[:, p].max()
    assert dist.pair_labels == ("C1-S2", "C1-S3", "S2-S3")


def test_dissociated_fraction_counts_trajectories_from_the_frame_their_fragments_part():
    ens = small_ensemble(n=4, n_frames=41, dt=2.5)
    assert list(ens.dissociated) == [False, True, False, True]
    r_c, r_s = covalent_radii(["C", "S"])
    part = []
    for i in (1, 3):  # the departing S3 is free once C1-S3 and S2-S3 both exceed BREAK_SCALE x the radii sums
        d = ens.distances[i]
        apart = (d[:, 1] > BREAK_SCALE * (r_c + r_s)) & (d[:, 2] > BREAK_SCALE * 2 * r_s)
        part.append(int(np.argmax(apart)))
        assert apart[part[-1] :].all() and not apart[: part[-1]].any()
    np.testing.assert_array_equal(mm.parting_frames(ens), [-1, part[0], -1, part[1]])
    w = np.array([0.1, 0.2, 0.3, 0.4])
    times = 2.5 * np.array([-4, 0, min(part) - 1, min(part), max(part), 40])
    frac = mm.distance_distribution(ens, times, weights=w).dissociated_fraction
    expect = [w[[1, 3]] @ (np.array(part) <= k) if k >= 0 else 0.0 for k in (-1, 0, min(part) - 1, min(part), max(part), 40)]
    np.testing.assert_allclose(frac, expect, rtol=1e-14)
    assert frac[-1] == pytest.approx(0.6)
    again = mm.distance_distribution(ens, times, weights=w, parting=mm.parting_frames(ens)).dissociated_fraction
    np.testing.assert_array_equal(again, frac)


# --------------------------------------------------------------------------- noise


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_noisy_residuals_over_sigma_have_unit_variance(seed):
    ens = small_ensemble(n=3, n_frames=41, dt=2.5)
    q = np.linspace(0.5, 6.0, 60)
    delays = np.linspace(-100.0, 80.0, 400)  # 24,000 bins: the sample variance has a relative spread of 0.9 %
    meas = mm.simulate_measurement(ens, q=q, delays=delays, gamma=0.3, t0=-10.0, irf_fs=30.0, photons=2e3, seed=seed)
    z = (meas.dS - meas.truth.dS_clean) / meas.sigma
    assert abs(z.var() - 1.0) < 0.05
    assert abs(z.mean()) < 0.05
    np.testing.assert_allclose(meas.sigma, np.sqrt((1 + meas.truth.dS_clean) / 2e3), rtol=1e-14)
    assert np.ptp(meas.truth.dS_clean) > 2 * np.median(meas.sigma)  # a signal, not only noise
    again = mm.simulate_measurement(ens, q=q, delays=delays, gamma=0.3, t0=-10.0, irf_fs=30.0, photons=2e3, seed=seed)
    np.testing.assert_array_equal(again.dS, meas.dS)


def test_noise_free_measurement_is_the_model_and_carries_no_sigma():
    ens = small_ensemble(n=4, n_frames=41, dt=2.5, lengths=[41, 30, 41, 12])
    q = np.linspace(1.0, 4.0, 12)
    delays = np.array([-200.0, -20.0, 5.0, 33.0, 70.0, 105.0])
    w = np.array([1.0, 0.0, 2.0, 1.0])
    meas = mm.simulate_measurement(ens, q=q, delays=delays, weights=w, gamma=0.05, t0=10.0, irf_fs=50.0)
    assert meas.sigma is None
    dS_basis, _ = mm.basis_signals(ens, q)
    model = mm.ensemble_signal(dS_basis, ens.time, delays, weights=w / 4, gamma=0.05, t0=10.0, irf_fs=50.0)
    np.testing.assert_allclose(meas.dS, model, rtol=0, atol=1e-12 * np.max(np.abs(model)))
    np.testing.assert_array_equal(meas.truth.dS_clean, meas.dS)
    np.testing.assert_allclose(meas.truth.weights, w / 4)
    assert abs(meas.dS[0]).max() < 1e-12 * abs(meas.dS).max()  # 200 fs before t0: nothing excited yet


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(gamma=0.0), "gamma"),
        (dict(gamma=1.5), "gamma"),
        (dict(irf_fs=-1.0), "irf_fs"),
        (dict(photons=0.0), "photons"),
        (dict(delays=[0.0, 10.0, 5.0]), "strictly increasing"),
        (dict(delays=[0.0, 10.0, 500.0]), "past the end of the basis"),
        (dict(weights=[1.0, -1.0, 1.0]), "weights"),
        (dict(weights=[1.0, 1.0]), "one number per trajectory"),
        (dict(trajectories=[0, 7]), "out of range"),
        (dict(trajectories=[0, 0, 1]), "twice"),
        (dict(q=[1.0, 0.5]), "q"),
        (dict(t0=float("nan")), "t0"),
        (dict(delays=np.linspace(-100, 100, 200_000), q=np.linspace(0.5, 5, 1000)), "limit"),
    ],
)
def test_bad_input_is_one_clear_error(change, match):
    ens = small_ensemble(n=3, n_frames=21)
    kw = dict(q=np.linspace(0.5, 4, 5), delays=[-10.0, 0.0, 20.0], gamma=0.05, t0=0.0, irf_fs=20.0)
    kw.update(change)
    with pytest.raises(InputError, match=match):
        mm.simulate_measurement(ens, **kw)


def test_a_dataset_without_trajectories_and_bad_bases_are_refused():
    ens = small_ensemble(n=2, n_frames=11).subset([])
    with pytest.raises(InputError, match="no trajectories"):
        mm.simulate_measurement(ens, q=[1.0, 2.0], delays=[0.0], gamma=0.1, t0=0.0, irf_fs=10.0)
    time = np.arange(5.0)
    bad = np.zeros((2, 5, 3))
    bad[0, 2, 1] = np.nan  # partly NaN frame
    with pytest.raises(InputError, match="partly non-finite"):
        mm.ensemble_signal(bad, time, [1.0], gamma=1.0, t0=0.0, irf_fs=1.0)
    torch = pytest.importorskip("torch")
    with pytest.raises(InputError, match="partly non-finite"):
        mm.ensemble_signal_torch(torch.as_tensor(bad), time, [1.0], gamma=1.0, t0=0.0, irf_fs=1.0)
    gap = np.zeros((2, 5, 3))
    gap[1, 1] = np.nan  # a valid frame after a NaN one
    with pytest.raises(InputError, match="NaN only after"):
        mm.ensemble_signal(gap, time, [1.0], gamma=1.0, t0=0.0, irf_fs=1.0)
    with pytest.raises(InputError, match="one value per frame"):
        mm.ensemble_signal(np.zeros((2, 5, 3)), np.arange(4.0), [1.0], gamma=1.0, t0=0.0, irf_fs=1.0)
    with pytest.raises(InputError, match="strictly increasing"):
        mm.irf_operator([0.0, 1.0, 1.0], [0.5], t0=0.0, irf_fs=1.0)
