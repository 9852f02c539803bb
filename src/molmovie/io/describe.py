"""What a molmovie file holds, in a few labelled lines (``molmovie info``).

:func:`file_kind` tells the file types apart by their ``format`` attribute
(HDF5) or header (the safetensors model file); :func:`describe` reads the file
with its own reader and returns ``(label, text)`` rows: a dataset, a
measurement, a fit result, an inversion result, a model file, or a minimal
signals file. A model is described from its JSON header alone, so ``info``
needs no optional extra.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import InputError, shorten
from .._typing import PathLike
from ..molecules import formula
from ._files import check_input_file, reading_hdf5
from .dataset import DATASET_FORMAT, read_dataset
from .fit import FIT_FORMAT, read_fit
from .inversion import INVERSION_FORMAT, read_inversion
from .measurement import MEASUREMENT_FORMAT, read_measurement
from .model import MODEL_FORMAT
from .signals import read_signals

__all__ = ["FILE_KINDS", "file_kind", "describe"]

#: The kinds :func:`describe` knows, by the ``format`` each file says it is.
FILE_KINDS = {
    DATASET_FORMAT: "dataset",
    MEASUREMENT_FORMAT: "measurement",
    FIT_FORMAT: "fit result",
    INVERSION_FORMAT: "inversion result",
    MODEL_FORMAT: "model",
}

#: Largest safetensors JSON header read to describe a model (the model files molmovie writes hold a few KB).
_MAX_HEADER = 1 << 24

Rows = list[tuple[str, str]]

_NOT_OURS = "not a molmovie dataset, measurement, fit result, inversion result, model or signals file"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _model_header(path: Path) -> dict | None:
    """The ``molmovie`` header of a safetensors file, or None when the file is not one (read as JSON, no tensors)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return None
        (size,) = struct.unpack("<Q", head)
        if not 2 <= size <= _MAX_HEADER:
            return None
        try:
            header = json.loads(fh.read(size))
            meta = json.loads(header["__metadata__"]["molmovie"])
        except (ValueError, KeyError, TypeError, RecursionError):
            return None
    return meta if isinstance(meta, dict) and meta.get("format") == MODEL_FORMAT else None


def file_kind(path: PathLike) -> str:
    """``"dataset"``, ``"measurement"``, ``"fit result"``, ``"inversion result"``, ``"model"`` or ``"signals"``.

    Raises
    ------
    InputError
        If the file is missing, or none of these (a file of another program, or damaged).
    """
    path = check_input_file(Path(path), "file")
    with open(path, "rb") as fh:
        is_hdf5 = fh.read(8) == b"\x89HDF\r\n\x1a\n"
    if not is_hdf5:
        if _model_header(path) is not None:
            return "model"
        raise InputError(f"{path}: {_NOT_OURS} (neither HDF5 nor a safetensors model file)")
    with reading_hdf5(path, "file", "not an HDF5 file") as f:
        fmt = _text(f.attrs.get("format", ""))
        if fmt in FILE_KINDS:
            return FILE_KINDS[fmt]
        if all(name in f for name in ("q", "time", "dS")):
            return "signals"
    raise InputError(f"{path}: {_NOT_OURS} (an HDF5 file of format {shorten(fmt, 60)!r}, without q, time and dS)")


def _grid(values: np.ndarray, unit: str) -> str:
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return f"0 points ({unit})"
    return f"{values.size} points, {values[0]:g} to {values[-1]:g} {unit}"


def _dataset(path: Path) -> Rows:
    ds = read_dataset(path)
    t = ds.time
    dt = f"{t[1] - t[0]:g} fs" if len(t) > 1 else "-"
    rows = [
        ("molecule", f"{ds.molecule} ({formula(ds.symbols)}, {ds.n_atoms} atoms: {' '.join(ds.symbols)})"),
        ("trajectories", f"{ds.n_trajectories}, {int(ds.dissociated.sum())} dissociate"),
        ("frames", f"{ds.n_frames} every {dt}, {t[0]:g} to {t[-1]:g} fs; lengths {ds.length.min()} to {ds.length.max()}"),
    ]
    if ds.spec is not None:  # the signals' spec (signals, I_ref and spec come together)
        spec = ds.spec
        noise = f"{spec.photons / len(spec.q):g} photons per q bin per frame" if spec.photons else "none"
        irf = f"{spec.irf_fs:g} fs FWHM" if spec.irf_fs else "none"
        probe = "X-rays" if spec.probe == "xray" else f"electrons at {spec.energy_kev:g} keV"
        rows.append(("q grid", f"{_grid(spec.q, '1/Å')}; probe {probe}"))
        rows.append(
            ("signals", f"reference {spec.reference}, inelastic {'on' if spec.inelastic else 'off'}, noise {noise}, IRF {irf}")
        )
    else:
        rows.append(("signals", "none (run `molmovie scatter`)"))
    if ds.splits:
        rows.append(("splits", ", ".join(f"{k} {len(v)}" for k, v in ds.splits.items())))
    fates = ds.ensemble.provenance.get("trajectories")
    if isinstance(fates, list) and fates and isinstance(fates[0], dict) and "fate" in fates[0]:
        counts = Counter(str(x.get("fate")) for x in fates)
        rows.append(("fates", ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))))
    return rows


def _measurement(path: Path) -> Rows:
    m = read_measurement(path)
    atoms = f" ({len(m.symbols)} atoms: {' '.join(m.symbols)})" if m.symbols is not None else ""
    probe = "X-rays" if m.probe == "xray" else f"electrons at {m.energy_kev:g} keV"
    rows = [
        ("molecule", f"{m.molecule or 'not given'}{atoms}"),
        ("q grid", f"{_grid(m.q, '1/Å')}; probe {probe}"),
        ("delays", _grid(m.delays, "fs")),
        ("ΔS", f"peak |ΔS| {np.nanmax(np.abs(m.dS)):.3g}; σ {'given' if m.sigma is not None else 'none'}"),
    ]
    if m.components:
        rows.append(("Legendre", "orders 0, " + ", ".join(str(c.order) for c in m.components)))
    made_by = m.provenance.get("made_by") if isinstance(m.provenance, dict) else None
    if made_by:
        rows.append(("made by", shorten(str(made_by), 80)))
    if m.truth is not None:
        t = m.truth
        photons = f", {float(t.photons):g} photons per q bin" if t.photons is not None else ""
        rows.append(
            (
                "truth",
                f"simulated from {t.trajectories.size} trajectories: γ {float(t.gamma):g}, t0 {float(t.t0):g} fs, "
                f"IRF {float(t.irf_fs):g} fs{photons}",
            )
        )
    return rows


def _fit(path: Path) -> Rows:
    r = read_fit(path)
    rows = [
        ("method", r.method),
        ("molecule", r.molecule or "not given"),
        ("data", f"{_grid(r.q, '1/Å')} × {_grid(r.delays, 'fs')}"),
        (
            "fit",
            f"reduced χ² {r.reduced_chi2:.3f} ({r.n_data} data; σ {r.sigma_source}); converged {'yes' if r.converged else 'no'}",
        ),
    ]
    if r.message:
        rows.append(("message", shorten(r.message, 160)))
    if r.ensemble is not None:
        e = r.ensemble
        rows.append(
            (
                "parameters",
                f"γ {float(e.gamma):.4g} ± {float(e.gamma_std):.2g}, t0 {float(e.t0):.1f} ± {float(e.t0_std):.1f} fs, "
                f"IRF {float(e.irf_fs):.1f} ± {float(e.irf_fs_std):.1f} fs",
            )
        )
        rows.append(("trajectories", f"{int(np.sum(np.asarray(e.weights) > 0))} of {np.size(e.weights)} weighted"))
        rows.append(("pairs", ", ".join(e.pair_labels)))
    if r.pdf is not None:
        p = r.pdf
        rows.append(("ΔP(R, t)", f"{_grid(p.r, 'Å')} for {', '.join(p.pair_types)}"))
    return rows


def _inversion(path: Path) -> Rows:
    inv = read_inversion(path)
    n, _, p = inv.distances.shape
    return [
        ("method", inv.method),
        ("molecule", f"{inv.molecule} ({len(inv.symbols)} atoms: {' '.join(inv.symbols)})"),
        ("distances", f"{n} series × {_grid(inv.time, 'fs')} × {p} pairs; σ {'given' if inv.std is not None else 'none'}"),
        ("model", shorten(inv.model, 120)),
        ("signals", shorten(inv.signals, 120) + (" (interpolated onto the model's q grid)" if inv.interpolated_q else "")),
    ]


def _model(path: Path) -> Rows:
    header = _model_header(path)
    if header is None:
        raise InputError(f"{path}: not a molmovie model file")
    found = header.get("config")
    config: dict = found if isinstance(found, dict) else {}
    rows = [("method", shorten(str(header.get("method")), 60)), ("version", f"model format {header.get('version')}")]
    if "molecule" in config:
        symbols = config.get("symbols")
        atoms = f" ({len(symbols)} atoms: {' '.join(map(str, symbols))})" if isinstance(symbols, list) else ""
        rows.append(("molecule", f"{shorten(str(config['molecule']), 60)}{atoms}"))
    if "n_q" in config:
        rows.append(("signals", f"{config['n_q']} q points; reference {config.get('reference', '?')}"))
    settings = config.get("settings")
    if isinstance(settings, dict):
        rows.append(("settings", shorten(", ".join(f"{k}={v}" for k, v in settings.items()), 300)))
    history = config.get("history")
    if isinstance(history, list) and history:
        rows.append(("trained", f"{len(history)} epochs; best epoch {config.get('best_epoch', '?')}"))
    return rows


def _signals(path: Path) -> Rows:
    s = read_signals(path)
    dS = s["dS"]
    return [
        ("q grid", _grid(s["q"], "1/Å")),
        ("time", _grid(s["time"], "fs")),
        ("ΔS", f"{dS.shape[0]} series of shape {dS.shape[1:]}"),
    ]


_DESCRIBERS = {
    "dataset": _dataset,
    "measurement": _measurement,
    "fit result": _fit,
    "inversion result": _inversion,
    "model": _model,
    "signals": _signals,
}


def describe(path: PathLike) -> Rows:
    """``(label, text)`` rows saying what a molmovie file holds: its kind first, then what its reader finds.

    Parameters
    ----------
    path : path-like
        A dataset, measurement, fit result, inversion result, model file or minimal signals file.

    Raises
    ------
    InputError
        If the file is missing, not a molmovie file, or damaged (its reader's message).
    """
    path = Path(path)
    kind = file_kind(path)
    return [("file", str(path)), ("kind", kind), *_DESCRIBERS[kind](path)]
