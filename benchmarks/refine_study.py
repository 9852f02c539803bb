"""Measure the signal fit at inference (issue 13 item 4) on a finished study: scores with and without refinement.

For every experiment of a study folder written by ``molmovie reproduce``
(its ``data/*.h5`` and ``models/*.safetensors``, read only), each method's
saved model predicts the experiment's test split twice, as the study scores
it (:func:`molmovie.evaluation.stage.score_method`): as trained, and with the
setting ``refine=True`` (:func:`molmovie.inversion.refine_distances`). It
prints one markdown table: the study's four scores (sums over the test
frames; smaller is better), the fraction of true distances inside ±2σ, and
the seconds each prediction took.

    python benchmarks/refine_study.py runs/quick
    python benchmarks/refine_study.py runs/quick --methods vrnn --split val --set refine_weight=2
    python benchmarks/refine_study.py runs/paper --methods vrnn --split val --series 24 \
        --baseline refine=true --set refine_noise=0.01

The refinement is only made the default if it lowers the SSR without
raising any RMSD score (issue 13).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from molmovie.evaluation.stage import score_method
from molmovie.evaluation.study import EXPERIMENTS, SCORES
from molmovie.evaluation.study.stages import experiment_dataset
from molmovie.inversion import load_method
from molmovie.io import read_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a study folder (data/, models/, study.json)")
    parser.add_argument("--methods", default="vrnn,nearest", help="comma-separated methods to refine")
    parser.add_argument("--experiments", default=",".join(e.key for e in EXPERIMENTS))
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--set", action="append", default=[], help="refinement setting KEY=VALUE (JSON value), repeatable")
    parser.add_argument(
        "--series", type=int, default=None, help="only the split's first N series (a cheaper look at a large split)"
    )
    parser.add_argument("--seeds", type=int, default=1, help="also the models of training seeds s+1 .. s+K-1 (files -seed{s})")
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        help="setting KEY=VALUE of the first row instead of refine=false (e.g. refine=true), repeatable",
    )
    args = parser.parse_args()
    seed = json.loads((args.study / "study.json").read_text()).get("seed", 0)
    extra = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    first = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.baseline)} or {"refine": False}
    wanted = args.experiments.split(",")
    print(f"| experiment | method | settings | {' | '.join(SCORES)} | within ±2σ | seconds |")
    print("|---|---|---|" + "---|" * (len(SCORES) + 2))
    data = {}
    for exp in EXPERIMENTS:
        if exp.key not in wanted:
            continue
        if exp.molecule not in data:
            data[exp.molecule] = read_dataset(args.study / "data" / f"{exp.molecule}.h5")
        part = experiment_dataset(data[exp.molecule], exp, seed).split(args.split)
        if args.series is not None:
            part = part.subset(np.arange(min(args.series, part.n_trajectories)))
        for method, s in ((m, s) for m in args.methods.split(",") for s in range(seed, seed + args.seeds)):
            model = load_method(args.study / "models" / f"{exp.key}-{method}{'' if s == seed else f'-seed{s}'}.safetensors")
            defaults = model.get_params()
            for refined in (False, True):
                model.set_params(**defaults)
                model.set_params(**({"refine": True, **extra} if refined else first))
                t = time.perf_counter()
                summary = score_method(model, part)["summary"]
                seconds = time.perf_counter() - t
                scores = " | ".join(f"{summary[k]:.4g}" for k in SCORES)
                inside = f"{100 * summary['within_2sigma']:.0f} %" if "within_2sigma" in summary else "-"
                how = ", ".join(f"{k}={v}" for k, v in (({"refine": True, **extra}) if refined else first).items())
                label = method if s == seed else f"{method} (seed {s})"
                print(f"| {exp.label} | {label} | {how} | {scores} | {inside} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
