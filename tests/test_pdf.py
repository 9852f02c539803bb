"""The model-free ΔP(R, t) inversion (method "pdf"), against synthetic I2 signals of known ΔP."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from molmovie import InputError
from molmovie.fitting import PairDistributionFit, get_measurement_method
from molmovie.fitting._pdf import debye_kernel, r_bins, sine_transform
from molmovie.io.measurement import Measurement
from molmovie.scattering import form_factors, intensity_from_distances

from _fit_fixtures import R_E, diatomic_ensemble

Q = np.linspace(0.5, 8.0, 100)
DELAYS = np.arange(-100.0, 600.0, 20.0)
R_FINE = np.linspace(1.0, 6.0, 5001)
WIDTH = 0.15  # Angstrom, of both distance distributions
GAMMA = 0.05


def _gauss(mu, s):
    return np.exp(-0.5 * ((R_FINE - mu) / s) ** 2) / (s * np.sqrt(2 * np.pi))


def _synthetic(seed: int, snr: float = 30.0):
    """I2 whose distance distribution is a Gaussian shifted by 0 to 0.5 Å (a known ΔP); ΔS by fine quadrature."""
    f = form_factors(["I"], Q)[0]
    I_gs = intensity_from_distances(("I", "I"), [R_E], Q)
    centre = np.where(DELAYS < 0, R_E, R_E + 0.5 * np.abs(np.sin(2 * np.pi * np.clip(DELAYS, 0, None) / 400)))
    dP = np.array([GAMMA * (_gauss(m, WIDTH) - _gauss(R_E, WIDTH)) for m in centre])  # (T, fine R)
    sinc = np.sin(np.outer(R_FINE, Q)) / np.outer(R_FINE, Q)
    dS = np.trapezoid(dP[:, :, None] * sinc[None], R_FINE, axis=1) * 2 * f * f / I_gs
    sigma = np.full_like(dS, np.abs(dS).max() / snr)
    noisy = dS + sigma * np.random.default_rng(seed).standard_normal(dS.shape)
    return Measurement(Q, DELAYS, noisy, sigma, ("I", "I"), "I2", {"made_by": "test"}), dP, centre


def _bin_average(dP_fine, r, dr):
    return np.array([[row[(R_FINE >= c - dr / 2) & (R_FINE < c + dr / 2)].mean() for c in r] for row in dP_fine])


@pytest.mark.parametrize(
    "seed, rule, penalty",
    [(0, "discrepancy", "ridge"), (1, "discrepancy", "ridge"), (2, "gcv", "ridge"), (3, "gcv", "curvature")],
)
def test_recovers_a_shifted_gaussian(seed, rule, penalty):
    meas, dP_fine, centre = _synthetic(seed)
    fit = get_measurement_method(
        "pdf", r_min=1.5, r_max=4.5, dr=0.1, ground_distances=[R_E], regularize=rule, penalty=penalty
    ).fit(meas)
    res = fit.result_
    r = res.pdf.r
    x, s = res.pdf.dP[:, 0], res.pdf.dP_std[:, 0]
    truth = _bin_average(dP_fine, r, 0.1)
    moved = np.abs(centre - R_E) > 0.25
    # gain and loss peaks within one bin of the truth's
    assert np.max(np.abs(r[np.argmax(x[moved], 1)] - r[np.argmax(truth[moved], 1)])) <= 0.1 + 1e-9
    assert np.max(np.abs(r[np.argmin(x[moved], 1)] - r[np.argmin(truth[moved], 1)])) <= 0.1 + 1e-9
    # the ±2σ band covers the truth
    assert np.mean(np.abs(x - truth) <= 2 * s) >= 0.9
    assert 0.8 < res.reduced_chi2 < 1.2
    assert res.converged and res.pdf.rule == rule and res.pdf.penalty == penalty
    # the sine transform finds the same peak within two bins (it is blurred by the damping)
    sine = res.pdf.dP_sine
    assert np.max(np.abs(r[np.argmax(sine[moved], 1)] - r[np.argmax(truth[moved], 1)])) <= 0.2 + 1e-9


def test_discrepancy_rule_gives_chi2_equal_to_the_number_of_data():
    meas, _, _ = _synthetic(3)
    res = (
        get_measurement_method("pdf", r_min=1.5, r_max=4.5, dr=0.1, ground_distances=[R_E], regularize="discrepancy")
        .fit(meas)
        .result_
    )
    assert res.pdf.rule == "discrepancy"
    assert abs(res.chi2 - res.n_data) < 1e-3 * res.n_data
    # no change at all: the strongest regularisation, ΔP = 0 within its band
    quiet = replace(meas, dS=meas.sigma * np.random.default_rng(4).standard_normal(meas.dS.shape) * 0.5)
    res0 = (
        get_measurement_method("pdf", r_min=1.5, r_max=4.5, dr=0.1, ground_distances=[R_E], regularize="discrepancy")
        .fit(quiet)
        .result_
    )
    assert "strongest" in res0.message
    assert np.all(np.abs(res0.pdf.dP) <= 2 * res0.pdf.dP_std)


def test_kernel_integrates_the_debye_term_over_each_bin():
    """One pair spread evenly over one bin gives that bin's average of 2 f² sin(qR)/(qR) / I_gs, exactly."""
    r, edges = r_bins(2.0, 3.0, 0.1)
    I_gs = intensity_from_distances(("I", "I"), [R_E], Q)
    K = debye_kernel(("I", "I"), Q, edges, I_gs)
    f = form_factors(["I"], Q)[0]
    fine = np.linspace(edges[4], edges[5], 20001)
    avg = np.trapezoid(np.sin(np.outer(Q, fine)) / np.outer(Q, fine), fine, axis=1) / (edges[5] - edges[4])
    x = np.zeros(r.size)
    x[4] = 1.0 / 0.1  # one pair per molecule in bin 4
    np.testing.assert_allclose(K @ x, 2 * f * f * avg / I_gs, rtol=1e-8, atol=1e-11)


def test_sine_transform_band_is_the_propagated_noise():
    """The stated 1-σ band of the sine transform is the scatter of the transform over noise replicates."""
    meas, _, _ = _synthetic(5)
    part = get_measurement_method("pdf", r_min=1.5, r_max=4.5, dr=0.1, ground_distances=[R_E]).fit(meas).result_.pdf
    sum_f2 = 2 * form_factors(["I"], Q)[0] ** 2
    rng = np.random.default_rng(6)
    reps = [
        sine_transform(
            Q,
            meas.dS + meas.sigma * rng.standard_normal(meas.dS.shape),
            meas.sigma,
            part.r,
            I_gs=part.I_gs,
            sum_f2=sum_f2,
            damping=part.damping,
        )[0]
        for _ in range(300)
    ]
    np.testing.assert_allclose(np.std(np.array(reps), axis=0), part.dP_sine_std, rtol=0.2)


def test_bound_from_a_basis_holds():
    basis = diatomic_ensemble(60, seed=7, dissociating=0.0)
    meas, _, _ = _synthetic(8)
    res = get_measurement_method("pdf", r_min=1.5, r_max=4.5, dr=0.1).fit(meas, basis=basis).result_
    ground = res.pdf.ground_P
    assert ground is not None and res.pdf.reference.startswith("basis")
    assert abs(ground[0].sum() * 0.1 - 1.0) < 1e-3  # one I-I pair per molecule, all inside 1.5-4.5 Å
    assert np.all(res.pdf.dP[:, 0] >= -ground[0][None] - 1e-9)


def test_pair_types_of_a_triatomic():
    cs2 = Measurement(
        Q, DELAYS, np.zeros((DELAYS.size, Q.size)), np.full((DELAYS.size, Q.size), 1e-3), ("C", "S", "S"), "cs2", {}
    )
    res = get_measurement_method("pdf", r_min=1.0, r_max=4.0, dr=0.1).fit(cs2).result_
    assert res.pdf.pair_types == ("C-S", "S-S")
    assert res.pdf.dP.shape == (DELAYS.size, 2, 30)
    assert res.pdf.reference.startswith("built-in geometry of cs2")


def test_bad_inputs():
    meas, _, _ = _synthetic(0)
    with pytest.raises(InputError, match="names no atoms"):
        PairDistributionFit().fit(replace(meas, symbols=None))
    with pytest.raises(InputError, match="has no σ"):
        PairDistributionFit().fit(replace(meas, sigma=None))
    est = PairDistributionFit(sigma="pre-t0", r_min=1.5, r_max=4.5, dr=0.1).fit(replace(meas, sigma=None)).result_
    assert est.sigma_source.startswith("pre-t0: std over the 5 delays")
    with pytest.raises(InputError, match="q > 0"):
        PairDistributionFit().fit(replace(meas, q=np.linspace(0.0, 8.0, 100)))
    with pytest.raises(InputError, match="the measurement is of I2 but the basis holds Br2"):
        PairDistributionFit().fit(meas, basis=diatomic_ensemble(3, seed=0, symbols=("Br", "Br")))
    with pytest.raises(InputError, match="'penalty'"):
        get_measurement_method("pdf", penalty="smooth")
    with pytest.raises(InputError, match="no setting 'bootstrap'"):
        get_measurement_method("pdf", bootstrap=3)
    with pytest.raises(InputError, match="ground_distances"):
        PairDistributionFit(ground_distances=[2.6, 3.0]).fit(meas)
