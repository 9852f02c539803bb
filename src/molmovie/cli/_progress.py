"""Progress bars for the CLI (rich), shared by every command."""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator


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

        def update(completed: int | None = None, advance: int | None = None, status: str | None = None, total: int | None = None) -> None:
            kw = {}
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
