"""Benchmark: VRNN training time to a given accuracy, before and after the speed-up, in one run.

Trains the VRNN twice on the same data: with the settings it had before the
speed-up ("before": batch 32, constant learning rate 1e-3, physics warm-up 20
epochs) and with today's defaults ("after"), both under the same epoch cap
and patience (the paper preset's 150 and 20 unless told). For each it
prints the median seconds per epoch (training and validation; the
setup before the first epoch is left out), the epochs and training seconds until
the validation loss first reaches a fixed target (the "before" run's best
validation loss; only epochs where the physics term has its full weight
count, since the loss differs before), the total, the best validation loss
and the test loss and RMSD (molmovie.evaluation), so that the accuracy of
the two is compared, not assumed. Then the inference speed of the "after"
model.

The data are synthetic (random harmonic motion of the built-in molecule
around its minimum, ΔS from a Debye sum with f = Z; 70/15/15 % train, val,
test), or a dataset file (``--data``, its own splits). The cost of an epoch
depends on the sizes and the network, not on the values. The paper's
training set is 750 trajectories x 201 frames x 100 q.

    python benchmarks/bench_vrnn.py                                    # C2H4, 150 x 101 frames
    python benchmarks/bench_vrnn.py --data runs/quick/data/cs2.h5      # a generated dataset
    python benchmarks/bench_vrnn.py --only after --epochs 2            # seconds per epoch only
    python benchmarks/bench_vrnn.py --molecule nmm --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def synthetic_dataset(molecule: str, M: int, T: int, n_q: int, seed: int):
    from molmovie.datasets import Dataset, make_splits
    from molmovie.molecules import builtin
    from molmovie.scattering import SignalSpec
    from molmovie.trajectories import Ensemble

    mol = builtin(molecule)
    rng = np.random.default_rng(seed)
    N = mol.n_atoms
    t = np.arange(T) * 5.0
    modes = rng.standard_normal((M, 6, N, 3)) * 0.03
    freq = rng.uniform(2 * np.pi / 100, 2 * np.pi / 15, (M, 6))
    phase = rng.uniform(0, 2 * np.pi, (M, 6))
    wave = np.sin(freq[:, :, None] * t[None, None, :] + phase[:, :, None])  # (M, 6, T)
    pos = mol.positions[None, None] + np.einsum("mkt,mkna->mtna", wave, modes)
    length = np.full(M, T)
    ens = Ensemble(molecule, mol.symbols, t, pos, length, np.zeros(M, bool), [f"s{m}" for m in range(M)])
    q = np.linspace(0.5, 10.0, n_q)
    z = np.array([{"H": 1, "C": 6, "N": 7, "O": 8, "S": 16}[s] for s in mol.symbols], float)
    i, j = np.triu_indices(N, 1)
    w = z[i] * z[j]
    dS = np.empty((M, T, n_q))
    for m in range(M):
        R = ens.distances[m] if m == 0 else np.linalg.norm(pos[m][:, i] - pos[m][:, j], axis=-1)
        qr = q * R[..., None]
        inten = (z**2).sum() + 2 * np.einsum("p,tpq->tq", w, np.sin(qr) / qr)
        dS[m] = inten / inten[0] - 1.0
    spec = SignalSpec(q, inelastic=True, reference="first", photons=None, irf_fs=None, seed=seed)
    return Dataset(ens, dS=dS, I_ref=np.ones((M, n_q)), spec=spec, splits=make_splits(M, (70, 15, 15), seed=seed))


#: The settings that changed in the speed-up, as they were before it.
BEFORE = dict(batch_size=32, lr=1e-3, schedule="constant", physics_warmup=20)


def train(name, settings, train_ds, val_ds, test_ds):
    from molmovie.evaluation.metrics import evaluate
    from molmovie.inversion import VRNN
    from molmovie.inversion.losses import full_weight_epoch

    model = VRNN(**settings)
    model.fit(train_ds, val_ds)
    pred = model.predict(test_ds.dS, q=test_ds.q, lengths=test_ds.length)
    scores = evaluate(pred.distances, test_ds).summary()
    hist = model.history_
    return {
        "name": name,
        "model": model,
        "total": sum(h["seconds"] for h in model.history_),
        "full": full_weight_epoch(model.physics, model.physics_warmup),
        "seconds": np.array([h["seconds"] for h in hist]),
        "val": np.array([h["val_loss"] for h in hist]),
        "best_val": min(h["val_loss"] for h in hist[full_weight_epoch(model.physics, model.physics_warmup) - 1 :] or hist),
        "test_loss": model.loss(test_ds),
        "rmsd": scores["rmsd_mean"],
        "rmsd_sym": scores["rmsd_sym_mean"],
        "abs_error": scores["abs_error_mean"],
    }


def reach(run, target):
    """First (1-based) epoch with the physics term at full weight and val loss <= target, and the training seconds to its end."""
    ok = np.flatnonzero((np.arange(1, len(run["val"]) + 1) >= run["full"]) & (run["val"] <= target))
    if ok.size == 0:
        return None, None
    return int(ok[0]) + 1, float(run["seconds"][: ok[0] + 1].sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--molecule", default="c2h4", choices=["c2h4", "cs2", "nmm"])
    ap.add_argument("--data", default=None, help="a molmovie dataset file (its splits) instead of synthetic data")
    ap.add_argument("--trajectories", type=int, default=150)
    ap.add_argument("--frames", type=int, default=101)
    ap.add_argument("--nq", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=150, help="epoch cap of both runs (the paper preset's)")
    ap.add_argument("--patience", type=int, default=20, help="early-stopping patience of both runs (the paper preset's)")
    ap.add_argument("--only", choices=["before", "after"], default=None, help="run one configuration only")
    ap.add_argument(
        "--encoder", default=None, choices=["filter", "smoother"], help="the after run's encoder (default: the VRNN default)"
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the after run (JSON value), e.g. --set batch_size=32; repeatable",
    )
    ap.add_argument("--physics", type=float, default=None, help="physics weight (default: the VRNN default)")
    ap.add_argument("--hidden", type=int, default=None)
    ap.add_argument("--target", type=float, default=None, help="the validation loss to reach (default: the before run's best)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--infer", type=int, default=100, help="trajectories in the inference timing")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    import torch

    from molmovie.inversion import VRNN

    torch.set_num_threads(args.threads)
    common = dict(epochs=args.epochs, patience=args.patience, device=args.device, seed=args.seed)
    if args.physics is not None:
        common["physics"] = args.physics
    if args.hidden is not None:
        common["hidden"] = args.hidden
    after = dict(common)
    if args.encoder is not None:
        after["encoder"] = args.encoder
    for item in args.set:
        key, _, value = item.partition("=")
        after[key] = json.loads(value)
    configs = {"before": dict(common, encoder="filter", **BEFORE), "after": after}
    if args.only:
        configs = {args.only: configs[args.only]}
    device = VRNN(device=args.device)._torch_device()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.2f} (cores shared with other jobs); torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), device {args.device} -> {device}"
    )
    if args.data:
        from molmovie.io import read_dataset

        ds = read_dataset(args.data)
        what = args.data
    else:
        ds = synthetic_dataset(args.molecule, args.trajectories, args.frames, args.nq, seed=0)
        what = f"synthetic {args.molecule}"
    tr, va, te = ds.split("train"), ds.split("val"), ds.split("test")
    print(
        f"data: {what} ({ds.n_atoms} atoms, {ds.distances.shape[-1]} distances), {tr.n_trajectories}/{va.n_trajectories}/"
        f"{te.n_trajectories} train/val/test trajectories x {ds.n_frames} frames x {len(ds.q)} q"
    )
    runs = {}
    for name, settings in configs.items():
        shown = {k: settings[k] for k in ("batch_size", "lr", "schedule", "physics_warmup", "encoder") if k in settings}
        shown.update({k: v for k, v in settings.items() if k not in common and k not in shown})
        print(f"{name}: {shown or 'VRNN defaults'}, epochs {args.epochs}, patience {args.patience}", flush=True)
        runs[name] = train(name, settings, tr, va, te)
    target, whence = (runs["before"]["best_val"], "the before run's best") if "before" in runs else (None, "")
    if args.target is not None:
        target, whence = args.target, "given"
    if target is not None:
        print(f"target: validation loss <= {target:.4g} ({whence}), counted once the physics term has its full weight")
    print(
        f"{'':8s} {'s/epoch':>8s} {'epochs':>7s} {'to target':>10s} {'s to target':>12s} {'total s':>8s} "
        f"{'best val':>9s} {'test loss':>9s} {'RMSD':>7s} {'RMSD sym':>9s} {'|dR| (Å)':>9s}"
    )
    for name, r in runs.items():
        e, sec = reach(r, target) if target is not None else (None, None)
        r["reach"] = (e, sec)
        print(
            f"{name:8s} {np.median(r['seconds']):8.2f} {len(r['seconds']):7d} {e if e else '-':>10} "
            f"{f'{sec:.0f}' if sec else '-':>12s} {r['total']:8.0f} {r['best_val']:9.4g} {r['test_loss']:9.4g} "
            f"{r['rmsd']:7.4f} {r['rmsd_sym']:9.4f} {r['abs_error']:9.4f}"
        )
    if len(runs) == 2:
        b, a = runs["before"], runs["after"]
        ratio = np.median(b["seconds"]) / np.median(a["seconds"])
        line = (
            f"after vs before: epochs {len(b['seconds'])} -> {len(a['seconds'])}; seconds per epoch {ratio:.2f}x less (medians; "
            f"on a shared machine its load moves this), {b['total'] / a['total']:.2f}x less in total"
        )
        if a["reach"][1] and b["reach"][1]:
            line += (
                f"; to the target: {b['reach'][0]} -> {a['reach'][0]} epochs ({b['reach'][0] / a['reach'][0]:.2f}x), "
                f"{b['reach'][1] / a['reach'][1]:.2f}x less time"
            )
        else:
            line += "; the after run never reached the target"
        print(line)

    model = runs[list(runs)[-1]]["model"]
    sub = te.subset(np.arange(min(args.infer, te.n_trajectories)))
    model.predict(sub.dS[:2], q=sub.q)  # warm up
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        model.predict(sub.dS, q=sub.q, lengths=sub.length)
        times.append(time.perf_counter() - t0)
    best = min(times)
    frames = sub.n_trajectories * sub.n_frames
    print(
        f"inference ({list(runs)[-1]}): {sub.n_trajectories} trajectories x {sub.n_frames} frames in {best:.3f} s "
        f"(best of 3), {frames / best:,.0f} frames/s"
    )


if __name__ == "__main__":
    main()
