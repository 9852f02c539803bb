"""``molmovie generate`` with a Morse calculator and initial-condition families: a real run into a
dataset file that `molmovie scatter` takes, and one-line answers to bad input."""

from __future__ import annotations

import numpy as np
import pytest

from molmovie.io import read_dataset

from _fixtures import assert_one_line_error, run_cli


def test_morse_mixture_writes_a_dataset_that_scatter_takes(tmp_path, capsys):
    out = tmp_path / "i2.h5"
    code, stdout, err = run_cli(
        [
            "generate",
            "i2",
            "-n",
            "5",
            "-o",
            out,
            "--calculator",
            "morse",
            "--morse",
            "we=214.5,re=2.666,D0=1.54",
            "--initial",
            "displaced:3,dissociation:2",
            "--amplitude",
            "0.02:0.3",
            "--phase",
            "0:360",
            "--excess",
            "0.1:2",
            "--tmax",
            "600",
            "--dt",
            "10",
            "--timestep",
            "1",
            "--workers",
            "1",
            "--splits",
            "3,1,1",
        ],
        capsys,
    )
    assert code == 0, err
    assert "5 trajectories of i2 (2 atoms), model ground, 61 frames to 600 fs; 2 dissociated" in stdout
    ds = read_dataset(out)
    np.testing.assert_allclose(ds.time, np.arange(61) * 10.0)
    prov = ds.ensemble.provenance
    assert prov["calculator"]["name"] == "morse" and prov["calculator"]["D0_eV"] == 1.54
    assert prov["model"]["timestep"] == 1.0 and prov["initial"]["name"] == "mixture"
    drawn = [r["initial"] for r in prov["trajectories"]]
    assert [d["initial"] for d in drawn] == ["displaced"] * 3 + ["dissociation"] * 2
    assert all(0.02 <= d["amplitude_A"] <= 0.3 for d in drawn[:3]) and all(0.1 <= d["excess_eV"] <= 2 for d in drawn[3:])
    assert ds.dissociated.tolist() == [False] * 3 + [True] * 2
    # the preset gives the very same run
    out2 = tmp_path / "preset.h5"
    code, _, err = run_cli(
        [
            "generate",
            "i2",
            "-n",
            "5",
            "-o",
            out2,
            "--calculator",
            "morse-i2-x",
            "--initial",
            "displaced:3,dissociation:2",
            "--amplitude",
            "0.02:0.3",
            "--excess",
            "0.1:2",
            "--tmax",
            "600",
            "--dt",
            "10",
            "--timestep",
            "1",
            "--workers",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    np.testing.assert_array_equal(read_dataset(out2).positions, ds.positions)
    pytest.importorskip("molmovie.scattering")
    code, _, err = run_cli(["scatter", out, "--nq", "8"], capsys)
    assert code == 0, err
    assert read_dataset(out).dS.shape == (5, 61, 8)


MORSE = ["--calculator", "morse-i2-x"]


@pytest.mark.parametrize(
    "args, match",
    [
        (["--calculator", "warp"], "unknown calculator 'warp'; choose from xtb, morse, morse-i2-x"),
        (["--calculator", "morse"], "--calculator morse needs its constants"),
        (["--morse", "we=214.5,re=2.666,D0=1.54"], "add --calculator morse"),
        (["--calculator", "morse", "--morse", "we=214.5,re=2.666"], "exactly one of D_e"),
        (["--calculator", "morse", "--morse", "we=214.5,re=2.666,D0=x"], "D0 must be a number"),
        (["--calculator", "morse", "--morse", "w=214.5"], "--morse takes we=CM-1"),
        (["--calculator", "morse", "--morse", "we=1,we=2"], "gives we twice"),
        (["--calculator", "morse", "--morse", "we=214.5,re=0,D0=1"], "'r_e' must be a number > 0"),
        ([*MORSE, "--dynamics", "cs2-isc"], "made for CS2"),
        ([*MORSE, "--dynamics", "ground", "--initial", "displaced"], "needs --amplitude"),
        ([*MORSE, "--initial", "dissociation"], "needs --excess"),
        ([*MORSE, "--initial", "hot"], "unknown initial-condition family 'hot'"),
        ([*MORSE, "--initial", "displaced:0", "--amplitude", "0.1"], "weights must be numbers > 0"),
        ([*MORSE, "--initial", "displaced,displaced", "--amplitude", "0.1"], "names 'displaced' twice"),
        ([*MORSE, "--initial", "displaced", "--amplitude", "0.3:0.1"], "--amplitude must be one number or two numbers LO:HI"),
        ([*MORSE, "--initial", "displaced", "--amplitude", "a:b"], "--amplitude must be one number or two numbers LO:HI"),
        ([*MORSE, "--initial", "displaced", "--amplitude", "0:2"], "below half the bond length"),
        ([*MORSE, "--initial", "displaced", "--amplitude", "0.1", "--phase", "0:720"], "at most 360 degrees"),
        ([*MORSE, "--excess", "1"], "--excess applies to --initial dissociation"),
        ([*MORSE, "--bond", "0,1"], "--bond and --no-wigner apply"),
        ([*MORSE, "--limit", "1.5"], "--limit applies to --initial dissociation"),
        ([*MORSE, "--repulsive", "2"], "--repulsive applies to --initial dissociation"),
        ([*MORSE, "--initial", "dissociation", "--excess", "0:1", "--repulsive", "2"], "needs an 'excess' range > 0"),
        (
            [*MORSE, "--initial", "dissociation", "--excess", "1", "--repulsive", "0"],
            "steepness of the 'repulsive' wall must be > 0",
        ),
        ([*MORSE, "--initial", "dissociation", "--excess", "1", "--limit", "-1"], "'limit' must be > 0 eV"),
        ([*MORSE, "--initial", "dissociation", "--excess", "1", "--bond", "0"], "--bond must be two atom indices"),
        ([*MORSE, "--initial", "dissociation", "--excess", "1", "--bond", "0,5"], "from 0 to 1"),
        ([*MORSE, "--tmax", "100", "--dt", "7"], "whole number \\(>= 1\\) of --dt 7 fs"),
        ([*MORSE, "--tmax", "600", "--dt", "1.5", "--timestep", "1"], "whole number of --timestep 1 fs steps"),
        ([*MORSE, "--tmax", "1e9", "--dt", "1"], "at most 1000000"),
        ([*MORSE, "--tmax", "-5"], "--tmax must be > 0 fs"),
        (["--calculator", "morse-i2-x", "--initial", "displaced", "--amplitude", "0.1"], None),  # on CS2 below
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, match):
    out = tmp_path / "out.h5"
    molecule = "cs2" if match is None else "i2"
    code, _, err = run_cli(["generate", molecule, "-n", "2", "-o", out, *args], capsys)
    assert_one_line_error(code, err, match=match or "describes a diatomic")
    assert list(tmp_path.iterdir()) == []


def test_help_lists_every_calculator_and_family(capsys):
    from molmovie.dynamics.calculators import CALCULATORS
    from molmovie.dynamics.initial import INITIAL_CONDITIONS

    code, stdout, _ = run_cli(["generate", "--help"], capsys)
    assert code == 0
    flat = " ".join(stdout.split())
    for name in (*CALCULATORS, *INITIAL_CONDITIONS):
        assert name in flat
    for option in (
        "--morse",
        "--amplitude",
        "--phase",
        "--excess",
        "--limit",
        "--repulsive",
        "--bond",
        "--tmax",
        "--dt",
        "--timestep",
    ):
        assert option in flat
