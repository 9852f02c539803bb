"""Every output of a command decided before any work: :func:`plan_outputs`, and what an HDF5 input reaches.

A command names all that it will write (its result, each figure, a log) and
all that it reads, then calls :func:`plan_outputs` once, before it reads or
computes anything. For every output the plan

- resolves the path through symbolic links (the write goes to the file the link
  names, atomically, so the link stays);
- refuses it when it is the same file as any input -- compared by device and
  inode when both exist (symbolic links, hard links, ``..``), by resolved path
  otherwise -- where the inputs include every file an HDF5 input reaches
  through external links and virtual datasets (:func:`hdf5_reached`);
- refuses two outputs that are one file, an output that is a folder, a folder
  output that is a file;
- refuses an existing file unless ``force``, and a read-only file (or folder)
  always;
- checks that its folder exists (or is planned) and is writable.

The work comes after; each file is then written atomically
(:func:`molmovie._guards.atomic_write`).

This module is library code: messages name parameters (``force=True``); the
CLI turns them into options.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import InputError
from ._typing import PathLike

if TYPE_CHECKING:
    import h5py

__all__ = ["OutputPlan", "plan_outputs", "hdf5_reached", "scan_hdf5", "HDF5Links", "HDF5_SIGNATURE"]

#: The first bytes of an HDF5 file (at offset 0; a user block moves it to 512, 1024, ...).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Most links and objects looked at in one HDF5 input (a forged file cannot make the walk endless).
_MAX_NODES = 200_000
#: How deep external links are followed from input to input.
_MAX_DEPTH = 8


@dataclass(frozen=True)
class OutputPlan:
    """The outputs a command may write: ``files`` (as named -> where the bytes go) and ``folders`` to create."""

    files: dict[Path, Path]
    folders: tuple[Path, ...]

    def target(self, path: PathLike) -> Path:
        """Where the planned output ``path`` is written (its symbolic links resolved)."""
        return self.files[Path(path)]

    def make_folders(self) -> None:
        """Create the planned folders (after the work, before the files are written)."""
        for folder in self.folders:
            folder.mkdir(parents=True, exist_ok=True)


def _is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            for offset in (0, 512, 1024, 2048):
                fh.seek(offset)
                if fh.read(8) == HDF5_SIGNATURE:
                    return True
    except OSError:
        return False
    return False


def hdf5_reached(path: PathLike) -> list[Path]:
    """The files an HDF5 file reaches through its external links and virtual datasets (not itself).

    Followed from file to file (up to a depth of 8); a name is looked up as
    HDF5 does, beside the file that holds the link and from the working
    folder. Anything that is not a readable HDF5 file reaches nothing.
    """
    import h5py

    seen: set[Path] = set()
    found: list[Path] = []
    todo = [(Path(path), 0)]
    while todo:
        current, depth = todo.pop()
        try:
            key = current.resolve()
        except (OSError, RuntimeError):
            continue
        if key in seen or depth > _MAX_DEPTH or not current.is_file() or not _is_hdf5(current):
            continue
        seen.add(key)
        try:
            with h5py.File(current, "r") as f:
                links = scan_hdf5(f)
        except Exception:  # noqa: BLE001  # not readable as HDF5: its reader refuses it with one line
            continue
        names = [target for _, target in links.external] + [target for _, target in links.virtual]
        for name in names:
            if name in (".", ""):
                continue
            for candidate in (current.parent / name, Path(name)):
                if candidate.exists() and candidate.resolve() not in {p.resolve() for p in found}:
                    found.append(candidate)
                    todo.append((candidate, depth + 1))
    return found


@dataclass
class HDF5Links:
    """What :func:`scan_hdf5` found: (object, file) of external links and virtual sources; soft links that lead nowhere."""

    external: list[tuple[str, str]] = field(default_factory=list)
    virtual: list[tuple[str, str]] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    truncated: bool = False


def scan_hdf5(f: h5py.File) -> HDF5Links:
    """Every link of an open HDF5 file, without following one: external, virtual, and soft links that do not resolve.

    A soft link that leads to itself (or round a loop) or to nothing is
    ``broken``; at most 200,000 links are looked at (``truncated`` then).
    """
    import h5py

    found = HDF5Links()
    count = 0

    def visit(name: str, link) -> bool | None:
        nonlocal count
        count += 1
        if count > _MAX_NODES:
            found.truncated = True
            return True
        if isinstance(link, h5py.ExternalLink):
            found.external.append((name, link.filename))
        elif isinstance(link, h5py.SoftLink):
            try:
                ok = f.get(name) is not None
            except Exception:  # noqa: BLE001  # a loop of soft links raises from the HDF5 library
                ok = False
            if not ok:
                found.broken.append(name)
        else:
            try:
                node = f.get(name)
            except Exception:  # noqa: BLE001  # a damaged node: its reader says why
                return None
            if isinstance(node, h5py.Dataset) and node.is_virtual:
                found.virtual.extend((name, s.file_name) for s in node.virtual_sources())
        return None

    f.visititems_links(visit)
    return found


def _identity(path: Path) -> tuple:
    """Device and inode of an existing file, else its resolved path."""
    try:
        st = os.stat(path)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", str(path.resolve()))  # may raise RuntimeError: a loop of links, refused by the caller


def _read_only(path: Path) -> bool:
    mode = path.stat().st_mode
    return not (mode & 0o222) or not os.access(path, os.W_OK)


def plan_outputs(
    files: Iterable[PathLike],
    inputs: Iterable[PathLike | None] = (),
    *,
    force: bool = False,
    folders: Iterable[PathLike] = (),
) -> OutputPlan:
    """Decide every output of a command before any work; refuse anything that would lose a user's data.

    Parameters
    ----------
    files : iterable of path-like
        Every file the command writes (result, each figure, logs).
    inputs : iterable of path-like
        Every file and folder it reads (None skipped). HDF5 inputs bring the
        files their external links and virtual datasets reach.
    force : bool
        Whether existing files may be replaced.
    folders : iterable of path-like
        Folders the outputs go into, created if missing (e.g. a figures folder).

    Returns
    -------
    OutputPlan

    Raises
    ------
    InputError
        One line naming the output and why: it is an input (by any link), two
        outputs are one file, it exists without ``force``, it is read-only,
        a folder where a file goes (or the reverse), or its folder is missing
        or read-only.
    """
    sources = [Path(p) for p in inputs if p is not None]
    reached = [r for s in sources for r in hdf5_reached(s)]
    identities = {_identity(s): s for s in sources}
    for r in reached:
        identities.setdefault(_identity(r), r)
    planned_folders: list[Path] = []
    try:
        for folder in map(Path, folders):
            real = folder.resolve()
            if real.exists() and not real.is_dir():
                raise InputError(f"{folder} is a file, not a folder")
            if _identity(real) in identities:
                raise InputError(f"the output folder {folder} is the input {identities[_identity(real)]}")
            if not real.exists():
                ancestor = real.parent
                while not ancestor.exists() and ancestor != ancestor.parent:
                    ancestor = ancestor.parent
                if not ancestor.is_dir():
                    raise InputError(f"{ancestor} is a file, not a folder, so {folder} cannot be created")
                if _read_only(ancestor) or not os.access(ancestor, os.X_OK):
                    raise InputError(f"cannot create {folder}: its folder {ancestor} is read-only")
            elif _read_only(real) or not os.access(real, os.X_OK):
                raise InputError(f"cannot write into {folder}: it is read-only")
            planned_folders.append(real)
        targets: dict[Path, Path] = {}
        claimed: dict[tuple, Path] = {}
        for output in map(Path, files):
            target = output.resolve()  # through every symbolic link, dangling ones included
            who = _identity(target)
            if who in identities:
                raise InputError(
                    f"the output {output} is the input {identities[who]}; write to another file (an input is never replaced)"
                )
            if who in claimed or ("path", str(target)) in claimed:
                raise InputError(f"the outputs {claimed.get(who, claimed.get(('path', str(target))))} and {output} are one file")
            if target in planned_folders:
                raise InputError(f"the output {output} is also the output folder; give them different names")
            claimed[who] = claimed[("path", str(target))] = output
            if target.is_dir():
                raise InputError(f"{output} is a folder, not a file")
            if target.exists():
                if not force:
                    raise InputError(f"{output} exists; use force=True to replace it")
                if _read_only(target):
                    raise InputError(
                        f"{output} is read-only; molmovie does not replace a protected file (allow writing with chmod u+w)"
                    )
            parent = target.parent
            if parent not in planned_folders:
                if not parent.is_dir():
                    ancestor = parent
                    while not ancestor.exists() and ancestor != ancestor.parent:
                        ancestor = ancestor.parent
                    if ancestor.exists() and not ancestor.is_dir():
                        raise InputError(f"{ancestor} is a file, not a folder, so {output} cannot be written")
                    raise InputError(f"{output.parent}: no such folder for the output")
                if _read_only(parent) or not os.access(parent, os.X_OK):
                    raise InputError(f"cannot write {output}: its folder {parent} is read-only")
            targets[output] = target
    except (OSError, RuntimeError) as exc:  # RuntimeError: a loop of symbolic links (Python < 3.13)
        raise InputError(f"cannot check the outputs ({getattr(exc, 'strerror', None) or exc})") from None
    return OutputPlan(targets, tuple(planned_folders))
