"""One VRNN across noise levels, or one per level? Train on noisy signals and score on noisy validation signals.

For one experiment of a finished study (its ``data/``, ``models/`` and ``study.json``, read only),
takes the study's VRNN trained on clean signals (its model file, seed 0 of a revision-7 study), and
trains the VRNN with the same settings two more ways -- on signals with noise of one level σ, and on
signals whose noise level each sequence draws from the whole ladder (``signal_noise``) -- and scores
each, as itself (no signal fit), on the validation split under every noise level of the
study's ladder (:mod:`molmovie.evaluation.study.conditions`; the draw of seed ``--seed``). Prints one
Markdown table: the four scores and the fraction of true distances inside ±2σ.

    python benchmarks/noise_training.py RUN cs2-bound --level 0.01
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from molmovie.evaluation.stage import score_prediction
from molmovie.evaluation.study import EXPERIMENTS, PRESETS, SCORES
from molmovie.evaluation.study.conditions import CONDITIONS, NOISE_LEVELS, condition_signals
from molmovie.evaluation.study.stages import experiment_splits, limit_threads
from molmovie.inversion import get_method, load_method
from molmovie.io import read_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("experiment")
    ap.add_argument("--level", type=float, default=0.01, help="the one level of the per-level model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    limit_threads(args.threads)
    manifest = json.loads((args.study / "study.json").read_text())
    preset = PRESETS[manifest["preset"]]
    exp = next(e for e in EXPERIMENTS if e.key == args.experiment)
    train, val, _ = experiment_splits(read_dataset(args.study / "data" / f"{exp.molecule}.h5"), exp, manifest["seed"])
    settings = {**preset.methods["vrnn"], "refine": False, "seed": args.seed}
    settings.pop("signal_noise", None)
    ways = {"clean": 0.0, f"σ = {args.level:g} only": args.level, "the ladder": (0.0, *NOISE_LEVELS)}
    print(f"| trained on | tested at | {' | '.join(SCORES)} | within ±2σ | training s |")
    print("|---|---|" + "---|" * (len(SCORES) + 2))
    for name, noise in ways.items():
        t = time.perf_counter()
        if noise == 0.0 and (args.study / "models" / f"{exp.key}-vrnn.safetensors").exists():
            model = load_method(args.study / "models" / f"{exp.key}-vrnn.safetensors").set_params(refine=False)
        else:
            model = get_method("vrnn", **settings, signal_noise=noise).fit(train, val=val)
        seconds = time.perf_counter() - t
        for key in ("clean", *(f"noise-{s:g}" for s in NOISE_LEVELS)):
            dS = condition_signals(val, CONDITIONS[key], seed=args.seed, experiment=exp.key)
            pred = model.predict(dS, q=val.q, lengths=val.length)
            s = score_prediction(pred.distances, pred.std, val)["summary"]
            cells = " | ".join(f"{s[k]:.4g}" for k in SCORES)
            print(
                f"| {name} | {CONDITIONS[key].label} | {cells} | {100 * s['within_2sigma']:.0f} % | {seconds:.0f} |", flush=True
            )


if __name__ == "__main__":
    main()
