"""Benchmark: VRNN training seconds per epoch and inference frames per second.

The paper's training set is 750 trajectories x 201 frames x 100 q. The data
here are synthetic (random harmonic motion of the built-in molecule around its
minimum, ΔS from a Debye sum with f = Z): the cost of an epoch depends on the
sizes and the network, not on the values.

    python benchmarks/bench_vrnn.py                       # C2H4, default network
    python benchmarks/bench_vrnn.py --molecule nmm        # 18 atoms, 153 distances
    python benchmarks/bench_vrnn.py --physics 0           # without the Eq. (1) term
    python benchmarks/bench_vrnn.py --threads 2
"""

from __future__ import annotations

import argparse
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
    return Dataset(ens, dS=dS, I_ref=np.ones((M, n_q)), spec=spec, splits=make_splits(M, (M, 0, 0), seed=seed))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--molecule", default="c2h4", choices=["c2h4", "cs2", "nmm"])
    ap.add_argument("--trajectories", type=int, default=750)
    ap.add_argument("--frames", type=int, default=201)
    ap.add_argument("--nq", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--physics", type=float, default=None, help="physics weight (default: the VRNN default)")
    ap.add_argument("--symmetry", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=None)
    ap.add_argument("--infer", type=int, default=100, help="trajectories in the inference timing")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import torch

    from molmovie.inversion import VRNN

    torch.set_num_threads(args.threads)
    # physics_warmup=0: time the steady state, with the physics term on from the first epoch
    settings = dict(epochs=args.epochs, patience=args.epochs + 1, device=args.device, symmetry=bool(args.symmetry), physics_warmup=0)
    if args.physics is not None:
        settings["physics"] = args.physics
    if args.hidden is not None:
        settings["hidden"] = args.hidden
    model = VRNN(**settings)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f} (cores shared with other jobs); torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {args.device}")
    ds = synthetic_dataset(args.molecule, args.trajectories, args.frames, args.nq, seed=0)
    print(f"data: {args.molecule} ({ds.n_atoms} atoms, {ds.distances.shape[-1]} distances), "
          f"{args.trajectories} trajectories x {args.frames} frames x {args.nq} q")
    print(f"settings: {model!r} (hidden {model.hidden}, features {model.features}, batch {model.batch_size}, physics {model.physics})")
    t0 = time.perf_counter()
    model.fit(ds)
    total = time.perf_counter() - t0
    per_epoch = [h["seconds"] for h in model.history_]
    print(f"training: {np.mean(per_epoch):.1f} s per epoch (epochs {', '.join(f'{s:.1f}' for s in per_epoch)} s; fit total {total:.1f} s)")

    sub = ds.subset(np.arange(min(args.infer, ds.n_trajectories)))
    model.predict(sub.dS[:2], q=sub.q)  # warm up
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        model.predict(sub.dS, q=sub.q, lengths=sub.length)
        times.append(time.perf_counter() - t0)
    best = min(times)
    frames = sub.n_trajectories * sub.n_frames
    print(f"inference: {sub.n_trajectories} trajectories x {sub.n_frames} frames in {best:.3f} s "
          f"(best of 3), {frames / best:,.0f} frames/s")


if __name__ == "__main__":
    main()
