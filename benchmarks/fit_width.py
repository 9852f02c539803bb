"""The prior width the shared signal fit gives methods without a σ, chosen on validation data.

For the experiments of a finished study (``data/``, ``models/``, ``study.json``, read only), each
method without an uncertainty (its saved model; the frame-by-frame baseline and its Viterbi path)
answers the validation split under the given conditions, and its answer is given the shared signal
fit (:func:`molmovie.evaluation.study.shared_fit.shared_fit`) with a prior of relative width w,
for each w asked. Prints one Markdown table: the study's four scores.

    python benchmarks/fit_width.py RUN --experiments cs2,cs2-bound --widths 0.03,0.1,0.3
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from molmovie.evaluation.stage import score_prediction
from molmovie.evaluation.study import EXPERIMENTS, SCORES, shared_fit
from molmovie.evaluation.study.conditions import CONDITIONS, condition_signals
from molmovie.evaluation.study.stages import experiment_splits, limit_threads
from molmovie.inversion import load_method
from molmovie.io import read_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("--experiments", default="cs2,cs2-bound")
    ap.add_argument("--methods", default="nearest,nearest-viterbi")
    ap.add_argument("--conditions", default="clean,noise-0.01")
    ap.add_argument("--widths", default="0.03,0.1,0.3")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    limit_threads(args.threads)
    seed = json.loads((args.study / "study.json").read_text())["seed"]
    widths = [float(w) for w in args.widths.split(",")]
    print(f"| experiment | method | condition | width | {' | '.join(SCORES)} | seconds |")
    print("|---|---|---|---|" + "---|" * (len(SCORES) + 1))
    data = {}
    for exp in (e for e in EXPERIMENTS if e.key in args.experiments.split(",")):
        if exp.molecule not in data:
            data[exp.molecule] = read_dataset(args.study / "data" / f"{exp.molecule}.h5")
        _, val, _ = experiment_splits(data[exp.molecule], exp, seed)
        for method in args.methods.split(","):
            model = load_method(args.study / "models" / f"{exp.key}-{method}.safetensors")
            for key in args.conditions.split(","):
                cond = CONDITIONS[key]
                dS = condition_signals(val, cond, seed=seed, experiment=exp.key)
                pred = model.predict(dS, q=val.q, lengths=val.length)
                s = score_prediction(pred.distances, None, val)["summary"]
                print(f"| {exp.label} | {method} | {cond.label} | none | {' | '.join(f'{s[k]:.4g}' for k in SCORES)} | 0 |")
                for w in widths:
                    t = time.perf_counter()
                    R, _ = shared_fit.shared_fit(pred.distances, w * pred.distances, dS, val, cond)
                    s = score_prediction(R, None, val)["summary"]
                    cells = " | ".join(f"{s[k]:.4g}" for k in SCORES)
                    print(
                        f"| {exp.label} | {method} | {cond.label} | {w:g} | {cells} | {time.perf_counter() - t:.0f} |", flush=True
                    )


if __name__ == "__main__":
    main()
