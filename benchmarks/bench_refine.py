"""Benchmark: the signal fit at inference (``refine_distances``), seconds per series, by stage.

Builds ``--series`` synthetic series of a built-in molecule (random harmonic
motion around its minimum, as ``bench_vrnn.py``; T frames, 100 q points,
exact ΔS against the first frame from molmovie's Eq. (1)), and a prior
around the truth (each distance times 1 + 5 % noise, σ 10 % of it). It then
times, in one process and one run, ``--repeats`` times each:

* the fit of distances (``space="distances"``),
* the geometry fit without continuation (``sweeps=0``: the joint L-BFGS stages),
* the geometry fit with one continuation pass (``sweeps=1``, the default),

and prints the medians per series; the continuation's cost is the difference
of the last two. Series are refined one at a time by the joint stages and
all at once by the continuation (each series' frame t its own
Levenberg-Marquardt problem), so the continuation's cost per series falls
as ``--series`` grows.

    python benchmarks/bench_refine.py                          # CS2, 8 series x 201 frames
    python benchmarks/bench_refine.py --molecule c2h4 --series 32
    python benchmarks/bench_refine.py --molecule nmm --series 2 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def series(molecule: str, M: int, T: int, seed: int):
    """Distances (M, T, P), exact ΔS (M, T, Q) against each series' first frame, the spec, the symbols."""
    from molmovie.geometry import distances
    from molmovie.molecules import builtin
    from molmovie.scattering import SignalSpec, intensity_from_distances, q_grid

    mol = builtin(molecule)
    rng = np.random.default_rng(seed)
    t = np.arange(T) * 5.0
    modes = rng.standard_normal((M, 6, mol.n_atoms, 3)) * 0.05
    freq = rng.uniform(2 * np.pi / 100, 2 * np.pi / 15, (M, 6))
    phase = rng.uniform(0, 2 * np.pi, (M, 6))
    wave = np.sin(freq[:, :, None] * t[None, None, :] + phase[:, :, None])
    pos = mol.positions[None, None] + np.einsum("mkt,mkna->mtna", wave, modes)
    R = distances(pos)
    q = q_grid()
    intensity = intensity_from_distances(mol.symbols, R, q)
    return R, intensity / intensity[:, :1] - 1.0, SignalSpec(q, reference="first"), list(mol.symbols)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecule", default="cs2", choices=("cs2", "c2h4", "nmm"))
    parser.add_argument("--series", type=int, default=8)
    parser.add_argument("--frames", type=int, default=201)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the study's workers use 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from molmovie.inversion import refine_distances

    torch.set_num_threads(args.threads)
    R, dS, spec, symbols = series(args.molecule, args.series, args.frames, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    prior = R * (1 + 0.05 * rng.standard_normal(R.shape))
    std = 0.1 * prior
    print(
        f"{args.molecule}: {args.series} series x {args.frames} frames x {R.shape[-1]} pairs x {len(spec.q)} q, "
        f"{args.threads} torch thread(s), {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    kw = dict(symbols=symbols, spec=spec, device="cpu")
    cases = {
        "distances": dict(space="distances"),
        "geometry, sweeps=0": dict(space="geometry", sweeps=0),
        "geometry, sweeps=1": dict(space="geometry", sweeps=1),
    }
    medians, errors = {}, {}
    for name, settings in cases.items():
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            got, _ = refine_distances(prior, std, dS, **kw, **settings)
            seconds.append(time.perf_counter() - start)
        medians[name] = float(np.median(seconds))
        errors[name] = float(np.mean(np.abs(got - R)))
    prior_error = float(np.mean(np.abs(prior - R)))
    print(f"| fit | seconds per series (median of {args.repeats}) | mean abs. distance error (Å; prior {prior_error:.4f}) |")
    print("|---|---|---|")
    for name in cases:
        print(f"| {name} | {medians[name] / args.series:.3f} | {errors[name]:.4f} |")
    cont = medians["geometry, sweeps=1"] - medians["geometry, sweeps=0"]
    print(f"| continuation (difference) | {cont / args.series:.3f} | |")


if __name__ == "__main__":
    main()
