"""Inversion commands: ``train`` (dataset -> model file) and ``invert`` (model + signals -> distances)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .._errors import InputError
from . import app
from ._progress import progress_bar


class MethodName(str, Enum):
    nearest = "nearest"
    vrnn = "vrnn"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def _parse_settings(items: list[str] | None) -> dict:
    """``["hidden=64", "target=log", "decoder=true"]`` -> settings; values are JSON, else strings."""
    settings = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise InputError(f"--set takes KEY=VALUE (e.g. --set hidden=64); got {item!r}")
        text = text.strip()
        literal = {"True": "true", "False": "false", "None": "null"}.get(text, text)
        try:
            value = json.loads(literal)
        except ValueError:
            value = text
        settings[key] = value
    return settings


@app.command()
def train(
    dataset: Annotated[Path, typer.Argument(help="Dataset file with signals (from import/generate + scatter).", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Model file to write (safetensors), e.g. model.safetensors.")],
    method: Annotated[MethodName, typer.Option(help="Inversion method.")] = MethodName.vrnn,
    exclude_dissociating: Annotated[bool, typer.Option("--exclude-dissociating", help="Leave out trajectories that dissociate (train and val).")] = False,
    epochs: Annotated[Optional[int], typer.Option(help="Most training epochs (vrnn; default 300, with early stopping).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of initialisation, batch order and sampling (vrnn; default 0).")] = None,
    device: Annotated[Optional[Device], typer.Option(help="Where to train (vrnn): auto takes a CUDA GPU when there is one.")] = None,
    settings: Annotated[Optional[list[str]], typer.Option("--set", help="Method setting KEY=VALUE, repeatable (e.g. --set hidden=64 --set physics=0).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing model file.")] = False,
) -> None:
    """Train an inversion method on the dataset's train split, validating on its val split."""
    from ..datasets import check_output, read_dataset
    from ..inversion import get_method

    check_output(output, force)
    options = _parse_settings(settings)
    for flag, key, value in (("--epochs", "epochs", epochs), ("--seed", "seed", seed), ("--device", "device", device)):
        if value is None:
            continue
        if method is MethodName.vrnn:
            options[key] = value.value if isinstance(value, Enum) else value
        else:
            typer.echo(f"molmovie: warning: {flag} does not apply to the {method.value} method; ignored", err=True)
    model = get_method(method.value, **options)
    model._validate_settings()  # before reading a possibly large dataset

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

    total = int(model.epochs) if method is MethodName.vrnn else 1
    with progress_bar(f"training {method.value}", total, unit="epochs") as update:

        def progress(done: int, info: dict) -> None:
            parts = []
            if info.get("train_loss") is not None:
                parts.append(f"loss {info['train_loss']:.4g}")
            if info.get("val_loss") is not None:
                parts.append(f"val {info['val_loss']:.4g}")
            if info.get("best_epoch"):
                parts.append(f"best epoch {info['best_epoch']}")
            update(completed=done, status=", ".join(parts))

        model.fit(train_set, val_set, progress=progress)
    model.save(output, force=force)
    note = ""
    if method is MethodName.vrnn:
        best = model.history_[model.best_epoch_ - 1]
        loss = best["val_loss"] if best["val_loss"] is not None else best["train_loss"]
        note = f", best epoch {model.best_epoch_} of {len(model.history_)} ({'val' if best['val_loss'] is not None else 'train'} loss {loss:.4g})"
    typer.echo(
        f"{output}: {method.value} model of {model.molecule_} trained on {train_set.n_trajectories} trajectories"
        f"{'' if val_set is None else f', validated on {val_set.n_trajectories}'}{note}"
    )


def _read_signals(path: Path) -> dict:
    """Signals to invert: a molmovie dataset, or a minimal HDF5 file with ``q``, ``time`` and ``dS``."""
    import h5py
    import numpy as np

    from ..datasets import FORMAT, read_dataset

    if not path.is_file():
        raise InputError(f"{path}: no such signals file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise InputError(f"{path}: not an HDF5 file; SIGNALS must be a molmovie dataset or an HDF5 file with q, time and dS") from None
    with f:
        is_dataset = f.attrs.get("format") == FORMAT
        if not is_dataset:
            missing = [k for k in ("q", "time", "dS") if k not in f or not isinstance(f[k], h5py.Dataset)]
            if missing:
                raise InputError(f"{path}: a signals file needs the datasets q, time and dS at its top level; missing {', '.join(missing)}")
            q = np.asarray(f["q"][()], dtype=float)
            time = np.asarray(f["time"][()], dtype=float)
            try:
                dS = np.asarray(f["dS"][()], dtype=float)
            except (TypeError, ValueError):
                raise InputError(f"{path}: dS must be numbers") from None
            length = np.asarray(f["length"][()]) if "length" in f else None
            symbols = None
            if "symbols" in f:
                symbols = tuple(s.decode() if isinstance(s, bytes) else str(s) for s in f["symbols"][()])
    if is_dataset:
        ds = read_dataset(path)
        if not ds.has_signals:
            raise InputError(f"{path} has no scattering signals; run `molmovie scatter {path}` first")
        return dict(q=ds.q, time=ds.time, dS=ds.dS, length=ds.length, symbols=tuple(ds.symbols), series=ds.n_trajectories)
    if dS.ndim == 2:
        dS = dS[None]
    if dS.ndim != 3:
        raise InputError(f"{path}: dS must have shape (frames, q) for one series or (series, frames, q); got {dS.shape}")
    if q.ndim != 1 or len(q) != dS.shape[2]:
        raise InputError(f"{path}: q must have one value per column of dS ({dS.shape[2]}); got shape {q.shape}")
    if time.ndim != 1 or len(time) != dS.shape[1]:
        raise InputError(f"{path}: time must have one value per frame of dS ({dS.shape[1]}); got shape {time.shape}")
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(time))):
        raise InputError(f"{path}: q and time must be finite")
    return dict(q=q, time=time, dS=dS, length=length, symbols=symbols, series=dS.shape[0])


def _interpolate_q(dS, q, q_model, path: Path):
    """ΔS on the model's q grid by linear interpolation; the model's grid must lie inside the data's."""
    import numpy as np

    order = np.argsort(q)
    q, dS = q[order], dS[..., order]
    if np.any(np.diff(q) <= 0):
        raise InputError(f"{path}: q values must be distinct to interpolate")
    tol = 1e-9 * max(1.0, abs(q[-1]))
    if q_model[0] < q[0] - tol or q_model[-1] > q[-1] + tol:
        raise InputError(
            f"the model's q range ({q_model[0]:.4g} to {q_model[-1]:.4g} 1/Å) reaches outside the signals' "
            f"({q[0]:.4g} to {q[-1]:.4g} 1/Å); --interpolate-q does not extrapolate"
        )
    flat = dS.reshape(-1, len(q))
    out = np.stack([np.interp(q_model, q, row) for row in flat]) if len(flat) else np.empty((0, len(q_model)))
    return out.reshape(dS.shape[:-1] + (len(q_model),))


@app.command()
def invert(
    model: Annotated[Path, typer.Argument(help="Model file from `molmovie train`.", show_default=False)],
    signals: Annotated[Path, typer.Argument(help="A dataset file, or an HDF5 file with q (Q), time (T) and dS ((T, Q) or (M, T, Q)).", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Result file to write (HDF5).")],
    interpolate_q: Annotated[bool, typer.Option("--interpolate-q", help="Interpolate the signals onto the model's q grid when they differ.")] = False,
    device: Annotated[Optional[Device], typer.Option(help="Where to run a vrnn model (default: as trained; auto takes a GPU when there is one).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing result file.")] = False,
) -> None:
    """Invert scattering signals into atom-atom distances R_AB(t) with their uncertainties."""
    import h5py
    import numpy as np

    from ..datasets import atomic_path, check_output
    from ..geometry import pair_indices
    from ..inversion import load_method

    check_output(output, force)
    method = load_method(model)
    sig = _read_signals(signals)
    if sig["symbols"] is not None:
        method.check_molecule(sig["symbols"])
    from ..inversion._base import check_signals

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
        valid = np.arange(dS.shape[1])[None, :] < lengths[:, None]
        dS = _interpolate_q(np.where(valid[..., None], dS, 0.0), q, method.q_, signals)
        dS[~valid] = np.nan
        interpolated = True
    if device is not None:
        if hasattr(method, "device"):
            method.device = device.value
        else:
            typer.echo(f"molmovie: warning: --device does not apply to the {method.name} method; ignored", err=True)
    pred = method.predict(dS, q=method.q_, lengths=lengths)

    M, T, P = pred.distances.shape
    i, j = pair_indices(len(method.symbols_))
    with atomic_path(output) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = "molmovie-inversion"
            f.attrs["version"] = 1
            f.attrs["method"] = method.name
            f.attrs["molecule"] = method.molecule_
            f.attrs["model"] = str(model)
            f.attrs["signals"] = str(signals)
            f.attrs["interpolated_q"] = interpolated
            f.attrs["has_std"] = pred.std is not None
            d = f.create_dataset("distances", data=pred.distances)
            d.attrs["units"] = "Angstrom"
            d.attrs["description"] = "predicted atom-atom distances (series, frames, pairs); NaN past each length"
            if pred.std is not None:
                s = f.create_dataset("std", data=pred.std)
                s.attrs["units"] = "Angstrom"
                s.attrs["description"] = "one standard deviation of each predicted distance"
            t = f.create_dataset("time", data=sig["time"])
            t.attrs["units"] = "fs"
            f.create_dataset("length", data=lengths.astype(np.int64)).attrs["units"] = "frames"
            f.create_dataset("pairs", data=np.array(method.pair_labels_, dtype=h5py.string_dtype()))
            f.create_dataset("pair_index", data=np.stack([i, j], axis=1).astype(np.int64)).attrs["units"] = "index"
            atoms = f.create_group("atoms")
            atoms.create_dataset("symbols", data=np.array(method.symbols_, dtype="S3"))
    std_note = "with σ" if pred.std is not None else "without uncertainties"
    typer.echo(f"{output}: {P} distances for {M} series × {T} frames ({method.name}, {std_note}{', q interpolated' if interpolated else ''})")
