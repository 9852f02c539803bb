"""The five-experiment study of the paper, end to end, resumable, for any list of methods.

Experiments (the paper's): all NMM trajectories; all C2H4; C2H4 without
dissociation; all CS2; CS2 without dissociation. Each has its own
train/val/test split. A :class:`Preset` names the inversion methods it runs
(keys of :data:`molmovie.inversion.METHODS`) with their settings, and may
change them per experiment; an :class:`Experiment` may run only some of them.
Each method is trained, scored on the test split (labelled and
symmetry-aware RMSD, SSR) and compared: every score's winner and its margin
over the runner-up.

With ``seeds=K`` the methods that take a ``seed`` are trained K times, with
seeds s, s+1, ..., s+K-1, on the same datasets and splits (those of the
study's seed s); methods without a seed (the frame-by-frame baseline) are
deterministic and trained once. Every score is then the mean over seeds,
with the sample standard deviation (K-1 in the denominator) as its spread,
and a method wins a score only when its mean is below every other method's
by more than the sum of the two standard deviations (:func:`rank_methods`);
otherwise the score is a tie within the spread. With ``jobs=N`` the
(experiment, method, seed) stages run in N worker processes.

Stages, each written atomically so a rerun skips what is done and Ctrl-C
leaves nothing corrupt::

    OUT/study.json                       what defines the study (a rerun with other settings is refused)
    OUT/data/{nmm,c2h4,cs2}.h5           generated trajectories + signals
    OUT/models/{experiment}-{method}.safetensors           trained with the study's seed
    OUT/models/{experiment}-{method}-seed{s}.safetensors   trained with another seed s (seeds=K > 1)
    OUT/eval/{experiment}-{method}[-seed{s}].npz   predictions and per-frame metrics (:func:`~molmovie.evaluation.write_scores`)
    OUT/eval/{experiment}-{method}[-seed{s}]-transfer-sharc.npz   the model scored on foreign SHARC runs (CS2 only, with ``sharc_dir``)
    OUT/results.json, OUT/results.md     the tables
    OUT/fig2a.png, fig2b.png, fig2c.png, signals.png

The number of seeds is not part of what defines a study: a rerun with more
seeds keeps the stages it has and trains the seeds it lacks; one with fewer
reports only those (the other files stay).

Transfer (with ``sharc_dir``): every model of the CS2 experiments is also
scored on foreign trajectories, real surface-hopping (SHARC) runs of CS2 that
it did not train on (:func:`~molmovie.evaluation.transfer.transfer`: each run
on the model's time grid, its ΔS simulated as the training ΔS was, the
symmetry-aware mean distance error). A bound-only experiment is scored on the
runs that stay bound. The score is made in the study's process once a model
exists, and kept in its ``-transfer-sharc.npz`` file with fingerprints of the
runs and of the model file: a rerun reuses it while both are unchanged, and
scores again (seconds) when either changed. The foreign runs are not part of
what defines a study.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue as _queue
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .._errors import InputError
from .._numba import configure as configure_numba
from ..datasets import SPLITS, Dataset, make_splits
from ..dynamics import generate
from ..inversion import METHODS, get_method, load_method
from ..io import atomic_path, read_dataset, write_dataset
from ..molecules import builtin, formula
from ..scattering import SignalSpec, q_grid, simulate
from .figures import choose_pair, plot_distance_trace, plot_per_time_step, plot_rmsd_sums, plot_signals
from .stage import read_scores, score_method, write_scores
from .transfer import read_foreign, transfer

__all__ = [
    "Preset",
    "PRESETS",
    "EXPERIMENTS",
    "Experiment",
    "SCORES",
    "run_study",
    "rank_methods",
    "method_settings",
    "method_seeds",
    "is_seeded",
    "check_count",
    "SPREAD",
    "WIN_RULE",
    "MAX_SEEDS",
    "MAX_JOBS",
    "results_markdown",
    "write_report",
    "SHARC_DEFAULT",
    "TRANSFER_SCORE",
    "default_sharc_dir",
]


@dataclass(frozen=True)
class Experiment:
    """One experiment of the study.

    Attributes
    ----------
    key : str
        Name of its files (``models/{key}-{method}.safetensors``).
    label : str
        Its name in tables and figures.
    molecule : str
        The dataset it uses (a key of the preset's ``trajectories``).
    bound_only : bool
        Leave out dissociating trajectories (and split the rest anew).
    methods : tuple of str, optional
        The preset's methods it runs (default: all of them).
    pair : str, optional
        The distance the trajectory figure follows (a pair label such as
        "N2-O5", or two elements such as "O-N"); default: the pair whose true
        distance varies most.
    """

    key: str
    label: str
    molecule: str
    bound_only: bool
    methods: tuple[str, ...] | None = None
    pair: str | None = None


EXPERIMENTS = (
    Experiment("nmm", "NMM", "nmm", False, pair="O-N"),
    Experiment("c2h4", "C2H4", "c2h4", False),
    Experiment("c2h4-bound", "C2H4 bound", "c2h4", True),
    Experiment("cs2", "CS2", "cs2", False),
    Experiment("cs2-bound", "CS2 bound", "cs2", True),
)


@dataclass(frozen=True)
class Preset:
    """What a study run trains, and on how much data.

    Attributes
    ----------
    name : str
    trajectories : dict molecule -> (train, val, test) counts
    methods : dict method name -> dict of settings
        The inversion methods to compare (keys of
        :data:`molmovie.inversion.METHODS`), in the order of the tables, with
        their settings; a method that takes a ``seed`` gets the study's.
    settings_by_experiment : dict experiment key -> dict method name -> dict of settings
        Per-experiment changes to ``methods``' settings.
    description : str
    """

    name: str
    trajectories: dict
    methods: dict
    settings_by_experiment: dict = field(default_factory=dict)
    description: str = ""


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        "paper",
        # Table 1 of the paper
        {"nmm": (85, 11, 11), "c2h4": (800, 100, 100), "cs2": (753, 94, 95)},
        methods={"nearest": {}, "nearest-viterbi": {}, "vrnn": dict(epochs=150, patience=20)},
        description="the paper's dataset sizes (Table 1)",
    ),
    "quick": Preset(
        "quick",
        {"nmm": (12, 2, 4), "c2h4": (96, 12, 12), "cs2": (48, 8, 8)},
        methods={"nearest": {}, "nearest-viterbi": {}, "vrnn": dict(epochs=60, patience=10)},
        description="small datasets for a run of well under 20 minutes on 2 cores",
    ),
}


#: The scores compared per experiment (sums over the test frames; smaller wins), in the tables' order.
SCORES = ("rmsd_sum", "rmsd_sym_traj_sum", "rmsd_sym_sum", "ssr_sum")
#: How the tables name them.
SCORE_NAMES = {
    "rmsd_sum": "RMSD sum (Å), labelled",
    "rmsd_sym_traj_sum": "RMSD sum (Å), symmetry-aware per trajectory",
    "rmsd_sym_sum": "RMSD sum (Å), symmetry-aware per frame",
    "ssr_sum": "SSR sum",
}

MANIFEST = "study.json"
#: Raised whenever a change to molmovie makes models or scores of an older study invalid
#: (2: the VRNN's early stopping waits for the physics term's full weight; 3: the VRNN's signal fit at
#: inference, on by default; 4: that fit refines one series at a time; 5: that fit varies coordinates, with
#: continuation in time, and the presets add the Viterbi-decoded baseline; 6: the continuation refits
#: frames by Levenberg-Marquardt, all series at once; 7: the signal fit's noise floor for noise-free
#: signals is 0.003, not 0.03).
REVISION = 7
#: The oldest revision whose models are still valid: every change since then touches inference or scoring
#: only. A study of such a revision is resumed with its models kept and every score made again (its
#: ``eval/`` folder and report moved aside to ``revision{N}/``).
MODELS_VALID_SINCE = 5
#: The spread of a score over training seeds (with seeds > 1), as the tables name it.
SPREAD = "sample standard deviation over the training seeds (K - 1 in the denominator)"
#: When a method wins a score (with seeds > 1), as the tables state it.
WIN_RULE = (
    "a method wins a score only when its mean is lower than every other method's mean by more than "
    "the sum of the two methods' standard deviations; otherwise the score is a tie (within spread)"
)
#: The transfer score (:meth:`molmovie.evaluation.transfer.Transfer.summary`): mean over foreign runs of each run's
#: mean symmetry-aware distance error, Å.
TRANSFER_SCORE = "transfer_error"
#: The molecule whose experiments are scored on SHARC runs.
TRANSFER_MOLECULE = "cs2"
#: Where ``molmovie reproduce`` looks for SHARC runs of CS2 when none are named, relative to the current directory.
SHARC_DEFAULT = Path("..", "shared", "data", "sharc-cs2")
TRANSFER_TITLE = "Transfer to dynamics the model did not train on (SHARC CS2, symmetry-aware mean distance error, Å)"
#: Most training seeds and worker processes a study accepts (a typed number must not start millions of jobs).
MAX_SEEDS = 1000
MAX_JOBS = 256


def method_label(name: str) -> str:
    """How tables and figures call a method: its class's ``label``, else its name."""
    cls = METHODS.get(name)
    return (getattr(cls, "label", "") or name) if cls is not None else name


def experiment_methods(preset: Preset, exp: Experiment) -> list[str]:
    """The methods an experiment runs under a preset, in the preset's order."""
    return [m for m in preset.methods if exp.methods is None or m in exp.methods]


def method_settings(preset: Preset, exp: Experiment, method: str, seed: int) -> dict:
    """A method's settings in one experiment: the preset's, the experiment's changes, and the training seed ``seed`` (for a method that takes one)."""
    s = dict(preset.methods[method])
    s.update(preset.settings_by_experiment.get(exp.key, {}).get(method, {}))
    if is_seeded(method):
        s["seed"] = seed
    return s


def is_seeded(method: str) -> bool:
    """Whether a method's training depends on a seed (it takes a ``seed`` setting); one without is trained once."""
    return method in METHODS and "seed" in METHODS[method].setting_names()


def method_seeds(method: str, seed: int, seeds: int) -> list[int]:
    """The training seeds of a method in a study of ``seeds`` seeds from ``seed``: s, s+1, ..., s+K-1, or [s] for a method without a seed."""
    return [seed + k for k in range(seeds)] if is_seeded(method) else [seed]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _upgrade_manifest(old: dict) -> dict:
    """A manifest written before presets named their methods (VRNN settings beside an implied baseline), in today's terms."""
    if "vrnn" not in old or "methods" in old:
        return old
    new = {k: v for k, v in old.items() if k not in ("vrnn", "vrnn_by_experiment")}
    new["methods"] = {"nearest": {}, "vrnn": old["vrnn"]}
    new["settings_by_experiment"] = {k: {"vrnn": v} for k, v in (old.get("vrnn_by_experiment") or {}).items()}
    return new


def _check_manifest(out: Path, preset: Preset, seed: int, data_dir) -> tuple[dict, int | None]:
    """What defines this study, and the revision of the study in ``out`` when it is older than today's
    (:data:`MODELS_VALID_SINCE` or later; else None); refuse to resume, in ``out``, a study defined
    otherwise or by an older molmovie whose models are not valid today."""
    manifest = json.loads(json.dumps({
        "revision": REVISION,
        "preset": preset.name,
        "seed": int(seed),
        "data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
        "trajectories": {k: list(v) for k, v in preset.trajectories.items()},
        "methods": preset.methods,
        "settings_by_experiment": preset.settings_by_experiment,
    }))
    path = out / MANIFEST
    if not path.exists():
        stale = [p for sub in ("models", "eval") if (out / sub).is_dir() for p in (out / sub).iterdir()]
        if stale:
            raise InputError(
                f"{out} holds models or scores but no {MANIFEST} (a study by an older molmovie, or other files); "
                "choose another --output"
            )
        return manifest, None
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        raise InputError(f"{path} is not a study manifest; choose another --output") from None
    if not isinstance(old, dict):
        raise InputError(f"{path} is not a study manifest; choose another --output")
    a, b = _flatten(_upgrade_manifest(old)), _flatten(manifest)
    older = a["revision"] if isinstance(a.get("revision"), int) and MODELS_VALID_SINCE <= a["revision"] < REVISION else None
    if older is not None:
        b = {**b, "revision": older}  # its models are valid today (run_study scores them again)
    # an empty dict is kept as a value (a method without settings is named), and is as good as unset
    diff = [
        f"{k} {a.get(k, 'unset')} there, {b.get(k, 'unset')} here"
        for k in sorted(set(a) | set(b))
        if a.get(k, {}) != b.get(k, {})
    ]
    if diff:
        raise InputError(
            f"{out} holds a study defined otherwise ({'; '.join(diff)}); its models would be reused: choose another --output"
        )
    return manifest, older


def _experiment_dataset(full, exp: Experiment, seed: int):
    """The dataset of one experiment with its own split (bound-only experiments drop dissociating runs)."""
    if not exp.bound_only:
        return full
    ds = full.without_dissociating()
    counts = [len(full.splits[k]) for k in SPLITS]
    ds.splits = make_splits(ds.n_trajectories, counts, seed=seed + 1)
    return ds


def _staged(progress, stage: str, *, least: int = 1):
    """``progress(done, info)`` with ``info["stage"]`` set (``stage`` and the unit of its steps); None without a progress callback.

    Jobs of fewer than ``least`` steps report nothing (a one-step fit has no progress to show).
    """
    if progress is None:
        return None

    def report(done: int, info: dict) -> None:
        if (info.get("total") or 0) >= least:
            progress(done, {**info, "stage": f"{stage} {info['unit']}" if info.get("unit") else stage})

    return report


def run_study(
    preset: str | Preset,
    output,
    *,
    seed: int = 0,
    seeds: int = 1,
    jobs: int = 1,
    threads: int | None = None,
    workers: int | None = None,
    data_dir=None,
    sharc_dir=None,
    log: Callable[[str], None] = print,
    progress: Callable[[int, dict], None] | None = None,
) -> dict:
    """Run the five-experiment study (or resume it) and write the report.

    Parameters
    ----------
    preset : "quick", "paper" or a :class:`Preset`
    output : path-like
        Folder for every stage's output (created if missing). A study there
        is resumed when it is the same study (its ``study.json``); one of an
        older revision since :data:`MODELS_VALID_SINCE` keeps its models and
        has every score made again, its ``eval/`` and report moved to
        ``revision{N}/`` (once its datasets are accepted).
    seed : int
        Seed of trajectory generation, splits and training.
    seeds : int, default 1
        Training seeds per method (``seed``, ``seed + 1``, ..., on the same
        datasets and splits); each score is then reported as mean and spread
        over them (:data:`SPREAD`, :data:`WIN_RULE`). Methods without a
        ``seed`` setting are trained once.
    jobs : int, default 1
        Processes that train and score the (experiment, method, seed) stages
        side by side; each limits its torch, BLAS, OpenMP and numba threads to
        ``threads``. ``jobs=1`` runs them here, one after another. Dataset
        generation is not affected (see ``workers``). A script that calls
        this with ``jobs > 1`` must guard its top level with
        ``if __name__ == "__main__":`` (the workers are spawned, and import
        the script again).
    threads : int, optional
        Threads of each stage's numerical libraries (torch, BLAS, OpenMP,
        numba). Default: ``cores // jobs`` (at least 1) with ``jobs > 1``;
        with ``jobs=1``, as this process has them (all cores). Training on
        the CPU is deterministic for a given number of threads, so a study
        gives the same numbers with any ``jobs`` for the same ``threads``
        (another thread count changes float32 summation order, and so the
        last digits).
    workers : int, optional
        Worker processes for trajectory generation (default: all cores).
    data_dir : path-like, optional
        Where the generated datasets live (default ``OUTPUT/data``); reused when present.
    sharc_dir : path-like, optional
        SHARC runs of CS2 (a folder of run folders, or anything
        :func:`~molmovie.evaluation.transfer.read_foreign` reads) on which
        every model of the CS2 experiments is scored for its transfer
        (bound-only experiments: the runs that stay bound). Default: none,
        no transfer score (``molmovie reproduce`` looks for
        :data:`SHARC_DEFAULT`, :func:`default_sharc_dir`).
    log : callable(str)
        Where progress lines go.
    progress : callable(done, info), optional
        Progress of the long stages (generating a molecule's trajectories,
        training a method for more than one step): ``info["stage"]`` names
        the stage (e.g. "nmm vrnn epochs", "nmm vrnn seed 4 epochs" with
        ``seeds > 1``, "generate nmm"), ``info["total"]`` its steps; a stage
        may end early (early stopping). With ``jobs > 1`` the reports of
        the stages running at once interleave (all are made from this
        process), and a stage that ended early sends one last report with
        ``info["total"]`` equal to its ``done``.

    Returns
    -------
    dict
        The results (also written to ``results.json``): per experiment its
        split sizes, each method's summary, and per score the ``winner``,
        the ``runner_up`` and the ``margin`` between them. With ``seeds > 1``
        each method's summary holds means over seeds, ``spread`` and
        ``per_seed`` hold the standard deviations and the values of each
        seed, and per score ``leader``, ``threshold`` and ``tied`` say how
        the winner (None on a tie) was decided (:func:`rank_methods`);
        ``seeds`` lists the training seeds. With ``sharc_dir``, each CS2
        experiment also holds ``transfer["sharc"]``: the foreign runs
        (``runs``, ``sources``, ``dissociated``, ``dt_fs``), each method's
        transfer summary (``methods``; with seeds, ``spread`` and
        ``per_seed``) and the winner of :data:`TRANSFER_SCORE` by the same
        rule (:func:`rank_methods`).
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r}; presets are {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    unknown = [m for m in preset.methods if m not in METHODS]
    if unknown:
        raise InputError(f"the {preset.name} preset names unknown methods {', '.join(map(repr, unknown))}; methods are {', '.join(METHODS)}")
    check_count("seeds", seeds, MAX_SEEDS)
    check_count("jobs", jobs, MAX_JOBS)
    if threads is not None:
        check_count("threads", threads, MAX_JOBS)
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    data = Path(data_dir) if data_dir is not None else out / "data"
    if data.exists() and not data.is_dir():
        raise InputError(f"the data folder {data} exists and is not a folder")
    manifest, older = _check_manifest(out, preset, seed, data_dir)
    foreign = _read_sharc(sharc_dir) if sharc_dir is not None else None  # read (and checked) before hours of work
    for d in (out, data, out / "models", out / "eval"):
        d.mkdir(parents=True, exist_ok=True)
    if not (out / MANIFEST).exists():
        with atomic_path(out / MANIFEST) as tmp:
            tmp.write_text(json.dumps(manifest, indent=2))

    t0 = time.perf_counter()
    reused = 0
    datasets = {}
    for mol in dict.fromkeys(e.molecule for e in EXPERIMENTS):
        path = data / f"{mol}.h5"
        reused += path.exists()
        datasets[mol] = _dataset_stage(mol, preset, path, seed, workers, log, _staged(progress, f"generate {mol}"))

    if older is not None:  # the datasets are accepted: the study is resumed in today's revision
        _set_aside(out, older, log)
        (out / "eval").mkdir(exist_ok=True)
        with atomic_path(out / MANIFEST) as tmp:
            tmp.write_text(json.dumps(manifest, indent=2))

    stages = {
        exp.key: [
            _Stage(exp, method, s, seed, seeds > 1 and is_seeded(method))
            for method in experiment_methods(preset, exp)
            for s in method_seeds(method, seed, seeds)
        ]
        for exp in EXPERIMENTS
    }
    reused += sum(any(p.exists() for p in st.paths(out)) for sts in stages.values() for st in sts)
    todo = [st for sts in stages.values() for st in sts if not _scored(st.paths(out)[1])]
    if jobs > 1 and todo:
        _run_parallel(todo, min(jobs, len(todo)), threads or max(1, _cores() // jobs), preset, out, data, seed, log, progress)

    results = {"preset": preset.name, "seed": seed, "experiments": {}}
    if seeds > 1:
        results.update(seeds=[seed + k for k in range(seeds)], spread=SPREAD, win_rule=WIN_RULE)
    per_frame = {}
    for exp in EXPERIMENTS:
        train, val, test = _experiment_splits(datasets[exp.molecule], exp, seed)
        here = [st for st in stages[exp.key] if st in todo and jobs == 1]
        if here:
            undo = _limit_threads(threads) if threads is not None else (lambda: None)
            try:
                for st in here:
                    _method_stage(st, preset, train, val, test, out, log, progress)
            finally:
                undo()
        entry = {"label": exp.label, "trajectories": {"train": train.n_trajectories, "val": val.n_trajectories, "test": test.n_trajectories}, "methods": {}}
        by_seed = {}
        for st in stages[exp.key]:
            if st.seed == seed:  # the study's seed: its predictions are drawn
                per_frame[(exp.key, st.method)] = read_scores(st.paths(out)[1])
            by_seed.setdefault(st.method, []).append(per_frame[(exp.key, st.method)]["summary"] if st.seed == seed else _summary(st.paths(out)[1]))
        entry.update(_seed_statistics(by_seed, seeds, _over_seeds))
        # the simplest predictor, for scale: every frame answered with the training set's mean distances
        mean_R = np.nanmean(train.distances[train.mask], axis=0)
        entry["mean_predictor_abs_error"] = float(np.mean(np.abs(test.distances[test.mask] - mean_R)))
        entry.update(rank_methods(entry["methods"], entry.get("spread")))
        results["experiments"][exp.key] = entry
        log(_log_line(exp, entry))
        if foreign is not None and exp.molecule == TRANSFER_MOLECULE:
            scored = _transfer_entry(exp, stages[exp.key], foreign, out, train, seeds, log)
            if scored is not None:
                entry["transfer"] = {"sharc": scored}
    results["wall_time_s"] = round(time.perf_counter() - t0, 1)
    results["reused_stages"] = int(reused)
    write_report(results, per_frame, datasets, out, seed=seed)
    return results


#: What a study writes beside its models: the scores and the report (:func:`write_report`).
REPORT = ("results.json", "results.md", "fig2a.png", "fig2b.png", "fig2c.png", "signals.png")


def _set_aside(out: Path, older: int, log) -> None:
    """Move a study's scores (``eval/``) and report into ``revision{older}/`` (a free name), to be made again; its models stay."""
    found = [p for p in (out / "eval", *(out / name for name in REPORT)) if p.exists()]
    if (out / "eval").is_dir() and not any((out / "eval").iterdir()):
        found.remove(out / "eval")
    if not found:
        return
    aside = _free_name(out / f"revision{older}")
    aside.mkdir()
    for path in found:
        path.rename(aside / path.name)
    log(f"{out} is a study of revision {older}: its models are kept; its scores and report, moved to {aside.name}/, are made again")


def _free_name(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``, ...: the first that does not exist."""
    k = 1
    candidate = path
    while candidate.exists():
        k += 1
        candidate = path.with_name(f"{path.name}-{k}")
    return candidate


def check_count(name: str, value, most: int) -> None:
    """Refuse a count that is not a whole number from 1 to ``most``, naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= most:
        raise InputError(f"The {name!r} parameter must be a whole number from 1 to {most}; got {value!r}")


def _over_seeds(summaries: list[dict], reduce) -> dict:
    """Each key of per-seed summaries reduced over the seeds (keys every seed has)."""
    keys = [k for k in summaries[0] if all(k in s for s in summaries)]
    return {k: reduce([s[k] for s in summaries]) for k in keys}


def _mean(values: list):
    """The mean of per-seed values; the value itself when every seed gave the same (the frame count stays an int)."""
    return values[0] if all(v == values[0] for v in values) else float(np.mean(values))


def _std(values: list) -> float:
    """The sample standard deviation (K - 1 in the denominator) of per-seed values; 0 when every seed gave the same."""
    return 0.0 if all(v == values[0] for v in values) else float(np.std(values, ddof=1))


def rank_methods(summaries: dict, spreads: dict | None = None, *, scores=SCORES) -> dict:
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


def _seed_statistics(by_seed: dict, seeds: int, over) -> dict:
    """Each method's summaries over the seeds: itself with one seed; else mean, spread (std) and per-seed lists.

    ``by_seed`` maps a method to its summaries, one per seed (one alone for a method without a seed: it stands for
    every seed); ``over(summaries, reduce)`` reduces them score by score.
    """
    if seeds == 1:
        return {"methods": {m: v[0] for m, v in by_seed.items()}}
    by_seed = {m: v * seeds if len(v) == 1 else v for m, v in by_seed.items()}
    return {"methods": {m: over(v, _mean) for m, v in by_seed.items()},
            "spread": {m: over(v, _std) for m, v in by_seed.items()},
            "per_seed": {m: _over_seeds(v, list) for m, v in by_seed.items()}}


def _log_line(exp: Experiment, entry: dict) -> str:
    m = entry["methods"]
    names = " / ".join(method_label(k) for k in m)
    cells = [f"{short} " + " / ".join(f"{m[k][score]:9.4g}" for k in m) for score, short in zip(SCORES, ("RMSD sum", "sym/traj", "sym/frame", "SSR"))]
    return f"{exp.label:11s} {names}: " + " | ".join(cells)


def _dataset_stage(mol, preset, path: Path, seed, workers, log, progress):
    """Generate (or reuse) one molecule's trajectories and simulate their signals."""
    counts = preset.trajectories[mol]
    n = int(sum(counts))
    if path.exists():
        ds = read_dataset(path)
        if ds.n_trajectories != n:
            raise InputError(
                f"{path} holds {ds.n_trajectories} trajectories but the {preset.name} preset needs {n}; "
                "remove it or choose another --output/--data-dir"
            )
        if ds.molecule != mol:
            raise InputError(f"{path} holds {ds.molecule!r} trajectories, not {mol!r}; remove it or choose another --data-dir")
        sizes = tuple(len(ds.splits.get(k, ())) for k in SPLITS)
        if sizes != tuple(counts):
            raise InputError(
                f"{path} is split {'/'.join(map(str, sizes))} (train/val/test) but the {preset.name} preset needs "
                f"{'/'.join(map(str, counts))}; remove it or choose another --output/--data-dir"
            )
        if ds.has_signals:
            _check_protocol(ds, path)
            log(f"{mol}: reusing {path} ({n} trajectories, {int(ds.dissociated.sum())} dissociated)")
            return ds
    else:
        log(f"{mol}: generating {n} trajectories with GFN2-xTB ...")
        generate(mol, n, output=path, seed=seed, workers=workers, splits=counts, progress=progress)
        ds = read_dataset(path)
    q = q_grid()
    ds = ds.with_signals(*simulate(ds.symbols, ds.positions, ds.length, ds.time, SignalSpec(q, inelastic=True, reference="first", seed=seed)))
    write_dataset(ds, path, force=True)
    log(f"{mol}: {n} trajectories, {int(ds.dissociated.sum())} dissociated; signals on {len(q)} q points")
    return ds


def _check_protocol(ds, path: Path) -> None:
    """Refuse reused signals simulated otherwise than the study's protocol (default q grid, inelastic, first frame, exact)."""
    q, spec = q_grid(), ds.spec
    found = {
        "q grid": f"{len(ds.q)} points, {ds.q.min():.3g}-{ds.q.max():.3g} 1/Å",
        "inelastic": spec.inelastic,
        "reference": spec.reference,
        "photons": spec.photons,
        "irf_fs": spec.irf_fs,
    }
    wanted = {"q grid": f"{len(q)} points, {q.min():.3g}-{q.max():.3g} 1/Å", "inelastic": True, "reference": "first", "photons": None, "irf_fs": None}
    same_q = len(ds.q) == len(q) and np.allclose(ds.q, q, rtol=1e-9, atol=1e-12)
    diff = [f"{k} {found[k]} (the study uses {wanted[k]})" for k in wanted if (not same_q if k == "q grid" else found[k] != wanted[k])]
    if diff:
        raise InputError(f"{path} holds signals simulated otherwise than the study's: {'; '.join(diff)}; choose another --data-dir")


@dataclass(frozen=True)
class _Stage:
    """One (experiment, method, training seed) stage of a study of seed ``base``; ``several``: one of several seeds."""

    exp: Experiment
    method: str
    seed: int
    base: int
    several: bool = False

    def paths(self, out: Path) -> tuple[Path, Path]:
        """The model file and the evaluation file of the stage (named by its seed unless it is the study's)."""
        stem = f"{self.exp.key}-{self.method}" + (f"-seed{self.seed}" if self.seed != self.base else "")
        return out / "models" / f"{stem}.safetensors", out / "eval" / f"{stem}.npz"

    @property
    def label(self) -> str:
        """The stage in progress reports and log lines: "nmm vrnn", or "nmm vrnn seed 4" with several seeds."""
        return f"{self.exp.key} {self.method}" + (f" seed {self.seed}" if self.several else "")


def _experiment_splits(full, exp: Experiment, seed: int) -> tuple[Dataset, Dataset, Dataset]:
    """The training, validation and test trajectories of one experiment."""
    ds = _experiment_dataset(full, exp, seed)
    return ds.split("train"), ds.split("val"), ds.split("test")


def _summary(eval_path: Path) -> dict:
    """The summary of an evaluation file, without reading its arrays."""
    with np.load(eval_path, allow_pickle=False) as z:
        return json.loads(str(z["summary_json"]))


def _scored(eval_path: Path) -> bool:
    """Whether an evaluation file exists and holds every score of today's metrics."""
    return eval_path.exists() and all(k in _summary(eval_path) for k in SCORES)


def _method_stage(stage: _Stage, preset, train, val, test, out: Path, log, progress) -> None:
    """Train (or load) one method for one experiment with one seed, then predict, score and save its test split."""
    exp, method = stage.exp, stage.method
    model_path, eval_path = stage.paths(out)
    if eval_path.exists():
        log(f"{exp.label}: {eval_path.name} predates the current metrics; scoring {method} again")
    if model_path.exists():
        model = load_method(model_path)
    else:
        model = get_method(method, **method_settings(preset, exp, method, stage.seed))
        seeded = f" (seed {stage.seed})" if stage.several else ""
        log(f"{exp.label}: training {method}{seeded} on {train.n_trajectories} trajectories ...")
        t = time.perf_counter()
        model.fit(train, val=val, progress=_staged(progress, stage.label, least=2))
        model.save(model_path)
        log(f"{exp.label}: {method}{seeded} trained in {time.perf_counter() - t:.0f} s")
    write_scores(eval_path, score_method(model, test))


# --------------------------------------------------------------------------- transfer to foreign runs


def default_sharc_dir() -> Path | None:
    """:data:`SHARC_DEFAULT` (relative to the current directory) when it is a folder there, else None."""
    return SHARC_DEFAULT if SHARC_DEFAULT.is_dir() else None


def _read_sharc(sharc_dir):
    """The foreign runs in ``sharc_dir`` (read once per study); a path that is not there is an InputError."""
    path = Path(sharc_dir)
    if not path.exists():
        raise InputError(f"the SHARC folder {path} does not exist")
    runs = read_foreign(path)
    want = builtin(TRANSFER_MOLECULE).symbols
    if sorted(runs.symbols) != sorted(want):
        raise InputError(f"the SHARC runs in {path} are of {formula(runs.symbols)}, not {formula(want)}: the study scores its "
                         f"{formula(want)} models' transfer on them")
    return runs


def _runs_fingerprint(runs) -> str:
    """A digest of foreign runs: atoms, times, lengths and positions (what a transfer score depends on)."""
    h = hashlib.sha256(" ".join(runs.symbols).encode())
    for a in (runs.time, runs.length, runs.positions):
        h.update(np.ascontiguousarray(a, dtype=float).tobytes())
    return h.hexdigest()


def _file_fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _transfer_path(stage: _Stage, out: Path) -> Path:
    """The transfer file of a stage: its evaluation file's name with ``-transfer-sharc``."""
    eval_path = stage.paths(out)[1]
    return eval_path.with_name(f"{eval_path.stem}-transfer-sharc.npz")


def _transfer_stage(stage: _Stage, runs, out: Path, train, log) -> dict:
    """One stage's model scored on foreign runs: its summary, from the stage's transfer file while that is of these runs and this model file, else scored (and the file written)."""
    model_path = stage.paths(out)[0]
    path = _transfer_path(stage, out)
    key = {"revision": REVISION, "runs": _runs_fingerprint(runs), "model": _file_fingerprint(model_path)}
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                if json.loads(str(z["fingerprint_json"])) == key:
                    return json.loads(str(z["summary_json"]))
        except (OSError, ValueError, KeyError):
            pass  # damaged or of another layout: scored again
    model = load_method(model_path)
    # model files of studies before the frame interval was recorded: the training dataset's median spacing
    dt = model.dt_ if getattr(model, "dt_", None) is not None else float(np.median(np.diff(train.time)))
    result = transfer(model, runs, dt=dt)
    summary = {**result.summary(), "dt_fs": dt}
    scores = result.scores
    arrays = {k: scores[k] for k in ("distances", "std", "rmsd", "rmsd_sym", "rmsd_sym_traj", "ssr")}
    arrays.update(
        time=result.dataset.time, length=result.dataset.length, true_distances=result.dataset.distances,
        error=result.error, frame_error=result.frame_error, run_error=result.run_error,
        summary_json=np.array(json.dumps(summary)), fingerprint_json=np.array(json.dumps(key)),
    )
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    log(f"{stage.exp.label}: {stage.label.split(' ', 1)[1]} scored on {summary['runs']} SHARC run{'s' * (summary['runs'] > 1)}: "
        f"{summary[TRANSFER_SCORE]:.4f} Å")
    return summary


#: Entries of a transfer summary that describe the foreign runs, not a method.
_RUN_KEYS = ("runs", "sources", "dissociated", "dt_fs")


def _over_seeds_runs(summaries: list[dict], reduce) -> dict:
    """:func:`_over_seeds` for transfer summaries: lists (per-run errors) reduced run by run."""
    out = _over_seeds([{k: v for k, v in s.items() if not isinstance(v, list)} for s in summaries], reduce)
    for k, v in summaries[0].items():
        if isinstance(v, list):
            out[k] = [reduce([s[k][i] for s in summaries]) for i in range(len(v))]
    return out


def _transfer_entry(exp: Experiment, stages: list[_Stage], foreign, out: Path, train, seeds: int, log) -> dict | None:
    """Every model of an experiment scored on the foreign runs (those that stay bound, for a bound-only experiment), ranked like the other scores."""
    runs = foreign.subset(np.flatnonzero(~np.asarray(foreign.dissociated))) if exp.bound_only else foreign
    if runs.n_trajectories == 0:
        log(f"{exp.label}: no SHARC run stays bound; no transfer score")
        return None
    by_seed: dict = {}
    for st in stages:
        by_seed.setdefault(st.method, []).append(_transfer_stage(st, runs, out, train, log))
    first = next(iter(by_seed.values()))[0]
    entry = {
        "runs": first["runs"],
        "sources": [Path(s).name for s in first["sources"]],
        "dissociated": first["dissociated"],
        "dt_fs": first["dt_fs"],
        "bound_only": exp.bound_only,
    }
    by_seed = {m: [{k: v for k, v in s.items() if k not in _RUN_KEYS} for s in v] for m, v in by_seed.items()}
    entry.update(_seed_statistics(by_seed, seeds, _over_seeds_runs))
    entry.update(rank_methods(entry["methods"], entry.get("spread"), scores=(TRANSFER_SCORE,)))
    log(f"{exp.label}: transfer to {entry['runs']} SHARC run{'s' * (entry['runs'] > 1)}, mean distance error: "
        + " / ".join(f"{method_label(m)} {v[TRANSFER_SCORE]:.4f} Å" for m, v in entry["methods"].items()))
    return entry


# --------------------------------------------------------------------------- stages in parallel processes

#: Messages from the worker processes to the study's process (set in each worker by :func:`_start_worker`).
_messages = None
#: The datasets a worker process has read: path -> (modification time, Dataset).
_datasets: dict = {}
#: Whether a worker process is inside a stage (SIGTERM then unwinds it, removing temporary files).
_in_stage = False


class _Terminated(BaseException):
    """Raised in a worker process by SIGTERM while it runs a stage."""


def _on_sigterm(signum, frame) -> None:
    if _in_stage:
        raise _Terminated
    os._exit(143)


def _limit_threads(threads: int) -> Callable[[], None]:
    """Limit this process's numerical libraries (torch, BLAS, OpenMP, numba) to ``threads`` threads; returns the function that undoes it."""
    from threadpoolctl import threadpool_limits
    import numba
    import torch

    configure_numba()  # its thread pool chosen before set_num_threads starts it
    limits = threadpool_limits(limits=threads)
    before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))

    def undo() -> None:
        limits.restore_original_limits()
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])

    return undo


def _start_worker(messages, threads: int) -> None:
    """Set up a worker process: its message queue, ``threads`` threads for every numerical library, Ctrl-C left to the parent."""
    global _messages
    _messages = messages
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the study's process decides
    signal.signal(signal.SIGTERM, _on_sigterm)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)  # for libraries loaded later (this process is the study's own)
    # numba guards its thread pool's start with a multiprocessing lock when processes start by (fork)server,
    # a named semaphore that a worker ended by SIGTERM would leave behind ("leaked semaphore" at exit)
    import multiprocessing

    multiprocessing.set_start_method("spawn", force=True)
    _limit_threads(threads)


def _worker_stage(stage: _Stage, preset, out: Path, data: Path, seed: int) -> None:
    """Run one stage in a worker process: its dataset read from ``data`` (once per process), its log lines and progress sent to the parent."""
    global _in_stage
    path = data / f"{stage.exp.molecule}.h5"
    mtime = path.stat().st_mtime_ns
    if _datasets.get(path, (None,))[0] != mtime:
        _datasets[path] = (mtime, read_dataset(path))
    train, val, test = _experiment_splits(_datasets[path][1], stage.exp, seed)
    _in_stage = True
    try:
        _method_stage(stage, preset, train, val, test, out,
                      lambda line: _messages.put(("log", line)), lambda done, info: _messages.put(("progress", stage.label, done, info)))
    except _Terminated:
        os._exit(143)  # temporary files are gone (the stage unwound); nothing else of this process is wanted
    finally:
        _in_stage = False
        _messages.put(("end", stage.label))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: What the worker processes' server imports once (what a stage would import first, torch's optimiser its compiler
#: among it: seconds per worker); a module that fails to import is skipped.
_PRELOAD = [
    "molmovie.evaluation.study", "molmovie.inversion._vrnn_net", "molmovie.scattering._kernels",
    "threadpoolctl", "numba", "networkx", "scipy.linalg", "torch", "torch.optim", "torch._dynamo",
]


def _worker_context():
    """How worker processes start: forked from a server that has imported torch and numba once (POSIX), else spawned.

    Neither copies this process (its threads, or a CUDA context); the server
    saves every worker the seconds of importing torch (:data:`_PRELOAD`). It
    is Python's one forkserver, shared by this process's users of it.
    """
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def _run_parallel(todo: list[_Stage], jobs: int, threads: int, preset, out: Path, data: Path, seed: int, log, progress) -> None:
    """Run stages in ``jobs`` spawned processes of ``threads`` threads each, the longest first; relay their log lines and progress here.

    An error in a stage, Ctrl-C or SIGTERM stops every worker (a stage
    underway leaves nothing: its files are written atomically) and is raised
    here; the finished stages are kept. A worker that dies (killed, out of
    memory) is a :class:`ChildProcessError` (an ``OSError``: one line from the CLI).
    """
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    ctx = _worker_context()
    messages = ctx.Queue()
    # the stages that train (those with a seed) first, larger training sets first: the slowest start first
    order = sorted(todo, key=lambda st: (not is_seeded(st.method), -sum(preset.trajectories[st.exp.molecule])))
    log(f"training and scoring {len(todo)} stages in {jobs} processes of {threads} thread{'s' * (threads > 1)} each ...")
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_start_worker, initargs=(messages, threads))
    last: dict = {}  # stage label -> its last progress report
    ended = 0

    def relay(message) -> None:
        nonlocal ended
        kind, *rest = message
        if kind == "log":
            log(rest[0])
        elif kind == "progress":
            label, done, info = rest
            last[label] = (done, info)
            if progress is not None:
                progress(done, info)
        else:  # "end": a stage is over; close its bar if it stopped early
            ended += 1
            done, info = last.pop(rest[0], (None, None))
            if progress is not None and info is not None and done < (info.get("total") or 0):
                progress(done, {**info, "total": done})

    try:
        futures = [pool.submit(_worker_stage, st, preset, out, data, seed) for st in order]
        while ended < len(futures):
            try:
                relay(messages.get(timeout=0.2))
            except _queue.Empty:
                pass
            for f, st in zip(futures, order):
                if f.done() and f.exception() is not None:
                    if isinstance(f.exception(), BrokenProcessPool):  # killed (out of memory?): one line, not a traceback
                        raise ChildProcessError(
                            f"a worker process ended abruptly while running {st.label} (killed, or out of memory?); "
                            f"the finished stages in {out} are kept: run again, with fewer jobs if memory ran out"
                        ) from f.exception()
                    raise f.exception()
    except BaseException:
        _stop(pool)
        raise
    finally:
        pool.shutdown(wait=True)
        messages.close()


def _stop(pool) -> None:
    """End the worker processes (SIGTERM, then SIGKILL after 10 s); the pool then fails the stages not run.

    The futures are not cancelled here: Python 3.11's pool, once broken,
    sets an exception on every pending future, and fails on one cancelled.
    """
    if hasattr(pool, "terminate_workers"):  # Python >= 3.14
        pool.terminate_workers()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(10)
        if p.is_alive():
            p.kill()


# --------------------------------------------------------------------------- report


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 100 else f"{x:.0f}"


def _methods_of(results: dict) -> list[str]:
    return list(dict.fromkeys(m for e in results["experiments"].values() for m in e["methods"]))


def _spread_caption(results: dict, methods: list[str]) -> str:
    """What the tables of a study over several seeds show, in one paragraph."""
    seeds = results["seeds"]
    once = [method_label(m) for m in methods if not is_seeded(m)]
    return (
        f"Each score: mean ± spread over {len(seeds)} training seeds ({seeds[0]}-{seeds[-1]}), on the datasets and splits of "
        f"seed {results['seed']}; the spread is the {SPREAD}"
        + (f" ({', '.join(once)}: no seed, trained once, spread 0)" if once else "")
        + f". Bold: the winner; {WIN_RULE}."
    )


def _pm(mean: float, spread: float | None) -> str:
    return _fmt(mean) if spread is None else f"{_fmt(mean)} ± {_fmt(spread)}"


def results_markdown(results: dict) -> str:
    """The results tables in Markdown, for any number of methods (bold: each score's winner).

    With several seeds (``results["seeds"]``) every score reads mean ± spread,
    a caption says which spread and when a method wins, and a score without a
    winner reads "tie (within spread)".
    """
    exps = results["experiments"]
    methods = _methods_of(results)
    names = " / ".join(method_label(m) for m in methods)
    several = "seeds" in results
    rows = [_spread_caption(results, methods), ""] if several else []

    def spread(e, name, k):
        return e["spread"][name][k] if several else None

    rows += [
        "| experiment | train/val/test | " + " | ".join(f"{SCORE_NAMES[k]}: {names}" for k in SCORES) + " |",
        "|---|---|" + "---|" * len(SCORES),
    ]
    for e in exps.values():
        m = e["methods"]
        cells = []
        for k in SCORES:
            texts = ["-" if name not in m else _pm(m[name][k], spread(e, name, k)) for name in methods]
            cells.append(" / ".join(f"**{t}**" if name == e["winner"][k] else t for name, t in zip(methods, texts)))
        t = e["trajectories"]
        rows.append(f"| {e['label']} | {t['train']}/{t['val']}/{t['test']} | " + " | ".join(cells) + " |")
    if len(methods) > 1:
        rows += ["", "| experiment | " + " | ".join(f"{SCORE_NAMES[k]}: winner, margin over the runner-up" for k in SCORES) + " |",
                 "|---|" + "---|" * len(SCORES)]
        for e in exps.values():
            cells = []
            for k in SCORES:
                win, runner, margin = e["winner"][k], e["runner_up"][k], e["margin"][k]
                lead = e["leader"][k] if several else win
                if runner is None:
                    cells.append(method_label(lead))
                    continue
                if several and win is None:
                    tied = ", ".join(method_label(x) for x in e["tied"][k])
                    cells.append(f"tie (within spread): {tied}; {method_label(lead)} leads by {_fmt(margin)}, spread {_fmt(e['threshold'][k])}")
                    continue
                base = e["methods"][runner][k]
                pct = f" ({100 * margin / base:.0f} % of {method_label(runner)}'s)" if base > 0 else ""
                cells.append(f"{method_label(win)} by {_fmt(margin)}{pct}" + (f" > spread {_fmt(e['threshold'][k])}" if several else ""))
            rows.append(f"| {e['label']} | " + " | ".join(cells) + " |")
    rows += ["", f"| experiment | mean abs. distance error (Å): training mean / {names} | true distances inside ±2σ |", "|---|---|---|"]
    for e in exps.values():
        m = e["methods"]
        errors = " / ".join(
            "-" if name not in m else f"{m[name]['abs_error_mean']:.3f}" + (f" ± {e['spread'][name]['abs_error_mean']:.3f}" if several else "")
            for name in methods
        )
        inside = [f"{method_label(name)} {100 * m[name]['within_2sigma']:.0f} %" for name in methods if "within_2sigma" in m.get(name, {})]
        rows.append(f"| {e['label']} | {e.get('mean_predictor_abs_error', float('nan')):.3f} / {errors} | {', '.join(inside) or '-'} |")
    rows += _transfer_markdown(results, methods)
    n = len(exps)
    wins = []
    for name in methods:
        w = {k: sum(e["winner"][k] == name for e in exps.values()) for k in SCORES}
        wins.append(
            f"{method_label(name)} wins: labelled RMSD {w['rmsd_sum']}/{n}, symmetry-aware RMSD per trajectory "
            f"{w['rmsd_sym_traj_sum']}/{n} and per frame {w['rmsd_sym_sum']}/{n}, SSR {w['ssr_sum']}/{n}"
        )
    if several:
        ties = {k: sum(e["winner"][k] is None for e in exps.values()) for k in SCORES}
        wins.append(
            f"ties within spread: labelled RMSD {ties['rmsd_sum']}/{n}, symmetry-aware RMSD per trajectory "
            f"{ties['rmsd_sym_traj_sum']}/{n} and per frame {ties['rmsd_sym_sum']}/{n}, SSR {ties['ssr_sum']}/{n}"
        )
    seeds = f"seeds {results['seeds'][0]}-{results['seeds'][-1]}" if several else f"seed {results['seed']}"
    rows += ["", "; ".join(wins) + (
        f" (preset `{results['preset']}`, {seeds}; this run took {results.get('wall_time_s', 0):.0f} s"
        + (f", reusing {results['reused_stages']} stages finished before it)." if results.get("reused_stages") else ").")
    )]
    return "\n".join(rows) + "\n"


def _transfer_markdown(results: dict, methods: list[str]) -> list[str]:
    """The transfer table (rows of Markdown, empty without transfer scores): one row per experiment scored on SHARC runs, one column per method."""
    scored = [e for e in results["experiments"].values() if "sharc" in e.get("transfer", {})]
    if not scored:
        return []
    several = "seeds" in results
    rows = ["", f"{TRANSFER_TITLE}: each model's mean over the runs of each run's mean error, over frames, of the atom-atom "
                "distances, with equivalent atoms relabelled in every frame." + (" Mean ± spread over the seeds, as above." if several else ""),
            "", "| experiment | SHARC runs | " + " | ".join(method_label(m) for m in methods) + " | winner, margin over the runner-up |",
            "|---|---|" + "---|" * (len(methods) + 1)]
    k = TRANSFER_SCORE
    for e in scored:
        t = e["transfer"]["sharc"]
        gone = sum(t["dissociated"])
        runs = f"{t['runs']} ({t['runs'] - gone} bound" + (f", {gone} dissociating)" if gone else ")")
        cells = []
        for name in methods:
            if name not in t["methods"]:
                cells.append("-")
                continue
            text = f"{t['methods'][name][k]:.3f}" + (f" ± {t['spread'][name][k]:.3f}" if several else "")
            cells.append(f"**{text}**" if name == t["winner"][k] else text)
        win, runner, margin = t["winner"][k], t["runner_up"][k], t["margin"][k]
        if runner is None:
            verdict = method_label(t["leader"][k] if several else win)
        elif win is None:
            verdict = (f"tie (within spread): {', '.join(method_label(x) for x in t['tied'][k])}; {method_label(t['leader'][k])} "
                       f"leads by {margin:.3f}, spread {t['threshold'][k]:.3f}")
        else:
            verdict = f"{method_label(win)} by {margin:.3f} Å" + (f" > spread {t['threshold'][k]:.3f}" if several else "")
        rows.append(f"| {e['label']} | {runs} | " + " | ".join(cells) + f" | {verdict} |")
    return rows


def write_report(results: dict, per_frame: dict, datasets: dict, out: Path, *, seed: int = 0) -> None:
    """Write results.json, results.md and the four figures (the first experiment shown in detail).

    With several seeds, fig2a shows the means over seeds with ± one standard
    deviation as error bars; fig2b, fig2c and signals.png show the models of
    the study's own seed (``per_frame``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(results_markdown(results))

    def save(fig, name):
        with atomic_path(out / name, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=130, format="png")
        plt.close(fig)

    entries = results["experiments"]
    methods = _methods_of(results)
    keys = list(entries)
    labels = [entries[k]["label"] for k in keys]
    sums = {
        panel: {method_label(m): [entries[k]["methods"].get(m, {}).get(score, np.nan) for k in keys] for m in methods}
        for panel, score in (("labelled", "rmsd_sum"), ("per trajectory", "rmsd_sym_traj_sum"), ("per frame", "rmsd_sym_sum"))
    }
    titles = {
        "labelled": "atoms as labelled (the paper's)",
        "per trajectory": "equivalent atoms relabelled\nonce per trajectory",
        "per frame": "equivalent atoms relabelled\nin every frame",
    }
    errors = None
    if "seeds" in results:  # means over seeds, with their spread
        errors = {
            panel: {method_label(m): [entries[k]["spread"].get(m, {}).get(score, np.nan) for k in keys] for m in methods}
            for panel, score in (("labelled", "rmsd_sum"), ("per trajectory", "rmsd_sym_traj_sum"), ("per frame", "rmsd_sym_sum"))
        }
        titles = {p: f"{t} (mean ± std, {len(results['seeds'])} seeds)" for p, t in titles.items()}
    save(plot_rmsd_sums(labels, sums, errors=errors, titles=titles), "fig2a.png")

    # the first experiment in detail: one distance along one test trajectory (Fig. 2b), errors against time
    # (Fig. 2c), and the signal against the signal of each method's distances
    exp = EXPERIMENTS[0]
    test = _experiment_dataset(datasets[exp.molecule], exp, seed).split("test")
    shown = [m for m in methods if (exp.key, m) in per_frame]
    pair, pair_label = choose_pair(test.symbols, test.distances, exp.pair)
    traj = 0
    L = int(test.length[traj])
    t = test.time[:L]
    preds = {}
    for m in shown:
        ev = per_frame[(exp.key, m)]
        preds[method_label(m)] = (ev["distances"][traj, :L, pair], ev["std"][traj, :L, pair] if ev["std"].size else None)
    save(plot_distance_trace(t, test.distances[traj, :L, pair], preds, pair_label=pair_label), "fig2b.png")
    curves = {method_label(m): {"rmsd": per_frame[(exp.key, m)]["rmsd_t"], "ssr": per_frame[(exp.key, m)]["ssr_t"]} for m in shown}
    save(plot_per_time_step(test.time, curves, title=f"{exp.label} test trajectories: error against time"), "fig2c.png")
    panels = {"measured ΔS (simulated truth)": test.dS[traj, :L]}
    for m in shown:
        panels[f"from {method_label(m)} distances"] = per_frame[(exp.key, m)]["dS_pred"][traj, :L]
    save(plot_signals(t, test.q, panels, title=f"{exp.label} test trajectory: ΔS(q, t) and its reconstruction"), "signals.png")
