"""``molmovie fit``: both methods end to end, the result file, the figures, and bad input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from molmovie import InputError
from molmovie.io import write_dataset
from molmovie.io.fit import read_fit, write_fit
from molmovie.io.measurement import write_measurement
from molmovie.measurement import simulate_measurement

from _fit_fixtures import diatomic_ensemble
from _fixtures import assert_one_line_error, run_cli

Q = np.linspace(0.5, 6.0, 30)
DELAYS = np.arange(-150.0, 801.0, 25.0)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fit")
    basis = diatomic_ensemble(30, seed=1)
    write_dataset(basis, folder / "basis.h5")
    meas = simulate_measurement(
        diatomic_ensemble(20, seed=2), q=Q, delays=DELAYS, gamma=0.05, t0=30.0, irf_fs=70.0, photons=1e6, seed=0
    )
    write_measurement(meas, folder / "meas.h5")
    write_measurement(replace(meas, sigma=None, truth=None), folder / "nosigma.h5")
    write_dataset(diatomic_ensemble(4, seed=0, symbols=("Br", "Br")), folder / "br2.h5")
    return folder


def test_ensemble_end_to_end(files, tmp_path, capsys):
    out = tmp_path / "ens.h5"
    code, stdout, err = run_cli(
        [
            "fit",
            files / "meas.h5",
            "--method",
            "ensemble",
            "--basis",
            files / "basis.h5",
            "--output",
            out,
            "--figures",
            tmp_path / "figs",
            "--bootstrap",
            "8",
            "--seed",
            "2",
            "--t0-range=-100,150",
        ],
        capsys,
    )
    assert code == 0, err
    assert "γ = " in stdout and "t0 = " in stdout and "IRF = " in stdout and "8 bootstrap replicates" in stdout
    res = read_fit(out)
    e = res.ensemble
    assert res.method == "ensemble" and res.converged and res.pdf is None
    assert abs(e.gamma / 0.05 - 1) < 0.3 and abs(e.t0 - 30) < 20
    assert e.bootstrap_gamma.shape == (8,) and e.weights.shape == (30,)
    assert res.settings["bootstrap"] == 8 and res.settings["t0_range"] == [-100.0, 150.0]
    assert res.provenance["basis_file"].endswith("basis.h5")
    for name in ("ensemble_fit_signals.png", "ensemble_distances.png", "ensemble_parameters.png"):
        assert (tmp_path / "figs" / name).stat().st_size > 10_000
    import h5py

    with h5py.File(out, "r") as f:  # every array carries its unit
        assert f.attrs["format"] == "molmovie-fit"
        missing = []
        f.visititems(
            lambda name, node: (
                missing.append(name)
                if isinstance(node, h5py.Dataset)
                and "units" not in node.attrs
                and name.split("/")[-1] not in ("pair_labels", "channels", "pair_types", "symbols")
                else None
            )
        )
        assert not missing


def test_pdf_end_to_end(files, tmp_path, capsys):
    out = tmp_path / "pdf.h5"
    code, stdout, err = run_cli(
        [
            "fit",
            files / "meas.h5",
            "--method",
            "pdf",
            "--output",
            out,
            "--figures",
            tmp_path,
            "--set",
            "r_max=6",
            "--regularize",
            "discrepancy",
        ],
        capsys,
    )
    assert code == 0, err
    res = read_fit(out)
    assert res.pdf.pair_types == ("I-I",) and res.pdf.rule == "discrepancy" and res.pdf.r[-1] < 6
    assert abs(res.chi2 / res.n_data - 1) < 1e-3
    assert (tmp_path / "pdf_map.png").stat().st_size > 10_000


def test_result_file_round_trip(files, tmp_path):
    from molmovie.fitting import get_measurement_method
    from molmovie.io.measurement import read_measurement

    res = get_measurement_method("pdf", r_max=5.0).fit(read_measurement(files / "meas.h5")).result_
    back = read_fit(write_fit(res, tmp_path / "r.h5"))
    for name in ("dS", "sigma", "dS_fit", "q", "delays"):
        np.testing.assert_array_equal(getattr(back, name), getattr(res, name))
    for name in ("dP", "dP_std", "dP_sine", "r", "I_gs"):
        np.testing.assert_array_equal(getattr(back.pdf, name), getattr(res.pdf, name))
    assert back.pdf.regularization == res.pdf.regularization and back.reduced_chi2 == res.reduced_chi2
    with pytest.raises(InputError, match="exists"):
        write_fit(res, tmp_path / "r.h5")
    with pytest.raises(InputError, match="not a molmovie fit result"):
        read_fit(files / "meas.h5")


@pytest.mark.parametrize(
    "args, match",
    [
        (["--method", "nearest"], "unknown method 'nearest'; choose one of ensemble, pdf"),
        (["--method", "ensemble"], "needs --basis"),
        (["--method", "ensemble", "--basis", "{br2}"], "the measurement is of I2 but the basis holds Br2"),
        (["--method", "ensemble", "--basis", "{meas}"], "not a molmovie dataset"),
        (["--method", "pdf", "--bootstrap", "5"], "--bootstrap does not apply to the pdf method"),
        (["--method", "ensemble", "--basis", "{basis}", "--t0-range", "5"], "--t0-range must be two numbers"),
        (["--method", "pdf", "--set", "penalty=smooth"], "'penalty' setting must be one of"),
    ],
)
def test_bad_input_one_line_and_no_file(files, tmp_path, capsys, args, match):
    out = tmp_path / "out.h5"
    args = [a.format(br2=files / "br2.h5", meas=files / "meas.h5", basis=files / "basis.h5") for a in args]
    code, _, err = run_cli(["fit", files / "meas.h5", "--output", out, *args], capsys)
    assert_one_line_error(code, err, match)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_unconverged_fit_is_written_with_a_warning_and_old_range_spelling_still_read(files, tmp_path, capsys):
    out = tmp_path / "out.h5"
    args = ["fit", files / "meas.h5", "-o", out, "--basis", files / "basis.h5", "--t0-range=-100,0", "--bootstrap", "0"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    lines = err.splitlines()
    assert lines[0].startswith("molmovie: warning: the ensemble fit did not converge: t0 = ") and "edge of its range" in lines[0]
    assert lines[1:] == [
        "molmovie: deprecated: --t0-range -100,0 is read as --t0-range -100:0 until molmovie 0.3; write --t0-range -100:0"
    ]
    assert read_fit(out).converged is False


def test_sigma_missing_refused_unless_estimated(files, tmp_path, capsys):
    out = tmp_path / "out.h5"
    code, _, err = run_cli(["fit", files / "nosigma.h5", "--method", "pdf", "--output", out], capsys)
    assert_one_line_error(code, err, r"no σ .*\(--sigma-from-pre-t0")
    code, stdout, err = run_cli(["fit", files / "nosigma.h5", "--method", "pdf", "--output", out, "--sigma-from-pre-t0"], capsys)
    assert code == 0, err
    assert "σ: pre-t0" in stdout
    assert read_fit(out).sigma_source.startswith("pre-t0")


def test_existing_output_and_inputs_are_kept(files, tmp_path, capsys):
    out = tmp_path / "out.h5"
    out.write_bytes(b"keep")
    code, _, err = run_cli(["fit", files / "meas.h5", "--method", "pdf", "--output", out], capsys)
    assert_one_line_error(code, err, "exists; use --force")
    assert out.read_bytes() == b"keep"
    code, _, err = run_cli(["fit", files / "meas.h5", "--method", "pdf", "--output", files / "meas.h5", "--force"], capsys)
    assert_one_line_error(code, err, "is the input .*an input is never replaced")
