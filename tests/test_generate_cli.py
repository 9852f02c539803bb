"""``molmovie generate``: a real (small) run into a dataset file, and one-line answers to bad input."""

from __future__ import annotations

import numpy as np
import pytest

from molmovie.io import read_dataset

from _fixtures import assert_one_line_error, run_cli


def test_generate_c2h4_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "c2h4.h5"
    code, stdout, err = run_cli(
        ["generate", "c2h4", "--trajectories", "2", "--output", out, "--workers", "1", "--seed", "4", "--splits", "1,1,0"], capsys
    )
    assert code == 0, err
    # --trajectories N, the old spelling of the count, is read for one release with one deprecation line
    assert [line for line in err.splitlines() if line.strip()] == [
        "molmovie: deprecated: --trajectories 2 is read as --n-trajectories 2 until molmovie 0.3; write --n-trajectories 2"
    ]
    assert "2 trajectories of c2h4" in stdout and "energy drift max" in stdout
    ds = read_dataset(out)
    assert ds.n_trajectories == 2 and ds.n_frames == 151 and ds.length.tolist() == [151, 151]
    np.testing.assert_allclose(ds.time[[0, 1, -1]], [0.0, 1.0, 150.0])
    prov = ds.ensemble.provenance
    assert prov["model"]["name"] == "c2h4-pipi" and prov["seed"] == 4
    assert [r["index"] for r in prov["trajectories"]] == [0, 1]
    assert all(r["drift_eV"] < 0.2 for r in prov["trajectories"])
    assert np.isfinite(ds.ensemble.energy).all() and set(np.unique(ds.ensemble.state)) == {0}
    assert sorted(np.concatenate([ds.splits["train"], ds.splits["val"], ds.splits["test"]]).tolist()) == [0, 1]
    assert not (tmp_path / "c2h4.h5.partial").exists()
    # the file is ready for `molmovie scatter` as it is
    pytest.importorskip("molmovie.scattering")
    code, _, err = run_cli(["scatter", out, "--nq", "8"], capsys)
    assert code == 0, err
    assert read_dataset(out).dS.shape == (2, 151, 8)


@pytest.mark.parametrize(
    "args, match",
    [
        (["benzene"], "unknown molecule 'benzene'"),
        (["smiles:C1CC("], "cannot parse SMILES"),
        (["c2h4", "--n-trajectories", "0"], "--n-trajectories must be >= 1"),
        (["c2h4", "-n", "2", "--trajectories", "2"], "give --n-trajectories"),
        (["c2h4", "--splits", "80,20"], "--splits must be three"),
        (["c2h4", "--dynamics", "nmm-cation"], "made for C5H11NO"),
        (["c2h4", "--dynamics", "warp-drive"], "unknown model 'warp-drive'"),
        (["c2h4", "--scheduler", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler"),
        (["c2h4", "--workers", "0"], "--workers must be"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, match):
    out = tmp_path / "out.h5"
    full = ["generate", *args]
    if "--n-trajectories" not in args and "-n" not in args:
        full += ["--n-trajectories", "2"]
    code, _, err = run_cli(full + ["--output", out], capsys)
    assert_one_line_error(code, err, match=match)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_force(tmp_path, capsys):
    out = tmp_path / "out.h5"
    out.write_bytes(b"keep me")
    code, _, err = run_cli(["generate", "c2h4", "-n", "1", "--output", out], capsys)
    assert_one_line_error(code, err, match="exists; use --force")
    assert out.read_bytes() == b"keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]


def test_help_lists_every_model(capsys):
    from molmovie.dynamics import MODELS

    code, stdout, _ = run_cli(["generate", "--help"], capsys)
    assert code == 0
    flat = " ".join(stdout.split())
    for name in MODELS:
        assert name in flat
