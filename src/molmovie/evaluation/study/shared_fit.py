r"""Every method with the same tools: its answer under each test condition, as itself and with the shared signal fit.

For every (experiment, method, training seed) stage and every condition the
preset names (:mod:`.conditions`), the stage's model answers the
condition's test signals twice:

* as itself: its own prediction, with no signal fit (a method that has one
  of its own, such as the VRNN's ``refine``, has it switched off);
* ``+ signal fit``: that answer given the shared signal fit,
  :func:`molmovie.inversion.refine_distances` with :data:`FIT` (the MAP in
  geometry space with continuation in time, the VRNN's default), the prior
  centred on the answer with the method's own σ where it gives one (times
  :data:`molmovie.inversion.REFINE_PRIOR_SCALE`, 1), else
  :data:`RELATIVE_WIDTH` times each distance; the fit is told the true σ of
  the condition's noise (noise-free conditions: its stated floor,
  :data:`molmovie.inversion.NOISE_FREE_SIGMA`). The σ after the fit is the
  method's own calibration where it has one (the VRNN's ``fit_std_scale``: for
  a network trained on noisy signals, as the presets' are, 0.43 × the prior's
  relative width, chosen on validation data so that ±2σ covers 80-98 %), else
  the fit's (Laplace where the noise is known).

Both are scored against the truth (:func:`~molmovie.evaluation.stage.score_prediction`).
Each (stage, condition, draw) is one file, ``eval/conditions/{stem}-{condition}[-draw{d}].npz``,
written atomically with a fingerprint of what made it (the condition, the
draw, the fit's settings, the model file and the test split, the study's
revision): a rerun reuses a file while its fingerprint holds and makes it
again otherwise.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._errors import NPZ_ERRORS
from ...inversion import REFINE_PRIOR_SCALE, REFINE_STD_SCALE, load_method, refine_distances
from ...io import atomic_path
from ..stage import score_prediction
from .conditions import CONDITIONS, Condition, condition_fingerprint, condition_signals
from .manifest import REVISION
from .ranking import over_seeds, rank_methods, seed_statistics

if TYPE_CHECKING:
    from ...datasets import Dataset
    from .stages import Stage

#: The shared signal fit's settings (keywords of :func:`~molmovie.inversion.refine_distances`): the VRNN's default.
FIT: dict[str, Any] = {"space": "geometry", "sweeps": 1, "weight": 1.0}

#: The prior's relative width for the answers of methods without a σ (nearest, Viterbi): σ_R = 0.3 R.
#: Chosen on validation data: the quick preset's CS2 and bound CS2 validation splits (seed-0 models of a
#: revision-7 run), noise-free and σ = 0.01, among 0.03, 0.1 and 0.3, by the per-frame symmetry-aware RMSD sum
#: relative to the best width of each (experiment, method, condition): 0.3 had the smallest mean ratio (1.13,
#: against 1.55 for 0.1 and 2.37 for 0.03) and was best in 4 of 8; on bound CS2 with noise 0.03 was best
#: (`python benchmarks/fit_width.py RUN --experiments cs2,cs2-bound`; docs/where-dynamics-help.md).
RELATIVE_WIDTH = 0.3

#: The two variants of every method in the condition tables: as itself, and with the shared signal fit.
FITTED = "+fit"


def variant_name(method: str, fitted: bool) -> str:
    """A variant's key in the results: the method's name, with :data:`FITTED` after it for the fitted variant."""
    return method + FITTED if fitted else method


def std_scale(model: Any) -> float | None:
    """A method's own calibration of the σ after a signal fit (the VRNN's ``fit_std_scale``), or None."""
    return getattr(model, "fit_std_scale", None)


def shared_fit(
    distances: np.ndarray,
    std: np.ndarray | None,
    dS: np.ndarray,
    test: Dataset,
    cond: Condition,
    scale: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The shared signal fit of one answer, told the condition's σ.

    The prior is centred on ``distances`` with ``std`` × :data:`~molmovie.inversion.REFINE_PRIOR_SCALE`
    (without a std: :data:`RELATIVE_WIDTH` relative). The σ returned: with ``scale`` (a method's own
    calibration, :func:`std_scale`), ``scale`` times the prior's relative width at the fitted distances;
    else the fit's (Laplace where the noise is known, else the prior's relative width).
    """
    assert test.spec is not None
    width = REFINE_PRIOR_SCALE * std if std is not None else RELATIVE_WIDTH * distances
    calibrated = std is not None and scale is not None
    R, sd = refine_distances(
        distances,
        width,
        dS,
        symbols=test.symbols,
        spec=test.spec,
        lengths=test.length,
        noise=cond.noise if cond.noise > 0 else None,
        posterior="prior" if calibrated else "auto",
        **FIT,
    )
    return R, (scale * sd if calibrated else sd)


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=float).tobytes())
    return h.hexdigest()


def condition_path(stage: Stage, out: Path, cond: Condition, draw: int | None) -> Path:
    """The file of one stage's answers under one condition (and draw)."""
    stem = stage.paths(out)[1].stem
    return out / "eval" / "conditions" / (f"{stem}-{cond.key}" + (f"-draw{draw}" if draw is not None else "") + ".npz")


def stage_draws(stage: Stage, cond: Condition) -> list[int | None]:
    """The draws a stage answers under a condition: its own seed's (a seeded method), every seed's (one without), none (noise free)."""
    if not cond.drawn:
        return [None]
    return [stage.seed] if not stage.draws else list(stage.draws)


def fit_fingerprint() -> dict:
    """What defines the shared fit (stored with every answer it made)."""
    return {**FIT, "relative_width": RELATIVE_WIDTH, "prior_scale": REFINE_PRIOR_SCALE, "std_scale": REFINE_STD_SCALE}


def _key(stage: Stage, out: Path, cond: Condition, draw: int | None, test: Dataset) -> dict:
    model = stage.paths(out)[0]
    return {
        "revision": REVISION,
        "condition": condition_fingerprint(cond),
        "draw": draw,
        "fit": fit_fingerprint(),
        "model": hashlib.sha256(model.read_bytes()).hexdigest() if model.exists() else None,
        "test": _digest(test.positions, test.dS if test.dS is not None else np.zeros(0)),
    }


def _current(path: Path, key: dict) -> dict | None:
    """The summaries in ``path`` when it was made with fingerprint ``key``; else None."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if json.loads(str(z["fingerprint_json"])) == key:
                return json.loads(str(z["summary_json"]))
    except NPZ_ERRORS:  # damaged, or of another layout: made again
        pass
    return None


def conditions_pending(stage: Stage, out: Path, conditions: tuple[str, ...], test: Dataset) -> bool:
    """Whether some (condition, draw) of the stage lacks a current file."""
    for cond in (CONDITIONS[k] for k in conditions):
        if test.spec is not None and not cond.applies(test.spec.probe):
            continue
        for draw in stage_draws(stage, cond):
            if _current(condition_path(stage, out, cond, draw), _key(stage, out, cond, draw, test)) is None:
                return True
    return False


def condition_stage(stage: Stage, out: Path, conditions: tuple[str, ...], test: Dataset, log: Callable[[str], None]) -> None:
    """Answer every condition (and draw) a stage lacks, as itself and with the shared fit; write one file each."""
    model = None
    for cond in (CONDITIONS[k] for k in conditions):
        if test.spec is not None and not cond.applies(test.spec.probe):
            continue
        for draw in stage_draws(stage, cond):
            path = condition_path(stage, out, cond, draw)
            key = _key(stage, out, cond, draw, test)
            if _current(path, key) is not None:
                continue
            if model is None:
                model = load_method(stage.paths(out)[0])
                if "refine" in model.get_params():  # the method as itself: no signal fit of its own
                    model.set_params(refine=False)
            dS = condition_signals(test, cond, seed=draw if draw is not None else stage.base, experiment=stage.exp.key)
            t = time.perf_counter()
            assert test.q is not None
            pred = model.predict(dS, q=test.q, lengths=test.length)
            t_pred = time.perf_counter() - t
            t = time.perf_counter()
            R, std = shared_fit(pred.distances, pred.std, dS, test, cond, std_scale(model))
            t_fit = time.perf_counter() - t
            plain = score_prediction(pred.distances, pred.std, test)["summary"]
            fitted = score_prediction(R, std, test)["summary"]
            summary = {"plain": {**plain, "seconds": t_pred}, "fitted": {**fitted, "seconds": t_fit}}
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path, suffix=".npz") as tmp:
                with open(tmp, "wb") as f:
                    np.savez_compressed(
                        f,
                        distances=pred.distances.astype(np.float32),
                        std=(pred.std if pred.std is not None else np.zeros(0)).astype(np.float32),
                        fitted_distances=R.astype(np.float32),
                        fitted_std=std.astype(np.float32),
                        summary_json=np.array(json.dumps(summary)),
                        fingerprint_json=np.array(json.dumps(key)),
                    )
            log(
                f"{stage.exp.label}: {stage.label.split(' ', 1)[1]} under {cond.label}"
                + (f" (draw {draw})" if draw is not None else "")
                + f": sym. RMSD per frame {plain['rmsd_sym_sum']:.4g} → {fitted['rmsd_sym_sum']:.4g} with the fit ({t_fit:.0f} s)"
            )


def read_condition(stage: Stage, out: Path, cond: Condition, draw: int | None) -> dict:
    """The summaries (``plain``, ``fitted``) of one stage under one condition and draw."""
    with np.load(condition_path(stage, out, cond, draw), allow_pickle=False) as z:
        return json.loads(str(z["summary_json"]))


def conditions_entry(stages: list[Stage], out: Path, conditions: tuple[str, ...], test: Dataset, seeds: int) -> dict:
    """Per condition: every variant's summary (means and spreads over the seeds, or draws), ranked like the main table.

    A variant is a method as itself (its name) or with the shared fit (its name and :data:`FITTED`). Under a
    noise condition a method without a training seed has one answer per draw, so its spread is the draws'.
    """
    entry = {}
    for cond in (CONDITIONS[k] for k in conditions):
        if test.spec is not None and not cond.applies(test.spec.probe):
            continue
        by_seed: dict[str, list[dict]] = {}
        for st in stages:
            for draw in stage_draws(st, cond):
                summaries = read_condition(st, out, cond, draw)
                by_seed.setdefault(variant_name(st.method, False), []).append(summaries["plain"])
                by_seed.setdefault(variant_name(st.method, True), []).append(summaries["fitted"])
        stats = seed_statistics(by_seed, seeds, over_seeds)
        stats.update(rank_methods(stats["methods"], stats.get("spread")))
        entry[cond.key] = {"label": cond.label, "noise": cond.noise, "mismatch": cond.mismatch, **stats}
    return entry
