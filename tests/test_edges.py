"""Hostile but realistic input at the edges (issue 10): one line, exit 2, nothing written or changed.

Each case reproduces a failure of the commands before the guards: a traceback, a hang, a silent
cut or duplication, an input replaced, an allocation a typed number decided.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from molmovie import InputError, make_splits, read_dataset, read_ensemble
from molmovie.cli._options import parse_splits
from molmovie.trajectories import read_sharc, read_trajectory, resample

from _fixtures import assert_one_line_error, cs2_positions, run_cli, users_cluster, write_sharc, write_xyz


@pytest.fixture
def runs(tmp_path):
    folder = tmp_path / "runs"
    write_sharc(folder / "TRAJ_00001", cs2_positions(41, seed=1))
    write_sharc(folder / "TRAJ_00002", cs2_positions(29, dissociate=True, seed=2))
    write_sharc(folder / "TRAJ_00003", cs2_positions(41, seed=3))
    return folder


@pytest.fixture
def dataset(tmp_path, runs, capsys):
    out = tmp_path / "d.h5"
    assert run_cli(["import", runs, "-o", out, "--splits", "1,1,1"], capsys)[0] == 0
    return out


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- numbers typed on the command line


@pytest.mark.parametrize(
    "options, match",
    [
        (["--dt", "nan"], r"The 'dt' parameter must be a finite number of fs > 0; got nan"),
        (["--dt", "inf"], r"The 'dt' parameter must be a finite number of fs > 0; got inf"),
        (["--dt", "-5"], r"The 'dt' parameter must be a finite number of fs > 0"),
        (["--tmax", "nan"], r"The 'tmax' parameter must be a finite number of fs >= 0; got nan"),
        (["--splits", "nan,1,1"], r"--splits must be three non-negative numbers"),
        (["--splits", "1,inf,1"], r"--splits must be three non-negative numbers"),
        (["--seed", "-1"], r"The 'seed' parameter must be a whole number >= 0( or None)?; got -1"),
    ],
)
def test_import_refuses_numbers_that_are_not(tmp_path, runs, capsys, options, match):
    code, _, err = run_cli(["import", runs, "-o", tmp_path / "o.h5", *options], capsys)
    assert_one_line_error(code, err, match)
    assert files(tmp_path) == ["runs"]


def test_the_library_refuses_them_too(runs):
    for kw in (dict(dt=float("nan")), dict(tmax=float("nan")), dict(input_dt=float("inf"))):
        with pytest.raises(InputError, match="must be a finite number of fs"):
            read_ensemble([runs], **kw)
    tr = read_trajectory(runs / "TRAJ_00001")
    with pytest.raises(InputError, match="'dt' parameter"):
        resample(tr, dt=float("nan"))
    with pytest.raises(InputError, match="must be three non-negative numbers"):
        make_splits(10, (float("nan"), 1, 1))
    with pytest.raises(InputError, match="'seed' parameter"):
        make_splits(10, (8, 1, 1), seed=-1)
    with pytest.raises(InputError, match="--splits must be"):
        parse_splits("nan,1,1")


def test_xyz_frames_without_times_refuse_a_step_that_is_not_a_number(tmp_path):
    path = write_xyz(tmp_path / "t.xyz", ("C", "S", "S"), cs2_positions(4))
    with pytest.raises(InputError, match="'dt' parameter"):
        read_trajectory(path, dt=float("nan"))


def test_scatter_refuses_a_negative_seed(dataset, capsys):
    before = dataset.read_bytes()
    code, _, err = run_cli(["scatter", dataset, "--seed", "-1", "--photons", "1e4"], capsys)
    assert_one_line_error(code, err, r"The 'seed' parameter must be a whole number >= 0( or None)?; got -1")
    assert dataset.read_bytes() == before


def test_scatter_nq_is_bounded_by_the_memory_limit(dataset, capsys, monkeypatch):
    before = dataset.read_bytes()
    code, _, err = run_cli(["scatter", dataset, "--nq", str(10**12)], capsys)  # 8 TB for the grid alone
    assert_one_line_error(
        code, err, r"The 'n_q' parameter \(1000000000000 q points\) needs 7\.28 TiB of memory, more than the limit"
    )
    monkeypatch.setenv("MOLMOVIE_MAX_MEMORY", "1M")  # the grid fits; ΔS (3 x 41 x 5000) does not
    code, _, err = run_cli(["scatter", dataset, "--nq", "5000"], capsys)
    assert_one_line_error(
        code, err, r"ΔS of 3 trajectories x 41 frames x 5000 q points needs .* MiB of memory, more than the limit of 1 MiB"
    )
    assert dataset.read_bytes() == before
    assert files(dataset.parent) == ["d.h5", "runs"]


def test_q_grid_checks_its_size_before_allocating(monkeypatch):
    from molmovie.scattering import q_grid

    monkeypatch.setenv("MOLMOVIE_MAX_MEMORY", "1M")
    assert q_grid(n_q=100_000).shape == (100_000,)  # 800 kB
    with pytest.raises(InputError, match=r"^The 'n_q' parameter \(200000 q points\) needs 1\.53 MiB"):
        q_grid(n_q=200_000)


def test_generate_refuses_a_negative_seed_and_an_empty_smiles(tmp_path, capsys):
    for args, match in (
        (["cs2", "--seed", "-1"], "'seed' parameter must be a whole number >= 0"),
        (["smiles:"], "empty SMILES ''"),
        (["smiles:  "], "empty SMILES"),
    ):
        code, _, err = run_cli(["generate", *args, "-n", "2", "-o", tmp_path / "g.h5"], capsys)
        assert_one_line_error(code, err, match)
    assert files(tmp_path) == []


# --------------------------------------------------------------------------- outputs


def test_an_output_whose_parent_is_a_file_is_one_line(tmp_path, runs, dataset, capsys):
    code, _, err = run_cli(["import", runs, "-o", dataset / "x.h5"], capsys)
    assert_one_line_error(code, err, r"d\.h5 is a file, not a folder")
    code, _, err = run_cli(["scatter", dataset, "-o", dataset / "x.h5"], capsys)
    assert_one_line_error(code, err, r"d\.h5 is a file, not a folder")


def test_scatter_in_place_respects_the_file_mode(dataset, capsys):
    before = dataset.read_bytes()
    dataset.chmod(0o444)
    try:
        code, _, err = run_cli(["scatter", dataset, "--nq", "8"], capsys)
        assert_one_line_error(code, err, r"d\.h5 is read-only")
        assert dataset.read_bytes() == before and (dataset.stat().st_mode & 0o777) == 0o444
        assert files(dataset.parent) == ["d.h5", "runs"]  # no temporary file left
    finally:
        dataset.chmod(0o640)
    code, _, err = run_cli(["scatter", dataset, "--nq", "8"], capsys)
    assert code == 0, err
    assert read_dataset(dataset).dS.shape[2] == 8
    assert (dataset.stat().st_mode & 0o777) == 0o640  # kept, not reset to 0644


# --------------------------------------------------------------------------- data silently duplicated or dropped


def test_a_trajectory_given_twice_is_refused(tmp_path, runs, capsys):
    one = runs / "TRAJ_00001"
    (tmp_path / "alias").symlink_to(one)
    for paths, match in (
        ([one, one], r"TRAJ_00001 is given twice"),
        ([runs, one], r"TRAJ_00001 is given twice \(a path repeated, or a folder of runs and one of its runs\)"),
        ([one, tmp_path / "alias"], r"are the same trajectory"),
        ([one, runs / "TRAJ_00002" / ".." / "TRAJ_00001"], r"are the same trajectory"),
    ):
        with pytest.raises(InputError, match=match):
            read_ensemble(paths)
    code, _, err = run_cli(["import", runs, one, "-o", tmp_path / "o.h5"], capsys)
    assert_one_line_error(code, err, "given twice")
    assert not (tmp_path / "o.h5").exists()


def test_a_copied_trajectory_is_refused(tmp_path, runs):
    import shutil

    shutil.copytree(runs / "TRAJ_00002", tmp_path / "copy")
    with pytest.raises(InputError, match=r"copy holds the same frames as .*TRAJ_00002"):
        read_ensemble([runs, tmp_path / "copy"])
    # the XYZ file of a run and the run itself: one trajectory
    with pytest.raises(InputError, match="holds the same frames"):
        read_ensemble([runs / "TRAJ_00001", runs / "TRAJ_00001" / "output.xyz"])


def test_a_sharc_lis_shorter_than_the_xyz_is_refused_not_cut(tmp_path):
    run = write_sharc(tmp_path / "r", cs2_positions(41))
    lis = run / "output.lis"
    rows = lis.read_text().splitlines()
    data = [k for k, line in enumerate(rows) if line.strip() and not line.lstrip().startswith("#")]
    lis.write_text("\n".join(rows[: data[5] + 1]) + "\n")  # 6 of 41 steps
    with pytest.raises(InputError, match=r"output\.xyz has 41 frames but output\.lis 6 steps.*keep only 6 frames"):
        read_sharc(run)
    lis.write_text("\n".join(rows[: data[39] + 1]) + "\n")  # one step short: a run stopped between the two writes
    assert len(read_sharc(run).time) == 40


def _tamper(path: Path, name: str, values) -> None:
    with h5py.File(path, "r+") as f:
        if name in f["splits"]:
            del f["splits"][name]
        f["splits"].create_dataset(name, data=np.asarray(values))


@pytest.mark.parametrize(
    "name, values, match",
    [
        ("val", [-1], r"split 'val' holds index -1, outside 0 to 2"),
        ("test", [999], r"split 'test' holds index 999, outside 0 to 2"),
        ("val", None, r"trajectory \d is in both the 'train' and the 'val' split"),
        ("val", [1.5], r"split 'val' must be a list of whole trajectory indices"),
        ("dev", [0], r"unknown split 'dev'"),
    ],
)
def test_tampered_splits_are_refused_on_reading(dataset, capsys, name, values, match):
    with h5py.File(dataset, "r") as f:
        train = f["splits/train"][()]
    _tamper(dataset, name, train if values is None else values)
    with pytest.raises(InputError, match=match):
        read_dataset(dataset)
    code, _, err = run_cli(["info", dataset], capsys)
    assert_one_line_error(code, err, match)


def test_check_splits_accepts_what_make_splits_makes():
    from molmovie.datasets import check_splits

    splits = make_splits(20, (14, 3, 3), seed=4)
    out = check_splits(splits, 20)
    assert {k: v.tolist() for k, v in out.items()} == {k: v.tolist() for k, v in splits.items()}
    assert check_splits({"train": np.arange(3), "test": np.array([], float)}, 3)["test"].size == 0
    with pytest.raises(InputError, match="split 'train' holds trajectory 2 twice"):
        check_splits({"train": [0, 2, 2]}, 3, where="x.h5")


# --------------------------------------------------------------------------- a scheduler that is not one


class _Server:
    """A TCP server on a free local port that answers each connection with ``reply`` (None: says nothing)."""

    def __init__(self, reply: bytes | None, close: bool = False):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.reply, self.close = reply, close
        self.conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.reply:
                conn.sendall(self.reply)
            if self.close:
                conn.close()

    def stop(self):
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.mark.parametrize(
    "reply, close, match",
    [
        (None, False, r"no Dask scheduler answered within 3 s"),  # an HTTP server waits for a request
        (b"SSH-2.0-OpenSSH_9.6\r\n", False, r"claims \d+ bytes, not a Dask handshake"),  # read as a length: EiB
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", True, r"not a Dask handshake|closed"),
        (b"", True, r"connection was closed"),
    ],
)
def test_a_scheduler_address_where_no_dask_scheduler_answers_fails_fast(tmp_path, capsys, reply, close, match):
    server = _Server(reply, close)
    try:
        start = time.monotonic()
        code, _, err = run_cli(
            ["generate", "cs2", "-n", "1", "-o", tmp_path / "g.h5", "--scheduler", f"tcp://127.0.0.1:{server.port}"], capsys
        )
        elapsed = time.monotonic() - start
    finally:
        server.stop()
    assert_one_line_error(code, err, match)
    assert elapsed < 15
    assert files(tmp_path) == []


def test_a_scheduler_address_of_another_scheme_is_one_line(tmp_path, capsys):
    code, _, err = run_cli(["generate", "cs2", "-n", "1", "-o", tmp_path / "g.h5", "--scheduler", "http://127.0.0.1:9"], capsys)
    assert_one_line_error(code, err, r"--scheduler must be an address like tcp://host:8786; got 'http://127\.0\.0\.1:9'")


def test_a_real_scheduler_passes_the_probe(tmp_path):
    from molmovie._engine import connect as _connect

    with users_cluster(
        n_workers=0,
        processes=False,
        protocol="tcp://",
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    ) as cluster:
        client = _connect(cluster.scheduler_address)
        try:
            assert client.scheduler_info()["address"] == cluster.scheduler_address
        finally:
            client.close()


def test_a_local_cluster_does_not_warn_about_port_8787(tmp_path):
    from molmovie.dynamics import generate, get_model

    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", 8787))
        blocker.listen()
    except OSError:
        pass  # in use already: as good
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = generate("cs2", 2, model=get_model("ground").replace(duration=1.0, n_frames=2), seed=1, workers=2)
    finally:
        blocker.close()
    assert ds.n_trajectories == 2
    assert [str(w.message) for w in caught if "already in use" in str(w.message)] == []


# --------------------------------------------------------------------------- generate: locks, inputs, full disk


def test_a_second_generate_into_the_same_output_is_refused(tmp_path):
    from molmovie._guards import output_lock
    from molmovie.dynamics import generate, get_model

    out = tmp_path / "g.h5"
    with output_lock(out):  # another run holds it
        with pytest.raises(InputError, match=r"another molmovie run is writing .*g\.h5 \(lock file .*g\.h5\.lock\)"):
            generate("cs2", 1, model=get_model("ground").replace(duration=1.0, n_frames=2), workers=1, output=out)
    assert files(tmp_path) == []


def test_generate_never_writes_over_its_molecule_file(tmp_path, capsys):
    xyz = write_xyz(tmp_path / "cs2.xyz", ("C", "S", "S"), cs2_positions(1))
    before = xyz.read_bytes()
    code, _, err = run_cli(["generate", xyz, "-n", "1", "-o", xyz, "--force", "--workers", "1"], capsys)
    assert_one_line_error(code, err, r"the output .*cs2\.xyz is the input")
    assert xyz.read_bytes() == before and files(tmp_path) == ["cs2.xyz"]


def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_checkpoint(tmp_path, capsys, monkeypatch):
    import errno

    def full(path, **arrays):
        Path(path).write_bytes(b"half a trajectory")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    out = tmp_path / "g.h5"
    code, _, err = run_cli(["generate", "cs2", "-n", "2", "-o", out, "--workers", "1", "--dynamics", "ground"], capsys)
    assert_one_line_error(code, err, r"no space left on device writing .*g\.h5\.partial/traj-000000\.npz$")
    assert files(tmp_path) == ["g.h5.partial"]  # no dataset, no lock file
    assert files(tmp_path / "g.h5.partial") == ["run.json"]  # no temporary file


def test_the_readme_flow_with_two_runs_ends_in_one_line_not_an_index_error(tmp_path, capsys):
    """Two runs at 80,10,10 leave the test split empty; `evaluate` says so."""
    runs = tmp_path / "runs"
    write_sharc(runs / "TRAJ_00001", cs2_positions(21, seed=1))
    write_sharc(runs / "TRAJ_00002", cs2_positions(21, dissociate=True, seed=2))
    data, model = tmp_path / "cs2.h5", tmp_path / "m.st"
    assert run_cli(["import", runs, "-o", data, "--dt", "1"], capsys)[0] == 0
    assert run_cli(["scatter", data, "--nq", "8"], capsys)[0] == 0
    assert run_cli(["train", data, "--method", "nearest", "-o", model], capsys)[0] == 0
    code, _, err = run_cli(["evaluate", model, data, "-o", tmp_path / "ev"], capsys)
    assert_one_line_error(
        code,
        err,
        r"the test split of .*cs2.h5 is empty \(splits: train 1, val 1, test 0\); score another with --split train\|val\|all",
    )
    assert not (tmp_path / "ev").exists()


# --------------------------------------------------------------------------- beyond the list


def test_generate_checks_the_size_of_the_dataset_before_anything(tmp_path, capsys):
    code, _, err = run_cli(["generate", "cs2", "-n", str(10**12), "-o", tmp_path / "g.h5"], capsys)
    assert_one_line_error(
        code, err, r"1000000000000 trajectories of \d+ frames of 3 atoms \(the dataset's positions\) needs .* PiB"
    )
    assert files(tmp_path) == []


def test_padding_many_short_trajectories_to_a_long_one_is_bounded(monkeypatch):
    from molmovie.trajectories import Trajectory, ensemble_from_trajectories

    pos = cs2_positions(20_000)
    long = Trajectory(("C", "S", "S"), np.arange(20_000) * 0.5, pos, source="long")
    short = [Trajectory(("C", "S", "S"), np.arange(2) * 0.5, pos[:2], source=f"s{k}") for k in range(20)]
    assert ensemble_from_trajectories([long, *short[:2]]).positions.shape == (3, 20_000, 3, 3)  # 4.3 MB
    monkeypatch.setenv("MOLMOVIE_MAX_MEMORY", "10M")
    with pytest.raises(
        InputError, match=r"^21 trajectories padded to the longest one's 20000 frames \(3 atoms\) needs 28\.8 MiB"
    ):
        ensemble_from_trajectories([long, *short])


def test_photon_counts_beyond_64_bit_integers_are_refused(dataset, capsys):
    before = dataset.read_bytes()
    code, _, err = run_cli(["scatter", dataset, "--photons", "1e300"], capsys)
    assert_one_line_error(code, err, r"--photons must be <= 1e\+16 per q bin per delay with 100 q points .*got 1e\+300")
    assert dataset.read_bytes() == before


def test_an_irf_far_narrower_than_a_frame_leaves_the_signal_as_it_is():
    from molmovie.scattering import simulate_signals

    pos = cs2_positions(12)[None]
    args = (("C", "S", "S"), pos, [12], np.arange(12) * 0.5, np.linspace(0.5, 5, 7))
    sharp, _ = simulate_signals(*args)
    narrow, _ = simulate_signals(*args, irf_fs=1e-300)  # (offset / sigma)^2 overflows to inf: a weight of 0
    np.testing.assert_array_equal(narrow, sharp)


def test_q_beyond_any_experiment_is_one_line(dataset, capsys):
    from molmovie.scattering import intensity

    with pytest.raises(InputError, match=r"The 'q' parameter must be <= 1\.257e\+10 1/Å, where the tables .* end; got 1e\+300"):
        intensity(("C", "S"), np.array([[0, 0, 0], [0, 0, 1.5]]), np.array([1.0, 1e300]))
    code, _, err = run_cli(["scatter", dataset, "--qmax", "1e300"], capsys)
    assert_one_line_error(code, err, r"must be <= 1\.257e\+10 1/Å")


def test_a_fifo_is_refused_not_read_forever(tmp_path):
    fifo = tmp_path / "t.xyz"
    os.mkfifo(fifo)
    outcome = []

    def read():
        try:
            read_ensemble([fifo], dt=1)
        except InputError as exc:
            outcome.append(str(exc))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # blocked in open(): release it
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    assert outcome == [f"{fifo}: not a regular file or folder"]


def test_the_bond_graph_of_a_huge_molecule_is_bounded(monkeypatch):
    from molmovie.molecules import bond_graph

    pos = np.random.default_rng(0).uniform(0, 50, (300, 3))
    assert bond_graph(["C"] * 300, pos).shape == (300, 300)
    monkeypatch.setenv("MOLMOVIE_MAX_MEMORY", "1M")
    with pytest.raises(InputError, match=r"^the bond graph of 300 atoms needs 2\.06 MiB of memory"):
        bond_graph(["C"] * 300, pos)
