"""The train and invert commands, end to end, and their one-line answers to bad input."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from molmovie.inversion import load_method
from molmovie.io import write_dataset

from _fixtures import assert_one_line_error, run_cli
from test_inversion import make_dataset

VRNN_FAST = ["--epochs", "2", "--set", "hidden=8", "--set", "features=6", "--set", "batch_size=4", "--set", "physics=0"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A dataset file, and a nearest and a vrnn model trained on it through the CLI."""
    folder = tmp_path_factory.mktemp("cli")
    ds = make_dataset(M=20, T=10, Q=12, dissociate=0.4, seed=2)
    data = write_dataset(ds, folder / "cs2.h5")
    return folder, ds, data


def _train(capsys, data, out, method, *extra):
    args = ["train", data, "--method", method, "--output", out, *extra]
    if method == "vrnn":
        args += VRNN_FAST
    return run_cli(args, capsys)


@pytest.mark.parametrize("method", ["nearest", "vrnn"])
def test_train_then_invert_a_dataset(files, method, capsys):
    folder, ds, data = files
    model = folder / f"{method}.safetensors"
    code, out, err = _train(capsys, data, model, method, "--force")
    assert code == 0, err
    assert f"{method} model of cs2 trained on {len(ds.splits['train'])} trajectories" in out
    result = folder / f"{method}-result.h5"
    code, out, err = run_cli(["invert", model, data, "--output", result, "--force"], capsys)
    assert code == 0, err
    want = load_method(model).predict(ds.dS, q=ds.q, lengths=ds.length)
    with h5py.File(result, "r") as f:
        assert f.attrs["format"] == "molmovie-inversion" and f.attrs["method"] == method
        np.testing.assert_array_equal(f["distances"][()], want.distances)
        assert f["distances"].attrs["units"] == "Angstrom"
        assert [p.decode() for p in f["pairs"][()]] == ["C1-S2", "C1-S3", "S2-S3"]
        np.testing.assert_array_equal(f["pair_index"][()], [[0, 1], [0, 2], [1, 2]])
        np.testing.assert_array_equal(f["time"][()], ds.time)
        assert f["time"].attrs["units"] == "fs"
        np.testing.assert_array_equal(f["length"][()], ds.length)
        if method == "vrnn":
            np.testing.assert_array_equal(f["std"][()], want.std)
            assert f["std"].attrs["units"] == "Angstrom" and f.attrs["has_std"]
        else:
            assert "std" not in f and not f.attrs["has_std"]


def test_model_loads_and_inverts_in_a_fresh_process(files, capsys):
    folder, ds, data = files
    model = folder / "fresh.safetensors"
    assert _train(capsys, data, model, "vrnn", "--seed", "3")[0] == 0
    result = folder / "fresh.h5"
    proc = subprocess.run(
        [sys.executable, "-c", "from molmovie.cli import main; main()", "invert", str(model), str(data), "--output", str(result)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    with h5py.File(result, "r") as f:
        got = f["distances"][()]
    np.testing.assert_array_equal(got, load_method(model).predict(ds.dS, q=ds.q).distances)


def test_invert_a_minimal_signals_file_and_interpolate_q(files, capsys):
    folder, ds, data = files
    model = folder / "nn.safetensors"
    assert _train(capsys, data, model, "nearest", "--force")[0] == 0
    one = folder / "measured.h5"
    with h5py.File(one, "w") as f:  # one measured series (T, Q), no lengths, no atoms
        f["q"] = ds.q
        f["time"] = ds.time
        f["dS"] = ds.dS[0]
    result = folder / "one.h5"
    code, _, err = run_cli(["invert", model, one, "-o", result], capsys)
    assert code == 0, err
    with h5py.File(result, "r") as f:
        assert f["distances"].shape == (1, ds.n_frames, 3)
        np.testing.assert_array_equal(f["distances"][0], load_method(model).predict(ds.dS[:1], q=ds.q).distances[0])
    # a finer grid covering the model's: refused, then accepted with --interpolate-q
    fine = folder / "fine.h5"
    q_fine = np.linspace(ds.q[0], ds.q[-1], 45)
    n = int(ds.length[0])
    with h5py.File(fine, "w") as f:
        f["q"] = q_fine
        f["time"] = ds.time[:n]
        f["dS"] = np.stack([np.interp(q_fine, ds.q, row) for row in ds.dS[0, :n]])
    out2 = folder / "fine-out.h5"
    code, _, err = run_cli(["invert", model, fine, "-o", out2], capsys)
    assert_one_line_error(code, err, "q grid .* differs from the model's .*--interpolate-q")
    assert not out2.exists()
    code, _, err = run_cli(["invert", model, fine, "-o", out2, "--interpolate-q"], capsys)
    assert code == 0, err
    with h5py.File(out2, "r") as f:
        assert f.attrs["interpolated_q"]
        # linear data on a grid that contains the model's points interpolates back exactly
        np.testing.assert_allclose(f["distances"][0], load_method(model).predict(ds.dS[:1, :n], q=ds.q).distances[0])


def _bad_signals(folder, ds, name, **override):
    path = folder / name
    with h5py.File(path, "w") as f:
        values = dict(q=ds.q, time=ds.time, dS=ds.dS[0])
        values.update(override)
        for k, v in values.items():
            if v is not None:
                f[k] = v
    return path


def test_invert_refuses_bad_input_in_one_line(files, capsys):
    folder, ds, data = files
    model = folder / "bad-nn.safetensors"
    assert _train(capsys, data, model, "nearest", "--force")[0] == 0
    out = folder / "never.h5"
    nan = ds.dS[0].copy()
    nan[0, 2] = np.nan
    inf = ds.dS[0].copy()
    inf[1, 0] = np.inf
    cases = {
        "NaN or inf": _bad_signals(folder, ds, "nan.h5", dS=nan),
        "NaN or inf ": _bad_signals(folder, ds, "inf.h5", dS=inf),
        r"dS must have shape": _bad_signals(folder, ds, "shape.h5", dS=ds.dS[0, 0]),
        r"time must have one value per frame": _bad_signals(folder, ds, "time.h5", time=ds.time[:-1]),
        r"needs the datasets q, time and dS.*missing q": _bad_signals(folder, ds, "noq.h5", q=None),
        r"q grid .* differs": _bad_signals(folder, ds, "q.h5", q=ds.q * 1.1),
        r"outside the signals'": _bad_signals(folder, ds, "narrow.h5", q=ds.q * 1.1),
    }
    for match, path in cases.items():
        extra = ["--interpolate-q"] if "narrow" in path.name else []
        code, _, err = run_cli(["invert", model, path, "-o", out, *extra], capsys)
        assert_one_line_error(code, err, match)
        assert not out.exists()
    not_h5 = folder / "signals.txt"
    not_h5.write_text("1 2 3")
    assert_one_line_error(*run_cli(["invert", model, not_h5, "-o", out], capsys)[::2], "not an HDF5 file")
    assert_one_line_error(*run_cli(["invert", folder / "nope.safetensors", data, "-o", out], capsys)[::2], "no such model file")
    corrupt = folder / "corrupt.safetensors"
    corrupt.write_bytes(model.read_bytes()[:200])
    assert_one_line_error(*run_cli(["invert", corrupt, data, "-o", out], capsys)[::2], "not a readable molmovie model")
    # a dataset of another molecule
    other = make_dataset(M=4, T=10, Q=12, symbols=("O", "C", "O"))
    other_path = write_dataset(other, folder / "co2.h5", force=True)
    assert_one_line_error(*run_cli(["invert", model, other_path, "-o", out], capsys)[::2], r"model of cs2 \(C S S\), data of")
    assert not out.exists()
    # an existing output is kept without --force
    out.write_text("keep")
    assert_one_line_error(*run_cli(["invert", model, data, "-o", out], capsys)[::2], "exists; use --force")
    assert out.read_text() == "keep"


def test_train_refuses_bad_input_in_one_line(files, tmp_path, capsys):
    folder, ds, data = files
    out = tmp_path / "m.safetensors"
    bound = make_dataset(M=6, T=6, Q=8, dissociate=1.0)  # every trajectory dissociates
    all_gone = write_dataset(bound, tmp_path / "all-dissociate.h5")
    code, _, err = run_cli(["train", all_gone, "--method", "nearest", "-o", out, "--exclude-dissociating"], capsys)
    assert_one_line_error(code, err, "training split .* is empty once dissociating trajectories are left out")
    no_signals = make_dataset(M=6, T=6, Q=8)
    no_signals.dS = no_signals.spec = no_signals.I_ref = None
    path = write_dataset(no_signals, tmp_path / "nosig.h5")
    assert_one_line_error(*run_cli(["train", path, "-o", out], capsys)[::2], "no scattering signals.*molmovie scatter")
    assert_one_line_error(*run_cli(["train", tmp_path / "absent.h5", "-o", out], capsys)[::2], "no such file")
    assert_one_line_error(*run_cli(["train", data, "-o", out, "--set", "hiden=3"], capsys)[::2], "no setting 'hiden'")
    assert_one_line_error(*run_cli(["train", data, "-o", out, "--set", "hidden"], capsys)[::2], "KEY=VALUE")
    assert_one_line_error(*run_cli(["train", data, "-o", out, "--set", "target=cubic"], capsys)[::2], "'target' setting")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all-dissociate.h5", "nosig.h5"]  # nothing half-written


def test_train_excluding_dissociating_trajectories(files, tmp_path, capsys):
    folder, ds, data = files
    out = tmp_path / "bound.safetensors"
    code, stdout, err = run_cli(
        ["train", data, "--method", "nearest", "-o", out, "--exclude-dissociating", "--epochs", "3"], capsys
    )
    assert code == 0, err
    assert "--epochs does not apply to the nearest method" in err
    keep = ds.without_dissociating()
    model = load_method(out)
    assert len(model.library_) == int(keep.split("train").length.sum())
    assert f"trained on {len(keep.splits['train'])} trajectories" in stdout


def test_train_warns_when_the_physics_term_would_never_reach_full_weight(files, tmp_path, capsys):
    folder, ds, data = files
    fast = VRNN_FAST[: VRNN_FAST.index("physics=0") - 1]  # physics on (its default weight)
    out = tmp_path / "short.safetensors"
    code, stdout, err = run_cli(["train", data, "--method", "vrnn", "-o", out, *fast, "--set", "physics_warmup=2"], capsys)
    assert code == 0, err
    assert "the physics term reaches its full weight at epoch 4 (physics_warmup 2); with 2 epochs it never does" in err
    code, stdout, err = run_cli(
        ["train", data, "--method", "vrnn", "-o", tmp_path / "long.safetensors", *fast, "--set", "physics_warmup=1"], capsys
    )
    assert code == 0 and "warning" not in err, err
