"""Scores over training seeds, and who wins: mean, spread, and a win only beyond the spread."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .presets import SCORES

#: The spread of a score over training seeds (with seeds > 1), as the tables name it.
SPREAD = "sample standard deviation over the training seeds (K - 1 in the denominator)"


#: When a method wins a score (with seeds > 1), as the tables state it.
WIN_RULE = (
    "a method wins a score only when its mean is lower than every other method's mean by more than "
    "the sum of the two methods' standard deviations; otherwise the score is a tie (within spread)"
)


def over_seeds(summaries: list[dict], reduce: Callable[[list], Any]) -> dict:
    """Each key of per-seed summaries reduced over the seeds (keys every seed has)."""
    keys = [k for k in summaries[0] if all(k in s for s in summaries)]
    return {k: reduce([s[k] for s in summaries]) for k in keys}


def _mean(values: list) -> Any:
    """The mean of per-seed values; the value itself when every seed gave the same (the frame count stays an int)."""
    return values[0] if all(v == values[0] for v in values) else float(np.mean(values))


def _std(values: list) -> float:
    """The sample standard deviation (K - 1 in the denominator) of per-seed values; 0 when every seed gave the same."""
    return 0.0 if all(v == values[0] for v in values) else float(np.std(values, ddof=1))


def rank_methods(summaries: dict, spreads: dict | None = None, *, scores: Sequence[str] = SCORES) -> dict:
    """Each score's winner (smallest; ties to the method listed first), runner-up and margin.

    Parameters
    ----------
    summaries : dict method -> dict score -> float
        The scores (with several seeds: their means over seeds).
    spreads : dict method -> dict score -> float, optional
        Each score's spread over seeds (standard deviation). With spreads,
        the method of smallest mean (the ``leader``) wins a score only when
        every other method's mean exceeds it by more than the sum of the two
        methods' spreads (:data:`WIN_RULE`):

        .. math:: \\bar s_j - \\bar s_\\mathrm{leader} > \\sigma_\\mathrm{leader} + \\sigma_j \\quad \\text{for every } j \\ne \\mathrm{leader}

        otherwise the score is a tie and ``winner`` is None.
    scores : sequence of str, default :data:`SCORES`
        The scores ranked (keys of every summary).

    Returns
    -------
    dict with ``winner``, ``runner_up`` (None with one method) and ``margin``
    (runner-up's score minus the winner's, >= 0; None with one method), each a
    dict score -> value. With spreads also ``leader`` (smallest mean),
    ``threshold`` (the leader's spread plus the runner-up's; None with one
    method) and ``tied`` (the leader and every method within the spread of it;
    empty when the leader wins); ``winner``, ``runner_up`` and ``margin``
    then name the leader, its runner-up and the leader's margin.
    """
    ranked = {k: sorted(summaries, key=lambda m: summaries[m][k]) for k in scores}
    out = {
        "winner": {k: r[0] for k, r in ranked.items()},
        "runner_up": {k: r[1] if len(r) > 1 else None for k, r in ranked.items()},
        "margin": {k: summaries[r[1]][k] - summaries[r[0]][k] if len(r) > 1 else None for k, r in ranked.items()},
    }
    if spreads is None:
        return out
    out.update(leader={}, threshold={}, tied={})
    for k, (lead, *others) in ranked.items():
        within = [m for m in others if not summaries[m][k] - summaries[lead][k] > spreads[lead][k] + spreads[m][k]]
        out["leader"][k] = lead
        out["threshold"][k] = spreads[lead][k] + spreads[others[0]][k] if others else None
        out["tied"][k] = [lead, *within] if within else []
        out["winner"][k] = None if within else lead
    return out


def seed_statistics(by_seed: dict, seeds: int, over: Callable[[list[dict], Callable[[list], Any]], dict]) -> dict:
    """Each method's summaries over the seeds: itself with one seed; else mean, spread (std) and per-seed lists.

    ``by_seed`` maps a method to its summaries, one per seed (one alone for a method without a seed: it stands for
    every seed); ``over(summaries, reduce)`` reduces them score by score.
    """
    if seeds == 1:
        return {"methods": {m: v[0] for m, v in by_seed.items()}}
    by_seed = {m: v * seeds if len(v) == 1 else v for m, v in by_seed.items()}
    return {
        "methods": {m: over(v, _mean) for m, v in by_seed.items()},
        "spread": {m: over(v, _std) for m, v in by_seed.items()},
        "per_seed": {m: over_seeds(v, list) for m, v in by_seed.items()},
    }
