"""The study's stages: one molecule's dataset (generated or reused), and one (experiment, method, seed) training and scoring.

Each stage writes its files atomically, so a rerun skips what is done and an
interrupted one leaves nothing half-written. The stages of methods run here
or as Dask tasks (:mod:`.engine`); they do the same work either way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..._errors import NPZ_ERRORS, InputError
from ..._numba import configure as configure_numba
from ..._typing import Progress
from ...datasets import SPLITS, Dataset, make_splits
from ...dynamics import generate
from ...inversion import get_method, load_method
from ...io import read_dataset, write_dataset
from ...scattering import SignalSpec, q_grid, simulate
from ..stage import score_method, write_scores
from .presets import SCORES, Experiment, Preset, experiment_conditions, method_settings
from .shared_fit import condition_stage


def experiment_dataset(full: Dataset, exp: Experiment, seed: int) -> Dataset:
    """The dataset of one experiment with its own split (bound-only experiments drop dissociating runs)."""
    if not exp.bound_only:
        return full
    ds = full.without_dissociating()
    counts = [len(full.splits[k]) for k in SPLITS]
    ds.splits = make_splits(ds.n_trajectories, counts, seed=seed + 1)
    return ds


def staged(progress: Progress | None, stage: str, *, least: int = 1) -> Progress | None:
    """``progress(done, info)`` with ``info["stage"]`` set (``stage`` and the unit of its steps); None without a progress callback.

    Jobs of fewer than ``least`` steps report nothing (a one-step fit has no progress to show).
    """
    if progress is None:
        return None

    def report(done: int, info: dict) -> None:
        if (info.get("total") or 0) >= least:
            progress(done, {**info, "stage": f"{stage} {info['unit']}" if info.get("unit") else stage})

    return report


def dataset_stage(
    mol: str,
    preset: Preset,
    path: Path,
    seed: int,
    workers: int | None,
    log: Callable[[str], None],
    progress: Progress | None,
    scheduler: str | None = None,
) -> Dataset:
    """Generate (or reuse) one molecule's trajectories (on a Dask ``scheduler``'s workers when given) and simulate their signals."""
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
        if ds.spec is not None:  # ds.has_signals
            _check_protocol(ds.spec, path)
            log(f"{mol}: reusing {path} ({n} trajectories, {int(ds.dissociated.sum())} dissociated)")
            return ds
    else:
        log(f"{mol}: generating {n} trajectories with GFN2-xTB ...")
        generate(mol, n, output=path, seed=seed, workers=workers, scheduler=scheduler, splits=counts, progress=progress)
        ds = read_dataset(path)
    spec = study_spec(seed)
    ds = ds.with_signals(*simulate(ds.symbols, ds.positions, ds.length, ds.time, spec))
    write_dataset(ds, path, force=True)
    log(f"{mol}: {n} trajectories, {int(ds.dissociated.sum())} dissociated; signals on {len(spec.q)} q points")
    return ds


def study_spec(seed: int, probe: str = "xray", energy_kev: float | None = None) -> SignalSpec:
    """How the study simulates signals: the default q grid, the probe's default inelastic term (X-rays: on;
    electrons: off), each trajectory's first frame as reference, no noise, no time resolution."""
    return SignalSpec(q_grid(), reference="first", seed=seed, probe=probe, energy_kev=energy_kev)


def probe_dataset_stage(
    exp: Experiment, base: Dataset, base_path: Path, path: Path, seed: int, log: Callable[[str], None]
) -> Dataset:
    """The dataset of an experiment of another probe than X-rays: the trajectories and splits of the molecule's
    dataset ``base`` (read from ``base_path``) with the signals of ``exp.probe``, reused from ``path`` when it holds
    them (made now and written there otherwise)."""
    spec = study_spec(seed, exp.probe, exp.energy_kev)
    what = f"{exp.probe} signals" + (f" at {exp.energy_kev:g} keV" if exp.energy_kev is not None else "")
    if path.exists():
        ds = read_dataset(path)
        same = (
            ds.molecule == base.molecule
            and ds.n_trajectories == base.n_trajectories
            and np.array_equal(ds.time, base.time)
            and np.array_equal(ds.length, base.length)
            and np.array_equal(ds.positions, base.positions, equal_nan=True)
            and all(np.array_equal(ds.splits.get(k, ()), base.splits.get(k, ())) for k in SPLITS)
        )
        if not same:
            raise InputError(
                f"{path} holds other trajectories or splits than {base_path} (of which it holds the {what}); "
                "remove it or choose another --output/--data-dir"
            )
        if ds.spec is not None:
            _check_protocol(ds.spec, path, spec)
            log(f"{exp.dataset}: reusing {path} (the {what} of {base_path.name}'s {ds.n_trajectories} trajectories)")
            return ds
    ds = base.with_signals(*simulate(base.symbols, base.positions, base.length, base.time, spec))
    write_dataset(ds, path, force=True)
    log(f"{exp.dataset}: {base_path.name}'s {ds.n_trajectories} trajectories with {what} on {len(spec.q)} q points")
    return ds


def _check_protocol(spec: SignalSpec, path: Path, wanted_spec: SignalSpec | None = None) -> None:
    """Refuse reused signals simulated otherwise than the study's protocol (``wanted_spec``, default the X-ray one
    of :func:`study_spec`: default q grid, inelastic, first frame, exact)."""
    want = study_spec(0) if wanted_spec is None else wanted_spec
    q = want.q

    def described(s: SignalSpec) -> dict:
        return {
            "q grid": f"{len(s.q)} points, {s.q.min():.3g}-{s.q.max():.3g} 1/Å",
            "probe": s.probe,
            "energy_kev": s.energy_kev,
            "inelastic": s.inelastic,
            "reference": s.reference,
            "photons": s.photons,
            "irf_fs": s.irf_fs,
        }

    found, wanted = described(spec), described(want)
    same_q = len(spec.q) == len(q) and np.allclose(spec.q, q, rtol=1e-9, atol=1e-12)
    diff = [
        f"{k} {found[k]} (the study uses {wanted[k]})" for k in wanted if (not same_q if k == "q grid" else found[k] != wanted[k])
    ]
    if diff:
        raise InputError(
            f"{path} holds signals simulated otherwise than the study's: {'; '.join(diff)}; choose another --data-dir"
        )


@dataclass(frozen=True)
class Stage:
    """One (experiment, method, training seed) stage of a study of seed ``base``; ``several``: one of several seeds.

    ``draws``: the noise draws a method without a training seed answers (one per seed of the study; a seeded
    method answers its own seed's draw, and has none here).
    """

    exp: Experiment
    method: str
    seed: int
    base: int
    several: bool = False
    draws: tuple[int, ...] = ()

    def paths(self, out: Path) -> tuple[Path, Path]:
        """The model file and the evaluation file of the stage (named by its seed unless it is the study's)."""
        stem = f"{self.exp.key}-{self.method}" + (f"-seed{self.seed}" if self.seed != self.base else "")
        return out / "models" / f"{stem}.safetensors", out / "eval" / f"{stem}.npz"

    @property
    def label(self) -> str:
        """The stage in progress reports and log lines: "nmm vrnn", or "nmm vrnn seed 4" with several seeds."""
        return f"{self.exp.key} {self.method}" + (f" seed {self.seed}" if self.several else "")


def experiment_splits(full: Dataset, exp: Experiment, seed: int) -> tuple[Dataset, Dataset, Dataset]:
    """The training, validation and test trajectories of one experiment."""
    ds = experiment_dataset(full, exp, seed)
    return ds.split("train"), ds.split("val"), ds.split("test")


def read_summary(eval_path: Path) -> dict:
    """The summary of an evaluation file, without reading its arrays."""
    with np.load(eval_path, allow_pickle=False) as z:
        return json.loads(str(z["summary_json"]))


def scored(eval_path: Path) -> bool:
    """Whether an evaluation file exists and holds every score of today's metrics."""
    if not eval_path.exists():
        return False
    try:
        summary = read_summary(eval_path)
    except NPZ_ERRORS:  # truncated or damaged (a killed run, a full disk): scored again
        return False
    return isinstance(summary, dict) and all(k in summary for k in SCORES)


def method_stage(
    stage: Stage,
    preset: Preset,
    train: Dataset,
    val: Dataset,
    test: Dataset,
    out: Path,
    log: Callable[[str], None],
    progress: Progress | None,
) -> None:
    """Train (or load) one method for one experiment with one seed, then predict, score and save its test split;
    then its answers under the preset's test conditions (:mod:`.shared_fit`), those it lacks."""
    if not scored(stage.paths(out)[1]):
        _train_and_score(stage, preset, train, val, test, out, log, progress)
    conditions = experiment_conditions(preset, stage.exp)
    if conditions:
        condition_stage(stage, out, conditions, test, log)


def _train_and_score(
    stage: Stage,
    preset: Preset,
    train: Dataset,
    val: Dataset,
    test: Dataset,
    out: Path,
    log: Callable[[str], None],
    progress: Progress | None,
) -> None:
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
        model.fit(train, val=val, progress=staged(progress, stage.label, least=2))
        model.save(model_path)
        log(f"{exp.label}: {method}{seeded} trained in {time.perf_counter() - t:.0f} s")
    write_scores(eval_path, score_method(model, test))


def limit_threads(threads: int) -> Callable[[], None]:
    """Limit this process's numerical libraries (torch, BLAS, OpenMP, numba) to ``threads`` threads; returns the function that undoes it."""
    import numba
    import torch
    from threadpoolctl import threadpool_limits

    configure_numba()  # its thread pool chosen before set_num_threads starts it
    limits = threadpool_limits(limits=threads)
    before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]  # numba.config sets its options at run time

    def undo() -> None:
        limits.restore_original_limits()
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])

    return undo
