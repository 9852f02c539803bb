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

The refinement is only made the default if it lowers the SSR without
raising any RMSD score (issue 13).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from molmovie.evaluation.stage import score_method
from molmovie.evaluation.study import EXPERIMENTS, SCORES, _experiment_dataset
from molmovie.inversion import load_method
from molmovie.io import read_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a study folder (data/, models/, study.json)")
    parser.add_argument("--methods", default="vrnn,nearest", help="comma-separated methods to refine")
    parser.add_argument("--experiments", default=",".join(e.key for e in EXPERIMENTS))
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--set", action="append", default=[], help="refinement setting KEY=VALUE (JSON value), repeatable")
    args = parser.parse_args()
    seed = json.loads((args.study / "study.json").read_text()).get("seed", 0)
    extra = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    wanted = args.experiments.split(",")
    print(f"| experiment | method | refined | {' | '.join(SCORES)} | within ±2σ | seconds |")
    print("|---|---|---|" + "---|" * (len(SCORES) + 2))
    data = {}
    for exp in EXPERIMENTS:
        if exp.key not in wanted:
            continue
        if exp.molecule not in data:
            data[exp.molecule] = read_dataset(args.study / "data" / f"{exp.molecule}.h5")
        part = _experiment_dataset(data[exp.molecule], exp, seed).split(args.split)
        for method in args.methods.split(","):
            model = load_method(args.study / "models" / f"{exp.key}-{method}.safetensors")
            for refined in (False, True):
                model.set_params(refine=refined, **(extra if refined else {}))
                t = time.perf_counter()
                summary = score_method(model, part)["summary"]
                seconds = time.perf_counter() - t
                scores = " | ".join(f"{summary[k]:.4g}" for k in SCORES)
                inside = f"{100 * summary['within_2sigma']:.0f} %" if "within_2sigma" in summary else "-"
                print(f"| {exp.label} | {method} | {'yes' if refined else 'no'} | {scores} | {inside} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
