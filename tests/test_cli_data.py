"""The import / scatter / info commands, and their answers to bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from molmovie import read_dataset

from _fixtures import assert_one_line_error, cs2_positions, run_cli, write_sharc


@pytest.fixture
def runs(tmp_path):
    folder = tmp_path / "runs"
    write_sharc(folder / "TRAJ_00001", cs2_positions(41, seed=1))
    write_sharc(folder / "TRAJ_00002", cs2_positions(29, dissociate=True, seed=2))
    return folder


def test_import_scatter_info(tmp_path, runs, capsys):
    out = tmp_path / "cs2.h5"
    code, stdout, _ = run_cli(["import", runs, "--output", out, "--dt", "1", "--tmax", "15"], capsys)
    assert code == 0, stdout
    ds = read_dataset(out)
    assert ds.length.tolist() == [16, 15] and ds.dissociated.tolist() == [False, True]
    code, _, err = run_cli(["scatter", out, "--qmin", "0.5", "--qmax", "5", "--nq", "20"], capsys)
    assert code == 0, err
    ds = read_dataset(out)
    assert ds.dS.shape == (2, 16, 20)
    np.testing.assert_allclose(ds.dS[:, 0], 0.0, atol=1e-15)  # reference = first frame
    assert np.isfinite(ds.dS[1, :15]).all() and np.isnan(ds.dS[1, 15:]).all()
    assert ds.signal_attrs["reference"] == "first" and ds.signal_attrs["inelastic"] is True
    code, stdout, _ = run_cli(["info", out], capsys)
    assert code == 0
    assert "cs2" in stdout and "2, 1 dissociate" in stdout and "20 points, 0.5 to 5" in stdout


def test_scatter_to_new_file_leaves_input_untouched(tmp_path, runs, capsys):
    src, dst = tmp_path / "a.h5", tmp_path / "b.h5"
    assert run_cli(["import", runs, "-o", src, "--dt", "1"], capsys)[0] == 0
    before = src.read_bytes()
    code, _, err = run_cli(["scatter", src, "--output", dst, "--no-inelastic", "--reference", "ground", "--nq", "10"], capsys)
    assert code == 0, err
    assert src.read_bytes() == before and not read_dataset(src).has_signals
    ds = read_dataset(dst)
    assert ds.signal_attrs["inelastic"] is False and ds.signal_attrs["reference"] == "ground"
    np.testing.assert_array_equal(ds.I_ref[0], ds.I_ref[1])  # one laser-off reference for all
    # signals already there: in place needs --force
    before = dst.read_bytes()
    assert_one_line_error(*run_cli(["scatter", dst], capsys)[::2], match="already has signals")
    assert dst.read_bytes() == before


def _bad_xyz(tmp_path, text):
    p = tmp_path / "bad.xyz"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "text, match",
    [
        ("3\nt= 0.0\nC 0 0 0\nS 0 0 1.5\n", "truncated"),
        ("3\nt= 0.0\nC 0 0 0\nS 0 0 1.5x\nS 0 0 -1.5\n", "not a number"),
        ("3\nt= 0.0\nC 0 0 0\nS 0 0 1.5\nS 0 0 -1.5\n2\nt= 0.5\nC 0 0 0\nS 0 0 1.5\n", "has 2 atoms"),
        ("3\nt= 0.0\nC 0 0 0\nQ 0 0 1.5\nS 0 0 -1.5\n", "unknown element"),
    ],
)
def test_import_bad_xyz(tmp_path, capsys, text, match):
    out = tmp_path / "o.h5"
    code, _, err = run_cli(["import", _bad_xyz(tmp_path, text), "-o", out], capsys)
    assert_one_line_error(code, err, match)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["bad.xyz"]


def test_import_malformed_sharc(tmp_path, capsys, runs):
    lis = runs / "TRAJ_00002" / "output.lis"
    lis.write_text(lis.read_text().replace("      1.001000", "      abc"))
    code, _, err = run_cli(["import", runs, "-o", tmp_path / "o.h5"], capsys)
    assert_one_line_error(code, err, "TRAJ_00002/output.lis, line")
    assert not (tmp_path / "o.h5").exists()


def test_import_truncated_sharc_xyz(tmp_path, capsys, runs):
    xyz = runs / "TRAJ_00001" / "output.xyz"
    xyz.write_text("\n".join(xyz.read_text().splitlines()[:-1]) + "\n")
    code, _, err = run_cli(["import", runs, "-o", tmp_path / "o.h5"], capsys)
    assert_one_line_error(code, err, "truncated")


def test_import_atoms_differ(tmp_path, capsys, runs):
    write_sharc(runs / "TRAJ_00003", cs2_positions(5), symbols=("S", "C", "S"))
    code, _, err = run_cli(["import", runs, "-o", tmp_path / "o.h5"], capsys)
    assert_one_line_error(code, err, "TRAJ_00003.*differ")


def test_import_empty_folder_and_missing_path(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(*run_cli(["import", tmp_path / "empty", "-o", tmp_path / "o.h5"], capsys)[::2], match="empty folder")
    assert_one_line_error(*run_cli(["import", tmp_path / "nope", "-o", tmp_path / "o.h5"], capsys)[::2], match="no such file")
    assert not (tmp_path / "o.h5").exists()


def test_existing_output_without_force(tmp_path, capsys, runs):
    out = tmp_path / "o.h5"
    out.write_text("precious")
    assert_one_line_error(*run_cli(["import", runs, "-o", out], capsys)[::2], match="exists; use --force")
    assert out.read_text() == "precious"


@pytest.mark.parametrize(
    "options, match",
    [
        (["--qmin", "-0.1"], "q_min.*>= 0"),
        (["--qmin", "3", "--qmax", "2"], "q_max.*> q_min"),
        (["--qmin", "2", "--qmax", "2"], "q_max.*> q_min"),
    ],
)
def test_scatter_bad_q(tmp_path, capsys, runs, options, match):
    path = tmp_path / "a.h5"
    assert run_cli(["import", runs, "-o", path, "--dt", "1"], capsys)[0] == 0
    before = path.read_bytes()
    assert_one_line_error(*run_cli(["scatter", path, *options], capsys)[::2], match=match)
    assert path.read_bytes() == before


def test_not_a_dataset(tmp_path, capsys):
    p = tmp_path / "x.h5"
    p.write_text("not hdf5")
    for cmd in (["info", p], ["scatter", p]):
        assert_one_line_error(*run_cli(cmd, capsys)[::2], match="not a molmovie dataset")
    assert p.read_text() == "not hdf5"


def test_help_is_light():
    """`molmovie --help` must not import torch, tblite, dask or matplotlib."""
    import subprocess
    import sys

    code = "import sys; from molmovie.cli import app; print(' '.join(m for m in ('torch', 'tblite', 'dask', 'matplotlib', 'numba') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_version_is_the_package_s(capsys):
    from molmovie import __version__  # the one place of the number: test_io.py::test_one_version_everywhere

    code, out, err = run_cli(["--version"], capsys)
    assert (code, out, err) == (0, f"molmovie {__version__}\n", "")
    assert run_cli(["--version", "info", "nowhere.h5"], capsys)[:2] == (0, f"molmovie {__version__}\n")  # eager: first


def test_citation_file_names_this_version_and_the_seed_paper():
    from pathlib import Path

    import yaml  # PyYAML: a dependency of dask

    from molmovie import __version__

    cff = yaml.safe_load((Path(__file__).resolve().parents[1] / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["version"] == __version__ and cff["license"] == "MIT"
    (paper,) = cff["references"]
    assert paper["title"] == "Inversion of Ultrafast X-ray Scattering with Dynamics Constraints"
    assert [a["family-names"] for a in paper["authors"]] == ["Asenov", "Zotev", "Ramamoorthy", "Kirrander"]


def test_real_sharc_import_and_scatter(tmp_path, capsys, sharc_cs2):
    out = tmp_path / "cs2.h5"
    assert run_cli(["import", sharc_cs2, "-o", out, "--dt", "5"], capsys)[0] == 0
    assert run_cli(["scatter", out], capsys)[0] == 0
    ds = read_dataset(out)
    assert ds.length.tolist() == [201, 103] and ds.dissociated.tolist() == [False, True]
    assert np.all(ds.dS[:, 0] == 0)
    for m, L in enumerate(ds.length):
        assert np.isfinite(ds.dS[m, :L]).all() and np.isnan(ds.dS[m, L:]).all()
    # the dissociating run loses S-S and C-S interference: its signal change is large
    assert np.nanmax(np.abs(ds.dS[1])) > 0.05


def test_photons_are_per_q_bin_per_frame_as_in_simulate_experiment(tmp_path, runs, capsys):
    out = tmp_path / "cs2.h5"
    assert run_cli(["import", runs, "--output", out, "--dt", "1"], capsys)[0] == 0
    code, _, err = run_cli(["scatter", out, "--q", "0.5:5:0.5", "--photons", "1000"], capsys)
    assert code == 0, err
    ds = read_dataset(out)
    assert ds.q.size == 10 and ds.spec.photons == 1000 * 10  # the library counts photons per pattern
    code, stdout, _ = run_cli(["info", out], capsys)
    assert "noise 1000 photons per q bin per frame" in stdout


def test_reproduce_writes_to_a_folder_named_after_its_preset(tmp_path, capsys, monkeypatch):
    from molmovie._guards import output_lock

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with output_lock(Path("runs/paper")):  # held: the command names the folder it would write, and stops
        code, _, err = run_cli(["reproduce", "--preset", "paper"], capsys)
    assert_one_line_error(code, err, r"another molmovie run is writing runs/paper ")
