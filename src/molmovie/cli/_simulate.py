"""``simulate-experiment``: a synthetic pump-probe measurement of a dataset, with its truth stored beside it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
import typer

from .._errors import InputError
from .._guards import check_allocation
from ..datasets import SPLITS
from ..io import read_dataset
from ..io.measurement import write_measurement
from ..measurement import simulate_measurement
from ..scattering import DEFAULT_Q, PROBES, q_grid
from ._app import app
from ._options import grid_numbers, parse_q_grid
from ._outputs import writing
from ._progress import progress_callback

if TYPE_CHECKING:
    Probe = str
    SplitName = str
else:  # the registries' names, shown as choices in --help
    Probe = Literal[PROBES]
    SplitName = Literal[SPLITS]

#: Photons per q bin per delay when --photons is not given: noise, and so a σ that `fit` weighs the data by.
DEFAULT_PHOTONS = 1e6

#: Most delays and q points a typed range or a file may ask for (checked before anything is allocated).
MAX_DELAYS = 100_000
MAX_Q = 100_000


def _read_numbers(path: Path, option: str, *, limit: int | None = None, noun: str = "values") -> np.ndarray:
    """A 1-D array of numbers from a .npy file or a text file (whitespace or commas, '#' comments), at most ``limit`` of them."""
    try:
        if path.suffix == ".npy":
            values = np.load(path, allow_pickle=False, mmap_mode="r")
            if limit is not None and values.size > limit:  # before the numbers are read into memory
                raise InputError(f"{option} {path}: {values.size} {noun}, more than the limit of {limit}")
            check_allocation(values.shape, f"{option} {path} (shape {values.shape})")
        else:
            size = path.stat().st_size
            if limit is not None and size > 64 * (limit + 1):  # more bytes than `limit` numbers can take
                raise InputError(f"{option} {path}: {size:,} bytes, more than {limit} {noun} can take")
            check_allocation(40 * size, f"{option} {path} (a text file of {size:,} bytes)", itemsize=1)
            text = path.read_text().replace(",", " ")
            values = np.array([float(v) for line in text.splitlines() for v in line.split("#")[0].split()])
    except InputError:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{option} {path}: not a file of numbers ({exc.__class__.__name__})") from None
    if values.ndim != 1 or values.size == 0 or values.dtype.kind not in "fiu":
        raise InputError(f"{option} {path}: must hold a non-empty list of numbers; got shape {values.shape}")
    if limit is not None and values.size > limit:
        raise InputError(f"{option} {path}: {values.size} {noun}, more than the limit of {limit}")
    return np.asarray(values, dtype=float)


def parse_delays(text: str) -> np.ndarray:
    """``"-200:1000:25"`` (START:STOP:STEP in fs, STOP included when on the grid) or a file of delays."""
    path = Path(text)
    if path.is_file():
        return _read_numbers(path, "--delays", limit=MAX_DELAYS, noun="delays")
    start, stop, step = grid_numbers(text, "--delays", "START:STOP:STEP in fs (e.g. -200:1000:25)")
    if not step > 0 or stop < start:
        raise InputError(f"--delays START:STOP:STEP needs STEP > 0 and STOP >= START; got {text!r}")
    steps = (stop - start) / step
    count = math.floor(steps + 1e-9 * max(1.0, steps)) + 1  # STOP included when on the grid, to rounding
    if count > MAX_DELAYS:
        raise InputError(f"--delays {text} gives {count:,} delays, more than the limit of {MAX_DELAYS:,}")
    return start + step * np.arange(count)


def parse_q(text: str) -> np.ndarray:
    """``"1:4:0.05"`` (QMIN:QMAX:STEP in 1/Angstrom; the old QMIN:QMAX:COUNT with a deprecation line) or a file of q values."""
    path = Path(text)
    if path.is_file():
        return _read_numbers(path, "--q", limit=MAX_Q, noun="q points")
    return parse_q_grid(text, "--q", limit=MAX_Q)


def parse_indices(text: str, n: int) -> np.ndarray:
    """``"0,3,5"`` or ranges ``"10:20"`` (end excluded), indices into ``n`` trajectories."""
    out: list[np.ndarray] = []
    for item in text.split(","):
        item = item.strip()
        a, sep, b = item.partition(":")
        try:
            lo = int(a)
            hi = int(b) if sep else lo + 1
        except ValueError:
            raise InputError(f"--trajectories must be indices and ranges like 0,3,5 or 10:20; got {text!r}") from None
        if lo < 0 or hi > n or hi <= lo:
            raise InputError(f"--trajectories {item}: out of range; the dataset has {n} trajectories (0 to {n - 1})")
        out.append(np.arange(lo, hi))
    return np.concatenate(out)


def parse_weights(text: str, n: int) -> np.ndarray:
    """``"1,2,1"`` or a file: one weight per selected trajectory (normalised later)."""
    path = Path(text)
    if path.is_file():
        values = _read_numbers(path, "--weights", limit=n, noun="weights")
    else:
        try:
            values = np.array([float(v) for v in text.split(",")])
        except ValueError:
            raise InputError(f"--weights must be numbers separated by commas, or a file; got {text!r}") from None
    if values.size != n:
        raise InputError(f"--weights needs one weight per selected trajectory ({n}); got {values.size}")
    return values


def _fit_t0_low() -> float:
    """The earliest time zero `fit --method ensemble` searches by default, fs (its default delays must be fittable)."""
    import inspect

    from ..fitting import EnsembleFit

    return float(inspect.signature(EnsembleFit).parameters["t0_range"].default[0])


@app.command("simulate-experiment")
def simulate_experiment(
    dataset: Annotated[Path, typer.Argument(help="Dataset of trajectories (from import or generate).", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Measurement file to write (HDF5).")],
    gamma: Annotated[float, typer.Option(help="Excitation fraction, in (0, 1].")] = 0.05,
    t0: Annotated[float, typer.Option("--t0", help="Time zero, fs: the delay at which the molecules are excited.")] = 40.0,
    irf_fs: Annotated[float, typer.Option("--irf-fs", help="FWHM of the Gaussian instrument response, fs (0: none).")] = 80.0,
    photons: Annotated[
        float,
        typer.Option(
            help="Poisson noise: expected photons per q bin per delay (of the laser-off pattern); 0: no noise and no σ."
        ),
    ] = DEFAULT_PHOTONS,
    delays: Annotated[
        str | None,
        typer.Option(
            help="Delays, fs: START:STOP:STEP (e.g. -200:1000:25) or a file. Default: every 25 fs from -200 fs to the latest "
            "delay `fit`'s default time-zero search can fit with this basis (its duration - 150 fs), or to the basis end + t0 if earlier.",
            show_default=False,
        ),
    ] = None,
    q: Annotated[
        str | None,
        typer.Option(
            "--q",
            help="q grid, 1/Angstrom: QMIN:QMAX:STEP (e.g. 1:4:0.05) or a file. Default: the dataset's signals' q, else 100 points from 0.5 to 6.8.",
            show_default=False,
        ),
    ] = None,
    trajectories: Annotated[
        str | None,
        typer.Option(help="Trajectories of the excited ensemble: indices and ranges, e.g. 0,3,5 or 0:50 (default: all)."),
    ] = None,
    split: Annotated[SplitName | None, typer.Option(help="Use the trajectories of this split of the dataset.")] = None,
    weights: Annotated[
        str | None, typer.Option(help="Weights of the selected trajectories, comma-separated or a file (default: uniform).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the photon noise.")] = 0,
    inelastic: Annotated[
        bool | None,
        typer.Option(
            "--inelastic/--no-inelastic",
            help="Include the inelastic term: Compton for X-rays (default on), Morse's background for electrons (default off).",
            show_default=False,
        ),
    ] = None,
    probe: Annotated[Probe | None, typer.Option(help="What scatters (default: the dataset's signals', else xray).")] = None,
    energy_kev: Annotated[
        float | None, typer.Option(help="Electron beam kinetic energy, keV (default: the dataset's, else 3700; electrons only).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output file.")] = False,
) -> None:
    """Make a synthetic measurement from a dataset's trajectories, with the truth stored beside it.

    ΔS(q, t) = γ Σ_i w_i [ΔS_i ⊗ IRF](q, t − t0) against the laser-off ground
    state, with Poisson noise at --photons per q bin per delay; the file also holds the
    weights, γ, t0, IRF and the weighted distribution of every distance per delay.
    """
    inputs = [dataset, *(Path(t) for t in (delays, q, weights) if t is not None and Path(t).is_file())]
    with writing(output, inputs, force=force):
        model = {"inelastic": inelastic, "probe": probe, "energy_kev": energy_kev}
        if photons < 0 or not math.isfinite(photons):
            raise InputError(f"--photons must be >= 0 photons per q bin per delay (0: no noise); got {photons:g}")
        _simulate(
            dataset, output, gamma, t0, irf_fs, photons or None, delays, q, trajectories, split, weights, seed, model, force
        )


def _simulate(dataset, output, gamma, t0, irf_fs, photons, delays, q, trajectories, split, weights, seed, model, force) -> None:
    if trajectories is not None and split is not None:
        raise InputError("give --trajectories or --split, not both")
    if split is not None and split not in SPLITS:
        raise InputError(f"--split must be one of {', '.join(SPLITS)}; got {split!r}")
    delay_grid = None if delays is None else parse_delays(delays)
    q_values = None if q is None else parse_q(q)
    ds = read_dataset(dataset)
    if ds.n_trajectories == 0:
        raise InputError(f"{dataset} holds no trajectories")
    if split is not None:
        if split not in ds.splits or len(ds.splits[split]) == 0:
            raise InputError(f"{dataset} has no trajectories in a {split!r} split")
        index = np.asarray(ds.splits[split], dtype=np.int64)
    elif trajectories is not None:
        index = parse_indices(trajectories, ds.n_trajectories)
    else:
        index = np.arange(ds.n_trajectories)
    w = None if weights is None else parse_weights(weights, index.size)
    if q_values is None:
        q_values = ds.q if ds.q is not None else q_grid(**DEFAULT_Q)
    if model["probe"] is None:  # the probe (and the beam energy) chain from the dataset's signals
        model["probe"] = ds.spec.probe if ds.spec is not None else "xray"
        if model["energy_kev"] is None and ds.spec is not None:
            model["energy_kev"] = ds.spec.energy_kev
    if delay_grid is None:
        span = float(ds.time[-1] - ds.time[0])
        end = min(span + t0, span + _fit_t0_low())
        if not (math.isfinite(end) and end >= -200.0):
            raise InputError(
                f"the default delays run from -200 fs to min(basis end + t0, basis end - 150 fs) = {end:g} fs; give --delays"
            )
        delay_grid = parse_delays(f"-200:{end!r}:25")
    M, T, Q, D = index.size, ds.n_frames, len(q_values), len(delay_grid)
    check_allocation(8 * Q * (M * T + 4 * D), f"--q ({Q} q points) with {M} trajectories x {T} frames and {D} delays")

    with progress_callback("scattering", unit="trajectories") as progress:
        meas = simulate_measurement(
            ds,
            q=q_values,
            delays=delay_grid,
            weights=w,
            gamma=gamma,
            t0=t0,
            irf_fs=irf_fs,
            photons=photons,
            seed=seed,
            trajectories=index,
            source=str(dataset),
            progress=progress,
            **model,
        )
    write_measurement(meas, output, force=force)
    truth = meas.truth
    assert truth is not None  # a simulated measurement carries its truth
    peak = float(np.max(np.abs(truth.dS_clean)))
    noise = "no noise"
    if meas.sigma is not None:
        snr = peak / float(np.median(meas.sigma))
        counts = "photons" if meas.probe == "xray" else "electrons"
        noise = f"Poisson noise at {photons:g} {counts} per q bin (peak |ΔS| / median σ = {snr:.3g})"
    typer.echo(
        f"{output}: simulated measurement of {ds.molecule} from {index.size} trajectories: {meas.n_delays} delays "
        f"from {meas.delays[0]:g} to {meas.delays[-1]:g} fs, {meas.n_q} q from {meas.q[0]:g} to {meas.q[-1]:g} 1/Å; "
        f"γ {truth.gamma:g}, t0 {truth.t0:g} fs, IRF {truth.irf_fs:g} fs; peak |ΔS| {100 * peak:.3g} %; {noise}"
        + ("" if meas.probe == "xray" else f"; electrons at {meas.energy_kev:g} keV (ΔS is ΔI/I)")
    )
