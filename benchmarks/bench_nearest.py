"""Benchmark: the nearest-reference search against the brute-force loop.

The paper's case is 15,100 query frames (the test split) against 120,800
reference frames (the training split), 100 q points each. The fast search
(`molmovie.inversion.nearest_frames`: float32 matrix products in blocks, a
rigorous rounding bound, exact float64 re-scoring of the few candidates) runs
on the whole case; the brute-force loops run on a subsample of the queries and
are extrapolated, and their answers are checked against the fast search.

    python benchmarks/bench_nearest.py                 # the paper's size
    python benchmarks/bench_nearest.py --queries 2000  # quicker

Signals are synthetic but shaped like real ΔS: Debye sums sin(qR)/(qR) over
three distances drawn around a CS2-like geometry (the search cost does not
depend on the molecule, only on the three sizes).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
import tracemalloc

import numpy as np


def signals(n: int, q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ΔS-like curves, shape (n, Q): relative change of a three-distance Debye sum."""
    R = np.stack([rng.normal(1.56, 0.1, n), rng.normal(1.56, 0.1, n) + rng.exponential(0.3, n), rng.normal(3.1, 0.15, n)], axis=1)
    w = np.array([96.0, 96.0, 256.0])

    def intensity(R):
        qr = q * R[..., None]
        return 608.0 + 2 * np.einsum("p,...pq->...q", w, np.sin(qr) / qr)

    ref = intensity(np.array([1.56, 1.56, 3.12]))
    out = np.empty((n, len(q)))
    for start in range(0, n, 4096):  # in blocks, so that the baseline memory stays that of the data
        out[start : start + 4096] = intensity(R[start : start + 4096]) / ref - 1.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=15_100)
    ap.add_argument("--refs", type=int, default=120_800)
    ap.add_argument("--nq", type=int, default=100)
    ap.add_argument("--memory-mb", type=float, default=256.0, help="score block size (the method's setting)")
    ap.add_argument("--brute", type=int, default=40, help="queries for the vectorised brute-force loop")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from molmovie.inversion import nearest_frames

    rng = np.random.default_rng(args.seed)
    q = np.linspace(0.5, 10.0, args.nq)
    library = signals(args.refs, q, rng)
    query = signals(args.queries, q, rng)
    nearest_frames(query[:2], library[:10])  # compile the numba scan outside the timing

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (cores shared with other jobs)"
    )
    print(
        f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'unset')}"
    )
    print(f"case: {args.queries:,} query frames x {args.refs:,} reference frames x {args.nq} q")

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    t0 = time.perf_counter()
    index, ssr = nearest_frames(query, library, memory_mb=args.memory_mb)
    fast = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    data_mb = (library.nbytes + query.nbytes) / 2**20
    print(
        f"fast search: {fast:.1f} s, {args.queries / fast:,.0f} query frames/s; "
        f"peak extra memory {peak / 2**20:.0f} MB (tracemalloc, inputs {data_mb:.0f} MB not counted); "
        f"peak RSS of the process {rss:.0f} MB (before the search {rss0:.0f} MB)"
    )

    # brute force, vectorised per query frame: ((library - a) ** 2).sum(1).argmin()
    sub = rng.choice(args.queries, size=min(args.brute, args.queries), replace=False)
    t0 = time.perf_counter()
    bi = np.array([np.argmin(((library - query[i]) ** 2).sum(axis=1)) for i in sub])
    per = (time.perf_counter() - t0) / len(sub)
    assert np.array_equal(bi, index[sub]), "fast search and brute force disagree"
    print(
        f"brute force, NumPy loop over query frames: {per * 1e3:.1f} ms per frame -> {per * args.queries:.0f} s extrapolated "
        f"({per * args.queries / fast:.1f}x the fast search); answers identical on {len(sub)} frames"
    )

    # brute force, pure Python double loop (the definition), on one frame against part of the library
    n_ref = min(20_000, args.refs)
    a = query[sub[0]]
    t0 = time.perf_counter()
    best, _best_j = np.inf, -1  # the argmin is tracked, as a search does, and not used
    for j in range(n_ref):
        s = np.sum((a - library[j]) ** 2)
        if s < best:
            best, _best_j = s, j
    per_pair = (time.perf_counter() - t0) / n_ref
    total = per_pair * args.refs * args.queries
    print(
        f"brute force, Python double loop: {per_pair * 1e6:.2f} us per pair -> {total / 3600:.1f} h extrapolated ({total / fast:,.0f}x)"
    )


if __name__ == "__main__":
    main()
