"""One way for every command to claim its output: checked against the inputs, locked, reported on Ctrl-C.

:func:`writing` is entered by each command that writes, before it reads or
computes anything:

- every output file (the result, each figure) is planned at once against all
  of the command's inputs and the files their HDF5 external links and virtual
  datasets reach (:func:`molmovie._plan.plan_outputs`: the same file by any
  name, two outputs that are one file, a parent that is a file, a read-only
  file), so an input is never replaced, with or without ``--force``;
- the output's advisory lock (``OUTPUT.lock``) is held until the command ends,
  so a second run writing the same file is refused with one line;
- what the output looked like is recorded, so that Ctrl-C can say what was
  kept (:func:`interrupt_note`): the old file, no file, or the new complete one
  (writes are atomic, so there is never a partial one).

:func:`output_folder` does for an output folder (``evaluate``) what
:func:`molmovie._guards.atomic_write` does for a file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from .._guards import WriteError, check_output_path, deferred_interrupt, output_lock, write_errors
from .._plan import hdf5_reached, plan_outputs
from .._provenance import add_inputs
from .._typing import PathLike

__all__ = ["writing", "output_folder", "interrupt_note"]

#: The outputs the running command claimed, with what they were before it (path, state or None),
#: or with the sentence Ctrl-C should print (path, str).
_claimed: list[tuple[Path, tuple | str | None]] = []
#: What Ctrl-C left of the outputs the command had claimed, recorded as the interrupt passed out of them.
_left: list[str] = []


def _state(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if Path(path).is_dir():
        return (
            "dir",
            st.st_ino,
            tuple(sorted((p.name, p.stat().st_mtime_ns) for p in Path(path).iterdir() if not p.name.startswith("."))),
        )
    return ("file", st.st_ino, st.st_size, st.st_mtime_ns)


@contextmanager
def writing(
    output: PathLike,
    inputs: Iterable[PathLike | None] = (),
    *,
    force: bool,
    folder: bool = False,
    kept: str | None = None,
    lock: bool = True,
    also: Iterable[PathLike] = (),
    folders: Iterable[PathLike] = (),
) -> Iterator[Path]:
    """Claim ``output`` for the command: check it against ``inputs``, lock it, remember its state.

    Parameters
    ----------
    output : path-like
        The file (or folder, ``folder=True``) the command writes.
    inputs : iterable of path-like
        Every file or folder the command reads (None entries skipped).
    force : bool
        Whether an existing output may be replaced (``--force``).
    folder : bool
        The output is a folder.
    kept : str, optional
        What Ctrl-C leaves, when the command knows better than "unchanged" or
        "the new, complete result" (a study keeps its finished stages).
    lock : bool, default True
        Take the output's lock here; False for a command whose library call
        takes it itself (``generate``): a second ``flock`` on the same lock
        file, even from this process, would be refused.
    also : iterable of path-like
        The command's other output files (figures, logs), planned with ``output``.
    folders : iterable of path-like
        Folders those go into, created when missing (``--figures``).

    Yields
    ------
    Path
        The output.

    Raises
    ------
    InputError
        From :func:`~molmovie._guards.check_output_path` and
        :func:`~molmovie._guards.output_lock` (another run holds the lock).
    """
    sources = [p for p in inputs if p is not None]
    if folder:
        out = check_output_path(output, sources, force=force, folder=True)
        check_output_path(output, [r for s in sources for r in hdf5_reached(s)], force=True, folder=True)
    else:  # every output file decided at once, before any work
        plan_outputs([output, *also], sources, force=force, folders=folders)
        out = Path(output)
    with output_lock(out) if lock else nullcontext():
        add_inputs(sources)  # their checksums go into the provenance of what the command writes
        _claimed.append((out, kept if kept is not None else _state(out)))
        try:
            yield out
        except KeyboardInterrupt:
            _left.append(_describe(*_claimed[-1]))
            raise
        finally:
            _claimed.pop()


def _describe(path: Path, before: object) -> str:
    if isinstance(before, str):
        return before
    if _state(path) == before:
        return f"{path} is unchanged" if before is not None else f"{path} was not written"
    return f"{path} holds the new, complete result"


def interrupt_note() -> str:
    """What Ctrl-C left of the outputs the command claimed, e.g. "d.h5 is unchanged" (then forgotten)."""
    notes = _left + [_describe(path, before) for path, before in _claimed]
    _left.clear()
    return "; ".join(notes)


@contextmanager
def output_folder(path: PathLike) -> Iterator[Path]:
    """A temporary folder whose files land in ``path`` when the block ends without error.

    A new ``path`` is the temporary folder renamed (it appears whole or not at
    all); into an existing one each file is moved with an atomic rename,
    other files in it are left alone. On any exception (a full disk, Ctrl-C)
    the temporary folder is removed and ``path`` is as it was.
    """
    path = Path(path)
    with write_errors(path):
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        try:
            yield tmp
        except WriteError as exc:  # name the output, not the temporary folder
            raise WriteError(str(exc).replace(str(tmp), str(path))) from None
        with write_errors(path), deferred_interrupt() as interrupted:
            if interrupted:
                raise KeyboardInterrupt
            if not path.exists():
                os.chmod(tmp, 0o777 & ~_umask())
                os.replace(tmp, path)
            else:
                for item in sorted(tmp.iterdir()):
                    os.replace(item, path / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
