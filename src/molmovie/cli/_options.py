"""Parsers of option values that more than one command takes, and the one-line deprecation notice.

One syntax for every range a user types (STYLE.md 21): ``LO:HI`` for a range
(``--t0-range -150:150``, ``--amplitude 0.02:0.3``), ``LO:HI:STEP`` for a grid
(``--delays -200:1000:25``, ``--q 0.5:6.8:0.05``), commas for lists
(``--trajectories 0,3,5``, ``--splits 85,11,11``). The old forms (``LO,HI``,
``QMIN:QMAX:COUNT``) are read for one more release with one deprecation line
on stderr.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable

import numpy as np

from .._errors import InputError
from .._ranges import parse_range
from ..datasets import DEFAULT_SPLITS

__all__ = [
    "choices",
    "parse_splits",
    "parse_settings",
    "deprecated",
    "OptionDeprecation",
    "parse_span",
    "parse_q_grid",
    "SPLITS_TEXT",
]

#: The one ``--splits`` default of every command that splits trajectories (train,val,test).
SPLITS_TEXT = ",".join(f"{v:g}" for v in DEFAULT_SPLITS)

#: The release in which the old spellings stop working.
REMOVED_IN = "0.3"


class OptionDeprecation(FutureWarning):
    """An old spelling of an option, still read in this release (printed as one ``molmovie: deprecated:`` line)."""


def deprecated(old: str, new: str) -> None:
    """Say once, on stderr, that ``old`` still works in this release and ``new`` is its spelling from now on.

    The line is printed when the command succeeds (:func:`molmovie.cli.main`
    holds warnings until then), so bad input stays one error line.
    """
    warnings.warn(f"{old} is read as {new} until molmovie {REMOVED_IN}; write {new}", OptionDeprecation, stacklevel=2)


def choices(names: Iterable[str]) -> str:
    """The metavar that lists a registry's names in --help, ``[a|b|c]`` (the command checks the name against the live registry)."""
    return "[" + "|".join(names) + "]"


def parse_splits(text: str) -> tuple[float, float, float]:
    """Parse ``--splits`` (``"85,11,11"``: train,val,test sizes); a teaching error for anything else."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise InputError(f"--splits must be three numbers train,val,test like {SPLITS_TEXT}; got {text!r}") from None
    if (
        len(values) != 3
        or not all(math.isfinite(v) for v in values)
        or any(v < 0 for v in values)
        or sum(values) <= 0
        or values[0] <= 0
    ):
        raise InputError(
            f"--splits must be three non-negative numbers train,val,test with train > 0, like {SPLITS_TEXT}; got {text!r}"
        )
    return values


def parse_span(
    text: str | None, option: str, unit: str, *, single: bool = False, example: str = "-150:150"
) -> tuple[float, float] | None:
    """A range ``LO:HI`` (``single``: also one number A, meaning A:A); the old ``LO,HI`` with a deprecation line."""
    if text is None:
        return None
    if "," in text and ":" not in text:
        deprecated(f"{option} {text}", f"{option} {text.replace(',', ':').replace(' ', '')}")
    lo, hi = parse_range(text, option, unit, single=single, example=example)
    return lo, hi


def grid_numbers(text: str, option: str, example: str) -> list[float]:
    """The three finite numbers of ``A:B:C`` (a grid's start, stop and step); else one line naming ``example``."""
    try:
        numbers = [float(p) for p in text.split(":")]
    except ValueError:
        numbers = []
    if len(numbers) != 3 or not all(math.isfinite(v) for v in numbers):
        raise InputError(f"{option} must be {example} or a file of numbers; got {text!r}")
    return numbers


def parse_q_grid(text: str, option: str = "--q", *, limit: int = 100_000) -> np.ndarray:
    """``QMIN:QMAX:STEP`` in 1/Angstrom (QMAX included when on the grid) -> the q values.

    The old ``QMIN:QMAX:COUNT`` (a whole number >= 2 wider than the range, which
    as a step would give one point) is read with a deprecation line.
    """
    q_min, q_max, step = grid_numbers(text, option, "QMIN:QMAX:STEP in 1/Angstrom (e.g. 0.5:6.8:0.05)")
    if q_min < 0 or q_max < q_min:
        raise InputError(f"{option} QMIN:QMAX:STEP needs 0 <= QMIN <= QMAX; got {text!r}")
    span = q_max - q_min
    if step == round(step) and step >= 2 and step > span:  # the old QMIN:QMAX:COUNT
        count = int(step)
        if count > limit:
            raise InputError(f"{option} {text} asks for {count:,} q points, more than the limit of {limit:,}")
        if span == 0:
            raise InputError(f"{option} QMIN:QMAX:COUNT needs QMIN < QMAX; got {text!r}")
        grid = np.linspace(q_min, q_max, count)
        deprecated(f"{option} {text} (QMIN:QMAX:COUNT)", f"{option} {q_min:g}:{q_max:g}:{grid[1] - grid[0]:.6g} (QMIN:QMAX:STEP)")
        return grid
    if not step > 0:
        raise InputError(f"{option} QMIN:QMAX:STEP needs STEP > 0; got {text!r}")
    steps = span / step
    count = math.floor(steps + 1e-9 * max(1.0, steps)) + 1  # QMAX included when on the grid, to rounding
    if count > limit:
        raise InputError(f"{option} {text} gives {count:,} q points, more than the limit of {limit:,}")
    return q_min + step * np.arange(count)


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
