"""Guards at molmovie's edge: where an output may go, how much memory a number may ask for,
one writer per output at a time, and what a full disk or Ctrl-C leaves behind.

Every command that writes goes through these, so the promises hold once, for all of them:

- **Inputs are never overwritten.** :func:`check_output_path` refuses an output
  that is one of the inputs (the same file by name, through a symbolic link,
  ``..`` or a hard link), or a folder that holds an input, with or without
  ``force``; a parent that is a file; a read-only file or folder (the owner's
  protection is respected even by root). A replaced file keeps its mode
  (:func:`replacement_mode`).
- **Memory is bounded by a stated limit.** :func:`check_allocation` is called
  before any allocation that a typed number or a file header decides. The
  limit (:func:`memory_limit`) is half the physical memory (or of the
  container's memory limit, whichever is smaller), or the size in the
  environment variable ``MOLMOVIE_MAX_MEMORY`` (``8G``, ``512M``, bytes).
- **One writer per output.** :func:`output_lock` takes an advisory lock
  (the ``filelock`` package) on ``OUTPUT.lock`` beside the output for the whole
  read-compute-write of a command; a second run is refused with one line.
- **Writes are atomic, and faults end in one line.** :func:`atomic_write`
  gives a temporary file in the output's folder that replaces the output only
  when complete. A full disk, a quota, a read-only file system or a refused
  permission becomes a :class:`WriteError` ("no space left on device writing
  X") and the temporary file is removed. Ctrl-C (SIGINT) while the file is
  being written is held until the write is finished, then the temporary file
  is discarded and :class:`KeyboardInterrupt` raised: an interrupted command
  leaves the old file (or none), never a partial one. A second Ctrl-C stops
  at once, with the same result. :func:`atomic_hdf5` builds an HDF5 file in
  memory and writes its bytes with :func:`atomic_write`, because the HDF5
  library crashes (SIGSEGV) when the disk fills under it;
  :func:`atomic_folder` does for an output folder what :func:`atomic_write`
  does for a file.

Exit codes of the ``molmovie`` command: :class:`WriteError` is an
:class:`~molmovie.InputError` (the user can fix it: free space, change
permissions, pick another output), so it exits with 2 like any bad input;
Ctrl-C exits with 130 (128 + SIGINT), the shell's convention.

This module is library code: messages name parameters, not command-line
options (callers pass the option's name in ``what``).
"""

from __future__ import annotations

import errno
import io
import math
import os
import re
import shutil
import signal
import socket
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal, SupportsIndex, overload

from ._errors import InputError
from ._typing import PathLike

if TYPE_CHECKING:
    import h5py
    import numpy as np

__all__ = [
    "WriteError",
    "MEMORY_ENV",
    "MEMORY_FRACTION",
    "memory_limit",
    "check_allocation",
    "address_space_left",
    "check_seed",
    "check_output_path",
    "same_file",
    "replacement_mode",
    "output_lock",
    "lock_path",
    "write_errors",
    "deferred_interrupt",
    "atomic_write",
    "remove_stale_temporaries",
    "atomic_hdf5",
    "atomic_folder",
]


class WriteError(InputError):
    """An output could not be written (disk full, quota, read-only, permission): one line, exit 2."""


# --------------------------------------------------------------------------- memory

#: Environment variable that sets the memory limit, e.g. ``MOLMOVIE_MAX_MEMORY=8G``.
MEMORY_ENV = "MOLMOVIE_MAX_MEMORY"
#: Fraction of the physical (or container) memory one allocation may take by default.
MEMORY_FRACTION = 0.5
#: Limit used when the physical memory cannot be found, bytes (4 GiB).
_FALLBACK_LIMIT = 4 << 30

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not match:
        raise InputError(f"{MEMORY_ENV} must be a size like 8G, 512M or a number of bytes; got {text!r}")
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not math.isfinite(value) or value < 1:
        raise InputError(f"{MEMORY_ENV} must be a positive size; got {text!r}")
    return int(value)


def _container_memory() -> int | None:
    """The cgroup memory limit (v2 ``memory.max`` or v1 ``memory.limit_in_bytes``), if one is set."""
    for name in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < (1 << 60):
            return int(text)
    return None


def _physical_memory() -> int | None:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return total if total > 0 else None


def memory_limit() -> int:
    """Bytes one allocation may take: ``MOLMOVIE_MAX_MEMORY`` if set, else half the memory.

    "The memory" is the smaller of the physical memory (``os.sysconf``) and
    the container's cgroup limit; 4 GiB when neither can be read.

    Raises
    ------
    InputError
        If ``MOLMOVIE_MAX_MEMORY`` is set but not a size.
    """
    text = os.environ.get(MEMORY_ENV, "").strip()
    if text:
        return _parse_size(text)
    sizes = [s for s in (_physical_memory(), _container_memory()) if s]
    return int(MEMORY_FRACTION * min(sizes)) if sizes else _FALLBACK_LIMIT


def _human(nbytes: int) -> str:
    for unit, scale in (
        ("EiB", 1 << 60),
        ("PiB", 1 << 50),
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes} bytes"


def check_allocation(
    shape_or_nbytes: SupportsIndex | Iterable[SupportsIndex], what: str, *, itemsize: int = 8, limit_bytes: int | None = None
) -> int:
    """Refuse an allocation larger than the memory limit, before making it.

    Parameters
    ----------
    shape_or_nbytes : int or sequence of int
        A number of bytes, or the shape of an array of ``itemsize``-byte items
        (the product is taken in Python integers, so it cannot overflow).
    what : str
        What asks for it, naming the parameter (or option) and its value, e.g.
        ``"The 'n_q' parameter (1000000000 q points)"``.
    itemsize : int, default 8
        Bytes per item when a shape is given (8: float64).
    limit_bytes : int, optional
        The limit; default :func:`memory_limit`.

    Returns
    -------
    int
        The number of bytes.

    Raises
    ------
    InputError
        "<what> needs 67 GiB of memory, more than the limit of 12 GiB (half the
        memory; set MOLMOVIE_MAX_MEMORY to change it)", or a negative size.
    """
    if isinstance(shape_or_nbytes, SupportsIndex):  # an int, a NumPy integer: anything with __index__
        nbytes = int(shape_or_nbytes)
    else:
        dims = [int(d) for d in shape_or_nbytes]
        if any(d < 0 for d in dims):
            raise InputError(f"{what}: negative size {tuple(dims)}")
        nbytes = math.prod(dims) * int(itemsize)
    if nbytes < 0:
        raise InputError(f"{what}: negative size {nbytes}")
    if limit_bytes is not None:
        limit, why = int(limit_bytes), "given by the caller"
    elif os.environ.get(MEMORY_ENV, "").strip():
        limit, why = memory_limit(), f"set by {MEMORY_ENV}"
    else:
        limit, why = memory_limit(), f"half the memory; set {MEMORY_ENV} to change it"
    if nbytes > limit:
        raise InputError(f"{what} needs {_human(nbytes)} of memory, more than the limit of {_human(limit)} ({why})")
    room = address_space_left()
    if room is not None and nbytes > room:
        raise InputError(
            f"{what} needs {_human(nbytes)} of memory, more than the {_human(room)} of address space left to this process "
            "(its limit, ulimit -v, less what it already maps)"
        )
    return nbytes


def address_space_left() -> int | None:
    """Bytes of address space this process may still map under its ``RLIMIT_AS`` (``ulimit -v``); None when unlimited.

    The memory limit is per allocation; this is what the whole process has
    left, so an allocation that the limit allows but the process cannot map
    is refused before it is tried, not met with a MemoryError.
    """
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    used = 0
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                used = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    return max(int(soft) - used, 0)


# --------------------------------------------------------------------------- seeds


@overload
def check_seed(seed: int, name: str = "seed", *, generator: Literal[False] = False) -> int: ...
@overload
def check_seed(seed: None, name: str = "seed", *, generator: bool = False) -> None: ...
@overload
def check_seed(
    seed: int | np.random.Generator | None, name: str = "seed", *, generator: bool = False
) -> int | np.random.Generator | None: ...
def check_seed(
    seed: int | np.random.Generator | None, name: str = "seed", *, generator: bool = False
) -> int | np.random.Generator | None:
    """A seed as NumPy takes it: a whole number >= 0 (or None, or a Generator if ``generator``).

    Raises
    ------
    InputError
        "The 'seed' parameter must be a whole number >= 0; got -1".
    """
    import numpy as np

    if seed is None or (generator and isinstance(seed, np.random.Generator)):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"The '{name}' parameter must be a whole number >= 0; got {seed!r}")
    return int(seed)


# --------------------------------------------------------------------------- output paths


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name one file: same inode when both exist (symbolic and hard links), else same resolved path."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _inside(inner: Path, outer: Path) -> bool:
    try:
        inner_r, outer_r = inner.resolve(), outer.resolve()
    except OSError:
        return False
    return inner_r != outer_r and inner_r.is_relative_to(outer_r)


def _read_only(path: Path) -> bool:
    """No write permission: no write bit at all (respected even by root), or none for this user."""
    mode = path.stat().st_mode
    return not (mode & 0o222) or not os.access(path, os.W_OK)


def check_output_path(
    output: PathLike, inputs: Iterable[PathLike | None] = (), *, force: bool = False, folder: bool = False
) -> Path:
    """Check that ``output`` may be written; refuse anything that would lose a user's data.

    Parameters
    ----------
    output : path-like
        The file (or, with ``folder=True``, the folder) to write.
    inputs : iterable of path-like
        Files and folders the command reads (None entries are skipped).
    force : bool
        Whether an existing output may be replaced.
    folder : bool
        The output is a folder (e.g. an evaluation report).

    Returns
    -------
    Path

    Raises
    ------
    InputError
        The output is an input (by name, symbolic link, ``..`` or hard link) or
        a folder holding one -- whatever ``force`` says; it exists and
        ``force`` is false; it is a folder where a file is written (or the
        reverse); its parent is a file or missing; it or its folder is
        read-only.
    """
    output = Path(output)
    for source in inputs:
        if source is None:
            continue
        source = Path(source)
        if same_file(output, source):
            raise InputError(f"the output {output} is the input {source}; write to another file (an input is never replaced)")
        if _inside(source, output):
            raise InputError(
                f"the output {output} holds the input {source}; write to another folder (an input is never replaced)"
            )
    try:
        exists = output.exists() or output.is_symlink()
        if exists and not force:
            raise InputError(f"{output} exists; use force=True to replace it")
        if folder and output.exists() and not output.is_dir():
            raise InputError(f"{output} is a file, not a folder")
        if not folder and output.is_dir():
            raise InputError(f"{output} is a folder, not a file")
        parent = output.parent
        if not parent.is_dir():
            ancestor = parent
            while not (ancestor.exists() or ancestor.is_symlink()) and ancestor != ancestor.parent:
                ancestor = ancestor.parent
            if ancestor.exists() and not ancestor.is_dir():
                raise InputError(f"{ancestor} is a file, not a folder, so {output} cannot be written")
            raise InputError(f"{parent}: no such folder for the output")
        if output.exists() and _read_only(output):
            raise InputError(f"{output} is read-only; molmovie does not replace a protected file (allow writing with chmod u+w)")
        if _read_only(parent) or not os.access(parent, os.X_OK):
            raise InputError(f"cannot write {output}: its folder {parent} is read-only")
    except OSError as exc:
        raise InputError(f"cannot check the output {output} ({exc.strerror or exc})") from None
    return output


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def replacement_mode(path: PathLike) -> int:
    """Permission bits for a file written at ``path``: those of the file it replaces, else 0o666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


# --------------------------------------------------------------------------- locks


def lock_path(output: PathLike) -> Path:
    """The advisory lock file of an output: ``OUTPUT.lock`` beside it."""
    output = Path(output)
    return output.with_name(output.name + ".lock")


@contextmanager
def output_lock(output: PathLike) -> Iterator[Path]:
    """Hold an exclusive advisory lock on ``OUTPUT.lock`` for the duration of the block.

    Take it before reading what the output is computed from (an in-place
    update reads and writes the same file) and hold it until the output is
    written; the lock file is removed afterwards. The lock is the ``filelock``
    package's (``flock`` on POSIX, ``msvcrt.locking`` on Windows): advisory,
    it excludes other molmovie runs, not other programs.

    Raises
    ------
    InputError
        "another molmovie run is writing X (lock file X.lock)".
    WriteError
        If the lock file cannot be created (read-only folder, full disk).
    """
    import filelock

    output = Path(output)
    lock = lock_path(output)
    # A short wait, not none: a holder that just finished removes its lock file, and filelock then
    # retries on the new file; a run that holds the lock for its work holds it far longer.
    held = filelock.FileLock(lock, timeout=0.2, poll_interval=0.02, thread_local=False)
    try:
        with write_errors(lock):
            held.acquire()
    except filelock.Timeout:
        raise InputError(f"another molmovie run is writing {output} (lock file {lock})") from None
    try:
        yield lock
    finally:
        held.release()
        lock.unlink(missing_ok=True)  # filelock >= 4 removes it on release; 3.x leaves it


# --------------------------------------------------------------------------- disk errors and interrupts

_WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted (is the file immutable?)",
    errno.EFBIG: "file too large",
}


def _errno_of(exc: OSError) -> int | None:
    if exc.errno is not None:
        return exc.errno
    match = re.search(r"errno = (\d+)", str(exc))  # HDF5 reports the C errno inside its message
    return int(match.group(1)) if match else None


@contextmanager
def write_errors(path: PathLike) -> Iterator[None]:
    """Turn an OSError of a full disk, a quota, a read-only file system or a permission into one line.

    Raises
    ------
    WriteError
        "no space left on device writing X"; other OSErrors pass unchanged.
    """
    try:
        yield
    except OSError as exc:
        code = _errno_of(exc)
        reason = None if code is None else _WRITE_ERRNOS.get(code)
        if reason is None:
            raise
        raise WriteError(f"{reason} writing {path}") from None


class _Interrupts:
    """What :func:`deferred_interrupt` saw: ``count`` SIGINTs while it was held."""

    def __init__(self) -> None:
        self.count = 0

    def __bool__(self) -> bool:
        return self.count > 0


_holding = threading.local()


@contextmanager
def deferred_interrupt() -> Iterator[_Interrupts]:
    """Hold Ctrl-C (SIGINT) during the block, then raise :class:`KeyboardInterrupt` after it.

    A KeyboardInterrupt raised inside a C extension's clean-up is printed as
    "Exception ignored" and lost (the command then reports success); held
    here, it is raised when the block ends. A second Ctrl-C raises at once.
    The yielded object is true once a SIGINT arrived, so the block can stop
    before committing (as :func:`atomic_write` does). Outside the main thread,
    inside another deferred block, or when SIGINT is ignored, nothing changes.
    """
    seen = _Interrupts()
    previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    if previous is None or previous is signal.SIG_IGN or getattr(_holding, "active", False):
        outer = getattr(_holding, "seen", None)
        yield outer if outer is not None else seen
        return

    def hold(signum, frame):
        seen.count += 1
        if seen.count > 1:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, hold)
    _holding.active, _holding.seen = True, seen
    try:
        yield seen
    finally:
        _holding.active, _holding.seen = False, None
        signal.signal(signal.SIGINT, previous)
    if seen:
        raise KeyboardInterrupt


def _owner() -> str:
    """``HOST-PID`` of this process, as temporary files are named (host without dots or odd characters)."""
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0]) or "host"
    return f"{host}-{os.getpid()}"


def remove_stale_temporaries(path: PathLike) -> list[Path]:
    """Remove the temporary files of ``path`` left by molmovie processes of this host that no longer run.

    A process killed while writing (SIGKILL, a lost node) cannot remove its
    ``.NAME.HOST-PID.RANDOM.tmp``; the next write of the same output does, when
    that PID is gone on this host. Temporary files of running processes, of
    other hosts (a shared file system) and of other programs are left alone.

    Returns
    -------
    list of Path
        The files removed.
    """
    path = Path(path)
    host = _owner().rsplit("-", 1)[0]
    pattern = re.compile(rf"\.{re.escape(path.name)}\.{re.escape(host)}-(\d+)\.[^/]*\.tmp")
    removed: list[Path] = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if not match or int(match.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(match.group(1)), 0)
            continue  # still running (or a PID reused by a running process): keep its file
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError, OSError):
            continue
        try:
            entry.unlink()
            removed.append(entry)
        except OSError:
            pass
    return removed


@contextmanager
def atomic_write(path: PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it when the block ends without error.

    A symbolic link is followed: the file it names is replaced, the link stays.
    The temporary file (``.NAME.HOST-PID.RANDOM.tmp`` in the same folder, so the rename
    is atomic) gets the mode of the file it replaces, or 0o666 less the umask
    for a new file, is flushed to disk (``fsync``) and renamed onto ``path``.
    On any exception, Ctrl-C included, it is removed and ``path`` is
    untouched. Ctrl-C during the block is held (:func:`deferred_interrupt`):
    the block finishes, the temporary file is discarded and
    :class:`KeyboardInterrupt` raised, so ``path`` keeps its old content.

    Raises
    ------
    WriteError
        ``path`` is a read-only file; the disk is full; a quota, a read-only
        file system or a permission refuses the write or the rename.
    KeyboardInterrupt
        After a Ctrl-C, once the temporary file is removed.
    """
    path = Path(path)
    if path.is_symlink():  # write the file the link names, so the link stays (and a loop is one line)
        try:
            path = path.resolve()
        except (OSError, RuntimeError):
            raise WriteError(f"{path} is a loop of symbolic links") from None
    if path.exists() and _read_only(path):
        raise WriteError(f"{path} is read-only; molmovie does not replace a protected file")
    mode = replacement_mode(path)
    with write_errors(path), deferred_interrupt() as interrupted:
        remove_stale_temporaries(path)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.{_owner()}.", suffix=suffix, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            yield tmp
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp, mode)
            if interrupted:  # checked last: a Ctrl-C at any moment before the rename keeps the old file
                raise KeyboardInterrupt
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _write_bytes(path: Path, data) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


@contextmanager
def atomic_hdf5(path: PathLike, *, suffix: str = ".tmp") -> Iterator[h5py.File]:
    """An ``h5py.File`` built in memory, written to ``path`` with :func:`atomic_write` when the block ends.

    The HDF5 library crashes the process (SIGSEGV) when the disk fills while it
    writes; here it only ever writes to memory, and the finished image is
    written with plain file writes, where a full disk is an OSError
    (:class:`WriteError`). The image is about the size of the file.
    """
    import h5py

    buffer = io.BytesIO()
    with atomic_write(path, suffix=suffix) as tmp:
        with h5py.File(buffer, "w") as f:
            yield f
        _write_bytes(tmp, buffer.getbuffer())


@contextmanager
def atomic_folder(path: PathLike) -> Iterator[Path]:
    """A temporary folder beside ``path`` that replaces it when the block ends without error.

    On any exception (a full disk, Ctrl-C) the temporary folder is removed and
    ``path`` is untouched: no partial output folder. An existing ``path`` is
    moved aside, the new folder renamed onto it, then the old one removed.
    Ctrl-C is held only for that swap; inside the block it stops the block
    (use :func:`atomic_write` for each file written into the folder).

    Raises
    ------
    WriteError
        As :func:`atomic_write`.
    """
    path = Path(path)
    with write_errors(path):
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            yield tmp
            mode = replacement_mode(path) if path.is_dir() else 0o777 & ~_umask()
            with deferred_interrupt() as interrupted:
                old = None
                os.chmod(tmp, mode)
                if path.is_dir():
                    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
                    os.replace(path, old / path.name)
                try:
                    if interrupted:
                        raise KeyboardInterrupt
                    os.replace(tmp, path)
                except BaseException:
                    if old is not None:
                        os.replace(old / path.name, path)
                    raise
                finally:
                    if old is not None:
                        shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
