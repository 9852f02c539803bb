"""Does a method's distance lag the truth? Cross-correlation lag and amplitude of one pair, per test trajectory.

For one experiment of a study folder written by ``molmovie reproduce`` (its
``data/*.h5``, ``eval/*.npz`` and, with ``--unrefined``, ``models/``; all
read only), every evaluation file of the experiment (each method and training
seed) gives, per test trajectory, the lag in frames at which the
cross-correlation of the predicted and the true distance of one pair (each
less its mean over the trajectory) is largest, among lags of at most
``--max-lag`` frames (positive: the prediction comes later), and the ratio of
the prediction's standard deviation over time to the truth's (below 1: damped).
With ``--unrefined`` the VRNN models also predict once more with the signal
fit at inference off.

    python benchmarks/lag.py runs/quick
    python benchmarks/lag.py runs/quick --experiment nmm --pair O-N --unrefined
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from molmovie.evaluation.figures import choose_pair
from molmovie.evaluation.stage import read_scores
from molmovie.evaluation.study import EXPERIMENTS
from molmovie.evaluation.study.stages import experiment_dataset
from molmovie.inversion import load_method
from molmovie.io import read_dataset


def lag_and_amplitude(truth: np.ndarray, pred: np.ndarray, max_lag: int) -> tuple[int, float]:
    """Lag (frames) of the largest cross-correlation of two series (means removed), and std(pred) / std(truth)."""
    x, y = truth - truth.mean(), pred - pred.mean()
    n = len(x)
    lags = np.arange(-min(max_lag, n - 1), min(max_lag, n - 1) + 1)
    corr = [np.dot(x[max(0, -k) : n - max(0, k)], y[max(0, k) : n - max(0, -k)]) / (n - abs(k)) for k in lags]
    return int(lags[int(np.argmax(corr))]), float(np.std(y) / np.std(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a study folder (data/, eval/, models/, study.json)")
    parser.add_argument("--experiment", default="nmm", choices=[e.key for e in EXPERIMENTS])
    parser.add_argument("--pair", default=None, help="a pair label (N2-O5) or two elements (O-N); default: the experiment's")
    parser.add_argument("--max-lag", type=int, default=10, help="largest lag tried, frames")
    parser.add_argument("--unrefined", action="store_true", help="also the VRNN models with the signal fit off")
    args = parser.parse_args()
    manifest = json.loads((args.study / "study.json").read_text())
    exp = {e.key: e for e in EXPERIMENTS}[args.experiment]
    data_dir = Path(manifest["data_dir"]) if manifest.get("data_dir") else args.study / "data"
    test = experiment_dataset(read_dataset(data_dir / f"{exp.molecule}.h5"), exp, manifest.get("seed", 0)).split("test")
    p, label = choose_pair(test.symbols, test.distances[test.mask], args.pair or exp.pair)
    runs = []
    for path in sorted((args.study / "eval").glob(f"{exp.key}-*.npz")):
        stem = path.stem[len(exp.key) + 1 :]
        if "transfer" in stem:
            continue
        runs.append((stem, read_scores(path)["distances"]))
        if args.unrefined and stem.startswith("vrnn"):
            model = load_method(args.study / "models" / f"{exp.key}-{stem}.safetensors").set_params(refine=False)
            runs.append((f"{stem} (no signal fit)", model.predict(test.dS, q=test.q, lengths=test.length).distances))
    print(f"{exp.label}, pair {label}, {test.n_trajectories} test trajectories, lags of at most {args.max_lag} frames")
    print("| predictions | lag per trajectory (frames) | std ratio per trajectory |")
    print("|---|---|---|")
    for name, pred in runs:
        got = [
            lag_and_amplitude(test.distances[m, : test.length[m], p], pred[m, : test.length[m], p], args.max_lag)
            for m in range(test.n_trajectories)
        ]
        print(f"| {name} | {', '.join(str(g[0]) for g in got)} | {', '.join(f'{g[1]:.2f}' for g in got)} |")


if __name__ == "__main__":
    main()
