"""The model file: one fitted inversion method in one `safetensors <https://huggingface.co/docs/safetensors>`_ file.

Plain arrays, with a JSON header in the file's metadata under the key
``molmovie``::

    {"format": "molmovie-model", "version": 1, "method": "<name>", "config": {...}}

``config`` holds the method's settings, its molecule record and the
description of the signals it was trained on (``signal_attrs``: the
:class:`~molmovie.scattering.SignalSpec` without q, whose grid is the array
``q``), plus whatever the method needs. Loading parses a JSON header and
copies raw numbers; it never unpickles and never runs code from the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._errors import InputError, shorten
from .._provenance import with_command
from .._typing import PathLike
from ._files import atomic_path, check_input_file, check_output, file_version

__all__ = ["MODEL_FORMAT", "MODEL_VERSION", "write_model_file", "read_model_file", "need_array"]

MODEL_FORMAT = "molmovie-model"
MODEL_VERSION = 1


def write_model_file(path: PathLike, method: str, config: dict, arrays: dict[str, np.ndarray], *, force: bool = False) -> Path:
    """Write a model file atomically (temporary file, then rename).

    Parameters
    ----------
    path : path-like
        File to write, e.g. ``model.safetensors``.
    method : str
        The method's registry name.
    config : dict
        JSON-able settings and fitted scalars.
    arrays : dict of str -> ndarray
        The fitted arrays.
    force : bool
        Replace an existing file (otherwise that is an :class:`InputError`).

    Returns
    -------
    Path
    """
    from safetensors.numpy import save

    path = check_output(path, force=force)
    header = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "method": method, "config": config}
    header.update(with_command({}))  # the command that trained it, when the command line did
    metadata = {"molmovie": json.dumps(header)}
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    data = save(arrays, metadata=metadata)  # bytes in memory; Python writes them, so a full disk is one line
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return path


def read_model_file(path: PathLike) -> tuple[str, dict, dict[str, np.ndarray]]:
    """Read a model file: ``(method name, config dict, arrays)``.

    Only the safetensors format is read: a JSON header and raw little-endian
    numbers. A pickle (e.g. from ``torch.save``) or any other file is refused
    with an :class:`InputError` before anything in it is interpreted.
    """
    from safetensors import safe_open

    path = Path(path)
    check_input_file(path, "model file")
    try:
        with safe_open(str(path), framework="np") as f:
            metadata = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 -- safetensors raises its own error types for any damage
        with open(path, "rb") as fh:
            head = fh.read(9)
        # a safetensors file has an 8-byte header length, then its JSON header
        looks_safetensors = head[8:9] == b"{"
        looks_pickle = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
        if not looks_safetensors and (looks_pickle or head[:2] == b"PK"):
            raise InputError(
                f"{path} is a Python pickle (or a torch.save zip archive), not a molmovie model file; molmovie "
                "never unpickles files because unpickling can run arbitrary code"
            ) from None
        raise InputError(
            f"{path} is not a readable molmovie model file ({type(exc).__name__}: {shorten(str(exc), 200)})"
        ) from None
    try:
        header = json.loads(metadata["molmovie"])
        ok = header.get("format") == MODEL_FORMAT and isinstance(header.get("config"), dict)
    except (KeyError, ValueError, AttributeError, RecursionError):
        ok = False
    if not ok:
        raise InputError(f"{path} is a safetensors file but not a molmovie model (no molmovie header)")
    version = file_version(header, path, "molmovie model file")
    if version > MODEL_VERSION:
        raise InputError(f"{path}: model format version {version} is newer than this molmovie reads; upgrade molmovie")
    method = header.get("method")
    if not isinstance(method, str):
        raise InputError(f"{path}: damaged molmovie model file (method {shorten(method, 40)} is not a name)")
    return shorten(method, 60), header["config"], arrays


def need_array(arrays: dict, name: str, path: PathLike, *, kinds: str = "f") -> np.ndarray:
    """``arrays[name]``, or an :class:`InputError` saying the model file at ``path`` is damaged.

    ``kinds``: the NumPy dtype kinds the array may have ("f" floats, the
    default; "iu" integers): a tensor whose type was changed (F64 -> I64) is
    refused, never reinterpreted.
    """
    if name not in arrays:
        raise InputError(f"{path}: damaged molmovie model file (array {name!r} is missing)")
    array = arrays[name]
    if array.dtype.kind not in kinds:
        want = "floats" if kinds == "f" else "whole numbers"
        raise InputError(f"{path}: damaged molmovie model file (array {name!r} is {array.dtype}; a model stores {want} there)")
    return array
