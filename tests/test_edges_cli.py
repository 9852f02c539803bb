"""Issue 10, phase 2: every command and every file format holds the edges the issue lists.

One line on stderr, exit 2 (bad input, a full disk, a refused permission) or 130 (Ctrl-C),
no traceback, no partial or temporary file, no input changed, memory bounded. Each test
reproduces a failure of the commands before the shared guards were wired in.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from molmovie import InputError
from molmovie._guards import output_lock
from molmovie.datasets import Dataset, make_splits
from molmovie.inversion import get_method
from molmovie.io import read_dataset, read_signals, write_dataset
from molmovie.scattering import SignalSpec, simulate
from molmovie.trajectories import Ensemble

from _fixtures import assert_one_line_error, cs2_positions, run_cli, write_sharc, write_xyz

SRC = str(Path(__file__).resolve().parents[1] / "src")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def snapshot(*paths: Path) -> dict:
    return {p: (p.read_bytes(), os.stat(p).st_mode) for p in paths}


def _cli(*args) -> None:
    from molmovie.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        assert exc.code in (0, None), args


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Made once: a CS2 dataset with signals (d.h5), a nearest model (m.st), a minimal signals file and an XYZ trajectory."""
    folder = tmp_path_factory.mktemp("template")
    runs = folder / "runs"
    for k, diss in ((1, False), (2, True), (3, False)):
        write_sharc(runs / f"TRAJ_0000{k}", cs2_positions(41, dissociate=diss, seed=k))
    _cli("import", runs, "-o", folder / "d.h5", "--splits", "1,1,1")
    _cli("scatter", folder / "d.h5", "--nq", "12")
    _cli("train", folder / "d.h5", "--method", "nearest", "-o", folder / "m.st")
    ds = read_dataset(folder / "d.h5")
    with h5py.File(folder / "sig.h5", "w") as f:
        f["q"], f["time"], f["dS"] = ds.q, ds.time, ds.dS[0]
    write_xyz(folder / "mine.xyz", ("C", "S", "S"), cs2_positions(11, seed=9))
    return folder


@pytest.fixture
def work(tmp_path, template):
    """A fresh copy of the template in this test's folder."""
    shutil.copytree(template, tmp_path, dirs_exist_ok=True)
    t = tmp_path
    return dict(dir=t, runs=t / "runs", data=t / "d.h5", model=t / "m.st", sig=t / "sig.h5", xyz=t / "mine.xyz")


# --------------------------------------------------------------------------- case 3: an output that is an input


def _commands(w):
    d, m, s, x, t = w["data"], w["model"], w["sig"], w["xyz"], w["dir"]
    link = t / "link.h5"
    link.symlink_to(d)
    hard = t / "hard.h5"
    os.link(d, hard)
    return [
        (["invert", m, d, "-o", d, "--force"], d),
        (["invert", m, d, "-o", m, "--force"], m),
        (["invert", m, s, "-o", s, "--force"], s),
        (["invert", m, d, "-o", link, "--force"], d),
        (["invert", m, d, "-o", hard, "--force"], d),
        (["train", d, "--method", "nearest", "-o", d, "--force"], d),
        (["train", d, "--method", "nearest", "-o", t / "sub" / ".." / "d.h5", "--force"], d),
        (["import", x, "-o", x, "--force"], x),
        (
            ["import", w["runs"], "-o", w["runs"] / "TRAJ_00001" / "output.xyz", "--force"],
            w["runs"] / "TRAJ_00001" / "output.xyz",
        ),
        (
            ["import", w["runs"], "-o", w["runs"] / "TRAJ_00002" / "output.lis", "--force"],
            w["runs"] / "TRAJ_00002" / "output.lis",
        ),
        (["scatter", d, "-o", link, "--force"], d),
        (["evaluate", m, d, "-o", t, "--force"], d),
        (["evaluate", m, d, "-o", m, "--force"], m),
        (["simulate-experiment", d, "-o", hard, "--force"], d),
        (["show", d, "-o", d, "--force"], d),
    ]


def test_an_output_that_is_an_input_is_refused_by_every_command(work, capsys):
    (work["dir"] / "sub").mkdir()
    for args, victim in _commands(work):
        before = victim.read_bytes()
        code, _, err = run_cli(args, capsys)
        assert_one_line_error(code, err, r"(is the input|holds the input)")
        assert victim.read_bytes() == before, args
    assert not [n for n in leftovers(work["dir"]) if n.startswith(".") or n.endswith(".lock")]


def test_ingest_refuses_its_beamline_file_as_output(tmp_path, capsys):
    src = tmp_path / "beam.npz"
    np.savez(src, q=np.linspace(1, 4, 5), delays=np.arange(4.0), dS=np.zeros((4, 5)))
    before = src.read_bytes()
    code, _, err = run_cli(
        [
            "ingest",
            src,
            "-o",
            src,
            "--force",
            "--q-units",
            "1/A",
            "--delay-units",
            "fs",
            "--signal-units",
            "fraction",
            "--kind",
            "difference",
        ],
        capsys,
    )
    assert_one_line_error(code, err, "is the input")
    assert src.read_bytes() == before


# --------------------------------------------------------------------------- case 4: a full disk


def _full_disk_commands(w, out: Path):
    d, m = w["data"], w["model"]
    return [
        (["import", w["runs"], "-o", out / "i.h5"], out / "i.h5"),
        (["scatter", d, "-o", out / "s.h5", "--nq", "40"], out / "s.h5"),
        (["train", d, "--method", "nearest", "-o", out / "m.st"], out / "m.st"),
        (["invert", m, d, "-o", out / "r.h5"], out / "r.h5"),
        (["evaluate", m, d, "-o", out / "ev", "--split", "all"], out / "ev"),
        (["simulate-experiment", d, "-o", out / "x.h5"], out / "x.h5"),
        (["show", w["dir"] / "x.h5", "-o", out / "x.png"], out / "x.png"),
    ]


def _check_full_disk(w, out, capsys):
    inputs = snapshot(w["data"], w["model"], w["dir"] / "x.h5")
    before = leftovers(out)
    for args, target in _full_disk_commands(w, out):
        code, _, err = run_cli(args, capsys)
        assert_one_line_error(code, err, f"no space left on device writing {target}")
        assert leftovers(out) == before, args  # no temporary file, no partial folder, no lock file
    assert snapshot(*inputs) == inputs


def test_a_full_disk_is_one_line_for_every_command(work, nearly_full, capsys):
    assert run_cli(["simulate-experiment", work["data"], "-o", work["dir"] / "x.h5"], capsys)[0] == 0
    _check_full_disk(work, nearly_full, capsys)


def test_a_full_disk_is_one_line_where_no_tmpfs_can_be_mounted(work, capsys, monkeypatch):
    """The same, with ENOSPC raised where a full disk raises it (the flush of every atomic write)."""

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    assert run_cli(["simulate-experiment", work["data"], "-o", work["dir"] / "x.h5"], capsys)[0] == 0
    out = work["dir"] / "out"
    out.mkdir()
    monkeypatch.setattr(os, "fsync", full)
    _check_full_disk(work, out, capsys)


# --------------------------------------------------------------------------- case 7: file protection


@pytest.mark.parametrize("mode", [0o444, 0o400])
def test_scatter_in_place_refuses_a_read_only_file_before_computing(work, capsys, monkeypatch, mode):
    data = work["data"]
    os.chmod(data, mode)
    before = snapshot(data)
    monkeypatch.setattr("molmovie.cli._data.simulate", lambda *a, **k: pytest.fail("computed before refusing"))
    code, _, err = run_cli(["scatter", data, "--force"], capsys)
    assert_one_line_error(code, err, "is read-only")
    assert snapshot(data) == before and leftovers(work["dir"]).count("d.h5.lock") == 0


def test_scatter_in_place_refuses_an_immutable_file(work, capsys):
    data = work["data"]
    if subprocess.run(["chattr", "+i", str(data)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i does not work here")
    try:
        before = data.read_bytes()
        code, _, err = run_cli(["scatter", data, "--force", "--nq", "9"], capsys)
        assert_one_line_error(code, err, "is read-only")
        assert data.read_bytes() == before
        assert not [n for n in leftovers(work["dir"]) if n.startswith(".")]
    finally:
        subprocess.run(["chattr", "-i", str(data)], capture_output=True)


# --------------------------------------------------------------------------- case 8: concurrent runs


def test_a_second_run_on_a_locked_output_is_refused_naming_the_lock(work, capsys):
    d, m = work["data"], work["model"]
    out = work["dir"] / "r.h5"
    for args, target in (
        (["scatter", d, "--force", "--nq", "9"], d),
        (["invert", m, d, "-o", out], out),
        (["train", d, "--method", "nearest", "-o", m, "--force"], m),
        (["evaluate", m, d, "-o", work["dir"] / "ev"], work["dir"] / "ev"),
    ):
        before = snapshot(d, m)
        with output_lock(target):
            code, _, err = run_cli(args, capsys)
        assert_one_line_error(code, err, f"another molmovie run is writing {target} \\(lock file {target}.lock\\)")
        assert snapshot(d, m) == before
        assert not out.exists() and not (work["dir"] / "ev").exists()


# --------------------------------------------------------------------------- case 9: Ctrl-C

_SLOW = """
import signal, sys, time
from pathlib import Path
signal.signal(signal.SIGINT, signal.default_int_handler)   # a background job may have SIGINT ignored
ready = Path(sys.argv[1])
import molmovie.cli._data as data, molmovie.inversion._nearest as nearest
def wait():
    ready.write_text("ready")
    time.sleep(30)
if sys.argv[2] == "compute":
    data.simulate = lambda *a, **k: wait()
    nearest.NearestReference.fit = lambda *a, **k: wait()
else:
    import os
    real_fsync = os.fsync
    def slow_fsync(fd):  # every atomic write flushes its temporary file before the rename
        ready.write_text("ready")
        time.sleep(1.5)  # Ctrl-C arrives here, with the new file written but not yet in place
        real_fsync(fd)
    os.fsync = slow_fsync
from molmovie.cli import main
main(sys.argv[3:])
"""


def _interrupt(tmp_path, phase: str, args, meanwhile=None, signum=signal.SIGINT) -> tuple[int, str]:
    """Run ``molmovie ARGS`` stopped in ``phase`` (compute or write), call ``meanwhile()`` there, then press Ctrl-C."""
    ready = tmp_path / "ready"
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW, str(ready), phase, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    deadline = time.monotonic() + 60
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ready.exists(), proc.communicate()
    _interrupt.meanwhile = meanwhile() if meanwhile is not None else None
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    ready.unlink()
    return proc.returncode, err


@pytest.mark.parametrize("phase", ["compute", "write"])
def test_ctrl_c_in_scatter_keeps_the_old_file_and_says_so(work, phase):
    d = work["data"]
    before = snapshot(d)
    code, err = _interrupt(work["dir"], phase, ["scatter", d, "--force", "--nq", "20"])
    assert code == 130
    assert err.strip() == f"molmovie: interrupted; {d} is unchanged"  # one line: no "Exception ignored", no traceback
    assert snapshot(d) == before
    assert not [n for n in leftovers(work["dir"]) if n.startswith(".") or n.endswith(".lock")]


def test_two_in_place_scatters_at_once_the_second_is_refused(work):
    """A second process finds the first one's lock: one line naming it; the first then ends as Ctrl-C leaves it."""
    d = work["data"]
    before = snapshot(d)

    def second():
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from molmovie.cli import main; main(sys.argv[1:])",
                "scatter",
                str(d),
                "--force",
                "--nq",
                "9",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": SRC},
            timeout=120,
        )
        return done.returncode, done.stderr

    code, err = _interrupt(work["dir"], "compute", ["scatter", d, "--force", "--nq", "20"], meanwhile=second)
    assert code == 130 and snapshot(d) == before
    assert _interrupt.meanwhile == (2, f"molmovie: error: another molmovie run is writing {d} (lock file {d}.lock)\n")


def test_ctrl_c_in_train_and_evaluate_says_nothing_was_written(work):
    d, m, out = work["data"], work["model"], work["dir"] / "new.st"
    code, err = _interrupt(work["dir"], "compute", ["train", d, "--method", "nearest", "-o", out])
    assert (code, err.strip()) == (130, f"molmovie: interrupted; {out} was not written")
    ev = work["dir"] / "ev"
    code, err = _interrupt(work["dir"], "write", ["evaluate", m, d, "-o", ev, "--split", "all"])
    assert (code, err.strip()) == (130, f"molmovie: interrupted; {ev} was not written")
    assert not out.exists() and not ev.exists()
    assert not [n for n in leftovers(work["dir"]) if n.startswith(".") or n.endswith(".lock")]


# --------------------------------------------------------------------------- case 10: tracebacks instead of one line


def test_a_signals_file_with_q_as_strings_is_one_line(work, capsys):
    bad = work["dir"] / "strings.h5"
    ds = read_dataset(work["data"])
    with h5py.File(bad, "w") as f:
        f["q"] = np.array([f"{v:.3f}" for v in ds.q], dtype="S8")
        f["time"], f["dS"] = ds.time, ds.dS[0]
    code, _, err = run_cli(["invert", work["model"], bad, "-o", work["dir"] / "r.h5"], capsys)
    assert_one_line_error(code, err, r"strings.h5: q must be numbers; it holds \|S8 values")


@pytest.mark.parametrize("value", ["abc", -1, 1.5, b"\xff\xfe"], ids=["text", "negative", "fraction", "bytes"])
def test_a_dataset_whose_version_is_not_a_whole_number_is_one_line(work, capsys, value):
    with h5py.File(work["data"], "a") as f:
        f.attrs["version"] = value
    code, _, err = run_cli(["info", work["data"]], capsys)
    assert_one_line_error(code, err, r"d.h5: damaged molmovie dataset \(version must be a whole number >= 0; got ")


def test_evaluate_into_a_folder_below_a_file_is_one_line(work, capsys):
    code, _, err = run_cli(["evaluate", work["model"], work["data"], "-o", work["data"] / "x"], capsys)
    assert_one_line_error(code, err, r"d.h5 is a file, not a folder, so .*d.h5/x cannot be written")


@pytest.mark.parametrize(
    "setting, match",
    [
        ("hidden=100000", r"The 'hidden' setting must be <= 8192; got 100000"),
        ("latent_free=1000000000", r"The 'latent_free' setting must be <= 4096; got 1000000000"),
        ("features=-3", r"The 'features' setting must be >= 1; got -3"),
    ],
)
def test_train_refuses_a_network_too_large_to_build(work, capsys, setting, match):
    out = work["dir"] / "v.st"
    code, _, err = run_cli(["train", work["data"], "-o", out, "--set", setting], capsys)
    assert_one_line_error(code, err, match)
    assert not out.exists()


def test_a_q_grid_that_makes_the_network_too_large_is_refused_before_building(monkeypatch):
    from test_inversion import make_dataset

    monkeypatch.setenv("MOLMOVIE_MAX_MEMORY", "1M")
    with pytest.raises(
        InputError, match=r"a VRNN with hidden=512, features=64 on 16 q points needs .* more than the limit of 1 MiB"
    ):
        get_method("vrnn", hidden=512, epochs=1, device="cpu").fit(make_dataset(M=4, T=4))


# --------------------------------------------------------------------------- case 11: the model's molecule


def test_a_c2h4_model_on_cs2_data_says_so(work, capsys):
    rng = np.random.default_rng(0)
    base = np.array([[0, 0, 0.67], [0, 0, -0.67], [0, 0.92, 1.24], [0, -0.92, 1.24], [0, 0.92, -1.24], [0, -0.92, -1.24]])
    pos = base + 0.02 * rng.standard_normal((3, 8, 6, 3))
    ens = Ensemble("C2H4", ("C", "C", "H", "H", "H", "H"), np.arange(8.0), pos, np.full(3, 8), np.zeros(3, bool), ["a", "b", "c"])
    ds = Dataset(ens, splits=make_splits(3, (1, 1, 1), seed=0))
    q = read_dataset(work["data"]).q
    spec = SignalSpec(q)
    ds = ds.with_signals(*simulate(ens.symbols, ens.positions, ens.length, ens.time, spec))
    c2h4 = write_dataset(ds, work["dir"] / "c2h4.h5")
    model = work["dir"] / "c2h4.st"
    assert run_cli(["train", c2h4, "--method", "nearest", "-o", model], capsys)[0] == 0
    code, _, err = run_cli(["evaluate", model, work["data"], "-o", work["dir"] / "ev", "--split", "all"], capsys)
    assert_one_line_error(code, err, r"model of C2H4 \(C C H H H H\), data of cs2 \(C S S\)")
    assert not (work["dir"] / "ev").exists()


# --------------------------------------------------------------------------- readers: headers checked before arrays


def test_a_dataset_header_claiming_a_huge_array_is_refused_before_reading(work, monkeypatch):
    with h5py.File(work["data"], "a") as f:
        del f["trajectories/positions"]
        f["trajectories"].create_dataset("positions", shape=(10**6, 10**5, 3, 3), dtype="f8", chunks=(1, 10, 3, 3))
    monkeypatch.setenv("MOLMOVIE_MAX_MEMORY", "1G")
    with pytest.raises(InputError, match=r"d.h5: /trajectories/positions \(shape \(1000000, 100000, 3, 3\)\) needs 6.55 TiB"):
        read_dataset(work["data"])


def test_a_signals_header_claiming_a_huge_array_is_refused_before_reading(work, monkeypatch):
    huge = work["dir"] / "huge.h5"
    with h5py.File(huge, "w") as f:
        f["q"], f["time"] = np.linspace(1, 2, 12), np.arange(41.0)
        f.create_dataset("dS", shape=(10**7, 41, 12), dtype="f8", chunks=(1, 41, 12))
    monkeypatch.setenv("MOLMOVIE_MAX_MEMORY", "1G")
    with pytest.raises(InputError, match=r"huge.h5: /dS \(shape \(10000000, 41, 12\)\) needs 36.7 GiB"):
        read_signals(huge)


# --------------------------------------------------------------------------- beyond the list


def test_an_input_that_is_a_folder_a_fifo_or_a_device_is_named_as_such(work, capsys):
    fifo = work["dir"] / "fifo"
    os.mkfifo(fifo)
    for args, match in (
        (["info", work["runs"]], r"runs is a folder, not a file"),
        (["info", fifo], r"fifo is not a regular file, so not a file"),
        (["info", "/dev/null"], r"/dev/null is not a regular file"),
        (["invert", fifo, work["data"], "-o", work["dir"] / "r.h5"], r"fifo is not a regular file, so not a model file"),
        (["show", work["runs"], "-o", work["dir"] / "x.png"], r"runs is a folder, not a measurement file"),
    ):
        code, _, err = run_cli(args, capsys)  # a FIFO opened for reading would block forever
        assert_one_line_error(code, err, match)


def test_ingest_checks_each_array_against_the_memory_limit_before_reading(tmp_path, capsys, monkeypatch):
    src = tmp_path / "beam.npz"
    np.savez(src, q=np.linspace(1, 4, 50), delays=np.arange(40.0), dS=np.zeros((40, 50)))
    monkeypatch.setenv("MOLMOVIE_MAX_MEMORY", "4K")
    code, _, err = run_cli(
        [
            "ingest",
            src,
            "-o",
            tmp_path / "m.h5",
            "--q-units",
            "1/A",
            "--delay-units",
            "fs",
            "--signal-units",
            "fraction",
            "--kind",
            "difference",
        ],
        capsys,
    )
    assert_one_line_error(
        code,
        err,
        r"beam.npz: dS \(.*shape \(40, 50\)\) needs 15.6 KiB of memory, more than the limit of 4 KiB "
        r"\(set by MOLMOVIE_MAX_MEMORY\)",
    )
    assert leftovers(tmp_path) == ["beam.npz"]


def test_reproduce_holds_its_output_folder_for_the_whole_study(tmp_path, capsys):
    out = tmp_path / "runs" / "quick"
    with output_lock(out.parent.mkdir() or out):
        code, _, err = run_cli(["reproduce", "--preset", "no-such-preset", "-o", out], capsys)
    assert_one_line_error(code, err, f"another molmovie run is writing {out} \\(lock file {out}.lock\\)")
    assert leftovers(tmp_path / "runs") == []


@pytest.mark.parametrize("phase", ["compute", "write"])
def test_sigterm_ends_like_ctrl_c_with_exit_143(work, phase):
    """``kill`` or a batch system's time limit: the temporary file is removed and the old file kept."""
    d = work["data"]
    before = snapshot(d)
    code, err = _interrupt(work["dir"], phase, ["scatter", d, "--force", "--nq", "20"], signum=signal.SIGTERM)
    assert (code, err.strip()) == (143, f"molmovie: terminated; {d} is unchanged")
    assert snapshot(d) == before
    assert not [n for n in leftovers(work["dir"]) if n.startswith(".") or n.endswith(".lock")]


def test_temporaries_of_killed_runs_are_removed_by_the_next_write(work, capsys):
    """SIGKILL leaves a temporary file; the next write of that output removes it if its process is gone."""
    from molmovie._guards import _owner

    d = work["data"]
    host, pid = _owner().rsplit("-", 1)
    dead = 2**22 + 12345  # above the kernel's pid_max default: no such process
    with pytest.raises(ProcessLookupError):
        os.kill(dead, 0)
    stale = work["dir"] / f".d.h5.{host}-{dead}.x1y2.tmp"
    alive = work["dir"] / f".d.h5.{host}-{os.getppid()}.a1b2.tmp"  # a running process (pytest's parent)
    remote = work["dir"] / f".d.h5.otherhost-{dead}.c3d4.tmp"  # another host's, on a shared file system
    other = work["dir"] / f".m.st.{host}-{dead}.e5f6.tmp"  # another output's
    for p in (stale, alive, remote, other):
        p.write_bytes(b"half a file")
    assert run_cli(["scatter", d, "--force", "--nq", "9"], capsys)[0] == 0
    assert not stale.exists() and alive.exists() and remote.exists() and other.exists()


def test_evaluate_never_replaces_a_read_only_file_of_an_earlier_evaluation(work, capsys):
    m, d, ev = work["model"], work["data"], work["dir"] / "ev"
    assert run_cli(["evaluate", m, d, "-o", ev, "--split", "all"], capsys)[0] == 0
    (ev / "notes.txt").write_text("mine")
    os.chmod(ev / "metrics.json", 0o444)
    before = snapshot(*ev.iterdir())
    code, _, err = run_cli(["evaluate", m, d, "-o", ev, "--split", "all", "--force"], capsys)
    assert_one_line_error(code, err, "metrics.json is read-only")
    assert snapshot(*ev.iterdir()) == before
    os.chmod(ev / "metrics.json", 0o644)
    assert run_cli(["evaluate", m, d, "-o", ev, "--split", "train", "--force"], capsys)[0] == 0
    assert (ev / "notes.txt").read_text() == "mine"  # other files in the folder are left alone
    assert json.loads((ev / "metrics.json").read_text())["split"] == "train"
