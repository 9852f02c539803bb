"""``molmovie generate``: photoexcited trajectories with the built-in GFN2-xTB generator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .._errors import InputError
from ..dynamics import default_model, get_model, partial_path
from ..dynamics import generate as run
from ..molecules import get_molecule
from . import app
from ._options import parse_splits
from ._progress import progress_callback


def _generate_status(info: dict) -> str:
    return f"{info['dissociated']} dissociated" + (f", {info['failed']} failed" if info["failed"] else "")


@app.command()
def generate(
    molecule: Annotated[str, typer.Argument(help="nmm, c2h4, cs2, an XYZ file, or smiles:SMILES (e.g. smiles:CN1CCOCC1).", show_default=False)],
    trajectories: Annotated[int, typer.Option("--trajectories", "-n", help="Number of trajectories.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Dataset file to write (HDF5).")],
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same trajectories, whatever the workers.")] = 0,
    workers: Annotated[Optional[int], typer.Option(help="Local worker processes, one trajectory per core (default: all cores; 1 runs without Dask).")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Address of a running Dask scheduler (tcp://host:8786) to run the trajectories on.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Excited-state model: nmm-cation, c2h4-pipi, c2h4-triplet, cs2-isc, cs2-triplet, or the generic cation, triplet, ground. Default: the molecule's own; 'cation' for other molecules.")] = None,
    stop_dissociated: Annotated[bool, typer.Option("--stop-dissociated", help="End a trajectory once its fragments are apart (as SHARC runs do): faster, shorter trajectories.")] = False,
    splits: Annotated[str, typer.Option(help="Relative sizes (or exact counts) of train,val,test.")] = "85,11,11",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output file, or discard a checkpoint made with other settings.")] = False,
) -> None:
    """Run GFN2-xTB dynamics of a photoexcited molecule into a dataset file.

    Finished trajectories are checkpointed in OUTPUT.partial/; if the run is
    interrupted, the same command resumes it. The output is ready for
    `molmovie scatter`.
    """
    sizes = parse_splits(splits)
    if trajectories < 1:
        raise InputError(f"--trajectories must be >= 1; got {trajectories}")
    with progress_callback(f"generate {molecule}", unit="trajectories", status=_generate_status) as progress:
        if stop_dissociated:
            mol = get_molecule(molecule)
            model = (default_model(mol) if model is None else get_model(model)).replace(stop_dissociated=True)
            molecule = mol
        try:
            ds = run(molecule, trajectories, model=model, seed=seed, workers=workers, scheduler=scheduler,
                     output=output, splits=sizes, force=force, progress=progress)
        except KeyboardInterrupt:
            folder = partial_path(output)
            saved = len(list(folder.glob("traj-*.npz"))) if folder.is_dir() else 0
            typer.echo(f"molmovie: interrupted; {saved} finished trajectories are kept in {folder}; "
                       f"run the same command again to resume", err=True)
            raise typer.Exit(130) from None
    summary = ds.ensemble.provenance["summary"]
    drift = summary["max_drift_eV"]
    typer.echo(
        f"{output}: {ds.n_trajectories} trajectories of {ds.molecule} ({ds.n_atoms} atoms), model "
        f"{ds.ensemble.provenance['model']['name']}, {ds.n_frames} frames to {ds.time[-1]:g} fs; "
        f"{summary['dissociated']} dissociated, {summary['failed']} failed (SCF), "
        f"energy drift max {drift:.3f} eV" + (f" ({summary['drift_flagged']} above threshold)" if summary["drift_flagged"] else "")
    )
