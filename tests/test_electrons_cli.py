"""Electrons through the command line: ``scatter --probe electron --energy-kev E``, ``info``, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from molmovie import read_dataset
from molmovie.scattering import atomic_intensity, intensity, modified_intensity

from _fixtures import assert_one_line_error, cs2_positions, run_cli, write_sharc


@pytest.fixture
def dataset(tmp_path, capsys):
    folder = tmp_path / "runs"
    write_sharc(folder / "TRAJ_00001", cs2_positions(21, seed=1))
    write_sharc(folder / "TRAJ_00002", cs2_positions(17, dissociate=True, seed=2))
    out = tmp_path / "cs2.h5"
    assert run_cli(["import", folder, "--output", out, "--dt", "1"], capsys)[0] == 0
    return out


@pytest.mark.parametrize("energy", [None, "90"])
def test_scatter_electrons_gives_delta_i_over_i_of_the_electron_model(tmp_path, dataset, capsys, energy):
    out = tmp_path / "ued.h5"
    args = ["scatter", dataset, "-o", out, "--probe", "electron", "--qmin", "0.5", "--qmax", "12", "--nq", "60"]
    code, stdout, err = run_cli(args + (["--energy-kev", energy] if energy else []), capsys)
    assert code == 0, err
    kev = 3700.0 if energy is None else 90.0
    assert f"electrons at {kev:g} keV" in stdout
    ds = read_dataset(out)
    assert ds.spec.probe == "electron" and ds.spec.energy_kev == kev and ds.spec.inelastic is False
    s = ds.q
    I = intensity(ds.symbols, ds.positions[0, : ds.length[0]], s, probe="electron", energy_kev=kev)
    np.testing.assert_allclose(ds.dS[0, : ds.length[0]], (I - I[0]) / I[0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ds.I_ref[0], I[0], rtol=1e-14)
    # ΔsM from what the file holds: s ΔI / I_at = sM(t) − sM(0)
    I_at = atomic_intensity(ds.symbols, s, probe="electron", energy_kev=kev)
    dsM = s * ds.dS[0, : ds.length[0]] * ds.I_ref[0] / I_at
    np.testing.assert_allclose(dsM, modified_intensity(I, I_at, s) - modified_intensity(I[0], I_at, s), atol=1e-12)
    code, stdout, _ = run_cli(["info", out], capsys)
    assert code == 0 and f"probe electrons at {kev:g} keV" in stdout


def test_scatter_xray_default_is_unchanged_and_says_so(tmp_path, dataset, capsys):
    out = tmp_path / "x.h5"
    code, stdout, err = run_cli(["scatter", dataset, "-o", out, "--nq", "10"], capsys)
    assert code == 0, err
    ds = read_dataset(out)
    assert ds.spec.probe == "xray" and ds.spec.energy_kev is None and ds.spec.inelastic is True
    assert "(X-rays)" in stdout


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--probe", "neutron"], "'neutron' is not one of 'xray', 'electron'"),
        (["--energy-kev", "3700"], "'energy_kev' parameter is the electron beam"),
        (["--probe", "electron", "--energy-kev", "-1"], "'energy_kev' parameter must be a kinetic energy"),
        (["--probe", "electron", "--qmin", "0", "--inelastic"], "diverges"),
        (["--probe", "electron", "--qmax", "500"], "ELSEPA tables shipped end"),
    ],
)
def test_scatter_electron_bad_input_is_one_line(tmp_path, dataset, capsys, extra, match):
    out = tmp_path / "bad.h5"
    code, _, err = run_cli(["scatter", dataset, "-o", out, *extra], capsys)
    assert_one_line_error(code, err, match)
    assert not out.exists()
