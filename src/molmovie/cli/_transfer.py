"""The ``transfer`` command: a trained model scored on trajectories of other dynamics than its training ones."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from .._errors import InputError
from .._provenance import with_command
from ..datasets import SPLITS
from ..evaluation.transfer import read_foreign, transfer as score_transfer
from ..inversion import load_method
from ..io import atomic_path
from ..trajectories import trajectory_files
from ._app import app
from ._outputs import writing
from ._progress import progress_callback

if TYPE_CHECKING:
    SplitName = str
else:
    SplitName = Literal[SPLITS]


@app.command()
def transfer(
    model: Annotated[Path, typer.Argument(help="Model file (from `molmovie train` or a study's models/).", show_default=False)],
    foreign: Annotated[
        list[Path],
        typer.Argument(
            help="Foreign trajectories: SHARC run folders, a folder of them, trajectory files, or one dataset file (.h5).",
            show_default=False,
        ),
    ],
    dt: Annotated[
        float | None,
        typer.Option(
            help="The model's frame interval, fs: its training dataset's time step (default: the one its model file records; "
            "needed for model files written before it was recorded)."
        ),
    ] = None,
    tmax: Annotated[
        float | None, typer.Option(help="Score frames up to this time after each run's start, fs (default: all).")
    ] = None,
    split: Annotated[SplitName | None, typer.Option(help="Of a dataset file: the split to score (default: all).")] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the photon noise, when the model's signals have noise (default: theirs).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="JSON file for the summary (default: print only).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --output.")] = False,
) -> None:
    """Score a model on trajectories of dynamics it did not train on (real SHARC runs, another dynamics model).

    Each run is put on the model's time grid (positions interpolated linearly
    between its frames), its ΔS is simulated as the model's training ΔS was,
    and the predicted distances are scored: the symmetry-aware distance error
    (per frame, the best relabelling of equivalent atoms) per run and averaged,
    with the study's RMSD and SSR.
    """
    if split is not None and split not in SPLITS:
        raise InputError(f"--split must be train, val or test; got {split!r}")
    inputs = [model, *foreign, *trajectory_files(foreign)]
    with writing(output, inputs, force=force) if output is not None else nullcontext():
        method = load_method(model)
        foreign_runs = read_foreign(foreign, split=split)
        with progress_callback(f"transfer ({method.name}): {foreign_runs.n_trajectories} runs", unit="predictions") as progress:
            result = score_transfer(method, foreign_runs, dt=dt, tmax=tmax, seed=seed, progress=progress)
        summary = {
            "model": str(model),
            "foreign": [str(p) for p in foreign],
            "dt_fs": float(result.dataset.time[1] - result.dataset.time[0]) if result.dataset.n_frames > 1 else dt,
            "tmax_fs": tmax,
            **result.summary(),
        }
        if output is not None:
            with atomic_path(output) as tmp:
                tmp.write_text(json.dumps(with_command(summary), indent=2))
    label = method.label or method.name
    for source, err, gone in zip(summary["sources"], summary["transfer_error_runs"], summary["dissociated"], strict=True):
        typer.echo(f"{source}: {err:.4f} Å ({'dissociates' if gone else 'bound'})")
    typer.echo(
        f"{label}: symmetry-aware distance error {summary['transfer_error']:.4f} Å (mean of {summary['runs']} runs; "
        f"{summary['transfer_error_frames']:.4f} over all {summary['frames']} frames); symmetry-aware RMSD per frame "
        f"{summary['rmsd_sym_mean']:.4f} Å, per trajectory {summary['rmsd_sym_traj_mean']:.4f} Å; SSR {summary['ssr_mean']:.4g} per frame"
        + (f"; written to {output}" if output is not None else "")
    )
