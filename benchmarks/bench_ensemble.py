"""Benchmark: the ensemble fit of a measurement (issue 12): 100 delays × 100 q, a basis of 1,000 trajectories, 100 bootstrap refits.

    python benchmarks/bench_ensemble.py                  # the issue's size, 3 repeats, medians printed
    python benchmarks/bench_ensemble.py --repeats 1 --basis 300

The basis is an analytic I2-like ensemble (coherent vibrations of 0.15-0.3 Å
and dissociation at 0.005-0.015 Å/fs, 1.2 ps in 10 fs frames, as in the tests);
the experiment is simulated (molmovie.measurement.simulate_measurement)
from 200 other trajectories with γ = 0.05, t0 = 40 fs, IRF = 80 fs and Poisson
noise at 1e6 photons per q bin. The fit's cost does not depend on how the
trajectories were made, only on the sizes and on the rank the basis reduces to
(printed). Stages are timed through the fit's progress callback.

BLAS threads: on a machine shared with other jobs, multi-threaded OpenBLAS
spins on the fit's many small products (10x slower measured here under load);
``--blas-threads`` sets OPENBLAS_NUM_THREADS/OMP_NUM_THREADS before NumPy loads
(default 1).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time


def basis_like(n: int, seed: int):
    import numpy as np

    from molmovie.datasets import Dataset
    from molmovie.trajectories import Trajectory, ensemble_from_trajectories

    rng = np.random.default_rng(seed)
    time_ = np.arange(0.0, 1205.0, 10.0)
    trajs = []
    for i in range(n):
        delta = 0.03 * rng.standard_normal()
        if rng.random() < 0.4:
            r = 2.666 + delta + rng.uniform(0.005, 0.015) * time_
        else:
            amp, period = rng.uniform(0.15, 0.3), rng.uniform(140.0, 180.0)
            r = 2.666 + delta + amp * (1 - np.cos(2 * np.pi * time_ / period))
        pos = np.zeros((time_.size, 2, 3))
        pos[:, 1, 2] = r
        trajs.append(Trajectory(("I", "I"), time_, pos, source=f"bench{seed}-{i}"))
    return Dataset(ensemble_from_trajectories(trajs, molecule="I2"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--basis", type=int, default=1000)
    ap.add_argument("--delays", type=int, default=100)
    ap.add_argument("--nq", type=int, default=100)
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--blas-threads", type=int, default=1)
    args = ap.parse_args()
    if "numpy" in sys.modules:
        raise SystemExit("run as a script: BLAS threads must be set before NumPy loads")
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(args.blas_threads)

    import numpy as np

    from molmovie.fitting import get_measurement_method
    from molmovie.measurement import simulate_measurement

    q = np.linspace(0.5, 4.5, args.nq)
    delays = np.linspace(-200.0, 1000.0, args.delays)
    basis = basis_like(args.basis, seed=1)
    meas = simulate_measurement(
        basis_like(200, seed=2), q=q, delays=delays, gamma=0.05, t0=40.0, irf_fs=80.0, photons=1e6, seed=0
    )

    rows = []
    for rep in range(args.repeats):
        marks = {}
        start = time.perf_counter()

        def progress(done, info, marks=marks):  # this repeat's marks
            stage = info.get("stage")
            marks.setdefault(stage, time.perf_counter())  # first report of each stage
            marks[f"{stage} end"] = time.perf_counter()

        fit = get_measurement_method("ensemble", bootstrap=args.bootstrap, seed=rep).fit(meas, basis, progress=progress)
        total = time.perf_counter() - start
        res, e = fit.result_, fit.result_.ensemble
        t_signals = marks["basis signals end"] - start
        t_reduce = marks["reduce end"] - marks["basis signals end"]
        t_search = marks["refine end"] - marks["reduce end"]
        t_boot = marks.get("bootstrap end", marks["refine end"]) - marks.get("bootstrap", marks["refine end"])
        t_prof = marks.get("profile end", 0.0) - marks.get("profile", 0.0)
        rows.append(
            (total, t_signals, t_reduce, t_search, total - t_signals - t_reduce - t_search - t_boot - t_prof, t_boot, t_prof)
        )
        print(
            f"repeat {rep}: {total:.1f} s  (γ {e.gamma:.4f} ± {e.gamma_std:.4f}, t0 {e.t0:.1f} ± {e.t0_std:.1f} fs, "
            f"IRF {e.irf_fs:.1f} ± {e.irf_fs_std:.1f} fs, reduced χ² {res.reduced_chi2:.3f}, rank {e.rank}, "
            f"{np.count_nonzero(e.weights)} weights, converged {res.converged})",
            flush=True,
        )
    med = np.median(np.array(rows), axis=0)
    print(
        f"\nensemble fit, {args.delays} delays × {args.nq} q, basis {args.basis} trajectories × {basis.n_frames} frames, "
        f"{args.bootstrap} bootstrap refits; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"BLAS threads {args.blas_threads}; median of {args.repeats}:"
    )
    for name, value in zip(
        (
            "total",
            "basis signals (Eq. 1 on the measurement's q)",
            "basis reduction (SVD)",
            "t0/IRF search (grid + Nelder-Mead)",
            "final fit, Hessian, derived quantities",
            "bootstrap",
            f"profile likelihood of γ ({e.profile_gamma.size} points + range search)",
        ),
        med,
    ):
        print(f"  {name:48s} {value:7.1f} s")
    print(f"  per bootstrap refit                              {1000 * med[5] / max(args.bootstrap, 1):7.0f} ms")


if __name__ == "__main__":
    main()
