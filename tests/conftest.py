"""Shared test set-up: NumPy floating-point errors raise, matplotlib draws off-screen,
and the real SHARC sample (../shared/data/sharc-cs2) is offered when present."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# Before NumPy loads: its BLAS reads the thread count once. Two test workers share
# two cores, and a multi-threaded BLAS on a busy machine made the fit tests 3-10x slower.
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED_SHARC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sharc-cs2"


@pytest.fixture(autouse=True)
def _numpy_errors_raise():
    with np.errstate(all="raise"):
        yield


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
