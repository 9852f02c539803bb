"""Detector model: q grid, ΔS references, NaN padding, photon noise, time resolution.

Exact answers where they exist (ΔS = 0 at the reference frame, a constant signal
survives any normalised convolution, the ground reference averages to zero ΔS
at t = 0, a step convolved with a Gaussian is an error function); statistical
tests with tolerances that hold for any seed but that a biased or wrongly
scaled noise model fails. NumPy floating-point errors raise (tests/conftest.py).
"""

from __future__ import annotations

from math import erf, log, sqrt

import numpy as np
import pytest

from molmovie._errors import InputError
from molmovie.molecules import builtin
from molmovie.scattering import DEFAULT_Q, intensity, q_grid, simulate_signals
from molmovie.scattering.detector import WAVELENGTH

CS2 = builtin("cs2")
Q = q_grid(n_q=40)


def cs2_ensemble(n_traj: int, n_frames: int, lengths, seed: int = 0, dt: float = 0.5):
    """Vibrating CS2 trajectories (M, T, 3, 3) with NaN past each length, and their times."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) * dt
    pos = np.repeat(np.repeat(CS2.positions[None, None], n_traj, 0), n_frames, 1).copy()
    amp = rng.uniform(0.02, 0.08, n_traj)
    pos[:, :, 1, 2] += amp[:, None] * np.sin(2 * np.pi * t / 40.0)
    pos[:, :, 2, 2] -= amp[:, None] * np.sin(2 * np.pi * t / 40.0)
    pos += rng.normal(0, 0.01, pos.shape)
    lengths = np.asarray(lengths)
    pos[np.arange(n_frames)[None, :] >= lengths[:, None]] = np.nan
    return pos, lengths, t


# ---------------------------------------------------------------- q grid


def test_default_q_grid_and_its_reason():
    q = q_grid()
    assert q.shape == (100,) and q[0] == 0.5 and q[-1] == 6.8
    np.testing.assert_allclose(np.diff(q), np.diff(q)[0], rtol=1e-12)
    np.testing.assert_array_equal(q_grid(**DEFAULT_Q), q)
    # 9.5 keV (λ = 1.305 Å), 2θ from 6° to 90°
    assert abs(WAVELENGTH - 1.3051) < 1e-4
    assert abs(4 * np.pi * np.sin(np.radians(45)) / WAVELENGTH - q[-1]) < 0.02
    assert abs(4 * np.pi * np.sin(np.radians(3)) / WAVELENGTH - q[0]) < 0.01


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(q_min=-0.1), "The 'q_min' parameter must be >= 0; got -0.1"),
        (dict(q_min=1.0, q_max=0.3), "The 'q_max' parameter must be > q_min = 1.0; got 0.3"),
        (dict(q_min=1.0, q_max=1.0), "must be > q_min"),
        (dict(n_q=1), "The 'n_q' parameter must be >= 2; got 1"),
        (dict(n_q=10.5), "must be an integer"),
        (dict(q_max=float("inf")), "finite"),
    ],
)
def test_q_grid_errors_teach(kwargs, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        q_grid(**kwargs)


# ---------------------------------------------------------------- references and padding


def test_first_frame_reference_nan_padding_and_values():
    pos, lengths, t = cs2_ensemble(3, 12, [12, 5, 1])
    dS, I_ref = simulate_signals(CS2.symbols, pos, lengths, t, Q)
    assert dS.shape == (3, 12, 40) and I_ref.shape == (3, 40)
    np.testing.assert_array_equal(dS[:, 0], 0.0)
    for m, n in enumerate(lengths):
        assert np.isfinite(dS[m, :n]).all() and np.isnan(dS[m, n:]).all()
    I = intensity(CS2.symbols, pos[0], Q)
    np.testing.assert_array_equal(I_ref[0], I[0])
    np.testing.assert_allclose(dS[0], I / I[0] - 1, rtol=1e-12, atol=1e-15)
    assert np.max(np.abs(dS[0])) > 1e-3  # the molecule does move
    # elastic only is a different, larger relative signal
    dS_el, _ = simulate_signals(CS2.symbols, pos, lengths, t, Q, inelastic=False)
    assert np.nanmax(np.abs(dS_el)) > np.nanmax(np.abs(dS))


def test_ground_reference_is_the_ensemble_mean_of_first_frames():
    pos, lengths, t = cs2_ensemble(5, 8, [8, 8, 3, 6, 2], seed=1)
    dS, I_ref = simulate_signals(CS2.symbols, pos, lengths, t, Q, reference="ground")
    first = intensity(CS2.symbols, pos[:, 0], Q)
    np.testing.assert_allclose(I_ref, np.repeat(first.mean(0, keepdims=True), 5, 0), rtol=1e-15)
    assert np.all(I_ref == I_ref[0])
    # each trajectory's t = 0 differs from the mean, but the differences average to zero
    assert np.max(np.abs(dS[:, 0])) > 1e-5
    # I_k / mean(I) - 1 averaged over k is 0 but for each ratio's rounding and the mean's: a few eps (1 eps measured)
    np.testing.assert_allclose(dS[:, 0].mean(0), 0.0, atol=8 * np.finfo(float).eps)
    assert np.isnan(dS[2, 3:]).all() and np.isfinite(dS[2, :3]).all()


def test_progress_reports_trajectories_done():
    pos, lengths, t = cs2_ensemble(4, 3000, [3000, 2000, 10, 3000], seed=2)
    seen = []
    simulate_signals(CS2.symbols, pos, lengths, t, Q, progress=lambda done, info: seen.append(done))
    assert seen == sorted(seen) and seen[-1] == 4 and len(seen) >= 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(reference="laser-off"), "'first' or 'ground'"),
        (dict(photons=0.0), "'photons' parameter must be > 0"),
        (dict(irf_fs=-5.0), "'irf_fs' parameter must be > 0"),
        (dict(q=[-1.0, 1.0]), ">= 0"),
    ],
)
def test_simulate_signals_option_errors(kwargs, message):
    pos, lengths, t = cs2_ensemble(2, 4, [4, 2])
    q = kwargs.pop("q", Q)
    with pytest.raises(InputError, match=message):
        simulate_signals(CS2.symbols, pos, lengths, t, q, **kwargs)


def test_simulate_signals_input_errors():
    pos, lengths, t = cs2_ensemble(2, 4, [4, 2])
    with pytest.raises(InputError, match="between 1 and 4"):
        simulate_signals(CS2.symbols, pos, [5, 2], t, Q)
    with pytest.raises(InputError, match="between 1 and 4"):
        simulate_signals(CS2.symbols, pos, [0, 2], t, Q)
    with pytest.raises(InputError, match=r"shape \(n_trajectories, n_frames, 3, 3\)"):
        simulate_signals(CS2.symbols, pos[0], lengths, t, Q)
    with pytest.raises(InputError, match="inside its length"):
        simulate_signals(CS2.symbols, pos, [4, 3], t, Q)
    with pytest.raises(InputError, match="strictly increasing"):
        simulate_signals(CS2.symbols, pos, lengths, t[::-1], Q)
    with pytest.raises(InputError, match="uniformly spaced"):
        simulate_signals(CS2.symbols, pos, lengths, [0.0, 0.5, 1.5, 2.0], Q, irf_fs=2.0)


# ---------------------------------------------------------------- photon noise


def test_noise_is_reproducible_and_leaves_the_reference_and_padding_alone():
    pos, lengths, t = cs2_ensemble(3, 10, [10, 4, 7], seed=3)
    a = simulate_signals(CS2.symbols, pos, lengths, t, Q, photons=1e5, seed=11)
    b = simulate_signals(CS2.symbols, pos, lengths, t, Q, photons=1e5, seed=11)
    c = simulate_signals(CS2.symbols, pos, lengths, t, Q, photons=1e5, seed=12)
    clean = simulate_signals(CS2.symbols, pos, lengths, t, Q)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(np.nan_to_num(a[0]), np.nan_to_num(c[0]))
    np.testing.assert_array_equal(a[1], clean[1])  # noise-free reference
    np.testing.assert_array_equal(np.isnan(a[0]), np.isnan(clean[0]))
    assert not np.all(a[0][:, 0] == 0)  # the first frame is measured with noise too


@pytest.mark.parametrize("seed", [0, 2024])
def test_noise_is_unbiased_with_poisson_variance(seed):
    # 4000 shots of one geometry: the sample mean of Ĩ must match I within 5 standard
    # errors at every q, and the sample variance must match I ΣI / photons within 15 %
    # (its relative scatter is sqrt(2/4000) = 2 %), for any seed.
    n, photons = 4000, 2e4
    q = q_grid(n_q=20)
    pos = np.repeat(CS2.positions[None, None], n, 1)
    dS, I_ref = simulate_signals(CS2.symbols, pos, [n], np.arange(n) * 1.0, q, photons=photons, seed=seed)
    I_true = I_ref[0]
    I_noisy = I_true * (1 + dS[0])
    var = I_true * I_true.sum() / photons
    z = (I_noisy.mean(0) - I_true) / np.sqrt(var / n)
    assert np.max(np.abs(z)) < 5.0
    np.testing.assert_allclose(I_noisy.var(0, ddof=1) / var, 1.0, atol=0.15)
    # counts are integers: Ĩ photons / ΣI is integral
    counts = I_noisy * photons / I_true.sum()
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)


# ---------------------------------------------------------------- time resolution


@pytest.mark.parametrize("irf_fs", [1.5, 30.0], ids=["direct", "fft"])
def test_irf_keeps_a_constant_signal_and_the_nan_padding(irf_fs):
    # A rigid molecule: I(q, t) is constant, so a normalised convolution returns it
    # unchanged up to the last valid frame (no edge bias), and ΔS stays 0.
    n_frames = 120
    pos = np.repeat(np.repeat(CS2.positions[None, None], 3, 0), n_frames, 1).copy()
    lengths = np.array([120, 50, 9])
    pos[np.arange(n_frames)[None, :] >= lengths[:, None]] = np.nan
    dS, _ = simulate_signals(CS2.symbols, pos, lengths, np.arange(n_frames) * 0.5, Q, irf_fs=irf_fs)
    for m, n in enumerate(lengths):
        np.testing.assert_allclose(dS[m, :n], 0.0, atol=1e-13)
        assert np.isnan(dS[m, n:]).all()


def test_irf_turns_a_step_into_an_error_function():
    # The molecule jumps to a stretched geometry at frame 100: with a Gaussian IRF of
    # FWHM 10 fs (σ = 4.25 fs, frames every 0.5 fs), ΔS(t)/ΔS(∞) is the erf step
    # centred half a frame before the jump.
    n_frames, jump, dt, fwhm = 200, 100, 0.5, 10.0
    stretched = CS2.positions.copy()
    stretched[1:, 2] *= 1.1
    pos = np.repeat(CS2.positions[None, None], n_frames, 1).copy()
    pos[0, jump:] = stretched
    t = np.arange(n_frames) * dt
    dS, I_ref = simulate_signals(CS2.symbols, pos, [n_frames], t, Q, irf_fs=fwhm)
    dS_inf = intensity(CS2.symbols, stretched, Q) / I_ref[0] - 1
    sigma = fwhm / (2 * sqrt(2 * log(2)))
    expected = np.array([0.5 * (1 + erf((ti - (t[jump] - dt / 2)) / (sigma * sqrt(2)))) for ti in t])
    big = np.abs(dS_inf) > 1e-3
    np.testing.assert_allclose(dS[0][:, big] / dS_inf[big], np.repeat(expected[:, None], big.sum(), 1), atol=1e-3)
