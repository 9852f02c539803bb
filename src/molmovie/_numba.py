"""How molmovie runs numba's parallel kernels: which thread pool, and one caller at a time.

numba's OpenMP threading layer loads a second libgomp beside PyTorch's; after one
Debye call its idle worker spun inside every later torch operation, which made
VRNN training on a busy two-core machine ten times slower (measured). molmovie
therefore prefers TBB (when installed) and then numba's own workqueue pool,
unless the user chose a layer with ``NUMBA_THREADING_LAYER`` or
``NUMBA_THREADING_LAYER_PRIORITY``. The workqueue pool must not be entered from
two threads at once (numba aborts the process), so every parallel kernel call
goes through :data:`parallel_lock`; a thread-safe layer loses nothing by it,
as each kernel call already uses all threads.
"""

from __future__ import annotations

import os
import threading

__all__ = ["parallel_lock", "configure"]

#: Held around every call of a ``parallel=True`` kernel.
parallel_lock = threading.RLock()


def configure() -> None:
    """Choose the threading layer; call before any parallel kernel is compiled or run.

    Kept out of import time so that importing molmovie does not import numba.
    """
    import numba

    if "NUMBA_THREADING_LAYER" not in os.environ and "NUMBA_THREADING_LAYER_PRIORITY" not in os.environ:
        numba.config.THREADING_LAYER_PRIORITY = ["tbb", "workqueue", "omp"]  # type: ignore[attr-defined]  # set at run time
