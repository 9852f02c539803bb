"""Run the study (or resume it): datasets, then every (experiment, method, seed) stage, then the report."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..._engine import check_scheduler
from ..._errors import InputError
from ..._typing import PathLike
from ...inversion import METHODS
from ...io import atomic_path
from ..stage import read_scores
from . import presets
from .conditions import check_conditions
from .engine import run_stages
from .manifest import MANIFEST, check_manifest, set_aside
from .presets import MAX_JOBS, MAX_SEEDS, Preset, check_count, experiment_conditions, experiment_methods, is_seeded, method_seeds
from .ranking import SPREAD, WIN_RULE, over_seeds, rank_methods, seed_statistics
from .report import log_line, write_report
from .shared_fit import conditions_entry, conditions_pending
from .stages import (
    Stage,
    dataset_stage,
    experiment_splits,
    limit_threads,
    method_stage,
    probe_dataset_stage,
    read_summary,
    scored,
    staged,
)
from .transfer import SHARC, TRANSFER_MOLECULE, other_model_runs, read_sharc, transfer_entry


def run_study(
    preset: str | Preset,
    output: PathLike,
    *,
    seed: int = 0,
    seeds: int = 1,
    jobs: int = 1,
    threads: int | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    data_dir: PathLike | None = None,
    sharc_dir: PathLike | None = None,
    log: Callable[[str], None] = print,
    progress: Callable[[int, dict], None] | None = None,
) -> dict:
    """Run the study (the paper's five experiments and one of electron diffraction), or resume it, and write the report.

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
        Worker processes of a local Dask cluster that train and score the
        (experiment, method, seed) stages side by side, each stage a Dask
        task (:mod:`molmovie.evaluation.study.engine`); each limits its
        torch, BLAS, OpenMP and numba threads to ``threads``. ``jobs=1`` (and
        no ``scheduler``) runs them here, one after another. Dataset
        generation is not affected (see ``workers``). A script that calls
        this with ``jobs > 1`` must guard its top level with
        ``if __name__ == "__main__":`` (the workers are spawned, and import
        the script again).
    threads : int, optional
        Threads of each stage's numerical libraries (torch, BLAS, OpenMP,
        numba). Default: ``cores // jobs`` (at least 1) with ``jobs > 1``;
        on a ``scheduler``'s workers, a worker's cores over its threads;
        with ``jobs=1``, as this process has them (all cores). Training on
        the CPU is deterministic for a given number of threads, so a study
        gives the same numbers with any ``jobs`` or scheduler for the same
        ``threads`` (another thread count changes float32 summation order,
        and so the last digits).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``) whose
        workers generate the trajectories and run the stages instead of a
        local cluster (a ``dask
        scheduler`` with ``dask worker`` processes, or dask-jobqueue on
        Slurm/PBS). The workers must see ``output`` and the data folder at
        the same paths (a shared file system).
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
        rule (:func:`rank_methods`); with noise levels among the experiment's test
        conditions, ``transfer["sharc"]["conditions"]`` holds the same per level for
        every variant (each method as itself and with the shared signal fit,
        :mod:`.transfer`). With the preset's ``foreign_models``, the same entry
        under the other model's name (``transfer["cs2-triplet"]``): its
        trajectories, generated in the data folder as ``{molecule}-{model}.h5``.
    """
    experiments = presets.EXPERIMENTS  # looked up at each call: a test or a script may study fewer
    if isinstance(preset, str):
        if preset not in presets.PRESETS:
            raise InputError(f"unknown preset {preset!r}; presets are {', '.join(presets.PRESETS)}")
        preset = presets.PRESETS[preset]
    unknown = [m for m in preset.methods if m not in METHODS]
    if unknown:
        raise InputError(
            f"the {preset.name} preset names unknown methods {', '.join(map(repr, unknown))}; methods are {', '.join(METHODS)}"
        )
    check_conditions(preset.conditions)  # a preset checks them when made; a changed registry is caught here
    check_count("seeds", seeds, MAX_SEEDS)
    check_count("jobs", jobs, MAX_JOBS)
    if scheduler is not None and jobs > 1:
        raise InputError(f"jobs={jobs} and a scheduler were both given: the scheduler's workers run the stages; give one of them")
    if threads is not None:
        check_count("threads", threads, MAX_JOBS)
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    data = Path(data_dir) if data_dir is not None else out / "data"
    if data.exists() and not data.is_dir():
        raise InputError(f"the data folder {data} exists and is not a folder")
    if scheduler is not None:
        check_scheduler(scheduler)  # before anything is written
    manifest, older = check_manifest(out, preset, seed, data_dir)
    sharc = read_sharc(sharc_dir) if sharc_dir is not None else None  # read (and checked) before hours of work
    for d in (out, data, out / "models", out / "eval"):
        d.mkdir(parents=True, exist_ok=True)
    if not (out / MANIFEST).exists():
        with atomic_path(out / MANIFEST) as tmp:
            tmp.write_text(json.dumps(manifest, indent=2))

    t0 = time.perf_counter()
    reused = 0
    datasets = {}
    for mol in dict.fromkeys(e.molecule for e in experiments):
        path = data / f"{mol}.h5"
        reused += path.exists()
        datasets[mol] = dataset_stage(mol, preset, path, seed, workers, log, staged(progress, f"generate {mol}"), scheduler)
    for exp in experiments:  # another probe: the molecule's trajectories, that probe's signals
        if exp.dataset not in datasets:
            path = data / f"{exp.dataset}.h5"
            reused += path.exists()
            datasets[exp.dataset] = probe_dataset_stage(exp, datasets[exp.molecule], data / f"{exp.molecule}.h5", path, seed, log)

    foreign: dict[str, dict] = {}  # molecule -> source -> foreign runs for the transfer score
    if sharc is not None:
        foreign.setdefault(TRANSFER_MOLECULE, {})[SHARC] = sharc
    studied = {e.molecule for e in experiments}
    for mol, (model, n) in preset.foreign_models.items():  # another dynamics model's runs, generated here
        if mol not in studied:
            continue
        path = data / f"{mol}-{model}.h5"
        reused += path.exists()
        foreign.setdefault(mol, {})[model] = other_model_runs(
            mol, model, int(n), path, seed, workers, log, staged(progress, f"generate {mol} {model}"), scheduler
        )

    if older is not None:  # the datasets are accepted: the study is resumed in today's revision
        set_aside(out, older, log)
        (out / "eval").mkdir(exist_ok=True)
        with atomic_path(out / MANIFEST) as tmp:
            tmp.write_text(json.dumps(manifest, indent=2))

    every_seed = tuple(seed + k for k in range(seeds))
    stages = {
        exp.key: [
            Stage(exp, method, s, seed, seeds > 1 and is_seeded(method), () if is_seeded(method) else every_seed)
            for method in experiment_methods(preset, exp)
            for s in method_seeds(method, seed, seeds)
        ]
        for exp in experiments
    }
    reused += sum(any(p.exists() for p in st.paths(out)) for sts in stages.values() for st in sts)
    tests = {exp.key: experiment_splits(datasets[exp.molecule], exp, seed)[2] for exp in experiments}
    todo = [
        st
        for sts in stages.values()
        for st in sts
        if not scored(st.paths(out)[1]) or conditions_pending(st, out, experiment_conditions(preset, st.exp), tests[st.exp.key])
    ]
    here = todo
    if todo and (jobs > 1 or scheduler is not None):  # Dask tasks
        run_stages(
            todo,
            preset,
            out,
            data,
            seed,
            jobs=min(jobs, len(todo)),
            threads=threads,
            scheduler=scheduler,
            log=log,
            progress=progress,
        )
        here = []

    results: dict[str, Any] = {"preset": preset.name, "seed": seed, "experiments": {}}
    if seeds > 1:
        results.update(seeds=[seed + k for k in range(seeds)], spread=SPREAD, win_rule=WIN_RULE)
    per_frame = {}
    for exp in experiments:
        train, val, test = experiment_splits(datasets[exp.dataset], exp, seed)
        mine = [st for st in stages[exp.key] if st in here]
        if mine:  # in this process, one after another
            undo = limit_threads(threads) if threads is not None else (lambda: None)
            try:
                for st in mine:
                    method_stage(st, preset, train, val, test, out, log, progress)
            finally:
                undo()
        entry: dict[str, Any] = {
            "label": exp.label,
            "trajectories": {"train": train.n_trajectories, "val": val.n_trajectories, "test": test.n_trajectories},
            "methods": {},
        }
        by_seed: dict[str, list[dict]] = {}
        for st in stages[exp.key]:
            if st.seed == seed:  # the study's seed: its predictions are drawn
                per_frame[(exp.key, st.method)] = read_scores(st.paths(out)[1])
            by_seed.setdefault(st.method, []).append(
                per_frame[(exp.key, st.method)]["summary"] if st.seed == seed else read_summary(st.paths(out)[1])
            )
        entry.update(seed_statistics(by_seed, seeds, over_seeds))
        # the simplest predictor, for scale: every frame answered with the training set's mean distances
        mean_R = np.nanmean(train.distances[train.mask], axis=0)
        entry["mean_predictor_abs_error"] = float(np.mean(np.abs(test.distances[test.mask] - mean_R)))
        entry.update(rank_methods(entry["methods"], entry.get("spread")))
        if experiment_conditions(preset, exp):
            entry["conditions"] = conditions_entry(stages[exp.key], out, experiment_conditions(preset, exp), test, seeds)
        results["experiments"][exp.key] = entry
        log(log_line(exp, entry))
        for source, runs in foreign.get(exp.molecule, {}).items():
            transferred = transfer_entry(
                exp, stages[exp.key], runs, out, train, seeds, log, conditions=experiment_conditions(preset, exp), source=source
            )
            if transferred is not None:
                entry.setdefault("transfer", {})[source] = transferred
    results["wall_time_s"] = round(time.perf_counter() - t0, 1)
    results["reused_stages"] = int(reused)
    write_report(results, per_frame, datasets, out, seed=seed)
    return results
