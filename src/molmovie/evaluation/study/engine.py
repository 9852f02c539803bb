"""The study's stages as Dask tasks: on a local cluster (``jobs``) or on an existing scheduler (``scheduler``).

Each (experiment, method, seed) stage is one task. A worker reads the
dataset from the study's data folder (once per process), limits its
numerical libraries to the stage's threads, trains, scores and writes the
stage's files atomically, and sends its log lines and progress back as
Dask events, which this process relays to ``log`` and ``progress``.

The study's process decides on stopping: an error in a stage, Ctrl-C or
SIGTERM cancels every task and closes a local cluster (its workers end; a
stage underway leaves nothing, its files being written atomically, and the
temporary files of a worker that was killed are removed here); the finished
stages are kept. A worker process that dies (killed, out of memory) is a
:class:`ChildProcessError` naming the stage it was running. On a local
cluster a task is not rerun after its worker died (the cause, e.g. memory,
would kill the next one too); a scheduler of the user's decides that by its
own configuration (``distributed.scheduler.allowed-failures``).
"""

from __future__ import annotations

import os
import queue
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ..._engine import close_local, connect, local_client
from ..._guards import remove_stale_temporaries
from ...io import read_dataset
from .presets import Preset, is_seeded
from .stages import Stage, experiment_splits, limit_threads, method_stage

#: The datasets a worker process has read: path -> (modification time, Dataset).
_datasets: dict = {}


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _stage_task(stage: Stage, preset: Preset, out: Path, data: Path, seed: int, threads: int | None, topic: str) -> str:
    """Run one stage in a Dask worker; its log lines and progress go to the event ``topic``. Returns the stage's label."""
    from distributed import get_worker

    worker = get_worker()

    def send(*message: object) -> None:
        worker.log_event(topic, list(message))

    path = data / f"{stage.exp.dataset}.h5"
    mtime = path.stat().st_mtime_ns
    if _datasets.get(path, (None,))[0] != mtime:
        _datasets[path] = (mtime, read_dataset(path))
    train, val, test = experiment_splits(_datasets[path][1], stage.exp, seed)
    if threads is None:  # a worker of the user's cluster: its cores shared among the tasks it runs at once
        threads = max(1, cores() // max(1, worker.state.nthreads))
    undo = limit_threads(threads)
    try:
        method_stage(
            stage,
            preset,
            train,
            val,
            test,
            out,
            lambda line: send("log", line),
            lambda done, info: send("progress", stage.label, done, info),
        )
    finally:
        undo()
        send("end", stage.label)
    return stage.label


def run_stages(
    todo: list[Stage],
    preset: Preset,
    out: Path,
    data: Path,
    seed: int,
    *,
    jobs: int,
    threads: int | None,
    scheduler: str | None,
    log: Callable[[str], None],
    progress: Callable[[int, dict], None] | None,
) -> None:
    """Run ``todo`` as Dask tasks, the longest first; relay their log lines and progress here.

    ``jobs`` worker processes on a local cluster of this machine (each stage
    with ``threads`` threads; default cores // jobs), or, with ``scheduler``,
    the workers of that Dask scheduler (each stage with ``threads`` threads;
    default the worker's cores over its threads).
    """
    from distributed import KilledWorker, wait

    # the stages that train (those with a seed) first, larger training sets first: the slowest start first
    order = sorted(todo, key=lambda st: (not is_seeded(st.method), -sum(preset.trajectories[st.exp.molecule])))
    if scheduler is not None:
        client, cluster = connect(scheduler), None
        where = f"on the Dask scheduler at {scheduler}"
        per = f"{threads} thread{'s' * (threads > 1)} each" if threads else "the workers' threads"
    else:
        threads = threads or max(1, cores() // jobs)
        client, cluster = local_client(jobs, threads, allowed_failures=0)
        where = f"in {jobs} processes"
        per = f"{threads} thread{'s' * (threads > 1)} each"
    log(f"training and scoring {len(todo)} stages {where} of {per} ...")
    topic = f"molmovie-study-{uuid.uuid4().hex}"
    messages: queue.Queue = queue.Queue()
    client.subscribe_topic(topic, lambda event: messages.put(event[1]))
    last: dict = {}  # stage label -> its last progress report
    ended = 0

    def relay(message: list) -> None:
        nonlocal ended
        kind, *rest = message
        if kind == "log":
            log(rest[0])
        elif kind == "progress":
            label, done, info = rest
            last[label] = (done, info)
            if progress is not None:
                progress(done, info)
        else:  # "end": a stage is over; close its bar if it stopped early
            ended += 1
            done, info = last.pop(rest[0], (None, None))
            if progress is not None and info is not None and done < (info.get("total") or 0):
                progress(done, {**info, "total": done})

    futures = []
    try:
        futures = [
            client.submit(_stage_task, st, preset, out, data, seed, threads, topic, key=f"{st.label}-{topic}", pure=False)
            for st in order
        ]
        stage_of = {f.key: st for f, st in zip(futures, order, strict=True)}
        while ended < len(futures):
            try:
                relay(messages.get(timeout=0.2))
                continue
            except queue.Empty:
                pass
            for f in futures:
                if f.status == "error":
                    exc = f.exception()
                    if isinstance(exc, KilledWorker):  # killed (out of memory?): one line, not a traceback
                        raise ChildProcessError(
                            f"a worker process ended abruptly while running {stage_of[f.key].label} (killed, or out of memory?); "
                            f"the finished stages in {out} are kept: run again, with fewer jobs if memory ran out"
                        ) from None
                    raise exc
                if f.status == "cancelled":
                    raise ChildProcessError(
                        f"the Dask scheduler cancelled {stage_of[f.key].label}; the finished stages in {out} are kept"
                    )
            if all(f.status == "finished" for f in futures):
                wait(futures)  # every stage is done; its last events may still be on their way
                _drain(messages, relay, len(futures), lambda: ended)
                break
    finally:
        if futures:
            client.cancel(futures, force=True)
        client.unsubscribe_topic(topic)
        close_local(client, cluster)
        if cluster is not None:
            for st in todo:  # a worker ended mid-stage (Ctrl-C, an error elsewhere) leaves its temporary files
                for path in st.paths(out):
                    remove_stale_temporaries(path)


def _drain(
    messages: queue.Queue, relay: Callable[[list], None], expected: int, ended: Callable[[], int], timeout: float = 10.0
) -> None:
    """Relay the events still on their way after every stage finished, until each stage's end is in (or ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while ended() < expected and time.monotonic() < deadline:
        try:
            relay(messages.get(timeout=0.2))
        except queue.Empty:
            pass
    while True:
        try:
            relay(messages.get_nowait())
        except queue.Empty:
            return
