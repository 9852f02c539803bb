"""One progress shape, ``progress(done, info)`` with ``info["total"]``, from every long-running function,
and the CLI's per-stage bars that consume it."""

from __future__ import annotations

import contextlib

import numpy as np

from molmovie.cli._progress import StageProgress
from molmovie.inversion import get_method, nearest_frames
from molmovie.scattering import simulate_signals
from molmovie.trajectories import read_ensemble

from _fixtures import CS2_SYMBOLS, cs2_positions, write_xyz
from test_inversion import make_dataset


class Calls(list):
    def __call__(self, done, info):
        self.append((done, dict(info)))

    def check(self, total, unit, *, complete=True):
        """Counts rise to ``total`` (unless ended early), every call says the total and unit."""
        done = [d for d, _ in self]
        assert done == sorted(done) and done[0] >= 1 and all(d <= total for d in done)
        assert all(info["total"] == total and info["unit"] == unit for _, info in self)
        if complete:
            assert done[-1] == total


def test_reading_scattering_searching_and_fitting_all_report_done_and_info(tmp_path):
    files = [write_xyz(tmp_path / f"run{k}.xyz", CS2_SYMBOLS, cs2_positions(6, seed=k)) for k in range(3)]
    calls = Calls()
    read_ensemble(files, format="xyz", dt=0.5, progress=calls)
    calls.check(3, "trajectories")
    assert [d for d, _ in calls] == [1, 2, 3]

    pos = np.stack([cs2_positions(5, seed=k) for k in range(4)])
    calls = Calls()
    simulate_signals(CS2_SYMBOLS, pos, np.full(4, 5), np.arange(5) * 0.5, np.linspace(0.5, 4.0, 6), progress=calls)
    calls.check(4, "trajectories")

    rng = np.random.default_rng(0)
    calls = Calls()
    nearest_frames(rng.normal(size=(50, 4)), rng.normal(size=(30, 4)), memory_mb=30 * 4 * 10 / 2**20, progress=calls)
    calls.check(50, "frames")
    assert len(calls) == 5  # blocks of 10 query frames

    ds = make_dataset(M=8, T=6, Q=8)
    for name, settings, total, unit in (
        ("nearest", {}, 1, "steps"),
        ("vrnn", dict(hidden=4, features=3, epochs=3, physics=0.0, device="cpu"), 3, "epochs"),
    ):
        calls = Calls()
        get_method(name, **settings).fit(ds, progress=calls)
        calls.check(total, unit)


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, description, total):
        @contextlib.contextmanager
        def bar():
            self.events.append(("open", description, total))
            yield lambda completed=None, **kw: self.events.append(("update", description, completed))
            self.events.append(("close", description))

        return bar()


def test_stage_progress_opens_one_bar_per_stage_and_closes_each():
    bars = Recorder()
    with StageProgress(bars) as progress:
        progress(1, {"stage": "a", "total": 2})
        progress(2, {"stage": "a", "total": 2})  # complete: closed at once
        progress(1, {"stage": "b", "total": 5})  # ended early by the next stage
        progress(1, {"stage": "c", "total": 5})  # ended early, closed on leaving the block
    assert bars.events == [
        ("open", "a", 2),
        ("update", "a", 1),
        ("update", "a", 2),
        ("close", "a"),
        ("open", "b", 5),
        ("update", "b", 1),
        ("close", "b"),
        ("open", "c", 5),
        ("update", "c", 1),
        ("close", "c"),
    ]
