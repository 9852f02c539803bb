"""Print the scores held in a study's condition files (``eval/conditions/*.npz``), finished study or not.

    python benchmarks/condition_files.py RUN [--score rmsd_sym_sum] [--stem cs2-nearest]

One Markdown row per file: the stage's stem, the condition and draw, and the score as itself and with the
shared signal fit (:mod:`molmovie.evaluation.study.shared_fit`). A look at a study still underway; the
study's own report (``results.md``) ranks them once every stage is done.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from molmovie.evaluation.study.conditions import CONDITIONS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("--score", default="rmsd_sym_sum")
    ap.add_argument("--stem", default="", help="only files whose name starts with this")
    args = ap.parse_args()
    order = {k: i for i, k in enumerate(CONDITIONS)}
    rows = []
    for path in sorted((args.study / "eval" / "conditions").glob(f"{args.stem}*.npz")):
        with np.load(path, allow_pickle=False) as z:
            s = json.loads(str(z["summary_json"]))
            key = json.loads(str(z["fingerprint_json"]))
        cond = key["condition"]["key"]
        stem = path.stem.removesuffix(f"-draw{key['draw']}" if key["draw"] is not None else "").removesuffix(f"-{cond}")
        rows.append((stem, order[cond], key["draw"] or 0, cond, s))
    print(f"| stage | condition | draw | {args.score} as itself | with the shared fit |")
    print("|---|---|---|---|---|")
    for stem, _, draw, cond, s in sorted(rows):
        print(f"| {stem} | {CONDITIONS[cond].label} | {draw} | {s['plain'][args.score]:.4g} | {s['fitted'][args.score]:.4g} |")


if __name__ == "__main__":
    main()
