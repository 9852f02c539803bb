"""``molmovie generate``: trajectories with the built-in generator (GFN2-xTB, a Morse potential, any ASE calculator)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from .._errors import InputError
from ..dynamics import MODELS, Model, default_model, generate as run, get_model, partial_path
from ..dynamics.calculators import CALCULATORS, get_calculator
from ..dynamics.initial import INITIAL_CONDITIONS, Mixture, get_initial
from ..molecules import Molecule, get_molecule
from ._app import app
from ._options import SPLITS_TEXT, choices, deprecated, parse_span, parse_splits
from ._outputs import writing
from ._progress import progress_callback


def _generate_status(info: dict) -> str:
    return f"{info['dissociated']} dissociated" + (f", {info['failed']} failed" if info["failed"] else "")


_CALCULATOR_HELP = "; ".join(f"{name}: {text}" for name, (_, text) in CALCULATORS.items())
_INITIAL_HELP = "; ".join(f"{name}: {cls.description}" for name, cls in INITIAL_CONDITIONS.items())

#: Keys of --morse and the Morse parameters they set.
_MORSE_KEYS = {"we": "omega_e", "omega_e": "omega_e", "re": "r_e", "r_e": "r_e", "de": "D_e", "d_e": "D_e", "d0": "D0"}

#: Most frames per trajectory (--tmax / --dt).
MAX_FRAMES = 1_000_000


def _range(text: str | None, option: str, unit: str) -> tuple[float, float] | None:
    """``"0.02:0.3"`` -> (0.02, 0.3); ``"0.1"`` -> (0.1, 0.1); the old ``"0.02,0.3"`` with a deprecation line."""
    return parse_span(text, option, unit, single=True, example="0.02:0.3")


def _morse(text: str) -> dict:
    """``"we=214.5,re=2.666,D0=1.54"`` -> Morse settings."""
    out = {}
    for item in str(text).split(","):
        key, sep, value = item.partition("=")
        name = _MORSE_KEYS.get(key.strip().lower())
        if not sep or name is None:
            raise InputError(
                f"--morse takes we=CM-1,re=ANGSTROM and D0=EV or De=EV, like we=214.5,re=2.666,D0=1.54; got {text!r}"
            )
        if name in out:
            raise InputError(f"--morse gives {key.strip()} twice")
        try:
            out[name] = float(value)
        except ValueError:
            raise InputError(f"--morse: {key.strip()} must be a number; got {value.strip()!r}") from None
    return out


def _families(text: str) -> list[tuple[str, float]]:
    """``"displaced:2,dissociation:1"`` -> [("displaced", 2.0), ("dissociation", 1.0)]."""
    out: list[tuple[str, float]] = []
    for item in str(text).split(","):
        name, sep, weight = item.strip().partition(":")
        name = name.strip().lower()
        if name not in INITIAL_CONDITIONS:
            raise InputError(
                f"unknown initial-condition family {name!r} in --initial; choose from {', '.join(INITIAL_CONDITIONS)}"
            )
        try:
            w = float(weight) if sep else 1.0
        except ValueError:
            w = float("nan")
        if not (math.isfinite(w) and w > 0):
            raise InputError(f"--initial weights must be numbers > 0, like displaced:2,dissociation:1; got {item.strip()!r}")
        if name in [n for n, _ in out]:
            raise InputError(f"--initial names {name!r} twice")
        out.append((name, w))
    return out


def _bond(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        i, j = (int(p) for p in text.split(","))
    except ValueError:
        raise InputError(f"--bond must be two atom indices from 0, like 0,1; got {text!r}") from None
    return (i, j)


def _retime(model, tmax: float | None, dt: float | None, timestep: float | None):
    """The model with --tmax, --dt (frame interval) and --timestep applied, validated."""
    for option, value in (("--tmax", tmax), ("--dt", dt), ("--timestep", timestep)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InputError(f"{option} must be > 0 fs; got {value:g}")
    duration = model.duration if tmax is None else float(tmax)
    interval = model.duration / (model.n_frames - 1) if dt is None else float(dt)
    step = model.timestep if timestep is None else float(timestep)
    frames = duration / interval
    if abs(frames - round(frames)) > 1e-6 * max(frames, 1.0) or round(frames) < 1:
        raise InputError(f"--tmax {duration:g} fs must be a whole number (>= 1) of --dt {interval:g} fs frame intervals")
    if round(frames) + 1 > MAX_FRAMES:
        raise InputError(f"--tmax / --dt gives {round(frames) + 1} frames per trajectory; at most {MAX_FRAMES}")
    per = interval / step
    if abs(per - round(per)) > 1e-6 * max(per, 1.0) or round(per) < 1:
        raise InputError(f"the frame interval --dt {interval:g} fs must be a whole number of --timestep {step:g} fs steps")
    return model.replace(duration=duration, n_frames=int(round(frames)) + 1, timestep=step)


@app.command()
def generate(
    molecule: Annotated[
        str, typer.Argument(help="nmm, c2h4, cs2, i2, an XYZ file, or smiles:SMILES (e.g. smiles:CN1CCOCC1).", show_default=False)
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Dataset file to write (HDF5).")],
    n_trajectories: Annotated[
        int | None, typer.Option("--n-trajectories", "-n", help="Number of trajectories to run (required).", show_default=False)
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same trajectories, whatever the workers.")] = 0,
    workers: Annotated[
        int | None,
        typer.Option(help="Local worker processes, one trajectory per core (default: all cores; 1 runs without Dask)."),
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Address of a running Dask scheduler (tcp://host:8786) to run the trajectories on.")
    ] = None,
    dynamics: Annotated[
        str | None,
        typer.Option(
            metavar=choices(MODELS),
            help="Excited-state dynamics model: nmm-cation, c2h4-pipi, c2h4-triplet, cs2-isc, cs2-triplet, or the generic cation, triplet, ground. Default: the molecule's own; 'cation' for other molecules; 'ground' with a one-surface calculator (Morse).",
            show_default=False,
        ),
    ] = None,
    calculator: Annotated[
        str | None, typer.Option(help=f"Energies and forces from: {_CALCULATOR_HELP}. Default: xtb.", show_default=False)
    ] = None,
    morse: Annotated[
        str | None,
        typer.Option(
            help="Constants of --calculator morse: we=CM-1 (harmonic wavenumber), re=ANGSTROM, and D0=EV (bond energy) or De=EV (well depth), e.g. we=214.5,re=2.666,D0=1.54.",
            show_default=False,
        ),
    ] = None,
    initial: Annotated[
        str | None,
        typer.Option(
            help=f"How trajectories start: {_INITIAL_HELP}. Several as relative sizes, run in consecutive blocks of trajectory indices, e.g. displaced:2,dissociation:1. Default: wigner.",
            show_default=False,
        ),
    ] = None,
    amplitude: Annotated[
        str | None,
        typer.Option(
            help="displaced: range LO:HI of the bond displacement amplitude A, Angstrom (drawn uniformly).", show_default=False
        ),
    ] = None,
    phase: Annotated[
        str | None,
        typer.Option(
            help="displaced: range LO:HI of the vibration phase, degrees: bond = A cos(phase), momentum = -A mu omega sin(phase). Default 0:360.",
            show_default=False,
        ),
    ] = None,
    excess: Annotated[
        str | None,
        typer.Option(
            help="dissociation: range LO:HI of the energy above the dissociation limit, eV; a diatomic's atoms separate at sqrt(2E/mu).",
            show_default=False,
        ),
    ] = None,
    repulsive: Annotated[
        float | None,
        typer.Option(
            help="dissociation, diatomics: run on a repulsive wall E_limit + W exp(-BETA (r - r_e)) from the Wigner sample at rest (a vertical excitation to a dissociative state) instead of kicking the bond on the same potential; BETA in 1/Angstrom, e.g. 2.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        float | None,
        typer.Option(
            help="dissociation: the dissociation limit above the minimum's energy, eV (default: the energy with the two fragments moved 50 Angstrom apart).",
            show_default=False,
        ),
    ] = None,
    bond: Annotated[
        str | None,
        typer.Option(
            help="displaced, dissociation: the bond, two atom indices from 0 (default: the bond of a diatomic).",
            show_default=False,
        ),
    ] = None,
    no_wigner: Annotated[
        bool,
        typer.Option(
            "--no-wigner",
            help="displaced, dissociation: start exactly at the drawn point, without the zero-point spread of a Wigner sample.",
        ),
    ] = False,
    tmax: Annotated[float | None, typer.Option(help="Simulated time, fs (default: the model's).", show_default=False)] = None,
    dt: Annotated[
        float | None, typer.Option(help="Frame interval stored, fs (default: the model's).", show_default=False)
    ] = None,
    timestep: Annotated[
        float | None, typer.Option(help="Velocity Verlet time step, fs (default: the model's, 0.5).", show_default=False)
    ] = None,
    stop_dissociated: Annotated[
        bool,
        typer.Option(
            "--stop-dissociated",
            help="End a trajectory once its fragments are apart (as SHARC runs do): faster, shorter trajectories.",
        ),
    ] = False,
    splits: Annotated[str, typer.Option(help="Relative sizes (or exact counts) of train,val,test.")] = SPLITS_TEXT,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing output file, or discard a checkpoint made with other settings.")
    ] = False,
    old_count: Annotated[int | None, typer.Option("--trajectories", hidden=True)] = None,
    old_model: Annotated[str | None, typer.Option("--model", hidden=True)] = None,
) -> None:
    """Run dynamics of a (photoexcited) molecule into a dataset file.

    GFN2-xTB by default; a Morse potential (or a registered ASE calculator)
    with --calculator. Trajectories start from a 0 K Wigner sample, or from a
    displaced wavepacket or a dissociation with --initial, e.g.

    molmovie generate i2 -n 600 -o i2.h5 --calculator morse-i2-x --initial wigner:1,displaced:1,dissociation:2 --amplitude 0.02:0.3 --excess 0.05:3.5 --tmax 3500 --dt 10 --timestep 1

    Finished trajectories are checkpointed in OUTPUT.partial/; if the run is
    interrupted, the same command resumes it. The output is ready for
    `molmovie scatter`.
    """
    if old_count is not None:
        if n_trajectories is not None:
            raise InputError("give --n-trajectories (-n) once; --trajectories N is its old spelling")
        deprecated(f"--trajectories {old_count}", f"--n-trajectories {old_count}")
        n_trajectories = old_count
    if n_trajectories is None:
        raise InputError("generate needs --n-trajectories N (-n N): how many trajectories to run")
    if old_model is not None:  # --model names a model file in `invert`
        if dynamics is not None:
            raise InputError("give --dynamics once; --model is its old spelling in `generate`")
        deprecated(f"--model {old_model} (in generate)", f"--dynamics {old_model}")
    model = dynamics if dynamics is not None else old_model
    trajectories = n_trajectories
    sizes = parse_splits(splits)
    if trajectories < 1:
        raise InputError(f"--n-trajectories must be >= 1; got {trajectories}")
    calc, init = _calculator(calculator, morse), _initial(initial, amplitude, phase, excess, bond, no_wigner, limit, repulsive)
    molecule_file = [Path(molecule)] if Path(molecule).is_file() else []
    # the library takes the output lock itself (and resumes from OUTPUT.partial/)
    with writing(output, molecule_file, force=force, lock=False):
        with progress_callback(f"generate {molecule}", unit="trajectories", status=_generate_status) as progress:
            what: str | Molecule = molecule
            how: str | Model | None = model
            if stop_dissociated or tmax is not None or dt is not None or timestep is not None:
                what = get_molecule(molecule)
                how = default_model(what, calc) if model is None else get_model(model)
                if stop_dissociated:
                    how = how.replace(stop_dissociated=True)
                if tmax is not None or dt is not None or timestep is not None:
                    how = _retime(how, tmax, dt, timestep)
            try:
                ds = run(
                    what,
                    trajectories,
                    model=how,
                    seed=seed,
                    workers=workers,
                    scheduler=scheduler,
                    output=output,
                    splits=sizes,
                    force=force,
                    progress=progress,
                    calculator=calc,
                    initial=init,
                )
            except KeyboardInterrupt:
                folder = partial_path(output)
                saved = len(list(folder.glob("traj-*.npz"))) if folder.is_dir() else 0
                typer.echo(
                    f"molmovie: interrupted; {saved} finished trajectories are kept in {folder}; "
                    f"run the same command again to resume",
                    err=True,
                )
                raise typer.Exit(130) from None
    summary = ds.ensemble.provenance["summary"]
    drift = summary["max_drift_eV"]
    typer.echo(
        f"{output}: {ds.n_trajectories} trajectories of {ds.molecule} ({ds.n_atoms} atoms), model "
        f"{ds.ensemble.provenance['model']['name']}, {ds.n_frames} frames to {ds.time[-1]:g} fs; "
        f"{summary['dissociated']} dissociated, {summary['failed']} failed (SCF), "
        f"energy drift max {drift:.3f} eV"
        + (f" ({summary['drift_flagged']} above threshold)" if summary["drift_flagged"] else "")
    )


def _calculator(name: str | None, morse: str | None):
    """The calculator of --calculator and --morse (None: the default, xTB)."""
    if name is None and morse is None:
        return None
    if name is None or name.lower() != "morse":
        if morse is not None:
            raise InputError(
                "--morse gives the constants of --calculator morse; add --calculator morse (presets such as morse-i2-x need none)"
            )
        return get_calculator(name)
    if morse is None:
        raise InputError("--calculator morse needs its constants: --morse we=CM-1,re=ANGSTROM,D0=EV (or De=EV)")
    return get_calculator("morse", **_morse(morse))


def _initial(
    text: str | None,
    amplitude: str | None,
    phase: str | None,
    excess: str | None,
    bond: str | None,
    no_wigner: bool,
    limit: float | None = None,
    repulsive: float | None = None,
):
    """The initial-condition family (or mixture) of --initial and its options, validated."""
    families = _families(text) if text is not None else [("wigner", 1.0)]
    names = [n for n, _ in families]
    ranges: dict[str, tuple[str, tuple[float, float] | None]] = {
        "--amplitude": ("displaced", _range(amplitude, "--amplitude", "Angstrom")),
        "--phase": ("displaced", _range(phase, "--phase", "degrees")),
        "--excess": ("dissociation", _range(excess, "--excess", "eV")),
    }
    for option, (family, value) in ranges.items():
        if value is not None and family not in names:
            raise InputError(f"{option} applies to --initial {family}, which this run does not use")
    if (bond is not None or no_wigner) and not {"displaced", "dissociation"} & set(names):
        raise InputError("--bond and --no-wigner apply to --initial displaced or dissociation")
    for option, given in (("--limit", limit), ("--repulsive", repulsive)):
        if given is not None and "dissociation" not in names:
            raise InputError(f"{option} applies to --initial dissociation, which this run does not use")
    if "displaced" in names and amplitude is None:
        raise InputError("--initial displaced needs --amplitude LO:HI (Angstrom), e.g. --amplitude 0.02:0.3")
    if "dissociation" in names and excess is None:
        raise InputError("--initial dissociation needs --excess LO:HI (eV above the dissociation limit), e.g. --excess 0.1:2")
    common: dict[str, Any] = {"bond": _bond(bond), "wigner": not no_wigner}
    settings: dict[str, dict[str, Any]] = {
        "wigner": {},
        "displaced": dict(
            common, amplitude=ranges["--amplitude"][1], **({"phase": ranges["--phase"][1]} if phase is not None else {})
        ),
        "dissociation": dict(common, excess=ranges["--excess"][1], limit=limit, repulsive=repulsive),
    }
    made = [(get_initial(n, **settings[n]), w) for n, w in families]
    if len(made) == 1:
        return None if names == ["wigner"] else made[0][0]
    return Mixture(tuple(made))
