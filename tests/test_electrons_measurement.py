"""Electron measurements: simulate-experiment, the measurement file's probe, and the ensemble fit on ΔI/I (≡ ΔsM)."""

from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np
import pytest

from molmovie import InputError
from molmovie.fitting import EnsembleFit
from molmovie.geometry import distances
from molmovie.io import read_dataset, write_dataset
from molmovie.io.measurement import read_measurement, write_measurement
from molmovie.measurement import simulate_measurement
from molmovie.scattering import SignalSpec, intensity_from_distances, simulate

from _fit_fixtures import diatomic_ensemble
from _fixtures import assert_one_line_error, run_cli

S = np.linspace(0.5, 10.0, 30)
DELAYS = np.arange(-150.0, 801.0, 25.0)


@pytest.fixture(scope="module")
def basis():
    return diatomic_ensemble(12, seed=5)


def test_simulated_electron_measurement_is_the_weighted_delta_i_over_i(basis):
    """γ = 1, t0 = 0, no IRF, delays on the frames: ΔS(t) = Σ w_i (I_i(t) − I_gs)/I_gs with the electron I(s)."""
    w = np.linspace(1.0, 2.0, 12)
    w /= w.sum()
    delays = basis.time[:20]
    meas = simulate_measurement(basis, q=S, delays=delays, weights=w, gamma=1.0, t0=0.0, irf_fs=0.0, probe="electron")
    assert (meas.probe, meas.energy_kev) == ("electron", 3700.0)
    d = distances(basis.positions[:, :20])
    I = intensity_from_distances(basis.symbols, d, S, probe="electron")
    I_gs = I[:, 0].mean(axis=0)
    expected = np.tensordot(w, (I - I_gs) / I_gs, axes=(0, 0))
    np.testing.assert_allclose(meas.dS, expected, rtol=1e-10, atol=1e-13)
    xray = simulate_measurement(basis, q=S, delays=delays, weights=w, gamma=1.0, t0=0.0, irf_fs=0.0)
    assert np.max(np.abs(xray.dS - meas.dS)) > 0.01 * np.max(np.abs(meas.dS))  # another probe, another signal


def test_measurement_file_keeps_the_probe_and_old_files_read_as_xray(basis, tmp_path):
    meas = simulate_measurement(basis, q=S, delays=DELAYS, gamma=0.05, t0=0.0, irf_fs=150.0, probe="electron", energy_kev=90.0)
    back = read_measurement(write_measurement(meas, tmp_path / "ued.h5"))
    assert (back.probe, back.energy_kev) == ("electron", 90.0)
    np.testing.assert_array_equal(back.dS, meas.dS)
    old = write_measurement(replace(meas, probe="xray", energy_kev=None), tmp_path / "old.h5")
    with h5py.File(old, "r+") as f:
        del f.attrs["probe"]
    assert read_measurement(old).probe == "xray"


def test_ensemble_fit_of_an_electron_measurement_returns_its_weights(basis):
    meas = simulate_measurement(basis, q=S, delays=DELAYS, gamma=0.05, t0=43.0, irf_fs=150.0, probe="electron")
    meas = replace(meas, sigma=np.full(meas.dS.shape, 1e-5))
    fit = EnsembleFit(t0_range=(-60.0, 120.0), irf_range=(50.0, 250.0), bootstrap=0).fit(meas, basis)
    e, res = fit.result_.ensemble, fit.result_
    assert res.converged, res.message
    np.testing.assert_allclose(e.weights, np.full(12, 1 / 12), atol=2e-4)
    assert abs(e.gamma / 0.05 - 1) < 1e-3 and abs(e.t0 - 43.0) < 0.05 and abs(e.irf_fs - 150.0) < 0.2
    # the probe is what the fit asks the forward model for: the same numbers read as X-rays do not fit
    wrong = EnsembleFit(t0_range=(-60.0, 120.0), irf_range=(50.0, 250.0), bootstrap=0).fit(
        replace(meas, probe="xray", energy_kev=None), basis
    )
    assert wrong.result_.chi2 > 100 * max(res.chi2, 1.0)


def _texts(fig) -> set[str]:
    """Every title, axis label, colour-bar label and legend entry of a figure."""
    out = set()
    for ax in fig.axes:
        out |= {ax.get_title(), ax.get_xlabel(), ax.get_ylabel()}
        legend = ax.get_legend()
        if legend is not None:
            out |= {t.get_text() for t in legend.get_texts()}
    return out - {""}


def test_figures_of_an_electron_measurement_and_its_fit_speak_of_s_and_delta_i_over_i(basis):
    """Electron diffraction names the momentum transfer s and the signal ΔI/I (or ΔsM): every panel of ``show`` and of the
    fit's signal figure says so, and an X-ray measurement's say q and ΔS, on the same numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from molmovie.evaluation.fit_figures import fit_figures
    from molmovie.evaluation.measurement_figures import plot_measurement

    meas = simulate_measurement(basis, q=S, delays=DELAYS, gamma=0.05, t0=0.0, irf_fs=150.0, probe="electron")
    meas = replace(meas, sigma=np.full(meas.dS.shape, 1e-4))
    fit = EnsembleFit(t0_range=(-60.0, 120.0), irf_range=(50.0, 250.0), bootstrap=0).fit(meas, basis)
    for m, (q_name, signal) in ((meas, ("s", "ΔI/I")), (replace(meas, probe="xray", energy_kev=None), ("q", "ΔS"))):
        other_q, other_signal = ("q", "ΔS") if q_name == "s" else ("s", "ΔI/I")
        shown = _texts(plot_measurement(m.q, m.delays, m.dS, m.sigma, probe=m.probe))
        fitted = _texts(fit_figures(fit.result_, m)["ensemble_fit_signals"])
        for texts in (shown, fitted):
            assert f"{q_name} (1/Å)" in texts and f"{signal} (%)" in texts, texts
            assert not any(f"{other_q} (1/Å)" in t or f"{other_q} = " in t or other_signal in t for t in texts), texts
        assert {f"{signal}({q_name}, t)", f"|{signal}|/σ"} <= shown
        assert any(t.startswith(f"{q_name} = ") and t.endswith(" 1/Å") for t in fitted)  # the line-outs' legend
    plt.close("all")


def test_simulate_experiment_cli_chains_the_probe_from_the_dataset(basis, tmp_path, capsys):
    spec = SignalSpec(S, probe="electron", energy_kev=90.0)
    ds = basis.with_signals(*simulate(basis.symbols, basis.positions, basis.length, basis.time, spec))
    path = write_dataset(ds, tmp_path / "ued_basis.h5")
    assert read_dataset(path).spec.probe == "electron"
    out = tmp_path / "m.h5"
    code, stdout, err = run_cli(["simulate-experiment", path, "-o", out, "--irf-fs", "150", "--photons", "1e6"], capsys)
    assert code == 0, err
    assert "electrons at 90 keV" in stdout and "electrons per q bin" in stdout
    meas = read_measurement(out)
    assert (meas.probe, meas.energy_kev) == ("electron", 90.0)
    code, _, err = run_cli(
        ["simulate-experiment", path, "-o", tmp_path / "x.h5", "--probe", "xray", "--energy-kev", "90"], capsys
    )
    assert_one_line_error(code, err, "'energy_kev' parameter is the electron beam")


def test_pdf_fit_recovers_a_known_delta_p_from_electron_delta_i_over_i():
    """I2 whose distance distribution shifts by up to 0.5 Å (a known ΔP), ΔI/I by fine quadrature of the electron
    Debye term 2|f|² sin(sR)/(sR) (identical atoms: no phase difference); the pdf method on the electron measurement."""
    from molmovie.fitting import get_measurement_method
    from molmovie.io.measurement import Measurement
    from molmovie.scattering import electron_amplitudes

    from _fit_fixtures import R_E

    s = np.linspace(0.5, 10.0, 100)
    delays = np.arange(-100.0, 600.0, 20.0)
    r_fine = np.linspace(1.0, 6.0, 5001)

    def gauss(mu):
        return np.exp(-0.5 * ((r_fine - mu) / 0.15) ** 2) / (0.15 * np.sqrt(2 * np.pi))

    f2 = np.abs(electron_amplitudes(["I"], s)[0]) ** 2
    I_gs = intensity_from_distances(("I", "I"), [R_E], s, probe="electron")
    centre = np.where(delays < 0, R_E, R_E + 0.5 * np.abs(np.sin(2 * np.pi * np.clip(delays, 0, None) / 400)))
    dP = np.array([0.05 * (gauss(m) - gauss(R_E)) for m in centre])
    sinc = np.sin(np.outer(r_fine, s)) / np.outer(r_fine, s)
    dS = np.trapezoid(dP[:, :, None] * sinc[None], r_fine, axis=1) * 2 * f2 / I_gs
    sigma = np.full_like(dS, np.abs(dS).max() / 30.0)
    noisy = dS + sigma * np.random.default_rng(0).standard_normal(dS.shape)
    meas = Measurement(s, delays, noisy, sigma, ("I", "I"), "I2", {"made_by": "test"}, probe="electron")
    res = get_measurement_method("pdf", r_min=1.5, r_max=4.5, dr=0.1, ground_distances=[R_E]).fit(meas).result_
    r, x, band = res.pdf.r, res.pdf.dP[:, 0], res.pdf.dP_std[:, 0]
    truth = np.array([[row[(r_fine >= c - 0.05) & (r_fine < c + 0.05)].mean() for c in r] for row in dP])
    moved = np.abs(centre - R_E) > 0.25
    assert np.max(np.abs(r[np.argmax(x[moved], 1)] - r[np.argmax(truth[moved], 1)])) <= 0.1 + 1e-9
    assert np.max(np.abs(r[np.argmin(x[moved], 1)] - r[np.argmin(truth[moved], 1)])) <= 0.1 + 1e-9
    assert np.mean(np.abs(x - truth) <= 2 * band) >= 0.9
    assert 0.8 < res.reduced_chi2 < 1.2


def test_ingest_a_ued_export_of_delta_sm_in_inverse_bohr(tmp_path, capsys):
    """s in 1/bohr, ΔsM in 1/bohr: ΔI/I = ΔsM I_at/(s I_gs) recovers the electron model's ΔI/I exactly (I_gs of the built-in CS2)."""
    from molmovie.io.beamline import BOHR, ingest
    from molmovie.molecules import builtin
    from molmovie.scattering import atomic_intensity, intensity, modified_intensity

    mol = builtin("cs2")
    s = np.linspace(0.8, 11.0, 40)  # 1/Å
    delays = np.array([-100.0, 0.0, 100.0, 200.0])
    stretch = np.array([0.0, 0.0, 0.05, 0.12])  # Å on one C-S bond
    pos = np.repeat(mol.positions[None], 4, axis=0)
    far = int(np.argmax(np.abs(mol.positions[1:, 2]))) + 1
    pos[:, far, 2] += np.sign(mol.positions[far, 2]) * stretch
    I = intensity(mol.symbols, pos, s, probe="electron")
    I_gs = intensity(mol.symbols, mol.positions, s, probe="electron")
    I_at = atomic_intensity(mol.symbols, s, probe="electron")
    dsm = modified_intensity(I, I_at, s) - modified_intensity(I_gs, I_at, s)  # 1/Å
    path = tmp_path / "ued.npz"
    np.savez(path, s=s * BOHR, delays=delays, dsM=dsm * BOHR, std=np.full(dsm.shape, 1e-3 * BOHR))
    kw = dict(q_path="s", data_path="dsM", q_units="1/bohr", delay_units="fs", kind="difference", signal_units="sM")
    meas = ingest(path, probe="electron", molecule="cs2", **kw)
    assert meas.probe == "electron" and meas.energy_kev == 3700.0
    np.testing.assert_allclose(meas.q, s, rtol=1e-14)
    np.testing.assert_allclose(meas.dS, (I - I_gs) / I_gs, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(meas.sigma, np.broadcast_to(1e-3 * I_at / (s * I_gs), dsm.shape), rtol=1e-10)
    assert "built-in geometry of cs2" in meas.provenance["sM_to_dI_over_I"]
    # through the command line, into a measurement file that keeps the probe
    out = tmp_path / "ued.h5"
    args = ["ingest", path, "-o", out, "--q-path", "s", "--data-path", "dsM", "--q-units", "1/bohr", "--delay-units", "fs"]
    args += ["--kind", "difference", "--signal-units", "sM", "--molecule", "cs2"]
    code, stdout, err = run_cli([*args, "--probe", "electron"], capsys)
    assert code == 0, err
    assert "electrons at 3700 keV" in stdout and read_measurement(out).probe == "electron"
    code, _, err = run_cli([*args[:-2], "--probe", "electron", "-o", tmp_path / "n.h5", "--force"], capsys)
    assert_one_line_error(code, err, "needs the molecule's atoms")
    code, _, err = run_cli([*args, "-o", tmp_path / "x.h5"], capsys)
    assert_one_line_error(code, err, "give --probe electron")
    with pytest.raises(InputError, match="s must be > 0"):
        ingest(_zero_s(tmp_path), probe="electron", molecule="cs2", **kw)


def _zero_s(tmp_path):
    path = tmp_path / "zero.npz"
    np.savez(path, s=np.linspace(0.0, 5.0, 6), delays=np.array([0.0, 1.0]), dsM=np.zeros((2, 6)), std=np.ones((2, 6)))
    return path


def test_show_draws_the_ued_maps_of_an_electron_measurement(basis, tmp_path, capsys):
    """ΔsM = s ΔI/I · I_gs/I_at (I_gs of the built-in I2) and its ΔP, drawn as maps."""
    import matplotlib

    matplotlib.use("Agg")
    from molmovie.evaluation.measurement_figures import plot_measurement
    from molmovie.measurement import difference_pdf, modified_difference
    from molmovie.molecules import builtin
    from molmovie.scattering import atomic_intensity, intensity, pair_distribution

    meas = simulate_measurement(basis, q=S, delays=DELAYS, gamma=0.1, t0=0.0, irf_fs=150.0, probe="electron")
    dsm, sig, how = modified_difference(meas)
    assert sig is None and "built-in geometry of I2" in how
    i2 = builtin("i2")
    I_gs = intensity(i2.symbols, i2.positions, S, probe="electron")
    expected = S * meas.dS * I_gs / atomic_intensity(basis.symbols, S, probe="electron")
    np.testing.assert_allclose(dsm, expected, rtol=1e-12, atol=1e-15)
    r = np.linspace(0.0, 8.0, 161)
    dP, _, _ = difference_pdf(meas, r)
    np.testing.assert_allclose(dP, pair_distribution(expected, S, r), rtol=1e-12, atol=1e-14)
    # without a built-in geometry, the atoms alone: ΔsM = s ΔI/I
    anon = modified_difference(replace(meas, molecule=None))
    np.testing.assert_allclose(anon[0], S * meas.dS, rtol=1e-12)
    assert "atoms only" in anon[2]
    fig = plot_measurement(meas.q, meas.delays, meas.dS, meas.sigma, ued=(dsm, r, dP))
    titles = {ax.get_title() for ax in fig.axes}
    assert {"ΔsM(s, t)", "ΔP(r, t)", "ΔI/I(s, t)"} <= titles
    import matplotlib.pyplot as plt

    plt.close("all")
    path = write_measurement(meas, tmp_path / "ued.h5")
    code, stdout, err = run_cli(["show", path, "-o", tmp_path / "ued.png"], capsys)
    assert code == 0, err
    assert "ΔsM(s, t) and ΔP(r, t)" in stdout and (tmp_path / "ued.png").stat().st_size > 0
    assert "ΔI/I map, line-outs and |ΔI/I|/σ" in stdout
    with pytest.raises(InputError, match="X-rays"):
        modified_difference(simulate_measurement(basis, q=S, delays=DELAYS, gamma=0.1, t0=0.0, irf_fs=0.0))
