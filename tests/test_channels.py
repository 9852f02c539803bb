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


def _basis() -> Ensemble:
    """I2 flying apart at constant relative speeds from r_e."""
    R = R0 + SPEEDS[:, None] * TIME[None, :]
    pos = np.zeros((R.shape[0], TIME.size, 2, 3))
    pos[:, :, 1, 2] = R
    m = R.shape[0]
    return Ensemble(
        molecule="I2",
        symbols=("I", "I"),
        time=TIME,
        positions=pos,
        length=np.full(m, TIME.size),
        dissociated=np.ones(m, bool),
        source=[f"v{k}" for k in range(m)],
    )


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
