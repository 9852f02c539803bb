"""Evaluation: per-frame RMSD and SSR, one scoring stage, the study (five X-ray experiments and one of electrons), figures."""

from __future__ import annotations

from .metrics import Evaluation, evaluate, heavy_pairs, reconstruct_signal
from .stage import read_scores, score_method, score_prediction, write_scores

__all__ = [
    "Evaluation",
    "evaluate",
    "heavy_pairs",
    "reconstruct_signal",
    "score_method",
    "score_prediction",
    "write_scores",
    "read_scores",
]
