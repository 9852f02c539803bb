"""Evaluation: per-frame RMSD and SSR, the five-experiment study, figures."""

from __future__ import annotations

from .metrics import Evaluation, evaluate, heavy_pairs, reconstruct_signal

__all__ = ["Evaluation", "evaluate", "heavy_pairs", "reconstruct_signal"]
