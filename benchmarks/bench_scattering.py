"""Benchmark: Eq. (1) (IAM Debye sum + Compton) for many geometries, compiled vs NumPy broadcast.

The workload is the hot loop of everything downstream (signal simulation, the
SSR metric, the chi-square fit): 20,100 geometries of N-methylmorpholine
(C5H11NO, 18 atoms, 153 pairs; the built-in GFN2-xTB minimum plus Gaussian
displacements of 0.1 Å, fixed seed) on the default 100-point q grid.

    python benchmarks/bench_scattering.py               # the full workload
    python benchmarks/bench_scattering.py --geoms 2000  # quicker

Timed, each as the median of several repeats in this process:

- ``broadcast``: the straightforward float64 NumPy evaluation
  (:func:`molmovie.scattering.debye.intensity_reference`, one ``numpy.sin``
  per pair and q point, chunks of 512 geometries);
- ``kernel``: :func:`molmovie.scattering.intensity_from_distances` on the
  uniform grid (sine-free recurrence), with 1 thread and with all cores
  (``numba.set_num_threads``); form factors already cached, so no xraylib;
- ``irregular q``: the same on a non-uniform grid (one sine per pair and q);
- ``cold plan``: the first call on a new q grid, i.e. the xraylib look-ups
  and pair grouping that a cached call skips;
- ``torch``: :class:`molmovie.scattering.DebyeTorch` forward (float64 and
  float32, 1 thread) on a tenth of the geometries.

Results are checked: the kernel must agree with the broadcast within 1e-12
relative. On a shared machine the timings are noisy; compare ratios within
one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

CPU = {}  # label -> median process CPU time of the last median_time call


def median_time(fn, repeats: int) -> float:
    """Median wall time of fn() over repeats; the median CPU time goes to CPU["last"]."""
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    CPU["last"] = float(np.median(cpu))
    return float(np.median(wall))


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--geoms", type=int, default=20_100)
    ap.add_argument("--nq", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=7, help="repeats of the compiled kernel")
    ap.add_argument("--broadcast-repeats", type=int, default=3)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import numba

    from molmovie.geometry import distances
    from molmovie.molecules import builtin
    from molmovie.scattering import intensity_from_distances, q_grid
    from molmovie.scattering.debye import _plan_cached, intensity_reference

    mol = builtin("nmm")
    rng = np.random.default_rng(args.seed)
    d = distances(mol.positions + rng.normal(0.0, 0.1, (args.geoms, mol.n_atoms, 3)))
    q = q_grid(n_q=args.nq)
    n_pair = d.shape[1]
    work = args.geoms * n_pair * args.nq
    cores = os.cpu_count()
    print(
        f"machine: {cpu_name()}, {cores} cores (os.cpu_count), {platform.python_implementation()} {platform.python_version()}, "
        f"numpy {np.__version__}, numba {numba.__version__}"
    )
    print(
        f"workload: {args.geoms} geometries of {mol.name} ({mol.n_atoms} atoms, {n_pair} pairs) x {args.nq} q points "
        f"= {work:.3e} pair x q terms, float64, inelastic on"
    )

    def report(label: str, seconds: float, n_geoms: int = args.geoms, base: float | None = None) -> None:
        ns = seconds / (n_geoms * n_pair * args.nq) * 1e9
        extra = f"  {base / seconds:6.1f}x broadcast" if base else ""
        print(
            f"  {label:<34s} wall {seconds:8.4f} s  cpu {CPU['last']:8.4f} s  {n_geoms / seconds:10,.0f} geometries/s"
            f"  {ns:7.3f} ns/(pair x q){extra}"
        )

    # warm up: compile (or load the cache) and fill the form-factor cache
    numba.set_num_threads(1)
    intensity_from_distances(mol.symbols, d[:64], q)
    q_irregular = np.sort(np.concatenate([q[:-1] + 0.01 * np.diff(q) * rng.random(args.nq - 1), q[-1:]]))
    intensity_from_distances(mol.symbols, d[:64], q_irregular)

    t_broadcast = median_time(lambda: intensity_reference(mol.symbols, d, q), args.broadcast_repeats)
    ref = intensity_reference(mol.symbols, d, q)
    print(
        "timings: median of repeats; cpu = process CPU time (all threads); cpu well below wall x threads "
        "means the process waited for a core on a shared machine"
    )
    report("NumPy broadcast (1 thread)", t_broadcast)

    results = {}
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(threads)
        got = intensity_from_distances(mol.symbols, d, q)
        err = float(np.max(np.abs(got - ref) / np.abs(ref)))
        if err > 1e-12:
            raise SystemExit(f"kernel disagrees with the broadcast: {err:.2e} relative")
        results[threads] = median_time(lambda: intensity_from_distances(mol.symbols, d, q), args.repeats)
        report(f"kernel, uniform q, {threads} thread(s)", results[threads], base=t_broadcast)
    print(f"  max relative difference kernel vs broadcast: {err:.1e}")

    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(threads)
        t = median_time(lambda: intensity_from_distances(mol.symbols, d, q_irregular), max(3, args.repeats // 2))
        report(f"kernel, irregular q, {threads} thread(s)", t, base=t_broadcast)

    # Cold plan: xraylib look-ups + pair grouping on a grid never seen before (then cached).
    numba.set_num_threads(1)
    colds = []
    for k in range(3):
        q_new = q_grid(q_min=0.5 + 1e-6 * (k + 1), n_q=args.nq)
        _plan_cached.cache_clear()
        t0 = time.perf_counter()
        intensity_from_distances(mol.symbols, d[:1], q_new)
        colds.append(time.perf_counter() - t0)
    print(f"  {'cold plan (xraylib, 1 geometry)':<34s} {np.median(colds):9.4f} s  (once per q grid and molecule)")

    if not args.no_torch:
        import torch

        from molmovie.scattering import DebyeTorch

        torch.set_num_threads(1)
        n_t = max(1, args.geoms // 10)
        dt64 = torch.from_numpy(d[:n_t])
        for dtype in (torch.float64, torch.float32):
            model = DebyeTorch(mol.symbols, q, dtype=dtype)
            x = dt64.to(dtype)
            with torch.no_grad():
                model(x[:8])
                t = median_time(lambda model=model, x=x: model(x), 3)
            report(
                f"torch forward {str(dtype).replace('torch.', '')}, 1 thread", t, n_geoms=n_t, base=t_broadcast * n_t / args.geoms
            )

    best = min(results.values())
    print(
        f"summary: broadcast {t_broadcast:.3f} s; kernel {results[1]:.4f} s on 1 thread, {best:.4f} s best "
        f"({t_broadcast / best:.0f}x); {best / work * 1e9:.3f} ns per pair x q"
    )


if __name__ == "__main__":
    main()
