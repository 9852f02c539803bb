"""The learned method on a measurement (vrnn-ensemble) against the ensemble fit, on synthetic experiments with truth.

For each molecule the training trajectories (the dataset's train split) are both the ensemble fit's basis and
what the learned method is trained on (simulated measurements of them): the same tools. Each synthetic experiment
is made by molmovie's measurement model from trajectories that are in neither (the val and test splits): a random
sub-ensemble of them (Dirichlet weights), a random excitation fraction γ in [0.05, 0.2], time zero and IRF that no
method is told (t0 uniform in the lead range after the first delay, IRF FWHM in [30, 150] fs), and photon noise at two
levels. Every method answers per channel (bound, dissociated); the score is the per-channel heavy-atom mean distance
error: |R̂_c(t) − R_c(t)| averaged over the delays, the heavy-atom pairs and the channels the experiment holds, and the
coverage of ±2σ (σ the method's own for the channel mean) over the same entries. The truth per channel is computed
from the experiment's weights over its trajectories by the ensemble fit's own statistics (the Truth convention:
nearest frame to delay − t0, the first frame before time zero).

Resumable: every trained model and every experiment's scores are kept in the output folder; rerun to go on.

    python benchmarks/learned_vs_ensemble.py DATA_DIR OUT [--molecules cs2,c2h4] [--experiments 6]

DATA_DIR holds cs2.h5 and c2h4.h5 with splits (those of `molmovie reproduce --preset quick`, its data/ folder).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from molmovie.fitting import EnsembleVRNN, get_measurement_method
from molmovie.fitting._ensemble_stats import _Stats
from molmovie.io import read_dataset
from molmovie.measurement import DEFAULT_LEVELS, simulate_measurement

PHOTONS = (1e5, 1e7)
#: per molecule: delays (fs, on the experiment's axis), the lead of t0 after the first delay, the frame step
SETUP = {
    "cs2": dict(delays=np.arange(-100.0, 901.0, 20.0), lead=(20.0, 180.0), dt=20.0),
    "c2h4": dict(delays=np.arange(-30.0, 126.0, 5.0), lead=(10.0, 60.0), dt=5.0),  # the basis lasts 150 fs: delays up to t0 + 150
}


def score(answer, truth_mean, heavy, present) -> dict:
    m, s = answer.channel_distance_mean, answer.channel_distance_mean_std
    idx = {c: k for k, c in enumerate(answer.channels)}
    errs, inside, sds = [], [], []
    for k, c in enumerate(("bound", "dissociated")):
        if not present[k] or c not in idx:
            continue
        est, sd, tru = m[idx[c]][:, heavy], s[idx[c]][:, heavy], truth_mean[k][:, heavy]
        errs.append(np.abs(est - tru).mean())
        inside.append(np.mean(np.abs(est - tru) <= 2 * sd))
        sds.append(np.median(sd))
    return {"error": float(np.mean(errs)), "coverage": float(np.mean(inside)), "sigma": float(np.mean(sds))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--molecules", default="cs2,c2h4")
    ap.add_argument("--experiments", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--bootstrap", type=int, default=30)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for mol in args.molecules.split(","):
        cfg = SETUP[mol]
        ds = read_dataset(args.data_dir / f"{mol}.h5")
        basis = ds.split("train")
        held = ds.subset(np.concatenate([ds.splits["val"], ds.splits["test"]]))
        q = ds.q
        delays = cfg["delays"]
        heavy = np.array([not ("H" in lab.split("-")[0] or "H" in lab.split("-")[1]) for lab in _labels(ds.symbols)])
        model_file = args.out / f"{mol}-learned.safetensors"
        if model_file.exists():
            learned = EnsembleVRNN.load(model_file)
        else:
            t = time.perf_counter()
            learned = EnsembleVRNN(epochs=args.epochs, lead_range=cfg["lead"], dt=cfg["dt"], irf_range=(20.0, 200.0))
            with threadpool_limits(1, "blas"):
                learned.train(
                    basis, q=q, progress=lambda d, i, m=mol: print(f"  {m} epoch {d}: val {i['val_loss']:.4g}", flush=True)
                )
            learned.save(model_file)
            print(f"{mol}: trained in {time.perf_counter() - t:.0f} s", flush=True)
        stats = _Stats(held, delays, np.asarray(DEFAULT_LEVELS))
        for photons in PHOTONS:
            for k in range(args.experiments):
                path = args.out / f"{mol}-{photons:.0e}-{k}.json"
                if path.exists():
                    continue
                rng = np.random.default_rng([k, int(np.log10(photons))])
                n = held.n_trajectories
                pick = np.sort(rng.choice(n, size=rng.integers(max(2, n // 3), n + 1), replace=False))
                w = rng.dirichlet(np.ones(pick.size))
                gamma, lead, irf = rng.uniform(0.05, 0.2), rng.uniform(*cfg["lead"]), rng.uniform(30.0, 150.0)
                t0 = float(delays[0] + lead)
                meas = simulate_measurement(
                    held,
                    q=q,
                    delays=delays,
                    weights=w,
                    trajectories=pick,
                    gamma=gamma,
                    t0=t0,
                    irf_fs=irf,
                    photons=photons,
                    seed=k,
                )
                full = np.zeros(n)
                full[pick] = w
                tr = stats(full, t0)
                present = tr["channel_fraction"] > 0
                row = {
                    "molecule": mol,
                    "photons": photons,
                    "k": k,
                    "gamma": gamma,
                    "t0": t0,
                    "irf": irf,
                    "present": present.tolist(),
                }
                with threadpool_limits(1, "blas"):
                    t = time.perf_counter()
                    a = learned.fit(meas).result
                    row["learned_s"] = time.perf_counter() - t
                    learned.refine = False  # the network's answer alone: what the signal fit starts from
                    t = time.perf_counter()
                    alone = learned.fit(meas).result
                    row["network_s"] = time.perf_counter() - t
                    learned.refine = True
                    t = time.perf_counter()
                    ens = get_measurement_method(
                        "ensemble",
                        bootstrap=args.bootstrap,
                        t0_range=(delays[0] + cfg["lead"][0], delays[0] + cfg["lead"][1]),
                        irf_range=(10.0, 300.0),
                    )
                    b = ens.fit(meas, basis=basis).result
                    row["ensemble_s"] = time.perf_counter() - t
                for name, res in (("learned", a), ("network", alone), ("ensemble", b)):
                    e = res.ensemble
                    row[name] = {
                        **score(e, tr["channel_distance_mean"], heavy, present),
                        "gamma": e.gamma,
                        "gamma_std": e.gamma_std,
                        "t0": e.t0,
                        "irf": e.irf_fs,
                        "reduced_chi2": res.reduced_chi2,
                    }
                path.write_text(json.dumps(row, indent=1))
                print(
                    f"{mol} photons {photons:.0e} #{k}: error learned {row['learned']['error']:.4f} Å "
                    f"(cov {row['learned']['coverage']:.2f}), network alone {row['network']['error']:.4f} Å "
                    f"(cov {row['network']['coverage']:.2f}), ensemble {row['ensemble']['error']:.4f} Å "
                    f"(cov {row['ensemble']['coverage']:.2f}); γ {gamma:.3f}: {a.ensemble.gamma:.3f} / {b.ensemble.gamma:.3f}",
                    flush=True,
                )
    table(args.out)


def _labels(symbols):
    from molmovie.geometry import pair_labels

    return pair_labels(symbols)


def table(out: Path) -> None:
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*-*-*.json"))]
    print(
        "\n| molecule | photons/q bin | experiments | method | error (Å) | ±2σ coverage | median σ (Å) | γ error | t0 error (fs) | "
        "reduced χ² | wins on error (of the experiments) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for mol in sorted({r["molecule"] for r in rows}):
        for photons in sorted({r["photons"] for r in rows}):
            sel = [r for r in rows if r["molecule"] == mol and r["photons"] == photons]
            if not sel:
                continue

            def ms(key, sub, sel=sel):
                v = np.array([r[sub][key] for r in sel])
                return f"{v.mean():.4f} ± {v.std(ddof=1) if v.size > 1 else 0:.4f}"

            def err(key, sub, truth, sel=sel):
                v = np.array([abs(r[sub][key] - r[truth]) for r in sel])
                return f"{np.median(v):.3g}"

            names = [m for m in ("learned", "network", "ensemble") if all(m in r for r in sel)]
            errs = np.array([[r[m]["error"] for m in names] for r in sel])
            wins = np.bincount(errs.argmin(axis=1), minlength=len(names))
            label = {"learned": "learned (network + signal fit)", "network": "network alone", "ensemble": "ensemble fit"}
            for k, m in enumerate(names):
                print(
                    f"| {mol} | {photons:.0e} | {len(sel)} | {label[m]} | {ms('error', m)} | {ms('coverage', m)} | "
                    f"{ms('sigma', m)} | {err('gamma', m, 'gamma')} | {err('t0', m, 't0')} | {ms('reduced_chi2', m)} | "
                    f"{wins[k]} |"
                )
    print(
        "(mean ± standard deviation over the experiments; γ and t0: median absolute error; wins: the experiments where the method's error is the lowest of the three)"
    )


if __name__ == "__main__":
    main()
