"""Study commands: ``evaluate`` (one model on one dataset) and ``reproduce`` (the study: the paper's five experiments and one of electron diffraction)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from .._errors import InputError
from .._guards import check_output_path, write_errors
from .._provenance import with_command
from ..datasets import SPLITS
from ..evaluation import score_method, write_scores
from ..evaluation._style import DPI
from ..evaluation.figures import plot_per_time_step
from ..evaluation.study import (
    MAX_JOBS,
    MAX_SEEDS,
    PRESETS,
    SHARC_DEFAULT,
    check_count,
    default_sharc_dir,
    results_markdown,
    run_study,
)
from ..inversion import load_method
from ..io import atomic_path, read_dataset
from ._app import app
from ._options import choices
from ._outputs import output_folder, writing
from ._progress import ParallelStageProgress, StageProgress, progress_callback

if TYPE_CHECKING:
    SplitOrAll = str
else:  # shown as choices in --help
    SplitOrAll = Literal[(*SPLITS, "all")]


@app.command()
def evaluate(
    model: Annotated[Path, typer.Argument(help="Model file (from `molmovie train`).", show_default=False)],
    dataset: Annotated[Path, typer.Argument(help="Dataset file with signals.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for metrics.json, frames.npz and figures.")],
    split: Annotated[SplitOrAll, typer.Option(help="Split of the dataset to score (all: every trajectory).")] = "test",
    force: Annotated[bool, typer.Option("--force", help="Replace files already in the output folder.")] = False,
) -> None:
    """Score one model on a dataset split: RMSD (labelled, symmetry-aware) and SSR per frame."""
    # the folder may exist (other files in it are left alone); an evaluation in it is replaced only with --force
    with writing(output, [model, dataset], force=True, folder=True):
        targets = [output / n for n in ("metrics.json", "frames.npz", "per_time_step.png")]
        if not force and any(t.exists() for t in targets):
            raise InputError(f"{output} already holds an evaluation; use --force to replace it")
        for target in (t for t in targets if t.exists()):  # a read-only file of an earlier evaluation is not replaced either
            check_output_path(target, [model, dataset], force=True)
        if split not in ("all", *SPLITS):
            raise InputError(f"--split must be train, val, test or all; got {split!r}")
        ds = read_dataset(dataset)
        if split != "all" and len(ds.splits.get(split, ())) == 0:
            sizes = ", ".join(f"{k} {len(ds.splits.get(k, ()))}" for k in SPLITS)
            others = "|".join(k for k in (*SPLITS, "all") if k != split)
            raise InputError(f"the {split} split of {dataset} is empty (splits: {sizes}); score another with --split {others}")
        part = ds if split == "all" else ds.split(split)
        if not part.has_signals:
            raise InputError(f"{dataset} has no signals; run `molmovie scatter` first")
        method = load_method(model)
        with progress_callback(f"evaluating ({method.name}): {part.n_trajectories} series", unit="predictions") as progress:
            scores = score_method(method, part, progress=progress)
        summary = with_command(
            {
                "model": str(model),
                "dataset": str(dataset),
                "split": split,
                "trajectories": part.n_trajectories,
                **scores["summary"],
            }
        )
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        curves = {method.label or method.name: {"rmsd": scores["rmsd_t"], "ssr": scores["ssr_t"]}}
        fig = plot_per_time_step(part.time, curves, title=f"{part.molecule}, {split} split")
        try:
            with output_folder(output) as folder:
                with atomic_path(folder / targets[0].name) as tmp:
                    tmp.write_text(json.dumps(summary, indent=2))
                write_scores(folder / targets[1].name, scores)
                with atomic_path(folder / targets[2].name, suffix=".png") as tmp:
                    fig.savefig(tmp, dpi=DPI, format="png")
        finally:
            plt.close(fig)
    typer.echo(
        f"{split}: {summary['frames']} frames; RMSD sum {summary['rmsd_sum']:.1f} Å (symmetry-aware: {summary['rmsd_sym_traj_sum']:.1f} per trajectory, {summary['rmsd_sym_sum']:.1f} per frame), "
        f"SSR sum {summary['ssr_sum']:.4g}; written to {output}"
    )


@app.command()
def reproduce(
    preset: Annotated[
        str, typer.Option(metavar=choices(PRESETS), help="; ".join(f"{k}: {p.description}" for k, p in PRESETS.items()) + ".")
    ] = "quick",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Folder for data, models, results and figures (default: runs/PRESET).", show_default=False
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of generation, splits and training.")] = 0,
    workers: Annotated[int | None, typer.Option(help="Worker processes for trajectory generation (default: all cores).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder of generated datasets to reuse (default OUTPUT/data).")] = None,
    seeds: Annotated[
        int,
        typer.Option(
            help="Train every method that takes a seed with this many seeds (SEED, SEED+1, ...) on the same data; "
            "scores become mean ± standard deviation, and a method wins only by more than the spread."
        ),
    ] = 1,
    jobs: Annotated[
        int,
        typer.Option(
            help="Train and score the (experiment, method, seed) stages as Dask tasks in this many local worker processes at once."
        ),
    ] = 1,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Address of a running Dask scheduler (tcp://host:8786) whose workers generate the trajectories and run the stages instead of local processes (they must see --output at the same path).",
            show_default=False,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="Threads per training process (default: cores / jobs; with --jobs 1 all cores). "
            "The same threads give the same numbers with any --jobs."
        ),
    ] = None,
    sharc: Annotated[
        Path | None,
        typer.Option(
            "--sharc",
            help=f"SHARC runs of CS2 to score the CS2 models' transfer on (default: {SHARC_DEFAULT} when it exists, "
            "else no score on SHARC runs; the transfer to the preset's other dynamics model is scored either way).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the study (the paper's five experiments and CS2 probed by electrons) end to end: generate, simulate, train, evaluate, report.

    A rerun with the same --output skips every finished stage; one with more --seeds trains only the seeds it lacks.
    """
    if output is None:  # named after the preset: `--preset paper` never writes into runs/quick
        output = Path("runs") / preset
    if workers is not None and workers < 1:
        raise InputError(f"The 'workers' parameter must be >= 1; got {workers}")
    check_count("seeds", seeds, MAX_SEEDS)
    check_count("jobs", jobs, MAX_JOBS)
    if scheduler is not None and jobs > 1:
        raise InputError(
            f"--jobs {jobs} and --scheduler were both given: the scheduler's workers run the stages; give one of them"
        )
    if threads is not None:
        check_count("threads", threads, MAX_JOBS)
    given = sharc is not None
    if sharc is None:
        sharc = default_sharc_dir()
    with write_errors(output.parent):
        output.parent.mkdir(parents=True, exist_ok=True)
    kept = f"the finished stages in {output} are kept; run the same command again to resume"
    bars = ParallelStageProgress() if jobs > 1 or scheduler is not None else StageProgress()
    with writing(output, [] if sharc is None else [sharc], force=True, folder=True, kept=kept), bars as progress:
        if sharc is None and not given:  # a log line once the output is ours (bad input stays one line)
            typer.echo(
                f"no SHARC runs at {SHARC_DEFAULT}: the transfer score on SHARC runs is left out (give --sharc DIR)", err=True
            )
        results = run_study(
            preset,
            output,
            seed=seed,
            seeds=seeds,
            jobs=jobs,
            threads=threads,
            scheduler=scheduler,
            workers=workers,
            data_dir=data_dir,
            sharc_dir=sharc,
            log=lambda line: typer.echo(line, err=True),
            progress=progress,
        )
    typer.echo(results_markdown(results))
    typer.echo(f"results and figures in {output}")
