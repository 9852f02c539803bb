"""The shared guards (molmovie._guards): output paths, memory, locks, atomic writes, disk errors, Ctrl-C.

Each test states what the user keeps. A full disk is a real one where this machine lets the
tests mount a small tmpfs (root), and a raised ENOSPC otherwise.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from molmovie import InputError
from molmovie._guards import (
    MEMORY_ENV,
    WriteError,
    atomic_folder,
    atomic_hdf5,
    atomic_write,
    check_allocation,
    check_output_path,
    check_seed,
    deferred_interrupt,
    lock_path,
    memory_limit,
    output_lock,
    replacement_mode,
    write_errors,
)

SRC = str(Path(__file__).resolve().parents[1] / "src")


def leftovers(folder: Path, keep=()) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# --------------------------------------------------------------------------- output paths


@pytest.fixture
def data(tmp_path) -> Path:
    f = tmp_path / "data.h5"
    f.write_bytes(b"the user's data")
    return f


@pytest.mark.parametrize("force", [False, True])
def test_an_output_that_is_an_input_is_refused_by_every_name(tmp_path, data, force):
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.h5").symlink_to(data)
    os.link(data, tmp_path / "hard.h5")
    for name in (data, tmp_path / "link.h5", tmp_path / "sub" / ".." / "data.h5", tmp_path / "hard.h5"):
        with pytest.raises(InputError, match="is the input"):
            check_output_path(name, [tmp_path / "other.h5", data], force=force)
    # and the other way round: the input named through the link
    with pytest.raises(InputError, match="is the input"):
        check_output_path(data, [tmp_path / "link.h5"], force=force)
    assert data.read_bytes() == b"the user's data"


def test_an_output_folder_holding_an_input_is_refused(tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    model = report / "model.st"
    model.write_bytes(b"weights")
    with pytest.raises(InputError, match="holds the input"):
        check_output_path(report, [model], force=True, folder=True)
    assert check_output_path(tmp_path / "elsewhere", [model], folder=True) == tmp_path / "elsewhere"


def test_a_parent_that_is_a_file_or_missing_is_one_line(tmp_path, data):
    with pytest.raises(InputError, match=r"data\.h5 is a file, not a folder"):
        check_output_path(data / "x.h5")
    with pytest.raises(InputError, match=r"data\.h5 is a file, not a folder"):
        check_output_path(data / "deeper" / "x.h5")
    with pytest.raises(InputError, match="no such folder"):
        check_output_path(tmp_path / "missing" / "x.h5")


def test_existing_outputs_need_force_and_kinds_must_match(tmp_path, data):
    with pytest.raises(InputError, match="exists; use force=True"):
        check_output_path(data)
    assert check_output_path(data, force=True) == data
    with pytest.raises(InputError, match="is a folder, not a file"):
        check_output_path(tmp_path, force=True)
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output_path(data, force=True, folder=True)


@pytest.mark.parametrize("mode", [0o444, 0o400, 0o555])
def test_a_read_only_output_is_never_replaced_even_with_force(data, mode):
    data.chmod(mode)
    try:
        with pytest.raises(InputError, match="read-only"):
            check_output_path(data, force=True)
        with pytest.raises(WriteError, match="read-only"):
            with atomic_write(data) as tmp:
                tmp.write_bytes(b"new")
        assert data.read_bytes() == b"the user's data"
        assert (data.stat().st_mode & 0o777) == mode
        assert leftovers(data.parent) == ["data.h5"]
    finally:
        data.chmod(0o644)


def test_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(InputError, match="read-only"):
            check_output_path(folder / "x.h5")
    finally:
        folder.chmod(0o755)


def test_a_replaced_file_keeps_its_mode_and_a_new_one_follows_the_umask(tmp_path, data):
    from molmovie.io import atomic_path

    data.chmod(0o640)
    assert replacement_mode(data) == 0o640
    with atomic_path(data) as tmp:  # the datasets helper delegates to the guard
        tmp.write_bytes(b"new")
    assert data.read_bytes() == b"new"
    assert (data.stat().st_mode & 0o777) == 0o640
    old = os.umask(0o027)
    try:
        assert replacement_mode(tmp_path / "new.h5") == 0o640
        with atomic_write(tmp_path / "new.h5") as tmp:
            tmp.write_bytes(b"x")
        assert ((tmp_path / "new.h5").stat().st_mode & 0o777) == 0o640
    finally:
        os.umask(old)


# --------------------------------------------------------------------------- memory


def test_allocations_beyond_the_limit_are_refused_with_their_size(monkeypatch):
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    assert check_allocation((10, 20), "a small array") == 1600
    assert check_allocation(1600, "bytes", limit_bytes=1600) == 1600
    with pytest.raises(InputError, match=r"^--nq 300 needs 2\.34 KiB of memory, more than the limit of 2 KiB \(given"):
        check_allocation((300,), "--nq 300", limit_bytes=2048)
    # a product that overflows int64 is still a clean refusal
    with pytest.raises(InputError, match=r"needs 6\.94e\+06 EiB"):
        check_allocation((10**6,) * 4, "a forged header")
    with pytest.raises(InputError, match="negative size"):
        check_allocation((3, -1), "a forged header")


def test_the_limit_is_half_the_memory_unless_the_environment_says(monkeypatch):
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < memory_limit() <= physical // 2 + 1
    for text, expected in (("1M", 1 << 20), ("8G", 8 << 30), ("1.5GiB", 3 << 29), ("4096", 4096)):
        monkeypatch.setenv(MEMORY_ENV, text)
        assert memory_limit() == expected
    monkeypatch.setenv(MEMORY_ENV, "1M")
    with pytest.raises(InputError, match=r"limit of 1 MiB \(set by MOLMOVIE_MAX_MEMORY\)"):
        check_allocation((1 << 18,), "x")
    monkeypatch.setenv(MEMORY_ENV, "plenty")
    with pytest.raises(InputError, match="MOLMOVIE_MAX_MEMORY must be a size like 8G"):
        memory_limit()


def test_seeds_are_whole_numbers_from_zero():
    assert check_seed(0) == 0 and check_seed(np.int64(7)) == 7 and check_seed(None) is None
    rng = np.random.default_rng(1)
    assert check_seed(rng, generator=True) is rng
    for bad in (-1, 1.5, True, "3", rng):
        with pytest.raises(InputError, match=r"The 'seed' parameter must be a whole number >= 0"):
            check_seed(bad)


# --------------------------------------------------------------------------- locks


def test_a_second_writer_is_refused_and_the_lock_file_goes_away(tmp_path):
    out = tmp_path / "d.h5"
    with output_lock(out) as lock:
        assert lock == lock_path(out) == tmp_path / "d.h5.lock" and lock.exists()
        with pytest.raises(InputError, match=r"another molmovie run is writing .*d\.h5 \(lock file .*d\.h5\.lock\)"):
            with output_lock(out):
                pass
    assert not lock_path(out).exists()
    with output_lock(out):  # free again
        pass


def test_the_lock_excludes_another_process(tmp_path):
    out = tmp_path / "d.h5"
    code = (
        "import sys, time; from molmovie._guards import output_lock\n"
        f"with output_lock({str(out)!r}):\n    print('locked', flush=True); sys.stdin.readline()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(InputError, match="another molmovie run is writing"):
            with output_lock(out):
                pass
    finally:
        holder.communicate("go\n", timeout=30)
    assert holder.returncode == 0
    with output_lock(out):
        pass


# --------------------------------------------------------------------------- disk errors


@pytest.mark.parametrize(
    "err, reason",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on device"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk quota exceeded"),
        (OSError(errno.EROFS, "Read-only file system"), "read-only file system"),
        (OSError(errno.EACCES, "Permission denied"), "permission denied"),
        # HDF5 puts the C errno in its message
        (
            OSError("Can't write data (file write failed: errno = 28, error message = 'No space left on device')"),
            "no space left on device",
        ),
    ],
)
def test_disk_errors_become_one_line_and_leave_no_temporary_file(data, err, reason):
    with pytest.raises(WriteError, match=rf"^{reason} writing .*data\.h5$"):
        with atomic_write(data) as tmp:
            tmp.write_bytes(b"half")
            raise err
    assert data.read_bytes() == b"the user's data"
    assert leftovers(data.parent) == ["data.h5"]


def test_other_errors_pass_unchanged_and_still_clean_up(data):
    with pytest.raises(OSError) as info:
        with write_errors(data):
            raise OSError(errno.EIO, "I/O error")
    assert info.type is OSError
    with pytest.raises(RuntimeError):
        with atomic_write(data) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert data.read_bytes() == b"the user's data" and leftovers(data.parent) == ["data.h5"]


def test_a_full_disk_under_hdf5_is_one_line_not_a_crash(full_disk):
    old = full_disk / "old.h5"
    old.write_bytes(b"the user's data")
    code = (
        "import numpy as np\nfrom molmovie._guards import atomic_hdf5, WriteError\n"
        "try:\n"
        f"    with atomic_hdf5({str(old)!r}) as f:\n"
        "        f.create_dataset('x', data=np.random.default_rng(0).random(200_000), compression='gzip')\n"
        "except WriteError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=60
    )
    assert done.returncode == 0, done.stderr  # HDF5 writing to the full disk itself dies with SIGSEGV (-11)
    assert done.stdout.strip() == f"no space left on device writing {old}"
    assert done.stderr == ""
    assert old.read_bytes() == b"the user's data"
    assert leftovers(full_disk) == ["old.h5"]


def test_atomic_hdf5_writes_a_file_h5py_reads(tmp_path):
    import h5py

    with atomic_hdf5(tmp_path / "x.h5") as f:
        f.create_dataset("a", data=np.arange(5.0)).attrs["units"] = "fs"
    with h5py.File(tmp_path / "x.h5", "r") as f:
        assert f["a"][()].tolist() == [0, 1, 2, 3, 4] and f["a"].attrs["units"] == "fs"
    assert leftovers(tmp_path) == ["x.h5"]


# --------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_during_a_write_keeps_the_old_file_and_is_raised_after_it(data, ctrl_c_acts):
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(data) as tmp:
            tmp.write_bytes(b"new, complete")
            os.kill(os.getpid(), signal.SIGINT)
            finished.append(True)  # the write goes on to its end: nothing half-done inside a C library
    assert finished == [True]
    assert data.read_bytes() == b"the user's data"
    assert leftovers(data.parent) == ["data.h5"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_stops_at_once(data, ctrl_c_acts):
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(data):
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            reached.append(True)
    assert reached == []
    assert data.read_bytes() == b"the user's data" and leftovers(data.parent) == ["data.h5"]


def test_a_ctrl_c_the_process_ignores_is_neither_held_nor_raised(data):
    """A background job (``molmovie ... &`` in a script) ignores SIGINT: the write goes on and replaces the file."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with atomic_write(data) as tmp:
            tmp.write_bytes(b"new, complete")
            os.kill(os.getpid(), signal.SIGINT)
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # not replaced by a handler that would raise
    finally:
        signal.signal(signal.SIGINT, previous)
    assert data.read_bytes() == b"new, complete" and leftovers(data.parent) == ["data.h5"]


def test_the_ctrl_c_tests_hold_when_the_suite_runs_as_a_background_job(tmp_path):
    """The suite started with ``nohup pytest ... &`` (no job control) inherits SIGINT ignored, here also blocked.

    The two Ctrl-C tests above failed so ("DID NOT RAISE KeyboardInterrupt") in a full run started in
    the background, and passed run alone from a terminal: they sent a SIGINT the process ignored.
    """

    def as_a_background_job():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

    here = Path(__file__).resolve()
    tests = [
        f"{here}::{name}"
        for name in (
            "test_ctrl_c_during_a_write_keeps_the_old_file_and_is_raised_after_it",
            "test_a_second_ctrl_c_stops_at_once",
            "test_a_ctrl_c_the_process_ignores_is_neither_held_nor_raised",
        )
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:xdist"]
        + ["--basetemp", str(tmp_path / "base"), "--rootdir", str(here.parents[1]), *tests],
        cwd=here.parents[1],
        capture_output=True,
        text=True,
        preexec_fn=as_a_background_job,
        env={**env, "PYTHONPATH": SRC},
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "3 passed" in done.stdout


def test_holding_ctrl_c_is_a_no_op_outside_the_main_thread():
    seen = []

    def work():
        with deferred_interrupt() as interrupted:
            seen.append(bool(interrupted))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == [False]


# --------------------------------------------------------------------------- folders


def test_an_output_folder_is_replaced_whole_or_not_at_all(tmp_path):
    out = tmp_path / "report"
    with atomic_folder(out) as tmp:
        (tmp / "a.txt").write_text("one")
    assert leftovers(out) == ["a.txt"]
    with pytest.raises(WriteError, match="no space left on device"):
        with atomic_folder(out) as tmp:
            (tmp / "b.txt").write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(out) as tmp:
            (tmp / "b.txt").write_text("half")
            raise KeyboardInterrupt
    assert leftovers(out) == ["a.txt"] and leftovers(tmp_path) == ["report"]
    with atomic_folder(out) as tmp:
        (tmp / "b.txt").write_text("two")
    assert leftovers(out) == ["b.txt"] and leftovers(tmp_path) == ["report"]
