"""Many trajectories: initial conditions once, trajectories as Dask tasks, streamed to disk.

Checkpointing: while a run with an ``output`` is going, every finished
trajectory is written to its own small file in ``OUTPUT.partial/`` (written
to a temporary name, then renamed, so a file is either complete or absent
whatever happens: Ctrl-C, a killed process, a full disk). The folder also
holds ``run.json`` with the molecule, the model, the seed and the normal
modes. Running the same command again resumes: finished indices are read
back, only the others are run, with the very same normal modes. When all are
done the dataset is written atomically and the folder removed. While a run
goes, the advisory lock file ``OUTPUT.lock`` keeps a second run into the same
output out (it is refused with one line), and a full disk ends the run with
one line, the checkpoint kept for a resume.

Trajectory ``i`` of a run with seed ``s`` uses the seed
``SeedSequence(s, spawn_key=(i,))`` (what ``SeedSequence(s).spawn(n)[i]``
gives), so it is the same whichever worker runs it, in whatever order, and
whatever the number of trajectories asked for.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._engine import close_local, connect as _connect, local_client
from .._errors import NPZ_ERRORS, InputError
from .._guards import atomic_write, check_allocation, check_output_path, check_seed, output_lock, write_errors
from .._typing import PathLike, Progress
from .._version import __version__
from ..datasets import DEFAULT_SPLITS, Dataset, make_splits
from ..io import write_dataset
from ..molecules import Molecule, get_molecule
from ..trajectories import Ensemble
from ._xtb import EngineFactory, RobustSurface, optimise, single_thread
from .calculators import Calculator, get_calculator
from .initial import Family, Mixture, get_initial
from .md import TrajectoryResult, run_trajectory
from .models import Model, default_model, get_model
from .wigner import NormalModes, hessian, normal_modes, wigner_sample

__all__ = ["prepare", "trajectory_seed", "generate", "partial_path"]

#: Version of the checkpoint folder layout.
CHECKPOINT_VERSION = 1


def trajectory_seed(seed: int, index: int) -> int:
    """The seed of trajectory ``index`` of a run with ``seed`` (a 63-bit integer)."""
    state = np.random.SeedSequence(int(seed), spawn_key=(int(index),)).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def prepare(molecule: Molecule, model: Model, *, factory: EngineFactory | None = None) -> NormalModes:
    """Initial-condition set-up: optimise on the model's ground surface, Hessian, normal modes.

    Parameters
    ----------
    molecule : Molecule
        Start geometry (the built-in molecules are GFN2-xTB minima already).
    model : Model
    factory : callable, optional
        Engine factory (GFN2-xTB by default).
    """
    single_thread()
    pos, energy = optimise(molecule.symbols, molecule.positions, model.ground, factory=factory)
    robust = RobustSurface(molecule.symbols, model.ground, model.electronic_temperature, factory)
    h = hessian(molecule.symbols, pos, lambda x: robust.compute(x)[1])
    return normal_modes(molecule.symbols, pos, h, energy)


def partial_path(output: PathLike) -> Path:
    """The checkpoint folder of an output file: ``OUTPUT.partial``."""
    output = Path(output)
    return output.with_name(output.name + ".partial")


def _task(modes: NormalModes, model: Model, seed: int, index: int, factory=None, initial=None) -> tuple[int, TrajectoryResult]:
    """One Dask task. Any error becomes a failed trajectory, so one bad trajectory never ends a run."""
    single_thread()
    try:
        return index, run_trajectory(modes, model, seed, factory=factory, initial=initial)
    except Exception as exc:  # noqa: BLE001 -- recorded as the trajectory's failure
        return index, _failed(modes, model, seed, f"{type(exc).__name__}: {exc}")


def _failed(modes: NormalModes, model: Model, seed: int, reason: str) -> TrajectoryResult:
    """A trajectory that could not be run: its initial geometry only, with the reason."""
    x, _ = wigner_sample(modes, np.random.default_rng(seed))
    record = {
        "seed": int(seed),
        "model": model.name,
        "fate": "bound",
        "failure": reason,
        "drift_eV": None,
        "drift_flag": False,
        "excess_eV": 0.0,
        "switch_fs": None,
        "frustrated": 0,
        "scf_retries": 0,
        "wall_s": 0.0,
    }
    return TrajectoryResult(x[None], np.array([np.nan]), np.zeros(1, np.int64), False, record)


# --------------------------------------------------------------------------- checkpoint


def _run_key(molecule: Molecule, model: Model, seed: int, extra: dict | None = None) -> dict:
    """What makes two runs the same run: the molecule, the physics of the model, the seed
    (and the calculator and initial conditions, when they are not the defaults)."""
    physics = {k: v for k, v in model.to_dict().items() if k not in ("description", "references")}
    return {"molecule": molecule.name, "symbols": list(molecule.symbols), "model": physics, "seed": int(seed), **(extra or {})}


def _save_result(folder: Path, index: int, res: TrajectoryResult) -> None:
    with atomic_write(folder / f"traj-{index:06d}.npz", suffix=".npz") as tmp:
        np.savez(
            tmp,
            positions=res.positions,
            energy=res.energy,
            state=res.state,
            dissociated=np.array(res.dissociated),
            record=np.array(json.dumps(res.record)),
        )


def _load_results(folder: Path, n: int) -> dict[int, TrajectoryResult]:
    out: dict[int, TrajectoryResult] = {}
    for f in sorted(folder.glob("traj-*.npz")):
        try:
            index = int(f.stem.split("-")[1])
            with np.load(f) as z:
                res = TrajectoryResult(
                    z["positions"], z["energy"], z["state"], bool(z["dissociated"]), json.loads(str(z["record"]))
                )
        except NPZ_ERRORS:
            f.unlink(missing_ok=True)  # not a complete checkpoint: run that trajectory again
            continue
        if index < n:
            out[index] = res
    return out


def _open_checkpoint(folder: Path, key: dict, molecule: Molecule, model: Model, force: bool, factory) -> NormalModes:
    """Normal modes of the run: from an existing matching checkpoint, or computed and saved."""
    run_file = folder / "run.json"
    if run_file.is_file():
        try:
            saved = json.loads(run_file.read_text())
        except (OSError, ValueError):
            saved = None
        if saved is not None and saved.get("version") == CHECKPOINT_VERSION and saved.get("key") == json.loads(json.dumps(key)):
            return NormalModes.from_dict(saved["modes"])
        if not force:
            raise InputError(
                f"{folder} holds an interrupted run with a different molecule, model or seed; "
                f"use force=True to discard it, or run with the same settings to resume it"
            )
    if folder.exists():
        shutil.rmtree(folder)
    modes = prepare(molecule, model, factory=factory)
    with write_errors(folder):
        folder.mkdir(parents=True)
    with atomic_write(run_file) as tmp:
        tmp.write_text(json.dumps({"version": CHECKPOINT_VERSION, "key": key, "modes": modes.to_dict()}))
    return modes


# --------------------------------------------------------------------------- dask


# --------------------------------------------------------------------------- generate


def _resolve(molecule, model, calculator=None) -> tuple[Molecule, Model]:
    mol = molecule if isinstance(molecule, Molecule) else get_molecule(str(molecule))
    mdl = default_model(mol, calculator) if model is None else get_model(model)
    mdl.check(mol.symbols)
    if calculator is not None:
        calculator.check(mol.symbols, mdl)
    return mol, mdl


def generate(
    molecule: Molecule | str,
    n_trajectories: int,
    *,
    model: Model | str | None = None,
    seed: int = 0,
    workers: int | None = None,
    scheduler: str | None = None,
    output: PathLike | None = None,
    splits: Sequence[float] = DEFAULT_SPLITS,
    force: bool = False,
    progress: Progress | None = None,
    factory: EngineFactory | None = None,
    calculator: str | Calculator | None = None,
    initial: str | Family | Mixture | None = None,
) -> Dataset:
    """Generate an ensemble of photoexcited trajectories as a molmovie dataset.

    Parameters
    ----------
    molecule : Molecule or str
        A :class:`~molmovie.molecules.Molecule`, or a spec for
        :func:`~molmovie.molecules.get_molecule` (``"cs2"``, an XYZ path,
        ``"smiles:CN1CCOCC1"``). It is optimised with GFN2-xTB first.
    n_trajectories : int
        Number of trajectories, >= 1.
    model : Model or str, optional
        A model or a name in :data:`~molmovie.dynamics.MODELS`; default: the
        molecule's own model, ``"cation"`` for other molecules, ``"ground"``
        with a one-surface calculator.
    seed : int
        Fixes every trajectory (see :func:`trajectory_seed`) and the splits.
    workers : int, optional
        Local worker processes (one trajectory per core). 1 runs in this
        process without Dask. Default: the number of cores.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``) to send the
        trajectories to instead; its workers need molmovie installed.
    output : path-like, optional
        Dataset file to write. With it, finished trajectories are checkpointed
        in ``OUTPUT.partial/`` and an interrupted run resumes (module docs).
    splits : three numbers
        train, val, test sizes for :func:`molmovie.datasets.make_splits`.
    force : bool
        Replace an existing output file (and discard a checkpoint made with
        other settings).
    progress : callable, optional
        ``progress(done, info)`` after each trajectory, ``info`` with ``total``,
        ``unit`` ("trajectories"), ``dissociated`` and ``failed`` (counts so far).
    factory : callable, optional
        Engine factory (tests).
    calculator : str or calculator, optional
        Where energies and forces come from: a name in
        :data:`~molmovie.dynamics.calculators.CALCULATORS` or a calculator
        object (``get_calculator("morse", omega_e=..., r_e=..., D0=...)``);
        None is GFN2-xTB.
    initial : str, family or Mixture, optional
        How trajectories start (:mod:`molmovie.dynamics.initial`): a family
        (``Displaced(amplitude=(0.02, 0.3))``), a :class:`~molmovie.dynamics.initial.Mixture`
        of families in blocks of indices, or a name; None is the 0 K Wigner
        sample of the models. The calculator and the initial conditions are
        recorded in the provenance (``calculator``, ``initial``, and per
        trajectory ``initial`` with what was drawn) when they are not the defaults.

    Returns
    -------
    molmovie.datasets.Dataset
        Trajectories in index order; ``ensemble.provenance["trajectories"]``
        holds one record per trajectory (seed, model, fate, failure, drift).
    """
    if isinstance(n_trajectories, bool) or not isinstance(n_trajectories, (int, np.integer)) or n_trajectories < 1:
        raise InputError(f"the number of trajectories must be a whole number >= 1; got {n_trajectories!r}")
    n = int(n_trajectories)
    seed = check_seed(seed)
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 1):
        raise InputError(f"--workers must be a whole number >= 1; got {workers!r}")
    if workers is not None and scheduler is not None:
        raise InputError("give either --workers (a local cluster) or --scheduler (an existing one), not both")
    calc = None if calculator is None else get_calculator(calculator)
    if calc is not None and factory is not None:
        raise InputError("give either a calculator or an engine factory, not both")
    if calc is not None and calc.to_dict() == {"name": "xtb"}:
        calc = None  # the default: the very same run as without it
    mol, mdl = _resolve(molecule, model, calc)
    check_allocation(
        (n, mdl.n_frames, len(mol.symbols), 3),
        f"{n} trajectories of {mdl.n_frames} frames of {len(mol.symbols)} atoms (the dataset's positions)",
    )
    if calc is not None:
        factory = calc
    init = None if initial is None else get_initial(initial)
    if init is not None and init.to_dict() == {"name": "wigner"}:
        init = None  # the models' own start
    if init is not None:
        init.check(mol.symbols, mol.positions)
    families = init.assign(n) if isinstance(init, Mixture) else [init] * n
    extra = {}
    if calc is not None:
        extra["calculator"] = calc.to_dict()
    if init is not None:
        extra["initial"] = init.to_dict()
    make_splits(n, splits, seed)  # validates the splits before any work
    if output is None:
        return _generate(mol, mdl, n, seed, workers, scheduler, None, splits, force, progress, factory, families, extra)
    molecule_file = [Path(molecule)] if isinstance(molecule, (str, os.PathLike)) and Path(molecule).is_file() else []
    out_path = check_output_path(output, molecule_file, force=force)
    with output_lock(out_path):  # a second run into the same output is refused, not mixed into this one's checkpoint
        return _generate(mol, mdl, n, seed, workers, scheduler, out_path, splits, force, progress, factory, families, extra)


def _generate(
    mol: Molecule,
    mdl: Model,
    n: int,
    seed: int,
    workers,
    scheduler,
    out_path: Path | None,
    splits,
    force: bool,
    progress,
    factory,
    families,
    extra,
):
    """:func:`generate` once its arguments are checked (and the output locked)."""
    client = cluster = None
    if scheduler is not None:
        client = _connect(scheduler)
    try:
        if out_path is not None:
            folder = partial_path(out_path)
            modes = _open_checkpoint(folder, _run_key(mol, mdl, seed, extra), mol, mdl, force, factory)
            results = _load_results(folder, n)
        else:
            folder = None
            modes = prepare(mol, mdl, factory=factory)
            results = {}
        todo = [i for i in range(n) if i not in results]
        counts = {
            "dis": sum(r.dissociated for r in results.values()),
            "fail": sum(r.record.get("failure") is not None for r in results.values()),
        }

        def store(index: int, res: TrajectoryResult) -> None:
            if folder is not None:
                _save_result(folder, index, res)
            results[index] = res
            counts["dis"] += res.dissociated
            counts["fail"] += res.record.get("failure") is not None
            if progress is not None:
                progress(
                    len(results), {"total": n, "unit": "trajectories", "dissociated": counts["dis"], "failed": counts["fail"]}
                )

        n_workers = workers if workers is not None else min(os.cpu_count() or 1, max(len(todo), 1))
        if todo and client is None and n_workers > 1 and len(todo) > 1:
            client, cluster = local_client(min(n_workers, len(todo)))
        if progress is not None:  # after the set-up, so the progress clock times trajectories only
            progress(len(results), {"total": n, "unit": "trajectories", "dissociated": counts["dis"], "failed": counts["fail"]})
        if todo and client is not None:
            from distributed import as_completed

            futures = [
                client.submit(_task, modes, mdl, trajectory_seed(seed, i), i, factory, families[i], pure=False) for i in todo
            ]
            with client.as_current():
                for fut in as_completed(futures):
                    try:
                        index, res = fut.result()
                    except Exception as exc:  # noqa: BLE001 -- a worker died: record it and go on
                        index = todo[futures.index(fut)]
                        res = _failed(modes, mdl, trajectory_seed(seed, index), f"task lost: {type(exc).__name__}: {exc}")
                    store(index, res)
        else:
            for i in todo:
                store(*_task(modes, mdl, trajectory_seed(seed, i), i, factory, families[i]))
    finally:
        close_local(client, cluster)

    ds = Dataset(_ensemble(mol, mdl, modes, seed, [results[i] for i in range(n)], extra), splits=make_splits(n, splits, seed))
    if out_path is not None:
        write_dataset(ds, out_path, force=force)
        shutil.rmtree(partial_path(out_path), ignore_errors=True)
    return ds


def _ensemble(
    mol: Molecule, model: Model, modes: NormalModes, seed: int, results: list[TrajectoryResult], extra: dict | None = None
):
    m, t, n_atoms = len(results), model.n_frames, len(mol.symbols)
    positions = np.full((m, t, n_atoms, 3), np.nan)
    energy = np.full((m, t), np.nan)
    state = np.full((m, t), -1, dtype=np.int64)
    length = np.zeros(m, dtype=np.int64)
    for k, r in enumerate(results):
        length[k] = r.length
        positions[k, : r.length] = r.positions
        energy[k, : r.length] = r.energy
        state[k, : r.length] = r.state
    records = [dict(r.record, index=k) for k, r in enumerate(results)]
    drift = np.array([rec["drift_eV"] for rec in records], float)
    provenance = {
        "generator": "molmovie.dynamics",
        "molmovie_version": __version__,
        "versions": _versions(),
        "seed": int(seed),
        "model": model.to_dict(),
        "surfaces": [s.label for s in model.surfaces],
        **(extra or {}),
        "reference": {
            "energy_eV": modes.energy,
            "zpe_eV": modes.zpe,
            "wavenumbers_cm-1": [round(float(w), 2) for w in modes.wavenumbers],
            "frozen_modes_cm-1": [round(float(w), 2) for w in modes.frozen],
            "positions_A": modes.positions.tolist(),
        },
        "summary": {
            "trajectories": m,
            "dissociated": int(sum(r.dissociated for r in results)),
            "failed": int(sum(rec["failure"] is not None for rec in records)),
            "drift_flagged": int(sum(rec["drift_flag"] for rec in records)),
            "median_drift_eV": float(np.nanmedian(drift)) if np.isfinite(drift).any() else None,
            "max_drift_eV": float(np.nanmax(drift)) if np.isfinite(drift).any() else None,
        },
        "trajectories": records,
    }
    return Ensemble(
        molecule=mol.name,
        symbols=mol.symbols,
        time=np.arange(t) * (model.duration / (t - 1)),
        positions=positions,
        length=length,
        dissociated=np.array([r.dissociated for r in results], bool),
        source=[f"generate:{model.name}:seed={seed}:index={k}" for k in range(m)],
        energy=energy,
        state=state,
        provenance=provenance,
    )


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for pkg in ("tblite", "ase", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out
