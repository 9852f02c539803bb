"""Transfer: every model of the CS2 experiments scored on foreign runs it did not train on.

Two sources of foreign runs: SHARC runs (``sharc_dir``; source ``"sharc"``),
and trajectories of another dynamics model that the study generates itself
(:attr:`~.presets.Preset.foreign_models`, e.g. ``cs2-triplet``: put on the
triplet surface at once, without the trained model's singlet lifetime;
source: the model's name; :func:`other_model_runs`).

The score is made in the study's process once a model exists, and kept in
its ``-transfer-{source}.npz`` file with fingerprints of the runs and of the
model file: a rerun reuses it while both are unchanged.

Under noise: for every noise level among the experiment's test conditions
(:func:`~.presets.experiment_conditions`), the runs' signals (made with the
model's spec, as above) get the condition's noise, drawn as the test split's
is (:func:`~.conditions.condition_signals`, draw seed = the stage's, keyed by
the experiment and the source: the same draw for every method of the
experiment), and every model answers them as itself and with the shared
signal fit (:func:`~.shared_fit.shared_fit`), as the condition stage answers
the test split. One file per (stage, level, draw),
``-transfer-{source}-{condition}-draw{d}.npz``, with fingerprints of the runs,
the model file, the condition, the draw and the fit's settings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..._errors import NPZ_ERRORS, InputError
from ..._typing import PathLike
from ...datasets import Dataset
from ...inversion import load_method
from ...io import atomic_path
from ...molecules import builtin, formula
from ...trajectories import Ensemble
from ..transfer import foreign_dataset, read_foreign, score_transfer, transfer
from .conditions import CONDITIONS, Condition, condition_fingerprint, condition_signals
from .manifest import REVISION
from .presets import Experiment, method_label
from .ranking import over_seeds, rank_methods, seed_statistics
from .shared_fit import fit_fingerprint, shared_fit, stage_draws, std_scale, variant_name
from .stages import Stage

#: The transfer score (:meth:`molmovie.evaluation.transfer.Transfer.summary`): mean over foreign runs of each run's
#: mean symmetry-aware distance error, Å.
TRANSFER_SCORE = "transfer_error"


#: The molecule whose experiments are scored on SHARC runs.
TRANSFER_MOLECULE = "cs2"


#: Where ``molmovie reproduce`` looks for SHARC runs of CS2 when none are named, relative to the current directory.
SHARC_DEFAULT = Path("..", "shared", "data", "sharc-cs2")


TRANSFER_TITLE = "Transfer to dynamics the model did not train on (SHARC CS2, symmetry-aware mean distance error, Å)"


#: The source name of the SHARC runs (files ``-transfer-sharc``; ``results["experiments"][key]["transfer"]["sharc"]``).
SHARC = "sharc"


def transfer_title(source: str) -> str:
    """The title of a source's transfer table."""
    if source == SHARC:
        return TRANSFER_TITLE
    return (
        f"Transfer to another dynamics model ({source}: GFN2-xTB trajectories that no model trained on, "
        "symmetry-aware mean distance error, Å)"
    )


def runs_name(source: str, n: int = 2) -> str:
    """How a source's runs are called: "SHARC runs", "cs2-triplet runs" (``n`` = 1: "SHARC run")."""
    return f"{'SHARC' if source == SHARC else source} run" + "s" * (n != 1)


def _runs_text(n: int, source: str) -> str:
    """ "2 SHARC runs", "1 cs2-triplet run"."""
    return f"{n} {runs_name(source, n)}"


def default_sharc_dir() -> Path | None:
    """:data:`SHARC_DEFAULT` (relative to the current directory) when it is a folder there, else None."""
    return SHARC_DEFAULT if SHARC_DEFAULT.is_dir() else None


def read_sharc(sharc_dir: PathLike) -> Ensemble:
    """The foreign runs in ``sharc_dir`` (read once per study); a path that is not there is an InputError."""
    path = Path(sharc_dir)
    if not path.exists():
        raise InputError(f"the SHARC folder {path} does not exist")
    runs = read_foreign(path)
    want = builtin(TRANSFER_MOLECULE).symbols
    if sorted(runs.symbols) != sorted(want):
        raise InputError(
            f"the SHARC runs in {path} are of {formula(runs.symbols)}, not {formula(want)}: the study scores its "
            f"{formula(want)} models' transfer on them"
        )
    return runs


def _runs_fingerprint(runs: Ensemble) -> str:
    """A digest of foreign runs: atoms, times, lengths and positions (what a transfer score depends on)."""
    h = hashlib.sha256(" ".join(runs.symbols).encode())
    for a in (runs.time, runs.length, runs.positions):
        h.update(np.ascontiguousarray(a, dtype=float).tobytes())
    return h.hexdigest()


def _file_fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _transfer_path(stage: Stage, out: Path, source: str = SHARC) -> Path:
    """The transfer file of a stage: its evaluation file's name with ``-transfer-{source}``."""
    eval_path = stage.paths(out)[1]
    return eval_path.with_name(f"{eval_path.stem}-transfer-{source}.npz")


def _stored_summary(path: Path, key: dict) -> dict | None:
    """The summary kept in a transfer file whose fingerprint is ``key``; None when absent, stale or damaged (scored again)."""
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                if json.loads(str(z["fingerprint_json"])) == key:
                    return json.loads(str(z["summary_json"]))
        except NPZ_ERRORS:
            pass  # damaged or of another layout
    return None


def _transfer_stage(
    stage: Stage, runs: Ensemble, out: Path, train: Dataset, log: Callable[[str], None], source: str = SHARC
) -> dict:
    """One stage's model scored on foreign runs: its summary, from the stage's transfer file while that is of these runs and this model file, else scored (and the file written)."""
    model_path = stage.paths(out)[0]
    path = _transfer_path(stage, out, source)
    key = {"revision": REVISION, "runs": _runs_fingerprint(runs), "model": _file_fingerprint(model_path)}
    stored = _stored_summary(path, key)
    if stored is not None:
        return stored
    model = load_method(model_path)
    dt = _frame_interval(model, train)
    result = transfer(model, runs, dt=dt)
    summary = {**result.summary(), "dt_fs": dt}
    scores = result.scores
    arrays = {k: scores[k] for k in ("distances", "std", "rmsd", "rmsd_sym", "rmsd_sym_traj", "ssr")}
    arrays.update(
        time=result.dataset.time,
        length=result.dataset.length,
        true_distances=result.dataset.distances,
        error=result.error,
        frame_error=result.frame_error,
        run_error=result.run_error,
        summary_json=np.array(json.dumps(summary)),
        fingerprint_json=np.array(json.dumps(key)),
    )
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    log(
        f"{stage.exp.label}: {stage.label.split(' ', 1)[1]} scored on {_runs_text(summary['runs'], source)}: {summary[TRANSFER_SCORE]:.4f} Å"
    )
    return summary


#: Entries of a transfer summary that describe the foreign runs, not a method.
_RUN_KEYS = ("runs", "sources", "dissociated", "dt_fs")


def _over_seeds_runs(summaries: list[dict], reduce: Callable[[list], Any]) -> dict:
    """:func:`over_seeds` for transfer summaries: lists (per-run errors) reduced run by run."""
    out = over_seeds([{k: v for k, v in s.items() if not isinstance(v, list)} for s in summaries], reduce)
    for k, v in summaries[0].items():
        if isinstance(v, list):
            out[k] = [reduce([s[k][i] for s in summaries]) for i in range(len(v))]
    return out


def _frame_interval(model: Any, train: Dataset) -> float:
    """The model's frame interval, fs; for model files of studies before it was recorded, the training dataset's median spacing."""
    return float(model.dt_) if getattr(model, "dt_", None) is not None else float(np.median(np.diff(train.time)))


def _noise_path(stage: Stage, out: Path, cond: Condition, draw: int | None, source: str = SHARC) -> Path:
    """The file of a stage's transfer under one noise condition and draw."""
    base = _transfer_path(stage, out, source)
    return base.with_name(f"{base.stem}-{cond.key}" + (f"-draw{draw}" if draw is not None else "") + ".npz")


def _noise_transfer_stage(
    stage: Stage,
    runs: Ensemble,
    out: Path,
    train: Dataset,
    cond: Condition,
    draw: int | None,
    log: Callable[[str], None],
    source: str = SHARC,
) -> dict:
    """One stage's model on the foreign runs' signals under a noise condition, as itself and with the shared fit.

    Returns ``{"plain": summary, "fitted": summary}`` (:meth:`~molmovie.evaluation.transfer.Transfer.summary`
    of each), from the file while its fingerprint holds, else scored and written.
    """
    model_path = stage.paths(out)[0]
    path = _noise_path(stage, out, cond, draw, source)
    key = {
        "revision": REVISION,
        "runs": _runs_fingerprint(runs),
        "model": _file_fingerprint(model_path),
        "condition": condition_fingerprint(cond),
        "draw": draw,
        "fit": fit_fingerprint(),
    }
    stored = _stored_summary(path, key)
    if stored is not None:
        return stored
    model = load_method(model_path)
    if "refine" in model.get_params():  # the method as itself: no signal fit of its own
        model.set_params(refine=False)
    dt = _frame_interval(model, train)
    ds = foreign_dataset(model, runs, dt=dt)
    dS = condition_signals(ds, cond, seed=draw if draw is not None else stage.base, experiment=f"{stage.exp.key}/{source}")
    assert ds.q is not None
    pred = model.predict(dS, q=ds.q, lengths=ds.length)
    R, std = shared_fit(pred.distances, pred.std, dS, ds, cond, std_scale(model))
    plain, fitted = score_transfer(ds, pred.distances, pred.std), score_transfer(ds, R, std)
    summary = {"plain": {**plain.summary(), "dt_fs": dt}, "fitted": {**fitted.summary(), "dt_fs": dt}}
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(
                f,
                distances=pred.distances.astype(np.float32),
                fitted_distances=R.astype(np.float32),
                run_error=plain.run_error,
                fitted_run_error=fitted.run_error,
                summary_json=np.array(json.dumps(summary)),
                fingerprint_json=np.array(json.dumps(key)),
            )
    log(
        f"{stage.exp.label}: {stage.label.split(' ', 1)[1]} on the {runs_name(source)} under {cond.label}"
        + (f" (draw {draw})" if draw is not None else "")
        + f": {summary['plain'][TRANSFER_SCORE]:.4f} Å → {summary['fitted'][TRANSFER_SCORE]:.4f} Å with the fit"
    )
    return summary


def _noise_entry(
    stages: list[Stage],
    runs: Ensemble,
    out: Path,
    train: Dataset,
    conditions: tuple[str, ...],
    seeds: int,
    log: Callable[[str], None],
    source: str = SHARC,
) -> dict:
    """Per noise condition: every variant's transfer (mean and spread over the seeds, or the draws), ranked."""
    entry = {}
    for cond in (CONDITIONS[k] for k in conditions):
        if not cond.drawn or cond.mismatch is not None:
            continue
        by_seed: dict[str, list[dict]] = {}
        for st in stages:
            for draw in stage_draws(st, cond):
                got = _noise_transfer_stage(st, runs, out, train, cond, draw, log, source)
                for fitted, part in ((False, "plain"), (True, "fitted")):
                    by_seed.setdefault(variant_name(st.method, fitted), []).append(
                        {k: v for k, v in got[part].items() if k not in _RUN_KEYS}
                    )
        stats = seed_statistics(by_seed, seeds, _over_seeds_runs)
        stats.update(rank_methods(stats["methods"], stats.get("spread"), scores=(TRANSFER_SCORE,)))
        entry[cond.key] = {"label": cond.label, "noise": cond.noise, **stats}
    return entry


def transfer_entry(
    exp: Experiment,
    stages: list[Stage],
    foreign: Ensemble,
    out: Path,
    train: Dataset,
    seeds: int,
    log: Callable[[str], None],
    conditions: tuple[str, ...] = (),
    source: str = SHARC,
) -> dict | None:
    """Every model of an experiment scored on the foreign runs (those that stay bound, for a bound-only experiment), ranked like the other scores.

    With noise levels among ``conditions``: also each model, as itself and with the shared fit, on the runs'
    noisy signals (``conditions`` in the entry, per level; see the module notes).
    """
    runs = foreign.subset(np.flatnonzero(~np.asarray(foreign.dissociated))) if exp.bound_only else foreign
    if runs.n_trajectories == 0:
        log(f"{exp.label}: no {runs_name(source, 1)} stays bound; no transfer score")
        return None
    by_seed: dict = {}
    for st in stages:
        by_seed.setdefault(st.method, []).append(_transfer_stage(st, runs, out, train, log, source))
    first = next(iter(by_seed.values()))[0]
    entry = {
        "runs": first["runs"],
        "sources": [Path(s).name for s in first["sources"]],
        "dissociated": first["dissociated"],
        "dt_fs": first["dt_fs"],
        "bound_only": exp.bound_only,
        "source": source,
    }
    by_seed = {m: [{k: v for k, v in s.items() if k not in _RUN_KEYS} for s in v] for m, v in by_seed.items()}
    entry.update(seed_statistics(by_seed, seeds, _over_seeds_runs))
    entry.update(rank_methods(entry["methods"], entry.get("spread"), scores=(TRANSFER_SCORE,)))
    log(
        f"{exp.label}: transfer to {_runs_text(entry['runs'], source)}, mean distance error: "
        + " / ".join(f"{method_label(m)} {v[TRANSFER_SCORE]:.4f} Å" for m, v in entry["methods"].items())
    )
    noisy = _noise_entry(stages, runs, out, train, conditions, seeds, log, source)
    if noisy:
        entry["conditions"] = noisy
    return entry


def other_model_seed(seed: int) -> int:
    """The generation seed of a study's other-model runs: not the seed of its own datasets (whose trajectory *i*
    would start from the same Wigner sample as the other model's *i*), derived from it by ``SeedSequence``."""
    return int(np.random.SeedSequence(int(seed), spawn_key=(2**32 - 1,)).generate_state(1, np.uint64)[0] >> np.uint64(1))


def other_model_runs(
    molecule: str,
    model: str,
    n: int,
    path: Path,
    seed: int,
    workers: int | None,
    log: Callable[[str], None],
    progress: Any = None,
    scheduler: str | None = None,
) -> Ensemble:
    """``n`` trajectories of ``molecule`` with another dynamics ``model`` (a name in :data:`molmovie.dynamics.MODELS`), the
    foreign runs of source ``model``: read from ``path`` when it holds them, else generated there (GFN2-xTB, seed
    :func:`other_model_seed`)."""
    from ...dynamics import generate
    from ...io import read_dataset

    own_seed = other_model_seed(seed)
    if path.exists():
        ds = read_dataset(path)
        provenance = ds.ensemble.provenance or {}
        made = provenance.get("model", {})
        name = made.get("name") if isinstance(made, dict) else None
        if ds.molecule != molecule or ds.n_trajectories != n or name != model:
            raise InputError(
                f"{path} holds {ds.n_trajectories} {ds.molecule} trajectories of the model {name!r}, not the {n} of "
                f"{model!r} this preset scores transfer on; remove it or choose another --output/--data-dir"
            )
        if "seed" in provenance and provenance["seed"] != own_seed:
            raise InputError(
                f"{path} holds {model} trajectories generated with seed {provenance['seed']}, not the "
                f"{own_seed} of a study with seed {seed}; remove it or choose another --output/--data-dir"
            )
        log(f"{molecule}: reusing {path} ({n} trajectories of the {model} model, {int(ds.dissociated.sum())} dissociated)")
        return ds.ensemble
    log(f"{molecule}: generating {n} trajectories of the {model} model with GFN2-xTB (transfer) ...")
    generate(
        molecule,
        n,
        model=model,
        output=path,
        seed=own_seed,
        workers=workers,
        scheduler=scheduler,
        splits=(0, 0, n),
        progress=progress,
    )
    ds = read_dataset(path)
    log(f"{molecule}: {n} trajectories of the {model} model, {int(ds.dissociated.sum())} dissociated")
    return ds.ensemble
