"""The asymmetric stretch of a triatomic with two equivalent atoms (CS2), in a finished study's answers.

For one experiment of a study folder written by ``molmovie reproduce`` (its
``data/*.h5``, ``study.json`` and ``eval/*.npz``, read only), every method's
test-split answers are compared with the truth on the two distances from the
central atom to the equivalent ones (pairs 0 and 1, C-S1 and C-S2 for CS2)
and on the third (S-S): the mean of |R1 - R2| (the asymmetric stretch, whose
sign the signal cannot tell: the two end atoms scatter alike), its mean
absolute error and its correlation with the true value, and the mean absolute
errors of R1 + R2 and of the third distance. A method that hedges which end
atom is the far one answers a small stretch that still follows the truth.

    python benchmarks/stretch.py runs/paper --experiment cs2-bound
    python benchmarks/stretch.py runs/paper --experiment cs2-bound --extra other.npz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from molmovie.evaluation.stage import read_scores
from molmovie.evaluation.study import EXPERIMENTS
from molmovie.evaluation.study.stages import experiment_dataset
from molmovie.io import read_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a study folder (data/, eval/, study.json)")
    parser.add_argument("--experiment", default="cs2-bound", choices=[e.key for e in EXPERIMENTS if e.molecule == "cs2"])
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        type=Path,
        help="another evaluation file of the same experiment's test split, repeatable",
    )
    args = parser.parse_args()
    exp = next(e for e in EXPERIMENTS if e.key == args.experiment)
    seed = json.loads((args.study / "study.json").read_text()).get("seed", 0)
    test = experiment_dataset(read_dataset(args.study / "data" / f"{exp.molecule}.h5"), exp, seed).split("test")
    mask, truth = test.mask, test.distances
    files = sorted(
        p
        for p in (args.study / "eval").glob(f"{exp.key}-*.npz")
        if "transfer" not in p.name and (exp.key != "cs2" or not p.name.startswith("cs2-bound"))
    )
    stretch = np.abs(truth[..., 0] - truth[..., 1])[mask]
    print(
        f"{exp.label}: {test.n_trajectories} test trajectories, {int(mask.sum())} frames; "
        f"true mean |R1 - R2| {stretch.mean():.3f} Å"
    )
    print("| answers | mean abs(R1 - R2) (Å) | its error | its correlation with the truth | error of R1 + R2 | error of R3 |")
    print("|---|---|---|---|---|---|")
    for path in files + args.extra:
        d = read_scores(path)["distances"]
        s = np.abs(d[..., 0] - d[..., 1])[mask]
        total = np.abs(d[..., :2].sum(-1) - truth[..., :2].sum(-1))[mask].mean()
        third = np.abs(d[..., 2] - truth[..., 2])[mask].mean()
        corr = np.corrcoef(s, stretch)[0, 1] if s.std() > 0 else float("nan")
        print(f"| {path.stem} | {s.mean():.3f} | {np.abs(s - stretch).mean():.3f} | {corr:.2f} | {total:.4f} | {third:.4f} |")


if __name__ == "__main__":
    main()
