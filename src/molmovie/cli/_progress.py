"""Progress bars for the CLI (rich), shared by every command."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def progress_bar(description: str, total: int | None, *, unit: str = "") -> Iterator[Callable[..., None]]:
    """A rich progress bar on stderr; yields ``update(completed, **fields)``.

    The bar shows done/total, elapsed and remaining time. It is drawn only on
    a terminal and vanishes when the job ends (each command prints its own
    summary line), so logs and error messages stay one clean line.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(stderr=True)
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
    with Progress(*columns, console=console, transient=True, disable=not sys.stderr.isatty()) as bar:
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
    """A progress bar fed by molmovie's one progress shape: yields ``progress(done, info)``.

    The bar's total is ``info["total"]``; ``status(info)``, when given, is the
    text shown beside the bar.
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

    def __init__(self, factory=progress_bar):
        self.factory = factory
        self._stage = self._cm = self._update = None

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

    def __exit__(self, *exc) -> None:
        self.close()
