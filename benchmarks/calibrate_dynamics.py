"""Calibration of the built-in dynamics models against the paper's dissociation fractions.

Runs (or resumes) one dataset per molecule with its built-in model and prints
the README table: trajectories, fraction dissociated (the rule of ``molmovie
import``) next to the published fraction, energy drift, SCF failures and the
time per trajectory on one core.

    python benchmarks/calibrate_dynamics.py --workers 1 --folder calib   # NMM alone ~20 min per core
    python benchmarks/calibrate_dynamics.py --table-only --folder calib  # table from the files

Runs stream into ``FOLDER/calib-MOLECULE.h5.partial/`` and resume when started
again. Published fractions: the paper's datasets (Table 1 and text): NMM
none; C2H4 13-18 % within 150 fs; CS2 66-72 % within 1 ps.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

PUBLISHED = {"nmm": (0.0, 0.0), "c2h4": (13.0, 18.0), "cs2": (66.0, 72.0)}
DEFAULT_N = {"nmm": 107, "c2h4": 200, "cs2": 200}


def apart(symbols, positions, length, scale=2.0) -> bool:
    """Fragments at the last frame even with a bond cutoff of ``scale`` x the covalent radii (a stricter rule)."""
    from molmovie.molecules import bond_graph, fragments

    last = positions[length - 1]
    return len(fragments(bond_graph(symbols, last, scale=scale))) > len(fragments(bond_graph(symbols, positions[0])))


def row(mol: str, path: Path) -> str:
    from molmovie.io import read_dataset

    ds = read_dataset(path)
    prov = ds.ensemble.provenance
    recs = prov["trajectories"]
    n = ds.n_trajectories
    dis = 100.0 * ds.dissociated.mean()
    sem = 100.0 * np.sqrt(ds.dissociated.mean() * (1 - ds.dissociated.mean()) / n)
    strict = 100.0 * np.mean([apart(ds.symbols, ds.positions[k], ds.length[k]) for k in range(n)])
    drift = np.array([r["drift_eV"] for r in recs], float)
    flagged = sum(r["drift_flag"] for r in recs)
    failed = sum(r["failure"] is not None for r in recs)
    wall = np.mean([r["wall_s"] for r in recs])
    lo, hi = PUBLISHED[mol]
    pub = f"{lo:.0f} %" if lo == hi else f"{lo:.0f}-{hi:.0f} %"
    switched = [r["switch_fs"] for r in recs if r.get("switch_fs") is not None]
    extra = f"; switched {len(switched)}/{n}, median at {np.median(switched):.0f} fs" if switched else ""
    return (
        f"| {mol} | {prov['model']['name']} | {n} | {dis:.1f} ± {sem:.1f} % | {pub} | {strict:.1f} % | "
        f"{np.nanmedian(drift):.3f} / {np.nanmax(drift):.3f} ({flagged} > {prov['model']['drift_threshold']:g}) | "
        f"{failed} | {wall:.1f} s{extra} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--molecules", default="c2h4,cs2,nmm")
    ap.add_argument("--n", default=None, help="trajectories per molecule, e.g. c2h4=200,cs2=200,nmm=107")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--folder", type=Path, default=Path("calib"))
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    sizes = dict(DEFAULT_N)
    if args.n:
        sizes.update({k: int(v) for k, v in (item.split("=") for item in args.n.split(","))})
    args.folder.mkdir(parents=True, exist_ok=True)
    mols = args.molecules.split(",")
    if not args.table_only:
        from molmovie.dynamics import generate

        for mol in mols:
            out = args.folder / f"calib-{mol}.h5"
            if out.exists():
                continue

            def progress(done, total, dissociated, failed, mol=mol):
                if done % 10 == 0 or done == total:
                    print(f"{mol}: {done}/{total} done, {dissociated} dissociated, {failed} failed", flush=True)

            generate(mol, sizes[mol], seed=args.seed, workers=args.workers, output=out, progress=progress)
    print(
        "| molecule | model | trajectories | dissociated (import rule) | published | fragments > 2x bond cutoff | "
        "energy drift median / max, eV | SCF failures | time per trajectory (1 core) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for mol in mols:
        out = args.folder / f"calib-{mol}.h5"
        if out.exists():
            print(row(mol, out))


if __name__ == "__main__":
    main()
