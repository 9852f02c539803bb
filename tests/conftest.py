"""Shared test set-up: NumPy floating-point errors raise, matplotlib draws off-screen,
process-global state is checked after every test, and the real SHARC sample
(../shared/data/sharc-cs2) is offered when present."""

from __future__ import annotations

import getpass
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

# Before NumPy loads: its BLAS reads the thread count once. Two test workers share
# two cores, and a multi-threaded BLAS on a busy machine made the fit tests 3-10x slower.
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# torch's compiler sets this on first use (to its default, below) and leaves it: set here, before any test,
# it is not a change one test makes to the environment of the next
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"torchinductor_{getpass.getuser()}"))

import numpy as np
import pytest
import rdkit.RDConfig  # noqa: F401 -- sets RDBASE in the environment on import: done once here, not inside one test
import threadpoolctl  # noqa: F401 -- sets KMP_DUPLICATE_LIB_OK on import: done once here, not inside one test
from hypothesis import settings

# The README's test command draws the same hypothesis examples on every run and in every order (the property
# tests' examples are then fixed by their source, not by pytest-randomly's seed), so a failure there is a
# change of the code, not of the draw. New examples: `MOLMOVIE_HYPOTHESIS_PROFILE=explore python -m pytest`
# (a failure prints its example: pin it with @example beside the test).
settings.register_profile("suite", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("MOLMOVIE_HYPOTHESIS_PROFILE", "suite"))

SHARED_SHARC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sharc-cs2"


@pytest.fixture(autouse=True)
def _numpy_errors_raise():
    with np.errstate(all="raise"):
        yield


#: Signals whose handlers a test could change (SIGKILL and SIGSTOP cannot be caught).
_SIGNALS = [s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)]


def _global_state() -> dict:
    """What one test must leave as it found it: signal handlers and the signals blocked, the environment, the working
    directory, NumPy's error state, torch's threads, default dtype and random state (once torch
    is imported), and whether molmovie holds Ctrl-C. (Python's and NumPy's global random states
    are reseeded before every test by pytest-randomly, from the seed it prints.)"""
    state = {
        "signal handlers": {getattr(s, "name", s): signal.getsignal(s) for s in _SIGNALS},
        # a signal blocked in the main thread never reaches its handler (a Ctrl-C is then lost)
        "signals blocked": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "environment": {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},  # pytest's own, per phase
        "working directory": os.getcwd(),
        "NumPy error state": np.geterr(),
    }
    guards = sys.modules.get("molmovie._guards")
    if guards is not None:
        state["held Ctrl-C"] = bool(getattr(guards._holding, "active", False))
    torch = sys.modules.get("torch")
    if torch is not None:
        state["torch threads"] = torch.get_num_threads()
        state["torch default dtype"] = torch.get_default_dtype()
        state["torch global random state"] = torch.random.get_rng_state().numpy().tobytes()
    return state


@pytest.fixture(autouse=True)
def _process_state_restored(request):
    """Fail the test that leaves process-global state changed (and restore what can be restored),
    so that an order dependence shows up at its cause, not in a later test."""
    before = _global_state()
    yield
    after = _global_state()
    changed = [k for k in before if k in after and before[k] != after[k]]
    if "torch threads" in after and "torch threads" not in before:  # torch imported by this test: its state is new, not changed
        changed = [k for k in changed if not k.startswith("torch")]
    if not changed:
        return
    details = []
    for k in changed:
        if isinstance(before[k], dict):
            diff = sorted(str(key) for key in set(before[k]) | set(after[k]) if before[k].get(key) != after[k].get(key))
            details.append(f"{k} ({', '.join(diff)})")
        else:
            details.append(k)
    for s, h in zip(_SIGNALS, before["signal handlers"].values()):
        if h is not None and signal.getsignal(s) != h:
            signal.signal(s, h)
    for k in set(os.environ) - set(before["environment"]) - {"PYTEST_CURRENT_TEST"}:
        del os.environ[k]
    os.environ.update(before["environment"])
    os.chdir(before["working directory"])
    signal.pthread_sigmask(signal.SIG_SETMASK, before["signals blocked"])
    torch = sys.modules.get("torch")
    if torch is not None and "torch threads" in before:
        torch.set_num_threads(before["torch threads"])
        torch.set_default_dtype(before["torch default dtype"])
    pytest.fail(f"{request.node.nodeid} changed process-global state and did not restore it: {'; '.join(details)}", pytrace=False)


@pytest.fixture
def ctrl_c_acts():
    """SIGINT as a process started from a terminal has it: Python's handler (KeyboardInterrupt), not blocked.

    A test suite started as a background job without job control (``nohup pytest ... &``, a script's
    ``&``, some CI runners and agents) inherits SIGINT ignored, and Python keeps it ignored
    (``signal.getsignal`` gives ``SIG_IGN``): molmovie then rightly does nothing with a Ctrl-C, and
    a test's ``os.kill(pid, SIGINT)`` is discarded ("DID NOT RAISE KeyboardInterrupt"). Tests of
    what a Ctrl-C does ask for this; the disposition and the signal mask are given back after.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if previous is not None:  # None: a handler not set from Python, which cannot be put back
            signal.signal(signal.SIGINT, previous)


@pytest.fixture
def sharc_cs2() -> Path:
    """The two real SHARC CS2 runs; the test is skipped when ../shared is absent."""
    if not (SHARED_SHARC / "TRAJ_00001" / "output.xyz").is_file():
        pytest.skip("../shared/data/sharc-cs2 is not present")
    return SHARED_SHARC


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs (needs root to mount); the test is skipped where it cannot be mounted."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (not root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


@pytest.fixture
def nearly_full(full_disk):
    """:func:`full_disk` filled to its last 4 KiB."""
    st = os.statvfs(full_disk)
    (full_disk / "filler").write_bytes(b"x" * max(0, st.f_bavail * st.f_frsize - 4096))
    return full_disk


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say the random order's seed even with -q (pytest-randomly prints it only in the header -q hides)."""
    seed = getattr(config.option, "randomly_seed", None)
    if seed is not None and getattr(config.option, "randomly_reorganize", True):
        terminalreporter.write_line(f"tests in random order, seed {seed}: replay it with --randomly-seed={seed}")
