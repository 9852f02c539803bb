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
``--space`` as given), ``--repeats`` times each way, alternating, in one process:

* ``torch``: PyTorch's Eq. (1) (``kernel="torch"``) and L-BFGS, the fit before
  the compiled kernels (and the reference they are tested against);
* ``compiled L-BFGS`` (distances only): the compiled kernels, the same L-BFGS
  (``solver="lbfgs"``): what the kernels alone bring;
* ``compiled``: the CPU's default (``kernel="auto"``): for distances the
  compiled kernels with Levenberg-Marquardt on each whole series
  (``solver="gauss-newton"``, which converges where L-BFGS stops after its 100
  iterations).

It prints the medians, the ratio of the first to the last, the study's four
scores of each answer (sums over the test frames) and, for distances, the
objective each answer reaches (the MAP's, summed over the split: lower is a
better minimum of the same function). With ``--rounding`` it also refits
each split once with PyTorch on ΔS × (1 + 1e-15), a change no measurement can
see, and prints how far that moves PyTorch's own four scores beside how far the
other two ways move them: where L-BFGS stops short of its minimum, the scores of
the fit before are defined only to that precision:

    python benchmarks/bench_refine.py --study /work/runs/base --rounding   # quick preset, five test splits
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
    parser.add_argument(
        "--rounding",
        action="store_true",
        help="with --study: also refit each split once with PyTorch on ΔS x (1 + 1e-15) and print how far that moves "
        "PyTorch's own scores, beside how far the compiled kernels (same L-BFGS) and the default move them",
    )
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
    ways = {"torch": dict(kernel="torch"), "compiled": dict(kernel="auto")}
    if args.space == "distances":
        ways = {
            "torch": dict(kernel="torch"),
            "compiled L-BFGS": dict(kernel="compiled", solver="lbfgs"),
            "compiled": dict(kernel="auto"),
        }
    names = " / ".join(ways)
    extra = " | objective" if args.space == "distances" else ""
    print(
        f"| experiment | series x frames x pairs | {' | '.join(f'{w} s' for w in ways)} | ratio | "
        f"{' | '.join(SCORES)}{extra} ({names}) |"
    )
    print("|---|---|" + "---|" * len(ways) + "---|" + "---|" * (len(SCORES) + bool(extra)))
    # first calls pay one-off costs that are no part of a fit: torch.optim imports torch._dynamo (5 s here), numba
    # loads its cached kernels; a tiny fit with each kernel takes them before the clock starts
    tiny = np.full((1, 3, 3), 2.0)
    for kernel in ("torch", "compiled"):
        refine_distances(
            tiny, 0.1 * tiny, np.zeros((1, 3, 100)), symbols=["C", "S", "S"], spec=_quick_spec(), kernel=kernel, space=args.space
        )
    data, totals, rounding = {}, dict.fromkeys(ways, 0.0), {}
    for exp in EXPERIMENTS:
        if exp.key not in wanted:
            continue
        if not (args.study / "models" / f"{exp.key}-nearest.safetensors").exists():
            print(f"| {exp.label} | (no nearest model in this study: an older revision) |", flush=True)
            continue
        if exp.dataset not in data:  # the molecule's, or (another probe) its own: data/cs2-electron-3700kev.h5
            data[exp.dataset] = read_dataset(args.study / "data" / f"{exp.dataset}.h5")
        test = experiment_dataset(data[exp.dataset], exp, seed).split("test")
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
        seconds: dict[str, list[float]] = {w: [] for w in ways}
        scores = {}
        for _ in range(args.repeats):
            for way, settings in ways.items():
                start = time.perf_counter()
                got, _ = refine_distances(prior, model.refine_std * prior, test.dS, **kw, **settings)
                seconds[way].append(time.perf_counter() - start)
                scores[way] = evaluate(got, test).summary()
                if args.space == "distances":
                    scores[way]["objective"] = _objective(got, prior, test, model)
        med = {k: float(np.median(v)) for k, v in seconds.items()}
        for k in totals:
            totals[k] += med[k]
        shown = [*SCORES, "objective"] if args.space == "distances" else SCORES
        each = " | ".join(" / ".join(f"{scores[w][k]:.4g}" for w in ways) for k in shown)
        shape = f"{prior.shape[0]} x {prior.shape[1]} x {prior.shape[2]}"
        times = " | ".join(f"{med[w]:.2f}" for w in ways)
        print(f"| {exp.label} | {shape} | {times} | {med['torch'] / med['compiled']:.1f} | {each} |", flush=True)
        if args.rounding:
            got, _ = refine_distances(prior, model.refine_std * prior, test.dS * (1 + 1e-15), **kw, **ways["torch"])
            rounding[exp.label] = {
                "torch, ΔS x (1 + 1e-15)": _largest_change(evaluate(got, test).summary(), scores["torch"]),
                **{w: _largest_change(scores[w], scores["torch"]) for w in ways if w != "torch"},
            }
    times = " | ".join(f"{totals[w]:.2f}" for w in ways)
    print(
        f"| all | | {times} | {totals['torch'] / totals['compiled']:.1f} |" + " |" * (len(SCORES) + (args.space == "distances"))
    )
    if rounding:
        cols = list(next(iter(rounding.values())))
        print("\nLargest relative change of the four scores against PyTorch's fit (torch column):")
        print("| experiment | " + " | ".join(cols) + " |")
        print("|---|" + "---|" * len(cols))
        for label, row in rounding.items():
            print(f"| {label} | " + " | ".join(f"{row[c]:.2%}" for c in cols) + " |")


def _largest_change(scores: dict, reference: dict) -> float:
    """The largest relative change of the study's four scores from ``reference``'s."""
    from molmovie.evaluation.study import SCORES

    return max(abs(scores[k] - reference[k]) / abs(reference[k]) for k in SCORES)


def _objective(got, prior, test, model) -> float:
    """The fit of distances' objective at ``got``, summed over the split's valid frames (the module notes of
    :mod:`molmovie.inversion._refine`: reference "first", noise-free σ, heavy pairs refined, the prior's
    relative width ``refine_std``), written out here with the package's Eq. (1)."""
    from molmovie.geometry import heavy_pairs
    from molmovie.inversion._refine import NOISE_FREE_SIGMA
    from molmovie.scattering import intensity_from_distances

    total = 0.0
    heavy = heavy_pairs(list(model.symbols_))
    for m in range(got.shape[0]):
        L = int(np.isfinite(got[m]).all(-1).sum())
        intensity = intensity_from_distances(model.symbols_, got[m, :L], model.spec_.q, **model.spec_.forward())
        resid = (intensity / intensity[:1] - 1.0 - test.dS[m, :L]) / NOISE_FREE_SIGMA
        z = np.log(got[m, :L, heavy] / prior[m, :L, heavy]) / model.refine_std
        total += 0.5 * float((resid**2).sum()) + 0.5 * model.refine_weight * float((z**2).sum())
    return total


if __name__ == "__main__":
    main()
