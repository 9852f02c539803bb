"""Progress bars for stages that run side by side (``reproduce --jobs N``): one bar per running stage, in one display."""

from __future__ import annotations

import sys
from typing import Any


class ParallelStageProgress:
    """``progress(done, info)`` for stages that run at once (``info["stage"]`` names each): a bar per stage.

    The reports of several stages interleave; each stage gets its own bar at
    its first report, all in one rich display on stderr (rich allows one live
    display at a time, so :class:`~molmovie.cli._progress.StageProgress`'s one
    display per bar cannot show two at once). A stage's bar goes when its last
    step is done (a stage that stops early reports ``total`` equal to its
    ``done`` last), and every bar goes when this object is closed (use it in a
    ``with`` block). Nothing is drawn when stderr is not a terminal.

    Parameters
    ----------
    display : rich.progress.Progress, optional
        The display (tests give their own); default: one on stderr like the
        CLI's other bars, vanishing when closed.
    """

    def __init__(self, display: Any = None) -> None:  # a rich.progress.Progress, or a stand-in with its methods
        self.display = display
        self._tasks: dict[Any, Any] = {}  # stage -> rich task id

    def _open(self):
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
                disable=not sys.stderr.isatty(),
            )
        self.display.start()
        return self.display

    def __call__(self, done: int, info: dict) -> None:
        stage, total = info.get("stage"), info.get("total")
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
        for stage in list(self._tasks):
            self.display.remove_task(self._tasks.pop(stage))
        if self.display is not None:
            self.display.stop()

    def __enter__(self) -> ParallelStageProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
