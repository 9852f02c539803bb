"""``molmovie simulate-experiment``: the round trip (the ΔS rebuilt from the stored truth and the
measurement model agrees to 1e-10 without noise; with noise the residuals / σ have unit variance),
the stored truth, the defaults, and one clear line for each bad input with nothing written."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from molmovie.datasets import Dataset
from molmovie.io import read_dataset, write_dataset
from molmovie.io.measurement import read_measurement
from molmovie.measurement import basis_signals, ensemble_signal
from molmovie.scattering import SignalSpec, q_grid
from molmovie.trajectories import Ensemble, is_dissociated

from _fixtures import CS2_SYMBOLS, assert_one_line_error, cs2_positions, run_cli

N_FRAMES, DT = 61, 2.5  # 150 fs of trajectories


def make_ensemble(n: int = 6) -> Ensemble:
    """CS2 trajectories, every other one losing an S; two stop early (NaN past their length)."""
    pos = np.stack([cs2_positions(N_FRAMES, dt=DT, seed=k, dissociate=k % 2 == 1) for k in range(n)])
    length = np.full(n, N_FRAMES)
    length[2:4] = [40, 25][: max(0, n - 2)]
    for k in range(n):
        pos[k, length[k] :] = np.nan
    diss = [is_dissociated(CS2_SYMBOLS, pos[k], length[k]) for k in range(n)]
    return Ensemble("cs2", CS2_SYMBOLS, np.arange(N_FRAMES) * DT, pos, length, diss, [f"traj{k}" for k in range(n)])


@pytest.fixture
def dataset(tmp_path):
    splits = {"train": np.array([0, 1, 3, 4]), "val": np.array([2]), "test": np.array([5])}
    return write_dataset(Dataset(make_ensemble(), splits=splits), tmp_path / "cs2.h5")


def rebuild(meas, dataset_path):
    """The noise-free ΔS from the stored truth, through the public measurement model."""
    truth = meas.truth
    sub = read_dataset(dataset_path).subset(truth.trajectories)
    dS_basis, _ = basis_signals(sub, meas.q)
    return ensemble_signal(
        dS_basis, sub.time, meas.delays, weights=truth.weights, gamma=truth.gamma, t0=truth.t0, irf_fs=truth.irf_fs
    )


def test_round_trip_without_noise_agrees_to_1e10(dataset, tmp_path, capsys):
    out = tmp_path / "meas.h5"
    code, stdout, err = run_cli(
        [
            "simulate-experiment",
            dataset,
            "--output",
            out,
            "--gamma",
            "0.08",
            "--t0",
            "25",
            "--irf-fs",
            "60",
            "--delays",
            "-150:120:7.5",
            "--q",
            "0.8:5:40",
            "--trajectories",
            "0,2:4",
            "--weights",
            "1,2,3",
            "--photons",
            "0",
        ],
        capsys,
    )
    assert code == 0, err
    # the old QMIN:QMAX:COUNT form of --q is read for one release, with one deprecation line
    assert err.count("molmovie: deprecated: --q 0.8:5:40 (QMIN:QMAX:COUNT) is read as --q 0.8:5:0.107692") == 1
    assert "simulated measurement of cs2 from 3 trajectories" in stdout
    meas = read_measurement(out)
    truth = meas.truth
    np.testing.assert_allclose(meas.delays, np.arange(-150, 120.1, 7.5), rtol=0, atol=1e-12)
    np.testing.assert_allclose(meas.q, np.linspace(0.8, 5, 40), rtol=1e-15)
    np.testing.assert_array_equal(truth.trajectories, [0, 2, 3])
    np.testing.assert_allclose(truth.weights, [1 / 6, 2 / 6, 3 / 6], rtol=1e-15)
    assert (truth.gamma, truth.t0, truth.irf_fs, truth.photons) == (0.08, 25.0, 60.0, None)
    assert meas.sigma is None and meas.symbols == CS2_SYMBOLS and meas.molecule == "cs2"
    assert meas.provenance["made_by"] == "simulate-experiment"
    model = rebuild(meas, dataset)
    scale = np.max(np.abs(meas.dS))
    assert scale > 1e-3  # a real signal: γ = 0.08 of a dissociating CS2
    np.testing.assert_allclose(meas.dS, model, rtol=0, atol=1e-10 * scale)
    np.testing.assert_array_equal(truth.dS_clean, meas.dS)

    # the truth's distances: before excitation the weighted mean of the first frames, at the end of the
    # delays (95 fs after excitation: frame 38) each trajectory's frame 38, or its last one if it stopped
    ens = make_ensemble()
    r = ens.distances[[0, 2, 3]]
    np.testing.assert_allclose(truth.distance_mean[0], truth.weights @ r[:, 0], rtol=1e-13)
    held = np.stack([r[0, 38], r[1, 38], r[2, 24]])
    np.testing.assert_allclose(truth.distance_mean[-1], truth.weights @ held, rtol=1e-13)
    assert truth.pair_labels == ("C1-S2", "C1-S3", "S2-S3")
    assert truth.distance_quantiles.shape == (meas.n_delays, 3, 5)
    # trajectory 3 dissociates (stopped at frame 24, apart by then); 0 and 2 do not
    assert list(ens.dissociated[[0, 2, 3]]) == [False, False, True]
    assert truth.dissociated_fraction[0] == 0.0 and truth.dissociated_fraction[-1] == pytest.approx(0.5)


def test_round_trip_with_noise_has_unit_variance_residuals(dataset, tmp_path, capsys):
    out = tmp_path / "noisy.h5"
    code, stdout, err = run_cli(
        [
            "simulate-experiment",
            dataset,
            "-o",
            out,
            "--photons",
            "5000",
            "--split",
            "train",
            "--seed",
            "7",
            "--delays=-150:100:1",
            "--q",
            "0.5:6:100",
        ],
        capsys,
    )
    assert code == 0, err
    assert "Poisson noise at 5000 photons per q bin" in stdout
    meas = read_measurement(out)
    np.testing.assert_array_equal(meas.truth.trajectories, [0, 1, 3, 4])
    assert meas.truth.photons == 5000.0
    model = rebuild(meas, dataset)
    np.testing.assert_allclose(meas.truth.dS_clean, model, rtol=0, atol=1e-10 * np.max(np.abs(model)))
    z = (meas.dS - model) / meas.sigma  # 25,100 bins
    assert abs(z.var() - 1.0) < 0.05 and abs(z.mean()) < 0.05


def test_defaults_take_the_datasets_q_and_delays_from_minus_200_fs(tmp_path, capsys):
    ens = make_ensemble(3)
    q = q_grid(1.0, 3.0, 7)
    ds = Dataset(ens).with_signals(np.zeros((3, N_FRAMES, 7)), np.ones((3, 7)), SignalSpec(q, reference="first"))
    path = write_dataset(ds, tmp_path / "with_signals.h5")
    out = tmp_path / "m.h5"
    code, _, err = run_cli(["simulate-experiment", path, "-o", out], capsys)
    assert code == 0, err
    meas = read_measurement(out)
    np.testing.assert_array_equal(meas.q, q)
    # to the latest delay that `fit`'s default time-zero search (from -150 fs) can fit with this 150-fs basis
    np.testing.assert_allclose(meas.delays, np.arange(-200.0, 150.0 - 150.0 + 1e-9, 25.0))
    assert meas.sigma is not None and meas.truth.photons == 1e6  # noise by default: `fit` has a σ to weigh by
    assert (meas.truth.gamma, meas.truth.t0, meas.truth.irf_fs) == (0.05, 40.0, 80.0)
    # and without signals, the default q grid
    path2 = write_dataset(Dataset(ens), tmp_path / "bare.h5")
    code, _, err = run_cli(["simulate-experiment", path2, "-o", tmp_path / "m2.h5", "--delays", "0:100:50"], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(read_measurement(tmp_path / "m2.h5").q, q_grid())


@pytest.mark.parametrize(
    "args, match",
    [
        (["--gamma", "0"], "gamma"),
        (["--gamma", "1.5"], "gamma"),
        (["--irf-fs", "-5"], "irf_fs"),
        (["--photons", "-1"], "photons"),
        (["--delays=-100:400:10"], "past the end of the basis"),
        (["--delays", "1:2"], "START:STOP:STEP"),
        (["--delays", "10:0:5"], "STOP >= START"),
        (["--delays=-100:100:0.0001"], "limit of 100,000"),
        (["--q", "5:1:10"], "QMIN <= QMAX"),
        (["--q", "1:4:0"], "STEP > 0"),
        (["--q", "0.5:5:100000", "--delays=-100:100:0.1"], "limit"),
        (["--trajectories", "0,99"], "out of range"),
        (["--trajectories", "a,b"], "indices"),
        (["--trajectories", "0", "--split", "test"], "not both"),
        (["--split", "nope"], "--split"),
        (["--trajectories", "0,1,2", "--weights", "1,2"], "one weight per selected trajectory"),
        (["--trajectories", "0,1,2", "--weights", "1,-1,1"], "weights"),
        (["--weights", "x"], "--weights"),
    ],
)
def test_bad_options_are_one_line_and_nothing_is_written(dataset, tmp_path, capsys, args, match):
    out = tmp_path / "meas.h5"
    code, _, err = run_cli(["simulate-experiment", dataset, "-o", out, *args], capsys)
    assert_one_line_error(code, err, match)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cs2.h5"]  # no temporary file left either


def test_bad_files_are_one_line_and_nothing_is_written_or_replaced(dataset, tmp_path, capsys):
    out = tmp_path / "meas.h5"
    out.write_bytes(b"keep me")
    code, _, err = run_cli(["simulate-experiment", dataset, "-o", out], capsys)
    assert_one_line_error(code, err, "exists; use --force")
    assert out.read_bytes() == b"keep me"

    code, _, err = run_cli(["simulate-experiment", dataset, "-o", dataset, "--force"], capsys)
    assert_one_line_error(code, err, "the output .*cs2.h5 is the input .*cs2.h5")
    assert read_dataset(dataset).n_trajectories == 6  # the input is untouched

    new = tmp_path / "new.h5"
    code, _, err = run_cli(["simulate-experiment", tmp_path / "missing.h5", "-o", new], capsys)
    assert_one_line_error(code, err, "no such file")
    code, _, err = run_cli(["simulate-experiment", out, "-o", new], capsys)
    assert_one_line_error(code, err, "not an HDF5 file")
    bad_delays = tmp_path / "delays.txt"
    bad_delays.write_text("-10\n20\n5\n")
    code, _, err = run_cli(["simulate-experiment", dataset, "-o", new, "--delays", bad_delays], capsys)
    assert_one_line_error(code, err, "strictly increasing")
    empty = write_dataset(Dataset(make_ensemble(2)), tmp_path / "empty.h5")
    with h5py.File(empty, "r+") as f:  # a dataset file whose trajectory arrays are empty
        tr = f["trajectories"]
        for name in ("positions", "length", "dissociated", "source"):
            old = tr[name]
            data, attrs = old[()][:0], dict(old.attrs)
            del tr[name]
            tr.create_dataset(name, data=data).attrs.update(attrs)
    code, _, err = run_cli(["simulate-experiment", empty, "-o", new], capsys)
    assert_one_line_error(code, err, "no trajectories")
    assert not new.exists()


def test_delays_from_a_file_and_force_replaces(dataset, tmp_path, capsys):
    delays = tmp_path / "delays.txt"
    delays.write_text("# delays in fs\n-80, -10\n0 3.5 12\n100\n")
    out = tmp_path / "meas.h5"
    out.write_bytes(b"old")
    code, _, err = run_cli(["simulate-experiment", dataset, "-o", out, "--delays", delays, "--force"], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(read_measurement(out).delays, [-80, -10, 0, 3.5, 12, 100])


@pytest.mark.parametrize("option, noun", [("--delays", "delays"), ("--q", "q points")])
def test_a_file_of_too_many_delays_or_q_points_is_one_line(dataset, tmp_path, capsys, option, noun):
    many = tmp_path / "many.npy"
    np.save(many, np.arange(100_001.0))
    out = tmp_path / "meas.h5"
    code, _, err = run_cli(["simulate-experiment", dataset, "-o", out, option, many], capsys)
    assert_one_line_error(code, err, rf"^molmovie: error: {option} .*many.npy: 100001 {noun}, more than the limit of 100000$")
    assert not out.exists()
