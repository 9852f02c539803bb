"""Inversion commands: ``train`` (dataset -> model file) and ``invert`` (model + signals -> distances)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from .._errors import InputError
from .._guards import write_errors
from ..evaluation import fit_figures as ff
from ..evaluation._style import FORMATS, figure_files
from ..evaluation.fit_figures import fit_figure_names
from ..evaluation.inversion_figures import plot_inversion
from ..inversion import DEFAULT_METHOD, METHODS, InversionMethod, check_signals, get_method, interpolate_signals, load_method
from ..io import atomic_path, read_dataset, read_signals, write_inversion
from ..io.extxyz import geometries_from_distances, write_extxyz
from ._app import app
from ._options import choices, parse_settings
from ._outputs import writing
from ._progress import progress_bar, progress_callback

#: The learned method that reads a measurement (molmovie.fitting.EnsembleVRNN): trained by `train`, used by `invert`.
LEARNED = "vrnn-ensemble"


def _method_help() -> str:
    return (
        f"Inversion method: {', '.join(METHODS)} (read one trajectory's ΔS), or {LEARNED} (reads a measurement: an ensemble "
        "average with γ, t0, IRF and noise; trained on simulated measurements of all the dataset's trajectories, see --for)."
    )


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
    method: Annotated[str, typer.Option(metavar=choices((*METHODS, LEARNED)), help=_method_help())] = DEFAULT_METHOD,
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
    for_measurement: Annotated[
        Path | None,
        typer.Option(
            "--for",
            help=f"{LEARNED}: the measurement file to train for (its q grid and delay spacing); default the dataset's signal grid.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing model file.")] = False,
) -> None:
    """Train an inversion method on the dataset's train split, validating on its val split.

    With --method vrnn-ensemble: train the learned measurement method on simulated measurements of all the
    dataset's trajectories (a basis, as for `fit --method ensemble`), for the measurement given by --for.
    """
    if method == LEARNED:
        with writing(output, [dataset, for_measurement], force=force):
            _train_learned(dataset, output, for_measurement, epochs, seed, exclude_dissociating, device, settings, force)
        return
    if for_measurement is not None:
        raise InputError(f"--for applies to the {LEARNED} method only (a model that reads measurements)")
    with writing(output, [dataset], force=force):
        _train(dataset, output, method, exclude_dissociating, epochs, seed, device, settings, force)


def _train_learned(dataset, output, for_measurement, epochs, seed, exclude_dissociating, device, settings, force) -> None:
    from threadpoolctl import threadpool_limits

    from ..fitting import EnsembleVRNN, get_measurement_method
    from ..io.measurement import read_measurement

    if exclude_dissociating:
        raise InputError(f"--exclude-dissociating does not apply to {LEARNED}: its channels are bound and dissociating")
    if device not in (None, "cpu", "auto"):
        raise InputError(f"{LEARNED} trains on the CPU; --device {device} is not available for it")
    options = parse_settings(settings)
    options.update({k: v for k, v in (("epochs", epochs), ("seed", seed)) if v is not None})
    model = get_measurement_method(LEARNED, **options)
    assert isinstance(model, EnsembleVRNN)
    basis = read_dataset(dataset)
    meas = None if for_measurement is None else read_measurement(for_measurement)
    with (
        progress_callback(f"training {LEARNED}", status=_fit_status) as progress,
        threadpool_limits(limits=1, user_api="blas"),
    ):
        model.train(basis, like=meas, progress=progress)
    model.save(output, force=force)
    best = model.history_[model.best_epoch_ - 1] if model.history_ else None
    typer.echo(
        f"{output}: {LEARNED} model of {model.molecule_} trained on simulated measurements of {basis.n_trajectories} trajectories "
        f"({len(model.q_)} q points, frames of {model.dt_:g} fs, channels {', '.join(model.channels_)})"
        + (f", best epoch {model.best_epoch_} of {len(model.history_)} (val loss {best['val_loss']:.4g})" if best else "")
    )


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
    files: Annotated[
        list[Path],
        typer.Argument(
            help="MODEL SIGNALS, or SIGNALS alone with --model. MODEL: a model file from `molmovie train`. SIGNALS: a "
            "measurement (from `ingest` or `simulate-experiment`), a dataset file, or an HDF5 file with q (Q), time (T) and "
            "dS ((T, Q) or (M, T, Q)).",
            show_default=False,
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Result file to write (HDF5).")],
    model_option: Annotated[
        Path | None, typer.Option("--model", "-m", help="Model file from `molmovie train` (or give it before SIGNALS).")
    ] = None,
    interpolate_q: Annotated[
        bool, typer.Option("--interpolate-q", help="Interpolate the signals onto the model's q grid when they differ.")
    ] = False,
    device: Annotated[
        str | None,
        typer.Option(help="Where to run the model (auto, cpu, cuda), for methods that run on a GPU (default: as trained)."),
    ] = None,
    figures: Annotated[
        Path | None,
        typer.Option(
            "--figures",
            help="Folder for a figure of the answer (PNG at 300 dpi and PDF; the truth drawn where SIGNALS carries it); created if missing.",
        ),
    ] = None,
    extxyz: Annotated[
        Path | None,
        typer.Option(
            "--extxyz", help="Also write the predicted geometries (MDS of the distances, frame on frame) as extended XYZ."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing result file.")] = False,
) -> None:
    """Invert scattering signals into atom-atom distances R_AB(t) with their uncertainties.

    SIGNALS may be a measurement (from `ingest` or `simulate-experiment`): a model trained with
    --method vrnn-ensemble answers it per channel with γ, t0 and the IRF, in the layout of `fit`.
    """
    if model_option is not None and len(files) == 1:
        model, signals = model_option, files[0]
    elif model_option is None and len(files) == 2:
        model, signals = files
    else:
        raise InputError(
            f"invert takes MODEL SIGNALS, or --model MODEL SIGNALS; got {len(files)} file(s){' and --model' if model_option else ''}"
        )
    if figures is not None:
        import matplotlib

        matplotlib.use("Agg")
    measurement = _is_measurement(signals)
    names = [f"{n}.{fmt}" for n in (fit_figure_names(LEARNED) if measurement else ["inversion"]) for fmt in FORMATS]
    shown = [] if figures is None else [figures / name for name in names]
    also = shown + ([] if extxyz is None else [extxyz])
    with writing(output, [model, signals], force=force, also=also, folders=[] if figures is None else [figures]):
        if measurement:
            result, meas = _invert_measurement(model, signals, output, force)
            extras = {} if figures is None else _figure_bytes(ff.fit_figures(result, meas), shown)
            if extxyz is not None and result.ensemble is not None and result.symbols is not None:
                e = result.ensemble
                xyz = geometries_from_distances(e.distance_mean[None], result.symbols)
                write_extxyz(
                    extxyz,
                    result.symbols,
                    xyz,
                    result.delays,
                    info={"method": LEARNED, "what": "excited-ensemble mean"},
                    force=force,
                )
        else:
            extras = _invert(model, signals, output, interpolate_q, device, force, shown, extxyz)
        _write_figures(extras, figures)
    for path in (*shown, *([extxyz] if extxyz is not None else [])):
        typer.echo(f"  {path}")


def _figure_bytes(figs: dict, planned: list[Path]) -> dict[Path, bytes]:
    """Figures rendered (PNG, PDF) in memory for the planned paths, by name; closed."""
    import matplotlib.pyplot as plt

    by_name = {path.name: path for path in planned}
    out: dict[Path, bytes] = {}
    for name, fig in figs.items():
        try:
            for fmt, data in figure_files(fig).items():
                out[by_name[f"{name}.{fmt}"]] = data
        finally:
            plt.close(fig)
    return out


def _write_figures(images: dict[Path, bytes], folder: Path | None) -> None:
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for path, data in images.items():
        with write_errors(path), atomic_path(path, suffix=path.suffix) as tmp:
            tmp.write_bytes(data)


def _is_measurement(path: Path) -> bool:
    """Whether ``path`` is a molmovie measurement file (anything else is left to read_signals' checks)."""
    import h5py

    from ..io.measurement import MEASUREMENT_FORMAT

    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
            return (fmt.decode("utf-8", "replace") if isinstance(fmt, bytes) else fmt) == MEASUREMENT_FORMAT
    except (OSError, ValueError):
        return False


def _invert_measurement(model: Path, signals: Path, output: Path, force: bool):
    from threadpoolctl import threadpool_limits

    from ..fitting import EnsembleVRNN
    from ..io import read_model_file
    from ..io.fit import write_fit
    from ..io.measurement import read_measurement
    from ._fit import summary_lines

    name, config, arrays = read_model_file(model)
    if name != LEARNED:
        raise InputError(
            f"{signals} is a measurement (an ensemble average with γ, t0, an IRF and noise); a {name!r} model reads one "
            f"trajectory's ΔS: train a model for it with `molmovie train --method {LEARNED} BASIS --for {signals}`"
        )
    learned = EnsembleVRNN._from_parts(name, config, arrays, model)
    meas = read_measurement(signals)
    with (
        progress_callback(f"inverting ({LEARNED})", status=lambda info: str(info.get("stage", ""))) as progress,
        threadpool_limits(limits=1, user_api="blas"),
    ):
        learned.fit(meas, progress=progress)
    result = learned.result
    result.provenance.update({"measurement_file": str(signals), "model_file": str(model)})
    write_fit(result, output, force=force)
    lines = summary_lines(result, output, LEARNED, meas.molecule)
    lines.insert(1, f"  q: {result.provenance['learned']['q']}; delays: {result.provenance['learned']['delays']}")
    typer.echo("\n".join(lines))
    return result, meas


def _invert(model, signals, output, interpolate_q, device, force, shown, extxyz) -> dict[Path, bytes]:
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
    with progress_bar(f"inverting ({method.name}): {len(dS)} series", 1, unit="predictions") as update:
        pred = method.predict(dS, q=method.q_, lengths=lengths)  # one call: the answer does not depend on batches
        update(completed=1)

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
    if extxyz is not None:
        xyz = geometries_from_distances(pred.distances, method.symbols_)
        write_extxyz(extxyz, method.symbols_, xyz, sig["time"], lengths=lengths, info={"method": method.name}, force=force)
    if not shown:
        return {}
    truth, series = None, None
    if sig["symbols"] is not None and _is_dataset(signals):  # a dataset's trajectories carry their true distances
        ds = read_dataset(signals)
        truth = ds.distances if ds.distances.shape == pred.distances.shape else None
        test = ds.splits.get("test") if ds.splits else None
        series = None if test is None or not len(test) else [int(k) for k in test[:3]]  # unseen in training
    fig = plot_inversion(
        sig["time"],
        pred.distances,
        method.pair_labels_,
        std=pred.std,
        lengths=lengths,
        symbols=method.symbols_,
        truth=truth,
        series=series,
        title=f"{method.name}: predicted distances{' ± σ' if pred.std is not None else ''}"
        + (" and the truth (dotted)" if truth is not None else ""),
    )
    return _figure_bytes({"inversion": fig}, shown)


def _is_dataset(path: Path) -> bool:
    from ..io import file_kind

    try:
        return file_kind(path) == "dataset"
    except InputError:
        return False
