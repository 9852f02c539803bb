"""Progress and logs for every command: one helper, drawn by rich on a terminal, one line at a time elsewhere.

Every long-running function reports ``progress(done, info)`` with
``info["total"]`` (STYLE.md 15); the CLI turns the reports into

- a rich progress bar on stderr when stderr is a terminal (gone when the job
  ends: each command prints its own summary line);
- otherwise (a batch job, a pipe, a log file) one line every
  :data:`INTERVAL` seconds, ``molmovie: fitting (ensemble): 12/40 trajectories,
  1m05s, about 2m20s left``, through Python logging at level :data:`PROGRESS`;
  a job shorter than that prints none.

Logging (:func:`configure`, from the options ``-v``, ``-q`` and ``--log FILE``
of ``molmovie`` itself): the ``molmovie`` logger writes to stderr at
:data:`PROGRESS` and above by default, ``-q`` keeps warnings and errors only
(and draws no bars), ``-v`` adds information (the command line, each
finished stage), ``-vv`` debugging. ``--log FILE`` appends everything, with
times, to FILE: the command line and version, progress lines, warnings and
the error that stopped the command.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "LOGGER",
    "PROGRESS",
    "INTERVAL",
    "configure",
    "teardown",
    "record",
    "progress_bar",
    "progress_callback",
    "StageProgress",
    "ParallelStageProgress",
]

#: The logger of the command line.
LOGGER = logging.getLogger("molmovie")
#: Level of progress lines: shown by default, hidden by ``-q``.
PROGRESS = 25
logging.addLevelName(PROGRESS, "PROGRESS")

#: Seconds between two progress lines when stderr is not a terminal (``MOLMOVIE_PROGRESS_INTERVAL`` sets it).
INTERVAL = 30.0

_state: dict[str, Any] = {"quiet": False, "handlers": []}


class _NotFileOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "file_only", False)


def configure(verbose: int = 0, quiet: bool = False, log: Path | None = None) -> None:
    """Send the ``molmovie`` logger to stderr (at the level ``-v``/``-q`` choose) and to ``log`` (everything).

    Raises
    ------
    OSError
        ``log`` cannot be opened for appending.
    """
    teardown()
    level = logging.WARNING if quiet else PROGRESS if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(level)
    stderr.setFormatter(logging.Formatter("molmovie: %(message)s"))
    stderr.addFilter(_NotFileOnly())
    handlers: list[logging.Handler] = [stderr]
    if log is not None:
        to_file = logging.FileHandler(log, mode="a", encoding="utf-8")
        to_file.setLevel(logging.DEBUG)
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handlers.append(to_file)
    for h in handlers:
        LOGGER.addHandler(h)
    LOGGER.setLevel(logging.DEBUG if log is not None else level)
    LOGGER.propagate = False
    _state.update(quiet=quiet, handlers=handlers)


def teardown() -> None:
    """Remove (and close) the handlers :func:`configure` added: each command run in one process starts afresh."""
    for h in _state["handlers"]:
        LOGGER.removeHandler(h)
        h.close()
    _state.update(quiet=False, handlers=[])
    LOGGER.setLevel(logging.NOTSET)
    LOGGER.propagate = True  # as before configure: a caller's own logging (or pytest's caplog) sees molmovie again


def record(line: str, level: int = logging.INFO) -> None:
    """Write a line the command already printed (an error, a warning) to the log file only."""
    if len(_state["handlers"]) > 1:  # a --log file
        LOGGER.log(level, line, extra={"file_only": True})


def _on_terminal() -> bool:
    return sys.stderr.isatty() and not _state["quiet"]


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("MOLMOVIE_PROGRESS_INTERVAL", INTERVAL)))
    except ValueError:
        return INTERVAL


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class _Lines:
    """Progress as log lines: one every :func:`_interval` seconds, and one at the end when any was written.

    A line is written at a report that comes at least that long after the
    last line, and by a heartbeat thread when no report comes (a single long
    step, such as one call that predicts every series, still says it runs).
    """

    def __init__(self, description: str, total: int | None, unit: str) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.done, self.status = 0, ""
        self.start = self.last = time.monotonic()
        self.every = _interval()
        self.lines = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        if self.every > 0:
            self._beat = threading.Thread(target=self._heartbeat, name="molmovie-progress", daemon=True)
            self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.every):
            with self._lock:
                now = time.monotonic()
                if now - self.last >= self.every:
                    self.last = now
                    self._say(now)

    def update(
        self, completed: int | None = None, advance: int | None = None, status: str | None = None, total: int | None = None
    ) -> None:
        if total is not None:
            self.total = total
        if status is not None:
            self.status = status
        if completed is not None:
            self.done = completed
        if advance is not None:
            self.done += advance
        with self._lock:
            now = time.monotonic()
            if now - self.last >= self.every and (self.total is None or self.done < self.total):
                self.last = now
                self._say(now)

    def _say(self, now: float, level: int = PROGRESS) -> None:
        elapsed = now - self.start
        of = f"/{self.total}" if self.total else ""
        left = ""
        if self.total and 0 < self.done < self.total:
            left = f", about {_duration(elapsed * (self.total - self.done) / self.done)} left"
        unit = f" {self.unit}" if self.unit else ""
        status = f"; {self.status}" if self.status else ""
        LOGGER.log(level, f"{self.description}: {self.done}{of}{unit}, {_duration(elapsed)}{left}{status}")
        self.lines += 1

    def close(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        # the end, at the level of the lines before it (or information, -v, when the job was short)
        self._say(time.monotonic(), PROGRESS if self.lines else logging.INFO)


@contextlib.contextmanager
def progress_bar(description: str, total: int | None, *, unit: str = "") -> Iterator[Callable[..., None]]:
    """Progress of one job on stderr; yields ``update(completed=, advance=, status=, total=)``.

    A rich bar (done/total, elapsed and remaining time) on a terminal, gone
    when the job ends; elsewhere a line every :data:`INTERVAL` seconds.
    """
    if not _on_terminal():
        lines = _Lines(description, total, unit)
        try:
            yield lines.update
        finally:
            lines.close()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total, status="")

        def update(
            completed: int | None = None, advance: int | None = None, status: str | None = None, total: int | None = None
        ) -> None:
            kw: dict[str, Any] = {}
            if total is not None:
                kw["total"] = total
            if status is not None:
                kw["status"] = status
            if completed is not None:
                kw["completed"] = completed
            if advance is not None:
                kw["advance"] = advance
            bar.update(task, **kw)

        yield update


@contextlib.contextmanager
def progress_callback(
    description: str, *, unit: str = "", status: Callable[[dict], str] | None = None
) -> Iterator[Callable[[int, dict], None]]:
    """:func:`progress_bar` fed by molmovie's one progress shape: yields ``progress(done, info)``.

    The total is ``info["total"]``, the unit ``info["unit"]`` unless given;
    ``status(info)``, when given, is the text shown beside the count.
    """
    with progress_bar(description, None, unit=unit) as update:

        def progress(done: int, info: dict) -> None:
            update(completed=done, total=info.get("total"), status=None if status is None else status(info))

        yield progress


class StageProgress:
    """``progress(done, info)`` for a job of many stages (``info["stage"]`` names each): one bar per stage.

    A stage's bar opens at its first report, with ``factory(info["stage"], info["total"])``
    (a context manager yielding ``update(completed=...)``, like :func:`progress_bar`),
    and closes when its last step is done, when the next stage begins, or when
    this object is closed (use it in a ``with`` block): early stopping leaves no bar open.
    """

    def __init__(self, factory: Callable[..., Any] = progress_bar) -> None:
        self.factory = factory
        self._stage: Any = None
        self._cm: Any = None
        self._update: Any = None

    def __call__(self, done: int, info: dict) -> None:
        stage = info.get("stage")
        if stage != self._stage:
            self.close()
            self._stage = stage
            self._cm = self.factory(stage, info.get("total"))
            self._update = self._cm.__enter__()
        self._update(completed=done)
        total = info.get("total")
        if total is not None and done >= total:
            self.close()

    def close(self) -> None:
        """Close the open bar, if any."""
        if self._cm is not None:
            cm, self._cm, self._stage = self._cm, None, None
            cm.__exit__(None, None, None)

    def __enter__(self) -> StageProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ParallelStageProgress:
    """``progress(done, info)`` for stages that run at once (``reproduce --jobs N``): a bar per running stage.

    The reports of several stages interleave; each stage gets its own bar at
    its first report, all in one rich display on stderr (rich allows one live
    display at a time, so :class:`StageProgress`'s one display per bar cannot
    show two at once). A stage's bar goes when its last step is done (a stage
    that stops early reports ``total`` equal to its ``done`` last), and every
    bar goes when this object is closed (use it in a ``with`` block). When
    stderr is not a terminal, each stage writes lines as :func:`progress_bar` does.

    Parameters
    ----------
    display : rich.progress.Progress, optional
        The display (tests give their own); default: one on stderr like the
        CLI's other bars, vanishing when closed.
    """

    def __init__(self, display: Any = None) -> None:  # a rich.progress.Progress, or a stand-in with its methods
        self.display = display
        self._tasks: dict[Any, Any] = {}  # stage -> rich task id, or its _Lines off a terminal
        self._lines = display is None and not _on_terminal()

    def _open(self) -> Any:
        if self.display is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.display = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
        self.display.start()
        return self.display

    def __call__(self, done: int, info: dict) -> None:
        stage, total = info.get("stage"), info.get("total")
        if self._lines:
            lines = self._tasks.get(stage)
            if lines is None:  # made once per stage: each _Lines starts a heartbeat thread of its own
                lines = self._tasks[stage] = _Lines(str(stage), total, "")
            lines.update(completed=done, total=total)
            if total is not None and done >= total:
                self._tasks.pop(stage).close()
            return
        if stage not in self._tasks:
            display = self._open() if not self._tasks else self.display
            self._tasks[stage] = display.add_task(str(stage), total=total)
        task = self._tasks[stage]
        self.display.update(task, completed=done, total=total)
        if total is not None and done >= total:
            self.display.remove_task(self._tasks.pop(stage))
            if not self._tasks:
                self.display.stop()

    @property
    def open_stages(self) -> list[str]:
        """The stages whose bars are shown now."""
        return list(self._tasks)

    def close(self) -> None:
        """Remove every bar and stop the display."""
        if self._lines:
            for stage in list(self._tasks):
                self._tasks.pop(stage).close()
            return
        for stage in list(self._tasks):
            self.display.remove_task(self._tasks.pop(stage))
        if self.display is not None:
            self.display.stop()

    def __enter__(self) -> ParallelStageProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
