"""The chains of commands the docs show run with their defaults, one command's output the next one's input.

- simulate-experiment -> fit
- ingest -> show -> fit -> invert (a learned model trained for the measurement)
- generate -> scatter -> train -> invert -> evaluate

Tiny sizes (8 I2 trajectories on a Morse potential, 400 fs, two training
epochs) keep each chain to seconds; the only options given are sizes and the
files. Every file written records the command that wrote it, molmovie's
version and the SHA-256 of its inputs.
"""

from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np
import pytest

from molmovie import __version__
from molmovie.io import read_dataset
from molmovie.io.fit import read_fit
from molmovie.io.measurement import read_measurement

from _fixtures import run_cli

pytest.importorskip("ase")

#: A tiny basis: sizes only.
GENERATE = ["generate", "i2", "-n", "8", "--calculator", "morse-i2-x", "--tmax", "400", "--dt", "10", "--workers", "1"]
#: A tiny learned measurement model (sizes only).
TINY_LEARNED = [
    "--set",
    "hidden=8",
    "--set",
    "features=8",
    "--set",
    "latent_free=1",
    "--set",
    "examples=16",
    "--set",
    "batch_size=8",
]


def sha256(path) -> str:
    return "sha256:" + hashlib.sha256(open(path, "rb").read()).hexdigest()


def ok(args, capsys) -> tuple[str, str]:
    code, out, err = run_cli(args, capsys)
    assert code == 0, (args, err)
    return out, err


def last_command(provenance: dict) -> dict:
    command = provenance["commands"][-1]
    assert command["molmovie_version"] == __version__
    return command


@pytest.fixture(scope="module")
def basis(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chain")
    from molmovie.cli import main

    main([*map(str, GENERATE), "-o", str(folder / "basis.h5")])
    return folder / "basis.h5"


def test_simulate_experiment_then_fit(basis, tmp_path, capsys):
    meas, fit = tmp_path / "meas.h5", tmp_path / "fit.h5"
    ok(["simulate-experiment", basis, "-o", meas], capsys)
    m = read_measurement(meas)
    assert m.sigma is not None  # noise by default, so the fit has a σ to weigh by
    assert m.delays[-1] <= (400.0 - 150.0)  # within what fit's default time-zero search can fit with this basis
    command = last_command(m.provenance)
    assert command["command_line"] == f"molmovie simulate-experiment {basis} -o {meas}"
    assert command["inputs"] == {str(basis): sha256(basis)}
    out, _ = ok(["fit", meas, "-o", fit, "--basis", basis], capsys)
    assert f"{fit}: ensemble fit of i2" in out
    result = read_fit(fit)
    assert result.ensemble is not None and result.dS.shape == m.dS.shape
    command = last_command(result.provenance)
    assert command["inputs"] == {str(meas): sha256(meas), str(basis): sha256(basis)}


def _beamline_file(meas, path):
    """A beamline-like HDF5 file of a ready ΔS with its variance, units as attributes."""
    with h5py.File(path, "w") as f:
        f["q"] = meas.q
        f["q"].attrs["units"] = "1/Angstrom"
        f["delays"] = meas.delays / 1000.0
        f["delays"].attrs["units"] = "ps"
        f["dS"] = meas.dS
        f["dS"].attrs["units"] = "fraction"
        f["variance"] = meas.sigma**2
    return path


def test_ingest_then_show_then_fit_then_invert(basis, tmp_path, capsys):
    ok(["simulate-experiment", basis, "-o", tmp_path / "sim.h5"], capsys)
    sim = read_measurement(tmp_path / "sim.h5")
    beam = _beamline_file(sim, tmp_path / "beam.h5")
    meas = tmp_path / "meas.h5"
    ok(["ingest", beam, "-o", meas, "--molecule", "I2"], capsys)
    m = read_measurement(meas)
    np.testing.assert_allclose(m.delays, sim.delays, rtol=0, atol=1e-9)  # ps converted to fs at ingest
    np.testing.assert_allclose(m.dS, sim.dS, rtol=1e-12)
    ok(["show", meas, "-o", tmp_path / "meas.png"], capsys)
    assert (tmp_path / "meas.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ok(["fit", meas, "-o", tmp_path / "fit.h5", "--basis", basis], capsys)
    assert read_fit(tmp_path / "fit.h5").ensemble is not None
    model = tmp_path / "learned.safetensors"
    ok(["train", basis, "-o", model, "--method", "vrnn-ensemble", "--for", meas, "--epochs", "2", *TINY_LEARNED], capsys)
    out, _ = ok(["invert", model, meas, "-o", tmp_path / "answer.h5"], capsys)
    assert "vrnn-ensemble answer of I2" in out
    answer = read_fit(tmp_path / "answer.h5")
    assert answer.ensemble.channels == ("bound",)  # no trajectory of this basis dissociates
    assert last_command(answer.provenance)["inputs"] == {str(model): sha256(model), str(meas): sha256(meas)}


def test_generate_then_scatter_then_train_then_invert_then_evaluate(basis, tmp_path, capsys):
    data = tmp_path / "data.h5"
    data.write_bytes(basis.read_bytes())
    ok(["scatter", data], capsys)
    ds = read_dataset(data)
    assert ds.has_signals and ds.splits["test"].size >= 1
    # the dataset keeps every command that wrote it: generate, then scatter (with the file's checksum before)
    commands = ds.ensemble.provenance["commands"]
    assert [c["command_line"].split()[1] for c in commands] == ["generate", "scatter"]
    model = tmp_path / "model.safetensors"
    ok(["train", data, "-o", model, "--epochs", "2"], capsys)
    out, _ = ok(["invert", model, data, "-o", tmp_path / "distances.h5"], capsys)
    assert "1 distances for 8 series" in out
    with h5py.File(tmp_path / "distances.h5", "r") as f:
        assert f.attrs["provenance"].dtype.kind == "S"  # text as a fixed-length string, as the io code keeps it
        command = last_command(json.loads(f.attrs["provenance"]))
    assert command["inputs"] == {str(model): sha256(model), str(data): sha256(data)}
    out, _ = ok(["evaluate", model, data, "-o", tmp_path / "scores"], capsys)
    assert out.startswith("test: ")
    metrics = json.loads((tmp_path / "scores" / "metrics.json").read_text())
    assert metrics["split"] == "test" and np.isfinite(metrics["rmsd_sum"])
    assert last_command(metrics)["command_line"].startswith("molmovie evaluate")
