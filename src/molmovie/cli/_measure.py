"""Measurement commands: ``ingest`` (beamline file -> measurement file) and ``show`` (-> figure)."""

from __future__ import annotations

import math
from contextlib import ExitStack
from enum import Enum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from .._errors import InputError, shorten
from ..evaluation._style import figure_files, signal_names
from ..evaluation.measurement_figures import plot_measurement
from ..io import atomic_path
from ..io.beamline import ingest as ingest_file
from ..io.measurement import read_measurement, write_measurement
from ..measurement import difference_pdf
from ..scattering import PROBES
from ..scattering.pdf import DEFAULT_ALPHA
from ._app import app
from ._options import deprecated, parse_span
from ._outputs import writing


class Kind(str, Enum):
    auto = "auto"
    intensity = "intensity"
    difference = "difference"


class Format(str, Enum):
    hdf5 = "hdf5"
    npz = "npz"
    text = "text"


class QIn(str, Enum):
    column = "column"
    row = "row"


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="Beamline file: HDF5, NPZ or a text table.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Measurement file to write (HDF5).")],
    kind: Annotated[
        Kind,
        typer.Option(
            help="Absolute intensities I(q,t) (ΔS is built against a reference) or a ready ΔS; auto: intensities when the isotropic data are positive in the q range."
        ),
    ] = Kind.auto,
    q_units: Annotated[
        str | None,
        typer.Option(help="Units of the file's q: 1/Angstrom (1/A), 1/nm or 1/bohr. Needed when the file does not say."),
    ] = None,
    delay_units: Annotated[
        str | None, typer.Option(help="Units of the file's delays: fs or ps. Needed when the file does not say.")
    ] = None,
    signal_units: Annotated[
        str | None,
        typer.Option(help="A ready ΔS: fraction or percent; or sM, a ΔsM of electron diffraction (in the file's 1/s units)."),
    ] = None,
    t0: Annotated[
        float, typer.Option("--t0", help="Time zero, fs (on the file's delay axis); stored delays are (delay - t0) in fs.")
    ] = 0.0,
    reference_before: Annotated[
        float | None,
        typer.Option(
            help="Intensities: the delays strictly before this time, fs (on the file's delay axis; default --t0), form the reference."
        ),
    ] = None,
    laser_off: Annotated[
        Path | None, typer.Option(help="Laser-off file (same layout and options) as the reference instead of the pre-t0 delays.")
    ] = None,
    q_range: Annotated[
        str | None,
        typer.Option(help="q range kept, LO:HI in 1/Angstrom (after unit conversion; default: all).", show_default=False),
    ] = None,
    qmin: Annotated[float | None, typer.Option(hidden=True)] = None,
    qmax: Annotated[float | None, typer.Option(hidden=True)] = None,
    legendre: Annotated[
        int,
        typer.Option(
            help="Legendre order to take from a stacked array (looked up in the file's list of orders; without one, the index)."
        ),
    ] = 0,
    anisotropy: Annotated[
        str | None,
        typer.Option(
            help="Anisotropic Legendre orders to keep beside order 0, e.g. 2,4 (each ΔS_l = (S_l − S̄_l)/S̄_0 with its σ)."
        ),
    ] = None,
    q_path: Annotated[str | None, typer.Option(help="HDF5 dataset path or NPZ key of q (default: guessed, e.g. Q, q).")] = None,
    delays_path: Annotated[
        str | None, typer.Option(help="... of the delays (default: guessed, e.g. delays, timebins, time).")
    ] = None,
    data_path: Annotated[
        str | None, typer.Option(help="... of the data (default: guessed, e.g. dS, mean, intensity, data).")
    ] = None,
    variance_path: Annotated[str | None, typer.Option(help="... of the variances (text tables: a second table file).")] = None,
    std_path: Annotated[str | None, typer.Option(help="... of standard deviations instead of variances.")] = None,
    legendre_path: Annotated[
        str | None, typer.Option(help="... of the list of Legendre orders (default: guessed, e.g. legendres).")
    ] = None,
    axes: Annotated[
        str | None, typer.Option(help="Axes of the data array in order, e.g. l,q,t, when their lengths do not tell them apart.")
    ] = None,
    q_in: Annotated[
        QIn, typer.Option(help="Text tables: q in the first column (delays in the header row) or in the header row.")
    ] = QIn.column,
    format: Annotated[Format | None, typer.Option(help="File format (default: from the file's first bytes).")] = None,
    molecule: Annotated[
        str | None, typer.Option(help="Molecule measured, e.g. I2 (a formula or built-in name gives its atoms).")
    ] = None,
    symbols: Annotated[
        str | None, typer.Option(help="Its element symbols, e.g. 'I I' (overrides what --molecule gives).")
    ] = None,
    probe: Annotated[str, typer.Option(help=f"What scattered: {', '.join(PROBES)} (electrons: q is s, ΔS is ΔI/I).")] = "xray",
    energy_kev: Annotated[
        float | None, typer.Option(help="Electron beam kinetic energy, keV (default 3700; electrons only).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output file.")] = False,
) -> None:
    """Turn a beamline file into a molmovie measurement: units, ΔS against a reference, σ, q range, time zero."""
    inputs = [file, laser_off, *(Path(p) for p in (variance_path, std_path) if p and Path(p).exists())]
    qmin, qmax = _q_range(q_range, qmin, qmax)
    with writing(output, inputs, force=force):
        meas = _ingest(
            file,
            output,
            force=force,
            kind=kind.value,
            q_units=q_units,
            delay_units=delay_units,
            signal_units=signal_units,
            t0=t0,
            reference_before=reference_before,
            time_units="fs",
            laser_off=laser_off,
            qmin=qmin,
            qmax=qmax,
            molecule=molecule,
            symbols=symbols,
            probe=probe,
            energy_kev=energy_kev,
            legendre=legendre,
            anisotropy=_orders(anisotropy),
            q_path=q_path,
            delays_path=delays_path,
            data_path=data_path,
            variance_path=variance_path,
            std_path=std_path,
            legendre_path=legendre_path,
            axes=axes,
            q_in=q_in.value,
            format=None if format is None else format.value,
        )
    p = meas.provenance
    units = p.get("units_read", {}).get("delays", "fs")
    if units != "fs" and (t0 != 0 or reference_before is not None):
        typer.echo(
            f"molmovie: note: --t0 and --reference-before are in fs (before molmovie 0.2 they were in the file's delay units, {units} here)",
            err=True,
        )
    order = "" if p.get("legendre") is None else f", Legendre {p['legendre']}"
    lines = [
        f"{output}: ΔS ({p['kind']}{order}) "
        f"on {meas.n_q} q points {meas.q[0]:.4g}-{meas.q[-1]:.4g} 1/Å at {meas.n_delays} delays "
        f"{meas.delays[0]:.6g} to {meas.delays[-1]:.6g} fs"
        + ("" if meas.probe == "xray" else f"; electrons at {meas.energy_kev:g} keV (ΔS is ΔI/I)"),
        f"reference: {p['reference']}; σ: {'none in the file' if meas.sigma is None else 'propagated'}",
    ]
    checks = [
        f"{name} {p[key]:.3g}"
        for key, name in (("reference_chi2_dof", "reference delays"), ("pre_t0_chi2_dof", "delays before t0"))
        if key in p
    ]
    if checks:
        lines.append("mean (ΔS/σ)² (1 when ΔS is zero within σ): " + ", ".join(checks))
    if meas.components:
        pre = p.get("anisotropy", {}).get("pre_t0_chi2_dof", {})
        lines.append(
            "anisotropic orders kept: "
            + ", ".join(
                f"{c.order}" + (f" (mean (ΔS_{c.order}/σ)² before t0 {pre[str(c.order)]:.3g})" if pre.get(str(c.order)) else "")
                for c in meas.components
            )
        )
    typer.echo("\n".join(lines))


def _q_range(text: str | None, qmin: float | None, qmax: float | None) -> tuple[float | None, float | None]:
    """--q-range LO:HI, or the old --qmin/--qmax (with a deprecation line)."""
    if text is not None:
        if qmin is not None or qmax is not None:
            raise InputError("give --q-range LO:HI, not --q-range with --qmin/--qmax")
        span = parse_span(text, "--q-range", "1/Angstrom", example="0.5:4")
        assert span is not None
        return span
    if qmin is not None or qmax is not None:
        old = " ".join(f"--{k} {v:g}" for k, v in (("qmin", qmin), ("qmax", qmax)) if v is not None)
        lo = "" if qmin is None else f"{qmin:g}"
        hi = "" if qmax is None else f"{qmax:g}"
        deprecated(old, f"--q-range {lo or 0}:{hi or 'QMAX'}")
    return qmin, qmax


def _orders(text: str | None) -> tuple[int, ...]:
    """--anisotropy "2,4" as (2, 4); the library checks the values."""
    if not text:
        return ()
    try:
        return tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise InputError(f"--anisotropy takes even Legendre orders > 0, e.g. 2,4; got {text!r}") from None


def _ingest(file, output, *, force, **options):
    """Read the beamline file and write the measurement (the output claimed by the caller)."""
    meas = ingest_file(file, **options)
    write_measurement(meas, output, force=force)
    return meas


@app.command()
def show(
    file: Annotated[Path, typer.Argument(help="Measurement file (from ingest or simulate-experiment).", show_default=False)],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Figure to write: PNG (300 dpi, with its PDF beside it), PDF or SVG, by its suffix."),
    ],
    q_lines: Annotated[
        str | None,
        typer.Option(
            "--q-lines",
            help="q values of the line-outs, 1/Angstrom, comma separated (default: three where |ΔS| is largest).",
            show_default=False,
        ),
    ] = None,
    q: Annotated[str | None, typer.Option("--q", hidden=True)] = None,
    tmax: Annotated[float | None, typer.Option(help="Show delays up to this time, fs.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing figure.")] = False,
) -> None:
    """Figure of a measurement: the ΔS(q, t) map in percent, line-outs at a few q with σ, |ΔS|/σ."""
    if q is not None:
        if q_lines is not None:
            raise InputError("give --q-lines once; --q is its old spelling in `show`")
        deprecated(f"--q {q} (in show)", f"--q-lines {q}")
        q_lines = q
    also = [output.with_suffix(".pdf")] if output.suffix.lower() == ".png" else []
    with writing(output, [file], force=force, also=also):
        _show(file, output, q_lines, tmax)


def _show(file: Path, output: Path, q, tmax) -> None:
    suffix = output.suffix.lower()
    if suffix not in (".png", ".pdf", ".svg"):
        raise InputError(f"{output}: the figure must be .png, .pdf or .svg")
    q_lines = None
    if q is not None:
        try:
            q_lines = [float(x) for x in q.split(",")]
        except ValueError:
            q_lines = []
        if not q_lines or not all(math.isfinite(v) and v >= 0 for v in q_lines):
            raise InputError(f"--q-lines takes q values >= 0 in 1/Angstrom separated by commas, like 1.5,3; got {q!r}")
    if tmax is not None and not math.isfinite(tmax):
        raise InputError(f"--tmax must be a finite time in fs; got {tmax!r}")
    meas = read_measurement(file)
    if tmax is not None and not (meas.delays <= tmax).any():
        raise InputError(f"--tmax {tmax:g} fs is before the first delay ({meas.delays[0]:g} fs)")
    p = meas.provenance
    about = [  # each part cut short: a provenance can hold megabytes, a title one line
        f"reference: {shorten(str(p['reference']), 80)}" if "reference" in p else None,
        f"Legendre order {shorten(str(p['legendre']), 20)}" if p.get("legendre") is not None else None,
        f"made by {shorten(str(p['made_by']), 40)}" if "made_by" in p else None,
    ]
    title = f"{shorten(str(meas.molecule or 'measurement'), 40)} ({file.name}): " + "; ".join(a for a in about if a)
    ued, extra = None, ""
    if meas.probe == "electron":  # electron diffraction's own maps: ΔsM(s, t) and ΔP(r, t)
        r = np.linspace(0.0, 8.0, 161)
        try:
            dP, dsm, how = difference_pdf(meas, r)
            ued, extra = (dsm, r, dP), f", ΔsM(s, t) and ΔP(r, t) ({how}; α = {DEFAULT_ALPHA:g} Å²)"
        except InputError as exc:
            extra = f"; no ΔsM/ΔP maps ({exc})"
    fig = plot_measurement(
        meas.q, meas.delays, meas.dS, meas.sigma, q_lines=q_lines, tmax=tmax, title=title, ued=ued, probe=meas.probe
    )
    import matplotlib.pyplot as plt

    formats = _show_formats(output)
    try:
        images = figure_files(fig, formats)
    finally:
        plt.close(fig)
    with ExitStack() as stack:  # both files or neither; the output named first is closed (and its error seen) first
        tmps = {
            fmt: stack.enter_context(atomic_path(output.with_suffix("." + fmt), suffix="." + fmt)) for fmt in reversed(formats)
        }
        for fmt, tmp in tmps.items():
            tmp.write_bytes(images[fmt])
    also = f" (and {output.with_suffix('.pdf')})" if len(formats) > 1 else ""
    sn = signal_names(meas.probe)[1]
    typer.echo(f"{output}{also}: {sn} map, line-outs and |{sn}|/σ of {file}{extra}")


def _show_formats(output: Path) -> tuple[str, ...]:
    """A PNG is written with its PDF beside it (the vector figure for print); a PDF or SVG alone."""
    suffix = output.suffix.lower()
    return ("png", "pdf") if suffix == ".png" else (suffix[1:],)
