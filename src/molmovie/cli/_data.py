"""Data commands: ``import`` (trajectories -> dataset), ``scatter`` (signals), ``info``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import typer

from .._errors import InputError
from .._guards import check_allocation
from .._provenance import add_inputs
from ..datasets import Dataset, make_splits
from ..io import describe, read_dataset, write_dataset
from ..scattering import DEFAULT_Q, PROBES, SignalSpec, q_grid, simulate
from ..scattering.detector import MAX_PHOTONS
from ..trajectories import READERS, read_ensemble, trajectory_files
from ._app import app
from ._options import SPLITS_TEXT, choices, deprecated, parse_q_grid, parse_splits
from ._outputs import writing
from ._progress import progress_callback

if TYPE_CHECKING:
    Probe = str
else:  # shown as choices in --help
    Probe = Literal[PROBES]


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
    format: Annotated[
        str | None, typer.Option(metavar=choices(READERS), help="Trajectory reader (default: from each path).")
    ] = None,
    splits: Annotated[str, typer.Option(help="Relative sizes (or exact counts) of train,val,test.")] = SPLITS_TEXT,
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
    q: Annotated[
        str | None,
        typer.Option(
            "--q",
            help="q grid (s for electrons), 1/Angstrom: QMIN:QMAX:STEP, e.g. 0.5:6.8:0.05. Default: 100 points from 0.5 to 6.8.",
            show_default=False,
        ),
    ] = None,
    qmin: Annotated[float | None, typer.Option(hidden=True)] = None,
    qmax: Annotated[float | None, typer.Option(hidden=True)] = None,
    nq: Annotated[int | None, typer.Option(hidden=True)] = None,
    inelastic: Annotated[
        bool | None,
        typer.Option(
            "--inelastic/--no-inelastic",
            help="Include the inelastic term: Compton for X-rays (default on), Morse's background for electrons (default off).",
            show_default=False,
        ),
    ] = None,
    probe: Annotated[Probe, typer.Option(help="What scattered.")] = "xray",
    energy_kev: Annotated[
        float | None, typer.Option(help="Electron beam kinetic energy, keV (default 3700, MeV-UED; electrons only).")
    ] = None,
    photons: Annotated[
        float | None,
        typer.Option(
            help="Poisson noise: expected photons per q bin per delay (per frame), averaged over the q bins of a pattern (default: no noise)."
        ),
    ] = None,
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
        add_inputs([file])  # in place, FILE is also the input: its checksum before the signals are added
        q_values = _scatter_q(q, qmin, qmax, nq)
        if photons is not None and not photons > 0:
            raise InputError(f"--photons must be > 0 photons per q bin per delay; got {photons:g}")
        if photons is not None and photons * len(q_values) > MAX_PHOTONS:
            raise InputError(
                f"--photons must be <= {MAX_PHOTONS / len(q_values):.3g} per q bin per delay with {len(q_values)} q points "
                f"(Poisson counts beyond {MAX_PHOTONS:.0e} per pattern overflow 64-bit integers); got {photons:g}"
            )
        spec = SignalSpec(
            q_values,
            inelastic=inelastic,  # type: ignore[arg-type]  # None: the probe's default
            reference=reference.value,
            photons=None if photons is None else photons * len(q_values),  # the library counts photons per pattern
            irf_fs=irf_fs,
            seed=seed,
            probe=probe,
            energy_kev=energy_kev,
        )
        ds = read_dataset(file)
        if output is None and ds.has_signals and not force:
            raise InputError(f"{file} already has signals; use --force to replace them, or --output to write a new file")
        M, T, Q = ds.n_trajectories, ds.n_frames, len(q_values)
        check_allocation((M, T, Q), f"--q with {Q} points: ΔS of {M} trajectories x {T} frames x {Q} q points")
        with progress_callback("scattering", unit="trajectories") as progress:
            signals = simulate(ds.symbols, ds.positions, ds.length, ds.time, spec, progress=progress)
        write_dataset(ds.with_signals(*signals), target, force=True)
    typer.echo(
        f"{target}: ΔS on {Q} q points from {q_values[0]:g} to {q_values[-1]:g} 1/Å for {ds.n_trajectories} trajectories ({_probe(spec)})"
    )


def _scatter_q(q: str | None, qmin: float | None, qmax: float | None, nq: int | None) -> np.ndarray:
    """The q grid of --q, or of the old --qmin/--qmax/--nq (with a deprecation line)."""
    old = {k: v for k, v in dict(q_min=qmin, q_max=qmax, n_q=nq).items() if v is not None}
    if q is not None and old:
        raise InputError("give --q QMIN:QMAX:STEP, not --q with --qmin/--qmax/--nq")
    if q is not None:
        return parse_q_grid(q)
    if old:
        grid: dict[str, Any] = {**DEFAULT_Q, **old}
        values = q_grid(**grid)
        step = f"{values[1] - values[0]:.6g}" if len(values) > 1 else "1"
        given = " ".join(f"--{k.replace('_', '')} {v:g}" for k, v in old.items())
        deprecated(given, f"--q {grid['q_min']:g}:{grid['q_max']:g}:{step}")
        return values
    return q_grid(**DEFAULT_Q)


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
