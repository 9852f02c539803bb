"""``molmovie info`` describes every file type molmovie writes (molmovie.io.describe)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from molmovie.fitting import get_measurement_method
from molmovie.inversion import Prediction
from molmovie.io import describe, file_kind, write_dataset, write_fit, write_inversion, write_measurement
from molmovie.measurement import simulate_measurement

from _fit_fixtures import diatomic_ensemble
from _fixtures import assert_one_line_error, run_cli
from test_extras import TESTS, run_without

MODEL = TESTS / "data" / "vrnn_filter_v1.safetensors"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("info")
    write_dataset(diatomic_ensemble(5, seed=1, t_end=300.0, dt=25.0), folder / "data.h5")
    meas = simulate_measurement(
        diatomic_ensemble(4, seed=2, t_end=500.0, dt=25.0),
        q=np.linspace(0.5, 6.0, 12),
        delays=np.arange(-150.0, 451.0, 50.0),
        gamma=0.05,
        t0=30.0,
        irf_fs=70.0,
        photons=1e6,
        seed=0,
    )
    write_measurement(meas, folder / "meas.h5")
    write_fit(get_measurement_method("pdf", r_max=5.0).fit(meas).result_, folder / "fit.h5")
    write_inversion(
        folder / "inv.h5",
        Prediction(np.full((2, 3, 1), 2.7)),
        time=np.array([0.0, 10.0, 20.0]),
        lengths=[3, 2],
        method="nearest",
        molecule="i2",
        symbols=("I", "I"),
        pair_labels=["I1-I2"],
        model="m.safetensors",
        signals="s.h5",
        interpolated_q=False,
    )
    with h5py.File(folder / "signals.h5", "w") as f:
        f["q"], f["time"], f["dS"] = np.linspace(1, 4, 7), np.arange(5.0), np.zeros((5, 7))
    return folder


def rows(path) -> dict[str, str]:
    return dict(describe(path))


def test_each_file_is_told_by_its_kind(files):
    kinds = {name: file_kind(files / name) for name in ("data.h5", "meas.h5", "fit.h5", "inv.h5", "signals.h5")}
    assert kinds == {
        "data.h5": "dataset",
        "meas.h5": "measurement",
        "fit.h5": "fit result",
        "inv.h5": "inversion result",
        "signals.h5": "signals",
    }
    assert file_kind(MODEL) == "model"


def test_what_each_description_says(files):
    assert rows(files / "data.h5")["trajectories"].startswith("5, ")
    assert rows(files / "data.h5")["frames"] == "13 every 25 fs, 0 to 300 fs; lengths 13 to 13"
    m = rows(files / "meas.h5")
    assert m["delays"] == "13 points, -150 to 450 fs" and m["q grid"] == "12 points, 0.5 to 6 1/Å; probe X-rays"
    assert m["truth"] == "simulated from 4 trajectories: γ 0.05, t0 30 fs, IRF 70 fs, 1e+06 photons per q bin"
    f = rows(files / "fit.h5")
    assert f["method"] == "pdf" and f["data"] == "12 points, 0.5 to 6 1/Å × 13 points, -150 to 450 fs"
    i = rows(files / "inv.h5")
    assert i["distances"] == "2 series × 3 points, 0 to 20 fs × 1 pairs; σ none" and i["method"] == "nearest"
    model = rows(MODEL)
    assert (
        model["method"] == "vrnn" and model["molecule"] == "cs2 (3 atoms: C S S)" and model["signals"].startswith("12 q points")
    )
    assert rows(files / "signals.h5")["ΔS"] == "1 series of shape (5, 7)"


def test_info_prints_the_rows(files, capsys):
    code, out, _ = run_cli(["info", files / "meas.h5"], capsys)
    assert code == 0
    assert out.splitlines()[:2] == [f"file          {files / 'meas.h5'}", "kind          measurement"]


def test_a_model_is_described_without_the_learn_extra():
    done = run_without("torch,safetensors", "info", MODEL)
    assert done.returncode == 0, done.stderr
    assert "kind          model" in done.stdout and "loaded: []" in done.stderr


def test_a_file_of_another_program_is_one_line(files, capsys):
    other = files / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "NXroot"
        f["entry"] = np.zeros(3)
    code, _, err = run_cli(["info", other], capsys)
    assert_one_line_error(code, err, r"other.h5: not a molmovie dataset, measurement, .* format 'NXroot'")
    (files / "notes.txt").write_text("hello")
    code, _, err = run_cli(["info", files / "notes.txt"], capsys)
    assert_one_line_error(code, err, r"neither HDF5 nor a safetensors model file")
