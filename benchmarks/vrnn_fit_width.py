"""The VRNN's signal-fit prior width and the σ it reports after the fit, chosen on validation data.

For the VRNN models of a finished study (``models/``, ``study.json``, its data folder; read only), each
model answers the validation split under the noise-free condition and the noise ladder (the study's own
draws: :func:`molmovie.evaluation.study.conditions.condition_signals`, draw seed = the model's training
seed), as itself (no signal fit), and its answer is given the shared signal fit
(:data:`molmovie.evaluation.study.shared_fit.FIT`, told the true σ) with a prior of width s × the
network's σ, for each scale s asked. Each (experiment, seed, condition, s) is one ``.npz`` in ``--out``
(reused when there: the run is resumable), holding the true and fitted distances and σ.

``--choose`` reads those files and prints (Markdown): per condition and s, the per-frame
symmetry-aware RMSD sum (and its ratio to the best s of each experiment, seed and condition), the
coverage of ±2σ with the fit's own σ, and per noise level the multiplier k of that σ that brings the
pooled coverage (every experiment, seed, pair and frame) to ``--target``, with each experiment's
coverage under it.

    python benchmarks/vrnn_fit_width.py STUDY --out DIR --experiments cs2,cs2-bound --scales 1,2,0.5,4
    python benchmarks/vrnn_fit_width.py STUDY --out DIR --choose
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

import numpy as np

from molmovie.evaluation.metrics import evaluate
from molmovie.evaluation.study import EXPERIMENTS
from molmovie.evaluation.study.conditions import CONDITIONS, condition_signals
from molmovie.evaluation.study.shared_fit import FIT
from molmovie.evaluation.study.stages import experiment_splits, limit_threads
from molmovie.inversion import load_method, refine_distances
from molmovie.io import read_dataset

LADDER = ("clean", "noise-0.001", "noise-0.003", "noise-0.01", "noise-0.03")


def _model_path(study: Path, exp: str, seed: int, base: int) -> Path:
    return study / "models" / (f"{exp}-vrnn.safetensors" if seed == base else f"{exp}-vrnn-seed{seed}.safetensors")


def run(args: argparse.Namespace) -> None:
    manifest = json.loads((args.study / "study.json").read_text())
    base = manifest["seed"]
    data_dir = Path(manifest.get("data_dir") or args.study / "data")
    args.out.mkdir(parents=True, exist_ok=True)
    scales = [float(s) for s in args.scales.split(",")]
    data: dict = {}
    for s in scales:  # every model at one scale before the next: an early look is possible
        for exp in (e for e in EXPERIMENTS if e.key in args.experiments.split(",")):
            if exp.molecule not in data:
                data[exp.molecule] = read_dataset(data_dir / f"{exp.molecule}.h5")
            _, val, _ = experiment_splits(data[exp.molecule], exp, base)
            for seed in range(base, base + args.seeds):
                path = _model_path(args.study, exp.key, seed, base)
                if not path.exists():
                    continue
                model = None
                for key in LADDER:
                    out = args.out / f"{exp.key}-seed{seed}-{key}-s{s:g}.npz"
                    if out.exists():
                        continue
                    if model is None:
                        model = load_method(path)
                        model.set_params(refine=False)
                    cond = CONDITIONS[key]
                    dS = condition_signals(val, cond, seed=seed, experiment=exp.key)
                    pred = model.predict(dS, q=val.q, lengths=val.length)
                    t = time.perf_counter()
                    assert val.spec is not None
                    R, std = refine_distances(
                        pred.distances,
                        s * pred.std,
                        dS,
                        symbols=val.symbols,
                        spec=val.spec,
                        lengths=val.length,
                        noise=cond.noise if cond.noise > 0 else None,
                        **FIT,
                    )
                    seconds = time.perf_counter() - t
                    np.savez_compressed(
                        out,
                        true=val.distances,
                        mask=val.mask,
                        net=pred.distances,
                        net_std=pred.std,
                        fit=R,
                        fit_std=std,
                        rmsd_sym_net=evaluate(pred.distances, val).summary()["rmsd_sym_sum"],
                        rmsd_sym_fit=evaluate(R, val).summary()["rmsd_sym_sum"],
                        seconds=seconds,
                    )
                    print(f"{exp.key} seed {seed} {key} s={s:g}: {seconds:.0f} s", flush=True)


def _coverage(z: dict, k: float, which: str = "fit") -> float:
    m = z["mask"]
    return float((np.abs(z[which] - z["true"]) <= 2 * k * z[f"{which}_std"])[m].mean())


def choose(args: argparse.Namespace) -> None:
    files = sorted(args.out.glob("*.npz"))
    rows = []
    for f in files:
        exp, rest = f.stem.split("-seed")
        seed, rest = rest.split("-", 1)
        key, s = rest.rsplit("-s", 1)
        with np.load(f) as z:
            rows.append({"exp": exp, "seed": int(seed), "cond": key, "s": float(s), **{k: z[k] for k in z.files}})
    if not rows:
        raise SystemExit(f"no result files in {args.out}")
    scales = sorted({r["s"] for r in rows})
    print(
        "| condition | s | sym. RMSD per frame, sum over experiments and seeds | mean ratio to the best s | ±2σ coverage, fit's σ |"
    )
    print("|---|---|---|---|---|")
    for key in LADDER:
        groups = {(r["exp"], r["seed"]) for r in rows if r["cond"] == key}
        for s in scales:
            mine = [r for r in rows if r["cond"] == key and r["s"] == s]
            if len(mine) < len(groups) or not mine:
                continue
            ratios = []
            for r in mine:
                best = min(
                    float(x["rmsd_sym_fit"]) for x in rows if x["cond"] == key and (x["exp"], x["seed"]) == (r["exp"], r["seed"])
                )
                ratios.append(float(r["rmsd_sym_fit"]) / best)
            cov = ", ".join(f"{r['exp']}/{r['seed']} {100 * _coverage(r, 1.0):.0f} %" for r in mine)
            total = sum(float(r["rmsd_sym_fit"]) for r in mine)
            print(f"| {key} | {s:g} | {total:.4g} | {np.mean(ratios):.3f} | {cov} |")
        net = [r for r in rows if r["cond"] == key and r["s"] == scales[0]]
        print(
            f"| {key} | network alone | {sum(float(r['rmsd_sym_net']) for r in net):.4g} | - | "
            + ", ".join(f"{r['exp']}/{r['seed']} {100 * _coverage(r, 1.0, 'net'):.0f} %" for r in net)
            + " |"
        )
    s = args.scale
    print(f"\nThe fit's σ × k, prior scale s = {s:g}: k bringing the pooled coverage to {100 * args.target:.0f} %\n")
    print("| condition | k | pooled | per experiment and seed |")
    print("|---|---|---|---|")
    for key in LADDER:
        mine = [r for r in rows if r["cond"] == key and r["s"] == s]
        if not mine:
            continue
        # pooled: every (pair, frame) of every experiment and seed; k = the target quantile of |error| / (2σ)
        ratio = np.concatenate([(np.abs(r["fit"] - r["true"]) / (2 * r["fit_std"]))[r["mask"]].ravel() for r in mine])
        k = float(np.quantile(ratio, args.target))
        pooled = float(np.mean(ratio <= k))
        each = ", ".join(f"{r['exp']}/{r['seed']} {100 * _coverage(r, k):.0f} %" for r in mine)
        print(f"| {key} | {k:.3g} | {100 * pooled:.0f} % | {each} |")
    choose_rule(args, [r for r in rows if r["s"] == s])


def _margin(rows: list[dict], sd) -> tuple[float, dict]:
    """The smallest distance inside 80-98 % of any (experiment, condition)'s coverage (mean over its seeds) with σ = sd(row); and those coverages."""
    cov: dict = {}
    for r in rows:
        m = r["mask"]
        cov.setdefault((r["exp"], r["cond"]), []).append(float((np.abs(r["fit"] - r["true"]) <= 2 * sd(r))[m].mean()))
    means = {k: float(np.mean(v)) for k, v in cov.items()}
    return min(min(c - 0.80, 0.98 - c) for c in means.values()), means


def _prior_width(r: dict) -> np.ndarray:
    """The prior's relative width at the fitted distances: σ̂ R / R̂."""
    return r["net_std"] * r["fit"] / r["net"]


#: Rules for the σ reported after the fit, each with one constant c (its grid): name -> (σ(row, c), grid).
#: The fit's σ is the Laplace σ under noise and the prior's relative width (scale s) for noise-free signals.
RULES = {
    "a multiple of the fit's σ, one per level": (lambda r, c: c * r["fit_std"], np.arange(0.1, 12.0, 0.01)),
    "the fit's σ with a floor σ_m added to the noise: × sqrt(1 + (σ_m/σ)²) (under noise only)": (
        lambda r, c: r["fit_std"] * np.sqrt(1.0 + (c / CONDITIONS[r["cond"]].noise) ** 2),
        np.arange(0.0, 0.03, 0.0005),
    ),
    "the fit's σ and c × the prior's relative width in quadrature": (
        lambda r, c: np.sqrt(r["fit_std"] ** 2 + (c * _prior_width(r)) ** 2) if CONDITIONS[r["cond"]].noise else c * r["fit_std"],
        np.arange(0.0, 1.0, 0.01),
    ),
    "c × the prior's relative width at the fitted distances, every level": (
        lambda r, c: c * _prior_width(r),
        np.arange(0.05, 1.5, 0.01),
    ),
}


def choose_rule(args: argparse.Namespace, rows: list[dict]) -> None:
    """For each rule, the constant that keeps every (experiment, level)'s coverage furthest inside 80-98 %; the coverages."""
    rows = [r for r in rows if r["s"] == args.scale]
    exps = sorted({r["exp"] for r in rows})
    print(f"\nThe σ after the fit, prior scale s = {args.scale:g}: each rule's best constant (per level for the first)\n")
    print("| rule | condition | constant | " + " | ".join(exps) + " | smallest margin inside 80-98 % |")
    print("|---|---|---|" + "---|" * (len(exps) + 1))
    for name, (sd, grid) in RULES.items():
        per_level = name.endswith("one per level")
        noisy = [r for r in rows if CONDITIONS[r["cond"]].noise > 0]
        groups = [[r for r in rows if r["cond"] == k] for k in LADDER] if per_level else [noisy if "noise only" in name else rows]
        for group in groups:
            if not group:
                continue
            c = max(grid, key=lambda x: _margin(group, partial(sd, c=x))[0])
            margin, cov = _margin(group, partial(sd, c=c))
            for key in [k for k in LADDER if any(r["cond"] == k for r in group)]:
                cells = " | ".join(f"{100 * cov[(e, key)]:.0f} %" if (e, key) in cov else "-" for e in exps)
                print(f"| {name} | {key} | {c:.4g} | {cells} | {100 * margin:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--experiments", default="cs2,cs2-bound")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--scales", default="1,2,0.5,4")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--choose", action="store_true", help="read the files in --out and print the tables")
    ap.add_argument("--scale", type=float, default=1.0, help="--choose: the prior scale whose σ multipliers are printed")
    ap.add_argument("--target", type=float, default=0.9, help="--choose: the pooled coverage the multiplier aims at")
    args = ap.parse_args()
    if args.choose:
        choose(args)
        return
    limit_threads(args.threads)
    run(args)


if __name__ == "__main__":
    main()
