"""Data commands: ``import`` (trajectories -> dataset), ``scatter`` (signals), ``info``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from .._errors import InputError
from .._guards import check_allocation
from ..datasets import Dataset, make_splits
from ..io import describe, read_dataset, write_dataset
from ..scattering import PROBES, SignalSpec, q_grid, simulate
from ..trajectories import READERS, read_ensemble, trajectory_files
from ._app import app
from ._options import parse_splits
from ._outputs import writing
from ._progress import progress_callback


class Reference(str, Enum):
    first = "first"
    ground = "ground"


@app.command("import")
def import_(
    paths: Annotated[
        list[Path], typer.Argument(help="Trajectory files, SHARC run folders, or a folder of runs (TRAJ_*).", show_default=False)
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Dataset file to write (HDF5).")],
    dt: Annotated[
        float | None,
        typer.Option(
            help="Frame interval in fs: --dt 5 keeps every 10th of 0.5 fs steps. XYZ files without times use it as their step."
        ),
    ] = None,
    tmax: Annotated[float | None, typer.Option(help="Keep frames up to this time in fs after the first.")] = None,
    format: Annotated[str | None, typer.Option(help="Reader: " + ", ".join(READERS) + " (default: from each path).")] = None,
    splits: Annotated[str, typer.Option(help="Relative sizes (or exact counts) of train,val,test.")] = "80,10,10",
    seed: Annotated[int, typer.Option(help="Seed of the random split.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output file.")] = False,
) -> None:
    """Read trajectories of one molecule into a molmovie dataset file."""
    with writing(output, trajectory_files(paths), force=force):
        sizes = parse_splits(splits)
        with progress_callback("reading", unit="trajectories") as progress:
            ens = read_ensemble(paths, format=format, dt=dt, tmax=tmax, progress=progress)
        ds = Dataset(ens, splits=make_splits(ens.n_trajectories, sizes, seed=seed))
        write_dataset(ds, output, force=force)
    typer.echo(
        f"{output}: {ens.n_trajectories} trajectories of {ens.molecule} ({len(ens.symbols)} atoms), "
        f"{ens.n_frames} frames to {ens.time[-1]:g} fs, {int(ens.dissociated.sum())} dissociated"
    )


@app.command()
def scatter(
    file: Annotated[Path, typer.Argument(help="Dataset file (from import or generate).", show_default=False)],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of updating FILE in place.")] = None,
    qmin: Annotated[float | None, typer.Option(help="Smallest q (s for electrons), 1/Angstrom.")] = None,
    qmax: Annotated[float | None, typer.Option(help="Largest q (s for electrons), 1/Angstrom.")] = None,
    nq: Annotated[int | None, typer.Option(help="Number of q points.")] = None,
    inelastic: Annotated[
        bool | None,
        typer.Option(
            "--inelastic/--no-inelastic",
            help="Include the inelastic term: Compton for X-rays (default on), Morse's background for electrons (default off).",
            show_default=False,
        ),
    ] = None,
    probe: Annotated[str, typer.Option(help=f"What scattered: {', '.join(PROBES)}.")] = "xray",
    energy_kev: Annotated[
        float | None, typer.Option(help="Electron beam kinetic energy, keV (default 3700, MeV-UED; electrons only).")
    ] = None,
    photons: Annotated[float | None, typer.Option(help="Poisson noise: expected photons per pattern.")] = None,
    irf_fs: Annotated[float | None, typer.Option(help="Time resolution: FWHM of a Gaussian instrument response, fs.")] = None,
    reference: Annotated[
        Reference,
        typer.Option(help="ΔS reference: each trajectory's first frame (the paper's), or the ground-state ensemble (laser off)."),
    ] = Reference.first,
    seed: Annotated[int, typer.Option(help="Seed of the photon noise.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output, or signals already in FILE.")] = False,
) -> None:
    """Simulate the scattering signals ΔS(q, t) of every trajectory (IAM: X-rays, Eq. (1), or electrons, ΔI/I)."""
    # in place, FILE is the output: checked (a read-only file is refused) and locked before it is read
    target = output or file
    with writing(target, [file] if output is not None else [], force=force or output is None):
        grid: dict[str, Any] = {k: v for k, v in dict(q_min=qmin, q_max=qmax, n_q=nq).items() if v is not None}
        q = q_grid(**grid)
        spec = SignalSpec(
            q,
            inelastic=inelastic,  # type: ignore[arg-type]  # None: the probe's default
            reference=reference.value,
            photons=photons,
            irf_fs=irf_fs,
            seed=seed,
            probe=probe,
            energy_kev=energy_kev,
        )
        ds = read_dataset(file)
        if output is None and ds.has_signals and not force:
            raise InputError(f"{file} already has signals; use --force to replace them, or --output to write a new file")
        M, T = ds.n_trajectories, ds.n_frames
        check_allocation((M, T, len(q)), f"--nq {len(q)}: ΔS of {M} trajectories x {T} frames x {len(q)} q points")
        with progress_callback("scattering", unit="trajectories") as progress:
            signals = simulate(ds.symbols, ds.positions, ds.length, ds.time, spec, progress=progress)
        write_dataset(ds.with_signals(*signals), target, force=True)
    typer.echo(
        f"{target}: ΔS on {len(q)} q points from {q[0]:g} to {q[-1]:g} 1/Å for {ds.n_trajectories} trajectories ({_probe(spec)})"
    )


def _probe(spec: SignalSpec) -> str:
    return "X-rays" if spec.probe == "xray" else f"electrons at {spec.energy_kev:g} keV"


@app.command()
def info(
    file: Annotated[
        Path,
        typer.Argument(help="A dataset, measurement, fit result, inversion result, model or signals file.", show_default=False),
    ],
) -> None:
    """Describe any molmovie file: a dataset (molecule, trajectories, frames, q grid, splits), a measurement, a fit or inversion result, a model."""
    typer.echo("\n".join(f"{label:<13} {text}" for label, text in describe(file)))
