"""Run the study on some of its experiments only (a cheaper look, e.g. on a loaded machine): ``run_study`` with fewer.

    python benchmarks/study_subset.py RUN --preset quick --experiments cs2,cs2-bound --seeds 3 --data-dir DATA [--sharc DIR]

The same stages, files and report as ``molmovie reproduce`` writes for those experiments (the study's
``EXPERIMENTS`` narrowed for this process, as its tests do); a later ``molmovie reproduce`` in the same
folder reuses them and adds the rest.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from molmovie.evaluation.study import presets, run_study


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", type=Path)
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--experiments", required=True)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--sharc", type=Path, default=None, help="SHARC runs of CS2 for the transfer score (default: none)")
    args = ap.parse_args()
    keys = args.experiments.split(",")
    presets.EXPERIMENTS = tuple(e for e in presets.EXPERIMENTS if e.key in keys)
    run_study(
        args.preset,
        args.output,
        seed=args.seed,
        seeds=args.seeds,
        threads=args.threads,
        data_dir=args.data_dir,
        sharc_dir=args.sharc,
        log=lambda line: print(line, flush=True),
    )


if __name__ == "__main__":
    main()
