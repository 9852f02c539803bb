"""Benchmark: the signal fit at inference (``refine_distances``), seconds per series, by stage; or on a study's test splits.

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

With ``--study FOLDER`` (a finished ``molmovie reproduce`` folder, read only)
it times instead the case the study runs: the nearest method's answers on
each experiment's test split (its saved model, ``refine=False``), refined as
its ``refine=True`` setting does (:func:`~molmovie.inversion.refine_distances`,
``--space`` as given), once with PyTorch's Eq. (1) (``kernel="torch"``, the
reference and the fit before the compiled kernels) and once with the compiled
kernels (``kernel="compiled"``, the default on the CPU), ``--repeats`` times
each, alternating, in one process. It prints the medians, their ratio, and
the study's four scores of both answers (sums over the test frames):

    python benchmarks/bench_refine.py --study /work/runs/base              # quick preset, five test splits
    python benchmarks/bench_refine.py --study runs/quick --experiments cs2,nmm --space geometry
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

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
    parser.add_argument("--study", type=Path, default=None, help="a study folder: time its test splits instead")
    parser.add_argument("--experiments", default=None, help="with --study: comma-separated experiments (default all)")
    parser.add_argument("--space", default="distances", choices=("distances", "geometry"), help="with --study")
    args = parser.parse_args()

    import numba
    import torch

    from molmovie._numba import configure
    from molmovie.inversion import refine_distances

    configure()
    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    if args.study is not None:
        study(args)
        return
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


def _quick_spec():
    from molmovie.scattering import SignalSpec, q_grid

    return SignalSpec(q_grid(), reference="first")


def study(args) -> None:
    """The nearest method's answers on each test split of a study, refined with each kernel: medians, ratio, scores."""
    from molmovie.evaluation import evaluate
    from molmovie.evaluation.study import EXPERIMENTS, SCORES
    from molmovie.evaluation.study.stages import experiment_dataset
    from molmovie.inversion import load_method, refine_distances
    from molmovie.io import read_dataset

    seed = json.loads((args.study / "study.json").read_text()).get("seed", 0)
    wanted = args.experiments.split(",") if args.experiments else [e.key for e in EXPERIMENTS]
    print(
        f"{args.study}: nearest method's answers on the test splits, space={args.space!r}, {args.threads} thread(s) "
        f"(torch and numba), {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}, median of {args.repeats}"
    )
    print(f"| experiment | series x frames x pairs | torch s | compiled s | ratio | {' | '.join(SCORES)} (torch / compiled) |")
    print("|---|---|---|---|---|" + "---|" * len(SCORES))
    # first calls pay one-off costs that are no part of a fit: torch.optim imports torch._dynamo (5 s here), numba
    # loads its cached kernels; a tiny fit with each kernel takes them before the clock starts
    tiny = np.full((1, 3, 3), 2.0)
    for kernel in ("torch", "compiled"):
        refine_distances(
            tiny, 0.1 * tiny, np.zeros((1, 3, 100)), symbols=["C", "S", "S"], spec=_quick_spec(), kernel=kernel, space=args.space
        )
    data, totals = {}, {"torch": 0.0, "compiled": 0.0}
    for exp in EXPERIMENTS:
        if exp.key not in wanted:
            continue
        if exp.molecule not in data:
            data[exp.molecule] = read_dataset(args.study / "data" / f"{exp.molecule}.h5")
        test = experiment_dataset(data[exp.molecule], exp, seed).split("test")
        model = load_method(args.study / "models" / f"{exp.key}-nearest.safetensors")
        model.set_params(refine=False)
        prior = model.predict(test.dS, q=test.q, lengths=test.length).distances
        # as NearestReference.predict with refine=True does
        kw = dict(
            symbols=model.symbols_,
            spec=model.spec_,
            lengths=np.isfinite(prior).all(-1).sum(axis=1),
            weight=model.refine_weight,
            space=args.space,
        )
        seconds: dict[str, list[float]] = {"torch": [], "compiled": []}
        scores = {}
        for _ in range(args.repeats):
            for kernel in seconds:
                start = time.perf_counter()
                got, _ = refine_distances(prior, model.refine_std * prior, test.dS, kernel=kernel, **kw)
                seconds[kernel].append(time.perf_counter() - start)
                scores[kernel] = evaluate(got, test).summary()
        med = {k: float(np.median(v)) for k, v in seconds.items()}
        for k in totals:
            totals[k] += med[k]
        both = " | ".join(f"{scores['torch'][k]:.4g} / {scores['compiled'][k]:.4g}" for k in SCORES)
        shape = f"{prior.shape[0]} x {prior.shape[1]} x {prior.shape[2]}"
        print(
            f"| {exp.label} | {shape} | {med['torch']:.2f} | {med['compiled']:.2f} | {med['torch'] / med['compiled']:.1f} | {both} |",
            flush=True,
        )
    print(f"| all | | {totals['torch']:.2f} | {totals['compiled']:.2f} | {totals['torch'] / totals['compiled']:.1f} | |")


if __name__ == "__main__":
    main()
