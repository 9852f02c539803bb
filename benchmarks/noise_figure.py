"""Draw a study's noise figure (each score against the noise level) from its results.json.

    python benchmarks/noise_figure.py RUN/results.json docs/figures/noise-cs2-bound-quick.png

The same figure as the study's ``noise.png`` (:func:`molmovie.evaluation.study.conditions_report.conditions_figure`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from molmovie.evaluation.study.conditions_report import conditions_figure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("output", type=Path)
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    fig = conditions_figure(json.loads(args.results.read_text()))
    if fig is None:
        raise SystemExit("the study has fewer than two noise conditions: no figure")
    fig.savefig(args.output, dpi=110)


if __name__ == "__main__":
    main()
