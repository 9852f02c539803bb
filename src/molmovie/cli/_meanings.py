"""What every option of the command line means: one name, one unit, one meaning across all commands (STYLE.md 21).

:data:`OPTIONS` is the registry: each option name with its meaning, its unit
or form, and its kind (the Python type the command declares for it). Every
command's options must be in it and agree with it (:func:`problems`; a test
runs it), so a new command cannot give an existing name a second meaning:
``--trajectories`` as a count in one command and an index list in another
fails, and so does ``--photons`` per pattern beside ``--photons`` per q bin
(the unit must be stated in the help). :func:`option_rows` lists every option
of every command for the table in the docs (``tools/cli_options.py``).

:data:`DEPRECATED` lists the old spellings still read for one release (hidden
from ``--help``; each prints one ``molmovie: deprecated:`` line).
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

__all__ = ["Meaning", "OPTIONS", "DEPRECATED", "OptionRow", "option_rows", "problems", "check_rows"]


@dataclass(frozen=True)
class Meaning:
    """What an option means in every command that takes it.

    Attributes
    ----------
    meaning : str
        The concept, in a few words.
    unit : str
        Its unit or form as the help must state it (checked: the help of
        every command's option contains it); ``""`` for flags, paths, names.
    kind : str
        One of :data:`KINDS`: the type every command declares for it.
    """

    meaning: str
    unit: str
    kind: str


#: Kinds of options and the Python types a command may declare for each.
KINDS: dict[str, tuple[type, ...]] = {
    "count": (int,),
    "integer": (int,),
    "number": (float,),
    "range": (str,),
    "grid": (str,),
    "list": (str,),
    "path": (Path,),
    "flag": (bool,),
    "choice": (str, Enum),
    "text": (str,),
    "settings": (list,),
}

_FS = "fs"
_Q = "1/Angstrom"

#: The registry: every option name the command line uses, with its one meaning.
OPTIONS: dict[str, Meaning] = {
    # files and runs
    "--output": Meaning("where the command writes: a file, or a folder for evaluate and reproduce", "", "path"),
    "--force": Meaning("replace an existing output", "", "flag"),
    "--figures": Meaning("folder for the figures", "", "path"),
    "--extxyz": Meaning("file for the predicted geometries as extended XYZ", "", "path"),
    "--basis": Meaning("dataset of trajectories of the measured molecule", "", "path"),
    "--model": Meaning("model file from `molmovie train`", "", "path"),
    "--for": Meaning("measurement file a learned model is trained for", "", "path"),
    "--laser-off": Meaning("laser-off file as the reference", "", "path"),
    "--data-dir": Meaning("folder of generated datasets to reuse", "", "path"),
    "--sharc": Meaning("folder of SHARC runs", "", "path"),
    "--format": Meaning("format of the input file, or the trajectory reader", "", "choice"),
    "--seed": Meaning("seed of the random numbers (noise, splits, initialisation)", "", "integer"),
    "--seeds": Meaning("number of seeds each method is trained with", "", "count"),
    "--workers": Meaning("number of local worker processes", "", "count"),
    "--jobs": Meaning("number of stages run at once", "", "count"),
    "--threads": Meaning("number of threads per training process", "", "count"),
    "--scheduler": Meaning("address of a running Dask scheduler", "tcp://host:8786", "text"),
    "--device": Meaning("where a model runs: auto, cpu or cuda", "", "text"),
    "--preset": Meaning("the study's sizes", "", "choice"),
    # trajectories and datasets
    "--n-trajectories": Meaning("number of trajectories to run", "", "count"),
    "--trajectories": Meaning("trajectories chosen by index", "0,3,5", "list"),
    "--split": Meaning("one split of a dataset: train, val or test (evaluate: also all)", "", "choice"),
    "--splits": Meaning("relative sizes (or exact counts) of train,val,test", "train,val,test", "list"),
    "--weights": Meaning("weights of the chosen trajectories", "comma-separated", "list"),
    "--exclude-dissociating": Meaning("leave out trajectories that dissociate", "", "flag"),
    "--dt": Meaning("interval between stored frames", _FS, "number"),
    "--tmax": Meaning("latest time used, after the start", _FS, "number"),
    "--timestep": Meaning("integration time step", _FS, "number"),
    # dynamics
    "--dynamics": Meaning("excited-state dynamics model", "", "choice"),
    "--calculator": Meaning("energies and forces from", "", "choice"),
    "--morse": Meaning("constants of a Morse potential", "we=CM-1", "text"),
    "--initial": Meaning("initial-condition families and their shares", "", "text"),
    "--amplitude": Meaning("range of the bond displacement amplitude", "Angstrom", "range"),
    "--phase": Meaning("range of the vibration phase", "degrees", "range"),
    "--excess": Meaning("range of the energy above the dissociation limit", "eV", "range"),
    "--repulsive": Meaning("steepness of a repulsive wall", _Q, "number"),
    "--limit": Meaning("dissociation limit above the minimum", "eV", "number"),
    "--bond": Meaning("a bond: two atom indices from 0", "two atom indices", "list"),
    "--no-wigner": Meaning("start exactly at the drawn point", "", "flag"),
    "--stop-dissociated": Meaning("end a trajectory once its fragments are apart", "", "flag"),
    # signals
    "--q": Meaning("q grid, 1/Angstrom", "QMIN:QMAX:STEP", "grid"),
    "--q-range": Meaning("q range kept, 1/Angstrom", "LO:HI", "range"),
    "--q-lines": Meaning("q values of line-outs", _Q, "list"),
    "--probe": Meaning("what scatters: X-rays or electrons", "", "choice"),
    "--energy-kev": Meaning("electron beam kinetic energy", "keV", "number"),
    "--inelastic": Meaning("include the inelastic term", "", "flag"),
    "--reference": Meaning("ΔS reference of simulated signals", "", "choice"),
    "--photons": Meaning("Poisson noise: expected photons", "per q bin per delay", "number"),
    "--irf-fs": Meaning("FWHM of the Gaussian instrument response", _FS, "number"),
    "--interpolate-q": Meaning("interpolate signals onto the model's q grid", "", "flag"),
    # measurements
    "--gamma": Meaning("excitation fraction", "(0, 1]", "number"),
    "--t0": Meaning("time zero", _FS, "number"),
    "--delays": Meaning("pump-probe delays, fs", "START:STOP:STEP", "grid"),
    "--kind": Meaning("what the file holds: intensities or a ready ΔS", "", "choice"),
    "--q-units": Meaning("units of the file's q", "", "text"),
    "--delay-units": Meaning("units of the file's delays", "", "text"),
    "--signal-units": Meaning("units of a ready ΔS", "", "text"),
    "--reference-before": Meaning("delays before this time form the reference", _FS, "number"),
    "--legendre": Meaning("Legendre order read from a stacked array", "", "integer"),
    "--anisotropy": Meaning("anisotropic Legendre orders kept", "2,4", "list"),
    "--q-path": Meaning("HDF5 path or NPZ key of q", "", "text"),
    "--delays-path": Meaning("... of the delays", "", "text"),
    "--data-path": Meaning("... of the data", "", "text"),
    "--variance-path": Meaning("... of the variances", "", "text"),
    "--std-path": Meaning("... of standard deviations", "", "text"),
    "--legendre-path": Meaning("... of the list of Legendre orders", "", "text"),
    "--axes": Meaning("axes of the data array in order", "l,q,t", "list"),
    "--q-in": Meaning("text tables: where q is", "", "choice"),
    "--molecule": Meaning("molecule measured", "", "text"),
    "--symbols": Meaning("element symbols of its atoms", "", "text"),
    # fitting and training
    "--method": Meaning(
        "inversion method (fit: of a measurement; train: of one trajectory's ΔS, or vrnn-ensemble)", "", "choice"
    ),
    "--set": Meaning("a method setting", "KEY=VALUE", "settings"),
    "--bootstrap": Meaning("number of bootstrap replicates", "", "count"),
    "--t0-range": Meaning("time-zero range searched, fs", "LO:HI", "range"),
    "--irf-range": Meaning("IRF FWHM range searched, fs", "LO:HI", "range"),
    "--regularize": Meaning("regularisation rule or strength", "", "text"),
    "--hole": Meaning("model the ground-state hole", "", "flag"),
    "--sigma-from-pre-t0": Meaning("estimate σ from the scatter before time zero", "", "flag"),
    "--epochs": Meaning("most training epochs", "", "count"),
    # the application
    "--version": Meaning("print molmovie's version", "", "flag"),
    "--verbose": Meaning("more log lines (repeat for debug)", "", "count"),
    "--quiet": Meaning("only warnings and errors", "", "flag"),
    "--log": Meaning("also write the log to this file", "", "path"),
}

#: Old spellings still read for one release: (command, old option) -> the new spelling.
DEPRECATED: dict[tuple[str, str], str] = {
    ("scatter", "--qmin"): "--q QMIN:QMAX:STEP",
    ("scatter", "--qmax"): "--q QMIN:QMAX:STEP",
    ("scatter", "--nq"): "--q QMIN:QMAX:STEP",
    ("generate", "--trajectories"): "--n-trajectories",
    ("generate", "--model"): "--dynamics",
    ("ingest", "--qmin"): "--q-range LO:HI",
    ("ingest", "--qmax"): "--q-range LO:HI",
    ("show", "--q"): "--q-lines",
}


@dataclass(frozen=True)
class OptionRow:
    """One option of one command, as the command declares it."""

    command: str
    option: str
    short: str
    type: Any
    default: Any
    help: str
    hidden: bool


def _base(annotation: Any) -> Any:
    """The declared type without ``Annotated`` and ``| None``."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
        annotation = args[0]
    return annotation


def _option_rows(name: str, callback: Any) -> list[OptionRow]:
    from typer.models import OptionInfo

    hints = typing.get_type_hints(callback, include_extras=True)
    rows = []
    for pname, par in inspect.signature(callback).parameters.items():
        meta = [m for m in getattr(hints.get(pname), "__metadata__", ()) if isinstance(m, OptionInfo)]
        if not meta:
            continue
        info = meta[0]
        decls = [info.default] if isinstance(info.default, str) and info.default.startswith("-") else []
        decls += list(info.param_decls or ())
        longs = [d.split("/")[0] for d in decls if d.startswith("--")] or ["--" + pname.replace("_", "-")]
        shorts = [d for d in decls if d.startswith("-") and not d.startswith("--")]
        default = None if par.default is inspect.Parameter.empty else par.default
        if isinstance(default, Enum):
            default = default.value
        rows.append(
            OptionRow(
                name, longs[0], shorts[0] if shorts else "", _base(hints[pname]), default, info.help or "", bool(info.hidden)
            )
        )
    return rows


def option_rows() -> list[OptionRow]:
    """Every option of every command (and of ``molmovie`` itself), in the order of ``--help``."""
    from ._app import app

    rows = []
    if app.registered_callback is not None and app.registered_callback.callback is not None:
        rows += _option_rows("molmovie", app.registered_callback.callback)
    for info in app.registered_commands:
        assert info.callback is not None
        rows += _option_rows(info.name or info.callback.__name__.rstrip("_"), info.callback)
    return rows


def _kind_of(t: Any) -> tuple[type, ...]:
    if typing.get_origin(t) is typing.Literal:
        return (str,)
    origin = typing.get_origin(t)
    if origin is not None:
        return (origin,)
    return (t,) if isinstance(t, type) else ()


def check_rows(rows: list[OptionRow]) -> list[str]:
    """What disagrees with the registry: unknown names, another type, a unit the help does not state, a hidden option not deprecated."""
    out = []
    for r in rows:
        where = f"{r.command} {r.option}"
        if r.hidden:
            if (r.command, r.option) not in DEPRECATED:
                out.append(f"{where}: hidden but not listed in DEPRECATED")
            continue
        m = OPTIONS.get(r.option)
        if m is None:
            out.append(f"{where}: not in the registry of option meanings (molmovie.cli._meanings.OPTIONS)")
            continue
        allowed = KINDS[m.kind]
        declared = _kind_of(r.type)
        if not declared or not any(issubclass(d, allowed) for d in declared):
            out.append(f"{where}: declared {r.type!r}, but {r.option} is a {m.kind} ({m.meaning}) in the registry")
        if typing.get_origin(r.type) is typing.Literal or (isinstance(r.type, type) and issubclass(r.type, Enum)):
            if m.kind != "choice":
                out.append(f"{where}: a choice, but {r.option} is a {m.kind} in the registry")
        if m.unit and m.unit not in r.help:
            out.append(f"{where}: its help does not state the unit {m.unit!r} of {r.option} ({m.meaning})")
    return out


def problems() -> list[str]:
    """:func:`check_rows` over every command."""
    return check_rows(option_rows())
