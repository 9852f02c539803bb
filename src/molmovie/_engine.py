"""The one engine for parallel work: Dask, on a local cluster of processes or on the user's own scheduler.

Trajectory generation (:mod:`molmovie.dynamics.runner`) and the study's
trainings (:mod:`molmovie.evaluation.study.engine`) are Dask tasks. A local
cluster's worker processes ignore Ctrl-C (it reaches the whole process group;
only the process that started them acts on it). ``--scheduler ADDRESS`` sends
the tasks to an existing scheduler (a ``dask scheduler`` with ``dask worker``
processes, or a Slurm/PBS cluster through dask-jobqueue); the address is
checked for a Dask handshake before distributed's client would wait on it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import struct
import threading
import time

from ._errors import InputError
from ._guards import deferred_interrupt

__all__ = ["check_scheduler", "connect", "local_client", "close_local"]

#: The environment before each open local cluster started (id of the cluster -> os.environ then).
_ENVIRONS: dict[int, dict[str, str]] = {}


#: Largest first frame a Dask scheduler is expected to send (its handshake is about 100 bytes), bytes.
_HANDSHAKE_MAX = 1 << 16


def _read_exactly(sock, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the connection was closed")
        data += chunk
    return data


def _probe_scheduler(address: str, timeout: float) -> None:
    """Refuse a TCP address where no Dask scheduler answers, within ``timeout`` seconds in all.

    A Dask scheduler speaks first: on a new connection it sends its handshake,
    an 8-byte length (``struct`` "Q", as ``distributed.comm.tcp`` writes it)
    and then that many bytes of small frames that decode to a dict. Anything
    else is refused here, before distributed's client would wait for minutes
    (an HTTP server waits for a request and sends nothing) or allocate what
    another protocol's bytes, read as a length, ask for (exbibytes). The
    handshake is sent back, so the scheduler sees an ordinary short visit.
    """

    from distributed.comm.addressing import parse_address, parse_host_port

    host, port = parse_host_port(parse_address(address)[1])
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            head = _read_exactly(sock, 8)
            (size,) = struct.unpack("Q", head)
            if not 0 < size <= _HANDSHAKE_MAX:
                raise ValueError(f"its first message claims {size} bytes, not a Dask handshake")
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            body = _read_exactly(sock, size)
            _check_handshake(body)
            sock.sendall(head + body)
    except TimeoutError:  # socket.timeout is an alias of it
        raise InputError(
            f"--scheduler {address}: no Dask scheduler answered within {timeout:g} s "
            "(something listens there, but it is not a Dask scheduler)"
        ) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot reach the Dask scheduler at {address!r} ({exc})") from None


def _check_handshake(body: bytes) -> None:
    """Raise ValueError unless ``body`` decodes, as distributed decodes it, to a handshake dict."""

    from distributed.protocol import loads
    from distributed.protocol.utils import unpack_frames

    n_frames = struct.unpack_from("Q", body)[0] if len(body) >= 8 else -1
    if not 0 < n_frames <= len(body) // 8:  # checked here: unpack_frames would build a format of that many items
        raise ValueError("its first message is not a Dask handshake")
    try:
        msg = loads(unpack_frames(body), deserialize=False)
    except Exception as exc:  # noqa: BLE001 -- any failure to decode means "not a Dask scheduler"
        raise ValueError(f"its first message is not a Dask handshake ({type(exc).__name__})") from None
    if not isinstance(msg, dict):
        raise ValueError("its first message is not a Dask handshake")


def check_scheduler(scheduler: str, timeout: float = 3.0) -> None:
    """Refuse, in one line, an address that is malformed or where no Dask scheduler answers (before any work starts)."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    try:  # a malformed address is refused before a Client exists (a half-made Client complains on exit)
        scheme, location = parse_address(scheduler)
        get_backend(scheme)
        if scheme in ("tcp", "tls"):
            parse_host_port(location)
    except (ValueError, TypeError) as exc:
        raise InputError(f"--scheduler must be an address like tcp://host:8786; got {scheduler!r} ({exc})") from None
    if scheme == "tcp":
        _probe_scheduler(scheduler, timeout)


def connect(scheduler: str, timeout: float = 3.0):
    """A client of the Dask scheduler at ``scheduler``, or one line saying why not, within ``timeout`` s."""
    from distributed import Client

    check_scheduler(scheduler, timeout)
    try:
        return Client(scheduler, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise InputError(f"cannot reach the Dask scheduler at {scheduler!r} ({type(exc).__name__}: {exc})") from None


def local_client(workers: int, threads: int = 1, *, allowed_failures: int | None = None):
    """A client of a new cluster of ``workers`` processes on this machine, and the cluster (close both with :func:`close_local`).

    Each worker runs one task at a time, its numerical libraries (OpenMP, MKL,
    OpenBLAS) started with ``threads`` threads. ``allowed_failures``: how many
    times a task may be rerun after its worker process died (Dask's default when None).
    """
    import dask
    from distributed import Client, LocalCluster

    # Worker processes inherit a blocked SIGINT: Ctrl-C in a terminal reaches the whole process group,
    # and only this process should act on it (close the cluster; finished work is on disk). Blocked,
    # not ignored, in this process while the cluster starts: a Ctrl-C then stays pending and is
    # raised as soon as the cluster is up (and closed again), instead of being lost.
    config = {} if allowed_failures is None else {"distributed.scheduler.allowed-failures": allowed_failures}
    limits = {var: str(threads) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    environ = dict(os.environ)  # given back by close_local
    main_thread = threading.current_thread() is threading.main_thread()
    cluster = None
    try:
        # Held (deferred_interrupt) for a Ctrl-C that another thread of this process receives; blocked
        # for the threads and processes the cluster starts, which keep the mask.
        with deferred_interrupt():
            if main_thread:
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                # No dashboard; the scheduler's small HTTP server (health, metrics) takes any free port on
                # this machine, not 8787, so a second run does not warn "Port 8787 is already in use".
                with dask.config.set(config):
                    cluster = LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                        silence_logs=logging.ERROR,
                        env=limits,
                    )
                _ENVIRONS[id(cluster)] = environ
            finally:
                if main_thread:
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # a pending Ctrl-C is held, then raised
    except BaseException:
        close_local(None, cluster)
        raise
    os.environ.clear()
    os.environ.update(environ)
    return Client(cluster, set_as_default=False), cluster


def close_local(client, cluster) -> None:
    """Close a client and its local cluster (either may be None), and give back the environment the cluster changed.

    distributed's nannies set their workers' variables (thread counts, ``PYTHONHASHSEED``,
    ``__DASK_PARENT_PID``...) in this process's ``os.environ`` before spawning them, and leave
    them there; a library must not change its caller's environment (:func:`local_client` keeps
    what it was before the cluster started).
    """
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()
        saved = _ENVIRONS.pop(id(cluster), None)
        if saved is not None:
            os.environ.clear()
            os.environ.update(saved)
