"""Cost of the measurement model at the size of issue 12's fit benchmark.

A basis of M trajectories × T frames × Q q points (random numbers: the cost
does not depend on them), T_d delays. Timed, each the best of ``--repeat``:

- ``irf_operator``: the (T_d, T) IRF matrix K for one (t0, IRF width);
- ``convolve_basis``: K ΔS_i for every trajectory, the (M, T_d, Q) columns of
  the NNLS fit, recomputed whenever t0 or the IRF width changes;
- ``ensemble_signal``: γ K Σ_i w_i ΔS_i for one set of weights;
- ``ensemble_signal_torch``: the same in PyTorch, forward and backward
  (gradients in γ, t0, IRF and the weights), on the CPU;
- ``simulate_measurement``: a whole synthetic experiment of ``--sim`` CS2
  trajectories (Eq. (1) for every frame, the truth's distance distributions).

    python benchmarks/bench_measurement_model.py                 # M=1000, T=400, Q=100, T_d=100
    python benchmarks/bench_measurement_model.py --m 200 --repeat 5

The machine is shared: the load average is printed; a loaded machine gives
slower numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=1000, help="basis trajectories")
    parser.add_argument("--t", type=int, default=400, help="basis frames (2.5 fs apart)")
    parser.add_argument("--q", type=int, default=100, help="q points")
    parser.add_argument("--delays", type=int, default=100, help="delays")
    parser.add_argument("--sim", type=int, default=100, help="trajectories of the simulated experiment")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import torch

    from molmovie import measurement as mm

    rng = np.random.default_rng(0)
    dt = 2.5
    time_grid = np.arange(args.t) * dt
    delays = np.linspace(-200.0, time_grid[-1] - 100.0, args.delays)
    basis = 0.01 * rng.standard_normal((args.m, args.t, args.q))
    w = rng.random(args.m)
    print(
        f"load average {os.getloadavg()[0]:.2f}; torch threads {torch.get_num_threads()}; "
        f"basis {args.m} x {args.t} x {args.q} ({basis.nbytes / 2**20:.0f} MiB), {args.delays} delays"
    )

    kw = dict(t0=40.0, irf_fs=80.0)
    t_k = best(lambda: mm.irf_operator(time_grid, delays, **kw), args.repeat)
    t_cols = best(lambda: mm.convolve_basis(basis, time_grid, delays, **kw), args.repeat)
    t_sig = best(lambda: mm.ensemble_signal(basis, time_grid, delays, weights=w, gamma=0.05, **kw), args.repeat)

    tb = torch.as_tensor(basis)

    def torch_step():
        params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.05, 40.0, 80.0)]
        weights = torch.tensor(w, requires_grad=True)
        out = mm.ensemble_signal_torch(tb, time_grid, delays, weights=weights, gamma=params[0], t0=params[1], irf_fs=params[2])
        out.square().sum().backward()

    t_torch = best(torch_step, args.repeat)
    print(f"irf_operator           {1e3 * t_k:9.2f} ms   ({args.delays} x {args.t})")
    print(f"convolve_basis         {1e3 * t_cols:9.2f} ms   (NNLS columns, {args.m} x {args.delays} x {args.q})")
    print(f"ensemble_signal        {1e3 * t_sig:9.2f} ms")
    print(f"ensemble_signal_torch  {1e3 * t_torch:9.2f} ms   (forward + backward)")

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from molmovie.trajectories import Ensemble

    from _fixtures import CS2_SYMBOLS, cs2_positions

    n = args.sim
    pos = np.stack([cs2_positions(args.t, dt=dt, seed=k, dissociate=k % 2 == 1) for k in range(n)])
    ens = Ensemble("cs2", CS2_SYMBOLS, time_grid, pos, np.full(n, args.t), np.arange(n) % 2 == 1, [""] * n)
    q = np.linspace(0.5, 6.8, args.q)
    t_sim = best(lambda: mm.simulate_measurement(ens, q=q, delays=delays, gamma=0.05, photons=1e5, seed=0, **kw), args.repeat)
    print(f"simulate_measurement   {t_sim:9.2f} s    ({n} CS2 trajectories x {args.t} frames, noise and truth)")


if __name__ == "__main__":
    main()
