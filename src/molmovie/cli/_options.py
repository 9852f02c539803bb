"""Parsers of option values that more than one command takes."""

from __future__ import annotations

import json
import math

from .._errors import InputError

__all__ = ["parse_splits", "parse_settings"]


def parse_splits(text: str) -> tuple[float, float, float]:
    """Parse ``--splits`` (``"85,11,11"``: train,val,test sizes); a teaching error for anything else."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise InputError(f"--splits must be three numbers train,val,test like 85,11,11; got {text!r}") from None
    if (
        len(values) != 3
        or not all(math.isfinite(v) for v in values)
        or any(v < 0 for v in values)
        or sum(values) <= 0
        or values[0] <= 0
    ):
        raise InputError(
            f"--splits must be three non-negative numbers train,val,test with train > 0, like 85,11,11; got {text!r}"
        )
    return values


def parse_settings(items: list[str] | None) -> dict:
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
