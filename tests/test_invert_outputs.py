"""``invert --figures DIR`` draws the answer (PNG and PDF, the truth where the signals carry it) and
``--extxyz FILE`` writes the predicted geometries as extended XYZ (molmovie.io.extxyz)."""

from __future__ import annotations

import numpy as np
import pytest

from molmovie.geometry import distances as pair_distances
from molmovie.io import read_inversion, write_dataset
from molmovie.io.extxyz import geometries_from_distances, write_extxyz

from _fixtures import assert_one_line_error, run_cli
from test_inversion import make_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("invout")
    ds = make_dataset(M=20, T=10, Q=12, dissociate=0.4, seed=2)
    data = write_dataset(ds, folder / "cs2.h5")
    model = folder / "nearest.safetensors"
    assert run_cli_plain(["train", data, "--method", "nearest", "-o", model]) == 0
    return folder, ds, data, model


def run_cli_plain(args) -> int:
    from molmovie.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_geometries_reproduce_the_distances_and_move_smoothly():
    ds = make_dataset(M=2, T=8, Q=6, dissociate=0.0, seed=1)
    d = ds.distances  # (M, T, P), exact distances of real geometries
    xyz = geometries_from_distances(d, ds.symbols)
    np.testing.assert_allclose(pair_distances(xyz), d, atol=1e-9)  # MDS of exact distances gives them back
    # each frame superposed on the one before: the step between frames is the molecule's own motion
    truth_step = np.linalg.norm(np.diff(ds.positions, axis=1), axis=-1).max()
    step = np.linalg.norm(np.diff(xyz, axis=1), axis=-1).max()
    assert step <= truth_step + 1e-9


def test_extxyz_reads_back_in_ase(tmp_path):
    from ase.io import read

    ds = make_dataset(M=2, T=5, Q=6, dissociate=0.0, seed=3)
    xyz = geometries_from_distances(ds.distances, ds.symbols)
    path = write_extxyz(tmp_path / "g.extxyz", ds.symbols, xyz, ds.time, lengths=[5, 3], info={"method": "nearest"})
    frames = read(path, index=":", format="extxyz")
    assert len(frames) == 8  # 5 + 3: frames past a series' length are left out
    assert [a.info["series"] for a in frames] == [0] * 5 + [1] * 3
    np.testing.assert_allclose([a.info["time"] for a in frames[5:]], ds.time[:3])
    np.testing.assert_allclose(frames[6].get_positions(), xyz[1, 1], atol=1e-6)
    assert frames[0].get_chemical_symbols() == list(ds.symbols) and frames[0].info["method"] == "nearest"


def test_invert_writes_figures_and_geometries(trained, capsys):
    import matplotlib.image

    folder, ds, data, model = trained
    out, figs, geo = folder / "r.h5", folder / "figs", folder / "r.extxyz"
    code, stdout, err = run_cli(["invert", model, data, "-o", out, "--figures", figs, "--extxyz", geo, "--force"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in figs.iterdir()) == ["inversion.pdf", "inversion.png"]
    assert (figs / "inversion.pdf").read_bytes()[:5] == b"%PDF-"
    image = matplotlib.image.imread(figs / "inversion.png")
    assert image.shape[1] == 7 * 300  # 7.0 in wide at 300 dpi
    from ase.io import read

    frames = read(geo, index=":", format="extxyz")
    inv = read_inversion(out)
    assert len(frames) == int(inv.length.sum())
    got = pair_distances(np.array([a.get_positions() for a in frames[: inv.length[0]]]))
    np.testing.assert_allclose(got, inv.distances[0, : inv.length[0]], atol=1e-6)  # nearest: real geometries' distances


def test_invert_figures_are_planned_before_the_work(trained, capsys):
    folder, _, data, model = trained
    figs = folder / "old"
    figs.mkdir(exist_ok=True)
    (figs / "inversion.png").write_bytes(b"mine")
    code, _, err = run_cli(["invert", model, data, "-o", folder / "new.h5", "--figures", figs], capsys)
    assert_one_line_error(code, err, "inversion.png")
    assert (figs / "inversion.png").read_bytes() == b"mine" and not (folder / "new.h5").exists()
