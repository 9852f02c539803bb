"""Inversion commands: ``train`` (dataset -> model file) and ``invert`` (model + signals -> distances)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from .._errors import InputError
from ..inversion import DEFAULT_METHOD, METHODS, InversionMethod, check_signals, get_method, interpolate_signals, load_method
from ..io import read_dataset, read_signals, write_inversion
from ._app import app
from ._options import parse_settings
from ._outputs import writing
from ._progress import progress_callback


def _method_help() -> str:
    return f"Inversion method: {', '.join(METHODS)}."


def _shortcut_settings(method: InversionMethod, **shortcuts) -> dict:
    """Options like --epochs that set a setting of that name, for the methods that have one; warned and dropped for the others."""
    known = method.setting_names()
    out = {}
    for key, value in shortcuts.items():
        if value is None:
            continue
        if key in known:
            out[key] = value
        else:
            typer.echo(f"molmovie: warning: --{key} does not apply to the {method.name} method; ignored", err=True)
    return out


def _warn(method: InversionMethod) -> None:
    """Validate the settings (an InputError stops the command) and print their warnings."""
    for line in method.check_settings():
        typer.echo(f"molmovie: warning: {line}", err=True)


def _fit_status(info: dict) -> str:
    parts = []
    if info.get("train_loss") is not None:
        parts.append(f"loss {info['train_loss']:.4g}")
    if info.get("val_loss") is not None:
        parts.append(f"val {info['val_loss']:.4g}")
    if info.get("best_epoch"):
        parts.append(f"best epoch {info['best_epoch']}")
    return ", ".join(parts)


@app.command()
def train(
    dataset: Annotated[
        Path, typer.Argument(help="Dataset file with signals (from import/generate + scatter).", show_default=False)
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Model file to write (safetensors), e.g. model.safetensors.")],
    method: Annotated[str, typer.Option(help=_method_help())] = DEFAULT_METHOD,
    exclude_dissociating: Annotated[
        bool, typer.Option("--exclude-dissociating", help="Leave out trajectories that dissociate (train and val).")
    ] = False,
    epochs: Annotated[
        int | None, typer.Option(help="Most training epochs: the method's 'epochs' setting, for methods that have one.")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Seed of initialisation, batch order and sampling: the method's 'seed' setting, for methods that have one."
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="Where to train (auto, cpu, cuda), for methods that run on a GPU: auto takes a CUDA GPU when there is one."
        ),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="Method setting KEY=VALUE, repeatable (e.g. --set hidden=64 --set physics=0)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing model file.")] = False,
) -> None:
    """Train an inversion method on the dataset's train split, validating on its val split."""
    with writing(output, [dataset], force=force):
        _train(dataset, output, method, exclude_dissociating, epochs, seed, device, settings, force)


def _train(dataset, output, method, exclude_dissociating, epochs, seed, device, settings, force) -> None:
    model = get_method(method)
    model.set_params(**{**parse_settings(settings), **_shortcut_settings(model, epochs=epochs, seed=seed, device=device)})
    _warn(model)  # before reading a possibly large dataset

    ds = read_dataset(dataset)
    if not ds.has_signals:
        raise InputError(f"{dataset} has no scattering signals; run `molmovie scatter {dataset}` first")
    if exclude_dissociating:
        ds = ds.without_dissociating()
    if "train" not in ds.splits or len(ds.splits["train"]) == 0:
        extra = " once dissociating trajectories are left out" if exclude_dissociating else ""
        raise InputError(f"the training split of {dataset} is empty{extra}: there is nothing to learn from")
    train_set = ds.split("train")
    val_set = ds.split("val") if len(ds.splits.get("val", ())) else None

    with progress_callback(f"training {model.name}", status=_fit_status) as progress:
        model.fit(train_set, val_set, progress=progress)
    model.save(output, force=force)
    note = model.fit_summary()
    typer.echo(
        f"{output}: {model.name} model of {model.molecule_} trained on {train_set.n_trajectories} trajectories"
        f"{'' if val_set is None else f', validated on {val_set.n_trajectories}'}{f', {note}' if note else ''}"
    )


@app.command()
def invert(
    model: Annotated[Path, typer.Argument(help="Model file from `molmovie train`.", show_default=False)],
    signals: Annotated[
        Path,
        typer.Argument(
            help="A dataset file, or an HDF5 file with q (Q), time (T) and dS ((T, Q) or (M, T, Q)).", show_default=False
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Result file to write (HDF5).")],
    interpolate_q: Annotated[
        bool, typer.Option("--interpolate-q", help="Interpolate the signals onto the model's q grid when they differ.")
    ] = False,
    device: Annotated[
        str | None,
        typer.Option(help="Where to run the model (auto, cpu, cuda), for methods that run on a GPU (default: as trained)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing result file.")] = False,
) -> None:
    """Invert scattering signals into atom-atom distances R_AB(t) with their uncertainties."""
    with writing(output, [model, signals], force=force):
        _invert(model, signals, output, interpolate_q, device, force)


def _invert(model, signals, output, interpolate_q, device, force) -> None:
    method = load_method(model)
    method.set_params(**_shortcut_settings(method, device=device)).check_settings()
    sig = read_signals(signals)
    if sig["symbols"] is not None:
        method.check_molecule(sig["symbols"])
    q = sig["q"]
    try:
        dS, lengths = check_signals(sig["dS"], q, sig["length"], q, n_q_name="signals")
    except InputError as exc:
        raise InputError(f"{signals}: {exc}") from None
    interpolated = False
    if len(q) != len(method.q_) or not np.allclose(q, method.q_, rtol=1e-6, atol=1e-9):
        if not interpolate_q:
            raise InputError(
                f"the q grid of {signals} ({len(q)} points, {q.min():.4g} to {q.max():.4g} 1/Å) differs from the model's "
                f"({len(method.q_)} points, {method.q_.min():.4g} to {method.q_.max():.4g} 1/Å); "
                "give --interpolate-q to interpolate the signals onto the model's grid"
            )
        try:
            dS = interpolate_signals(dS, q, method.q_, lengths)
        except InputError as exc:
            raise InputError(f"{signals}: {exc}") from None
        interpolated = True
    pred = method.predict(dS, q=method.q_, lengths=lengths)

    write_inversion(
        output,
        pred,
        time=sig["time"],
        lengths=lengths,
        method=method.name,
        molecule=method.molecule_,
        symbols=method.symbols_,
        pair_labels=method.pair_labels_,
        model=model,
        signals=signals,
        interpolated_q=interpolated,
        force=force,
    )
    M, T, P = pred.distances.shape
    std_note = "with σ" if pred.std is not None else "without uncertainties"
    typer.echo(
        f"{output}: {P} distances for {M} series × {T} frames ({method.name}, {std_note}{', q interpolated' if interpolated else ''})"
    )
