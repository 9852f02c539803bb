"""Throughput of the trajectory generator: trajectories per minute per molecule, 1 and 2 workers.

Each run uses the molecule's built-in model at the paper's timing (NMM and CS2:
1 ps, C2H4: 150 fs, 0.5 fs steps). The clock starts when the first trajectory
can start (after the xTB set-up and, for 2 workers, the local Dask cluster) and
stops when the last one ends; set-up times are printed separately. The
projection for the paper's dataset sizes (Table 1: NMM 107, C2H4 1000, CS2
942) uses the 2-worker rate plus the set-up.

    python benchmarks/bench_generate.py            # about 3 minutes on 2 free cores
    python benchmarks/bench_generate.py --scale 2  # twice the trajectories per timing
    python benchmarks/bench_generate.py --molecules cs2 --workers 1 --stop-dissociated

The machine is shared: the load average before and after is printed, and a
loaded machine gives slower numbers than an idle one.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

PAPER = {"nmm": 107, "c2h4": 1000, "cs2": 942}
#: trajectories per timing with 1 worker (2 workers run twice as many)
BASE = {"nmm": 2, "c2h4": 16, "cs2": 4}


def timed(molecule: str, n: int, workers: int, seed: int, stop: bool = False) -> dict:
    from molmovie.dynamics import default_model, generate
    from molmovie.molecules import builtin

    model = default_model(builtin(molecule)).replace(stop_dissociated=stop)
    marks: list[float] = []
    t0 = time.perf_counter()
    ds = generate(
        molecule, n, model=model, workers=workers, seed=seed, progress=lambda done, *a: marks.append(time.perf_counter())
    )
    t1 = time.perf_counter()
    run = marks[-1] - marks[0]
    steps = ds.ensemble.provenance["model"]["duration"] / ds.ensemble.provenance["model"]["timestep"]
    return {
        "setup_s": marks[0] - t0,
        "run_s": run,
        "per_min": 60.0 * n / run,
        "ms_per_step": 1e3 * run * workers / (n * steps),
        "wall_s": t1 - t0,
        "dissociated": int(ds.dissociated.sum()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=1, help="multiply the number of trajectories per timing")
    ap.add_argument("--molecules", default="c2h4,cs2,nmm")
    ap.add_argument("--workers", default="1,2", help="worker counts to time")
    ap.add_argument("--stop-dissociated", action="store_true", help="end trajectories once fragments are apart")
    args = ap.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; cores: {os.cpu_count()}")
    print(f"{'molecule':8} {'workers':>7} {'traj':>5} {'set-up s':>9} {'traj/min':>9} {'ms/step/core':>12}")
    projection, ideal = {}, {}
    for mol in args.molecules.split(","):
        rates = {}
        for workers in (int(w) for w in args.workers.split(",")):
            n = BASE[mol] * args.scale * workers
            r = timed(mol, n, workers, seed=100 + workers, stop=args.stop_dissociated)
            rates[workers] = r
            print(f"{mol:8} {workers:7d} {n:5d} {r['setup_s']:9.1f} {r['per_min']:9.2f} {r['ms_per_step']:12.2f}", flush=True)
        if 2 in rates:
            r2 = rates[2]
            projection[mol] = (r2["setup_s"] + 60.0 * PAPER[mol] / r2["per_min"]) / 60.0
            if 1 in rates:
                print(f"{'':8} speed-up with 2 workers: {r2['per_min'] / rates[1]['per_min']:.2f}x")
        r1 = rates[min(rates)]
        ideal[mol] = PAPER[mol] / (2 * r1["per_min"] / min(rates))
    print()
    print("projected time for the paper's dataset sizes with 2 workers:")
    for mol, minutes in projection.items():
        print(f"  {mol:5} {PAPER[mol]:5d} trajectories: {minutes:6.1f} min")
    print(f"  all three: {sum(projection.values()):.1f} min (target: < 45 min)")
    print("the same from the 1-worker rate, if 2 free cores gave twice the rate of one:")
    for mol, minutes in ideal.items():
        print(f"  {mol:5} {PAPER[mol]:5d} trajectories: {minutes:6.1f} min")
    print(f"  all three: {sum(ideal.values()):.1f} min")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
