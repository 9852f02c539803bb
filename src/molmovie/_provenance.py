"""What command wrote a file: its command line, molmovie's version and checksums of its inputs.

The command line sets the record of the running command (:func:`recording`);
every writer of a molmovie file passes its provenance through
:func:`with_command`, which appends the record to the provenance's
``"commands"`` list (a dataset keeps the list of every command that wrote it:
``import`` then ``scatter``). Library calls outside the command line record
nothing.

A record::

    {"command_line": "molmovie fit meas.h5 -o fit.h5 --basis basis.h5",
     "molmovie_version": "0.2.0", "started": "2026-12-07T06:02:11Z",
     "inputs": {"meas.h5": "sha256:9f2c...", "basis.h5": "sha256:41aa..."}}

A folder's checksum is the SHA-256 of the sorted list of its files' paths
(relative to it) and checksums.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

__all__ = ["recording", "current", "with_command", "add_inputs", "checksum"]

_COMMAND: ContextVar[dict[str, Any] | None] = ContextVar("molmovie_command", default=None)

_CHUNK = 1 << 20


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum(path: str | Path) -> str | None:
    """``"sha256:HEX"`` of a file, or of a folder's files; None when it cannot be read (the command reports that itself)."""
    path = Path(path)
    try:
        if path.is_dir():
            digest = hashlib.sha256()
            for p in sorted(q for q in path.rglob("*") if q.is_file()):
                digest.update(f"{p.relative_to(path).as_posix()}\0{_file_sha256(p)}\n".encode())
            return "sha256:" + digest.hexdigest()
        if path.is_file():
            return "sha256:" + _file_sha256(path)
    except OSError:
        return None
    return None


@contextmanager
def recording(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Make ``record`` the running command's record while the block runs (files written in it carry it)."""
    token = _COMMAND.set(record)
    try:
        yield record
    finally:
        _COMMAND.reset(token)


def current() -> dict[str, Any] | None:
    """The running command's record, or None outside the command line."""
    return _COMMAND.get()


def add_inputs(paths: Any) -> None:
    """Add the checksums of ``paths`` (files or folders; None skipped) to the running command's inputs."""
    record = _COMMAND.get()
    if record is None:
        return
    inputs = record.setdefault("inputs", {})
    for p in paths:
        if p is None or str(p) in inputs:
            continue
        value = checksum(p)
        if value is not None:
            inputs[str(p)] = value


def with_command(provenance: dict[str, Any]) -> dict[str, Any]:
    """``provenance`` with the running command's record appended to its ``"commands"`` (a copy; unchanged outside the CLI)."""
    record = _COMMAND.get()
    if record is None:
        return provenance
    commands = provenance.get("commands")
    commands = list(commands) if isinstance(commands, list) else []
    if not commands or commands[-1] != record:
        commands.append(dict(record))
    return {**provenance, "commands": commands}
