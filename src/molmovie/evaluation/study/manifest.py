"""What defines a study (``study.json``): the preset, seed and data folder, and the revision of molmovie's study.

A rerun in the same folder is refused when the study there is defined
otherwise; one of an older revision whose models are still valid keeps them
and has its scores and report made again (the old ones set aside).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..._errors import InputError
from ..._typing import PathLike
from .presets import Preset

#: What a study writes beside its models: the scores and the report (:func:`~.report.write_report`).
REPORT = ("results.json", "results.md") + tuple(
    f"{name}.{fmt}" for name in ("fig2a", "fig2b", "fig2c", "signals", "noise") for fmt in ("png", "pdf")
)  # each figure as PNG (300 dpi) and PDF (molmovie.evaluation._style)


MANIFEST = "study.json"


#: Raised whenever a change to molmovie makes models or scores of an older study invalid
#: (2: the VRNN's early stopping waits for the physics term's full weight; 3: the VRNN's signal fit at
#: inference, on by default; 4: that fit refines one series at a time; 5: that fit varies coordinates, with
#: continuation in time, and the presets add the Viterbi-decoded baseline; 6: the continuation refits
#: frames by Levenberg-Marquardt, all series at once; 7: the signal fit's noise floor for noise-free
#: signals is 0.003, not 0.03; 8: the presets train the VRNN on noisy signals and answer the test split
#: under noise and forward-model mismatch, every method as itself and with the shared signal fit; 9: the σ
#: the VRNN reports after its signal fit is 0.43 × its prior's relative width (REFINE_STD_SCALE, calibrated on
#: validation data), not the Laplace σ, and the transfer to the SHARC runs is scored under noise too).
REVISION = 9


#: The oldest revision whose models are still valid: every change since then touches inference or scoring
#: only. A study of such a revision is resumed with its models kept and every score made again (its
#: ``eval/`` folder and report moved aside to ``revision{N}/``).
MODELS_VALID_SINCE = 5


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _upgrade_manifest(old: dict) -> dict:
    """A manifest written before presets named their methods (VRNN settings beside an implied baseline), in today's terms."""
    if "vrnn" not in old or "methods" in old:
        return old
    new = {k: v for k, v in old.items() if k not in ("vrnn", "vrnn_by_experiment")}
    new["methods"] = {"nearest": {}, "vrnn": old["vrnn"]}
    new["settings_by_experiment"] = {k: {"vrnn": v} for k, v in (old.get("vrnn_by_experiment") or {}).items()}
    return new


def check_manifest(out: Path, preset: Preset, seed: int, data_dir: PathLike | None) -> tuple[dict, int | None]:
    """What defines this study, and the revision of the study in ``out`` when it is older than today's
    (:data:`MODELS_VALID_SINCE` or later; else None); refuse to resume, in ``out``, a study defined
    otherwise or by an older molmovie whose models are not valid today."""
    manifest = json.loads(
        json.dumps(
            {
                "revision": REVISION,
                "preset": preset.name,
                "seed": int(seed),
                "data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
                "trajectories": {k: list(v) for k, v in preset.trajectories.items()},
                "methods": preset.methods,
                "settings_by_experiment": preset.settings_by_experiment,
            }
        )
    )
    path = out / MANIFEST
    if not path.exists():
        stale = [p for sub in ("models", "eval") if (out / sub).is_dir() for p in (out / sub).iterdir()]
        if stale:
            raise InputError(
                f"{out} holds models or scores but no {MANIFEST} (a study by an older molmovie, or other files); "
                "choose another --output"
            )
        return manifest, None
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        raise InputError(f"{path} is not a study manifest; choose another --output") from None
    if not isinstance(old, dict):
        raise InputError(f"{path} is not a study manifest; choose another --output")
    a, b = _flatten(_upgrade_manifest(old)), _flatten(manifest)
    older = a["revision"] if isinstance(a.get("revision"), int) and MODELS_VALID_SINCE <= a["revision"] < REVISION else None
    if older is not None:
        b = {**b, "revision": older}  # its models are valid today (run_study scores them again)
    # an empty dict is kept as a value (a method without settings is named), and is as good as unset
    diff = [
        f"{k} {a.get(k, 'unset')} there, {b.get(k, 'unset')} here"
        for k in sorted(set(a) | set(b))
        if a.get(k, {}) != b.get(k, {})
    ]
    if diff:
        raise InputError(
            f"{out} holds a study defined otherwise ({'; '.join(diff)}); its models would be reused: choose another --output"
        )
    return manifest, older


def set_aside(out: Path, older: int, log: Callable[[str], None]) -> None:
    """Move a study's scores (``eval/``) and report into ``revision{older}/`` (a free name), to be made again; its models stay."""
    found = [p for p in (out / "eval", *(out / name for name in REPORT)) if p.exists()]
    if (out / "eval").is_dir() and not any((out / "eval").iterdir()):
        found.remove(out / "eval")
    if not found:
        return
    aside = _free_name(out / f"revision{older}")
    aside.mkdir()
    for path in found:
        path.rename(aside / path.name)
    log(
        f"{out} is a study of revision {older}: its models are kept; its scores and report, moved to {aside.name}/, are made again"
    )


def _free_name(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``, ...: the first that does not exist."""
    k = 1
    candidate = path
    while candidate.exists():
        k += 1
        candidate = path.with_name(f"{path.name}-{k}")
    return candidate
