"""``fit``: invert a measurement (ensemble fit over a trajectory basis, or model-free ΔP(R, t))."""

from __future__ import annotations

import math
import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer
from threadpoolctl import threadpool_limits

from .._errors import InputError
from .._guards import WriteError, deferred_interrupt, write_errors
from ..evaluation import fit_figures as ff
from ..evaluation._style import FORMATS, figure_files
from ..fitting import MEASUREMENT_METHODS, get_measurement_method
from ..io import atomic_path, read_dataset
from ..io.fit import write_fit
from ..io.measurement import read_measurement
from ._app import app
from ._options import choices, parse_settings, parse_span
from ._outputs import writing
from ._progress import progress_callback


def _range(text: str | None, option: str) -> tuple[float, float] | None:
    """``"-100:150"`` -> (-100.0, 150.0); the old ``"-100,150"`` with a deprecation line."""
    return parse_span(text, option, "fs", example="-100:150")


def _regularize(text: str | None):
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value) or value < 0:
        raise InputError(f"--regularize must be a rule name or a number >= 0; got {text!r}")
    return value


@app.command()
def fit(
    measurement: Annotated[
        Path, typer.Argument(help="Measurement file (from `molmovie ingest` or `simulate-experiment`).", show_default=False)
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Fit result file to write (HDF5, format molmovie-fit).")],
    method: Annotated[
        str,
        typer.Option(
            "--method",
            "-m",
            metavar=choices(MEASUREMENT_METHODS),
            help="Measurement method: ensemble (weights of a trajectory basis), pdf (model-free ΔP(R, t)) or a learned one.",
        ),
    ] = "ensemble",
    basis: Annotated[
        Path | None,
        typer.Option(
            "--basis",
            help="Dataset of trajectories of the measured molecule (ensemble: required; pdf: optional, gives I_gs and the ground-state bound).",
        ),
    ] = None,
    figures: Annotated[
        Path | None,
        typer.Option(
            "--figures",
            help="Folder for the figures (PNG at 300 dpi and PDF; the truth drawn for a simulated experiment); created if missing.",
        ),
    ] = None,
    bootstrap: Annotated[int | None, typer.Option(help="Bootstrap replicates (ensemble; default 100).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the bootstrap (ensemble; default 0).")] = None,
    t0_range: Annotated[
        str | None, typer.Option("--t0-range", help="Time-zero range searched, LO:HI in fs (ensemble; default -150:150).")
    ] = None,
    irf_range: Annotated[
        str | None, typer.Option("--irf-range", help="IRF FWHM range searched, LO:HI in fs (ensemble; default 10:300).")
    ] = None,
    regularize: Annotated[str | None, typer.Option(help="ensemble: none, discrepancy or μ; pdf: gcv, discrepancy or λ.")] = None,
    hole: Annotated[
        bool,
        typer.Option(
            "--hole",
            help="ensemble: model the ground-state hole with the basis's own ground-state trajectories (ground_start, bound, ground-state model), signed, Σh = Σc = γ.",
        ),
    ] = False,
    sigma_from_pre_t0: Annotated[
        bool,
        typer.Option(
            "--sigma-from-pre-t0",
            help="Estimate σ from the scatter of ΔS before time zero (per q, the same at every delay), replacing any σ in the file.",
        ),
    ] = False,
    settings: Annotated[
        list[str] | None, typer.Option("--set", help="Method setting KEY=VALUE (JSON value), repeatable, e.g. --set r_max=8.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing result file.")] = False,
) -> None:
    """Fit a measurement: γ, t0, IRF, weights and distance distributions (ensemble), or ΔP(R, t) (pdf)."""

    if method not in MEASUREMENT_METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(MEASUREMENT_METHODS)}")
    options = parse_settings(settings)
    ensemble_only = {
        "--bootstrap": ("bootstrap", bootstrap),
        "--seed": ("seed", seed),
        "--t0-range": ("t0_range", _range(t0_range, "--t0-range")),
        "--irf-range": ("irf_range", _range(irf_range, "--irf-range")),
    }
    known = MEASUREMENT_METHODS[method].setting_names()
    for flag, (key, value) in ensemble_only.items():
        if value is None:
            continue
        if key not in known:
            raise InputError(f"{flag} does not apply to the {method} method")
        if key in options:
            raise InputError(f"{flag} and --set {key}=... both set {key!r}; give it once")
        options[key] = value
    if regularize is not None:
        if "regularize" in options:
            raise InputError("--regularize and --set regularize=... both set 'regularize'; give it once")
        options["regularize"] = _regularize(regularize)
    if hole:
        if "hole" not in known:
            raise InputError(f"--hole does not apply to the {method} method")
        options["hole"] = True
    if sigma_from_pre_t0:
        options["sigma"] = "pre-t0"
    model = get_measurement_method(method, **options)  # validates the settings before any file is read
    if figures is not None and not model.draws_figures:
        raise InputError(f"--figures is not drawn for {method} yet; draw its answer with examples/i2_learned.py")
    shown = None if figures is None else [figures / name for name in _figure_names(method, bool(options.get("hole")))]

    with writing(output, [measurement, basis], force=force, also=shown or (), folders=[] if figures is None else [figures]):
        meas = read_measurement(measurement)
        data = None
        if basis is not None:
            data = read_dataset(basis)
        elif model.needs_basis:
            raise InputError(f"the {method} method needs --basis DATASET (trajectories of the measured molecule)")

        # The fits are many small matrix products and NNLS solves: BLAS threads only add
        # overhead there (the ensemble benchmark ran 3-10x slower with two threads on a
        # busy 2-core machine), so BLAS runs one thread while fitting.
        with (
            progress_callback(f"fitting ({method})", status=lambda info: str(info.get("stage", ""))) as progress,
            threadpool_limits(limits=1, user_api="blas"),
        ):
            model.fit(meas, basis=data, progress=progress)
        result = model.result
        result.provenance.update({"measurement_file": str(measurement), "basis_file": None if basis is None else str(basis)})
        images = {} if shown is None else _figures(result, shown, meas)
        _write_all(result, output, images, figures, force=force)

    lines = summary_lines(result, output, method, meas.molecule)
    if shown is not None:
        lines.append(f"  figures: {', '.join(str(w) for w in shown)}")
    typer.echo("\n".join(lines))
    if not result.converged:  # written, to be judged, not thrown away: the file says converged = false
        typer.echo(
            f"molmovie: warning: the {method} fit did not converge: {result.message}; {output} is written with converged = false",
            err=True,
        )


def summary_lines(result, output, method: str, molecule) -> list[str]:
    """What a fit found, in a few lines (also printed by `invert` for a measurement)."""
    import numpy as np

    lines = [
        f"{output}: {method} {'answer' if MEASUREMENT_METHODS[method].learned else 'fit'} of {molecule or 'the measurement'}, {result.n_data} data, "
        f"reduced χ² {result.reduced_chi2:.3f} (σ: {result.sigma_source.split(':')[0]})"
    ]
    e = result.ensemble
    if e is not None:
        lines.append(
            f"  γ = {e.gamma:.4g} ± {e.gamma_std:.2g}   t0 = {e.t0:.1f} ± {e.t0_std:.1f} fs   IRF = {e.irf_fs:.1f} ± {e.irf_fs_std:.1f} fs FWHM"
            f"   ({len(e.bootstrap_gamma)} bootstrap replicates"
            + (
                f"; γ's profile likelihood over {e.profile_gamma.size} points"
                if e.profile_gamma is not None and e.profile_gamma.size
                else ""
            )
            + ")"
        )
        if e.weights.size:
            lines.append(
                f"  {np.count_nonzero(e.weights)} of {e.weights.size} trajectories weighted; dissociated fraction at the last delay "
                f"{e.dissociated_fraction[-1]:.3f} ± {e.dissociated_fraction_std[-1]:.3f}"
            )
        else:  # a learned answer: channel shares and mean distances, no weights
            shares = ", ".join(
                f"{c} {f:.3f} ± {s:.3f}" for c, f, s in zip(e.channels, e.channel_fraction, e.channel_fraction_std, strict=True)
            )
            lines.append(f"  channels: {shares}")
            for k, c in enumerate(e.channels):
                m = e.channel_distance_mean[k, -1]
                sd = e.channel_distance_mean_std[k, -1]
                lines.append(
                    f"  {c}, last delay: "
                    + ", ".join(f"{lab} {v:.3f} ± {u:.3f} Å" for lab, v, u in list(zip(e.pair_labels, m, sd, strict=True))[:4])
                    + (" ..." if len(e.pair_labels) > 4 else "")
                )
        if e.hole_weights is not None and e.hole_r0 is not None:  # set together
            h = e.hole_weights
            r0 = e.hole_r0[:, 0]
            lines.append(
                f"  hole: {np.count_nonzero(h)} of {h.size} ground-state trajectories, Σh = {h.sum():.4g}; mean {e.pair_labels[0]} at "
                f"excitation {h @ r0 / h.sum():.3f} Å removed against {r0.mean():.3f} Å in the ground state"
            )
        if e.birge_ratio > 1:
            lines.append(
                f"  spreads scaled by the Birge ratio √χ²_red = {e.birge_ratio:.3f} (reduced χ² > 1: the data scatter more than σ about the fit)"
            )
    p = result.pdf
    if p is not None:
        lines.append(
            f"  ΔP(R, t) on {p.r.size} bins {p.r[0]:.2f}-{p.r[-1]:.2f} Å for {', '.join(p.pair_types)}; "
            f"λ = {p.regularization:.3g} ({p.rule}), damping α = {p.damping:.3g} Å²; I_gs from {p.reference.split(':')[0]}"
        )
    return lines


def _figure_names(method: str, hole: bool) -> list[str]:
    """The files ``fit --figures`` writes for a method (planned before the fit runs): each figure as PNG and PDF."""
    return [f"{name}.{fmt}" for name in ff.fit_figure_names(method, hole) for fmt in FORMATS]


def _write_all(result, output: Path, images: dict[Path, bytes], folder: Path | None, *, force: bool) -> None:
    """The result and every figure written as one: all temporary files first, then the renames.

    A full disk or Ctrl-C while any of them is written leaves none of them (and
    no figures folder that this command created).
    """
    created = folder is not None and not folder.exists()
    try:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            tmps = {path: stack.enter_context(atomic_path(path, suffix=path.suffix)) for path in [output, *images]}
            try:
                write_fit(result, tmps[output], force=True)
                for path, data in images.items():
                    with write_errors(path), open(tmps[path], "wb") as fh:
                        fh.write(data)
            except WriteError as exc:  # name the output, not its temporary file
                reason, _, where = str(exc).partition(" writing ")
                named = next((path for path, tmp in tmps.items() if tmp.name in where), output)
                raise WriteError(f"{reason} writing {named}") from None
    except BaseException:
        if created and folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _figures(result, planned: list[Path], measurement=None) -> dict[Path, bytes]:
    """The images of a fit (PNG at 300 dpi and PDF), drawn in memory, for the planned paths (Ctrl-C held until drawn, then raised).

    A simulated measurement's truth is drawn on them (:func:`molmovie.evaluation.fit_figures.fit_figures`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_name = {path.name: path for path in planned}
    out: dict[Path, bytes] = {}
    with deferred_interrupt():  # matplotlib would print a Ctrl-C inside its callbacks and carry on
        for name, fig in ff.fit_figures(result, measurement).items():
            try:
                for fmt, data in figure_files(fig).items():
                    out[by_name[f"{name}.{fmt}"]] = data
            finally:
                plt.close(fig)
    if set(out) != set(planned):  # pragma: no cover - fit_figure_names and fit_figures name the same figures
        raise AssertionError(f"figures drawn {sorted(map(str, out))} differ from those planned")
    return out
