"""One syntax for every range a user gives: ``A:B``, or ``A:B:STEP`` where a step applies (the old ``A,B`` is read too).

:func:`parse_range` is the single parser behind ``--t0-range``, ``--irf-range``,
the ensemble fit's ``t0_range``/``irf_range`` settings and ``generate``'s
``--amplitude``/``--phase``/``--excess``. It takes a string in that syntax or
a sequence of numbers (a JSON list from ``--set``), and refuses anything else
with one line: a string of digits is never split into characters
(``t0_range="12"`` is not (1, 2)).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from numbers import Real
from typing import Any

from ._errors import InputError

__all__ = ["parse_range"]

_SPLIT = re.compile(r"\s*[,:]\s*")


def _number(item: Any) -> float | None:
    if isinstance(item, bool) or not isinstance(item, (Real, str)):
        return None
    try:
        value = float(item)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_range(
    value: Any,
    name: str,
    unit: str,
    *,
    step: bool = False,
    single: bool = False,
    low: float | None = None,
    example: str = "-100:150",
) -> tuple[float, ...]:
    """``"A,B"``, ``"A:B"``, ``"A:B:STEP"`` (with ``step``), or a sequence of those numbers -> a tuple of floats.

    Parameters
    ----------
    value : str or sequence of numbers
    name : str
        The option or setting, for the message (``"--t0-range"``, ``"The 't0_range' setting"``).
    unit : str
        The unit of the numbers, for the message.
    step : bool
        Also accept a third number, a step > 0.
    single : bool
        Also accept one number A, meaning A,A.
    low : float, optional
        Smallest A allowed.
    example : str
        An example for the message.

    Returns
    -------
    tuple of float
        (A, B) or (A, B, STEP), with A <= B.

    Raises
    ------
    InputError
        "--t0-range must be two numbers LO:HI in fs with lo <= hi (e.g. -100:150); got '12'".
    """
    forms = ("one number or " if single else "") + "two numbers LO:HI" + (" or LO:HI:STEP" if step else "")
    message = f"{name} must be {forms} in {unit} with lo <= hi (e.g. {example}); got {value!r}"
    if isinstance(value, str):
        parts = _SPLIT.split(value.strip())
        if len(parts) == 3 and ":" not in value:
            parts = []  # a step only in the A:B:STEP form
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        parts = list(value)
    elif single and _number(value) is not None:
        parts = [value]
    else:
        parts = []
    numbers = [_number(p) for p in parts]
    counts = (1, 2, 3) if step and single else (2, 3) if step else (1, 2) if single else (2,)
    if len(numbers) not in counts or any(n is None for n in numbers):
        raise InputError(message)
    values = [float(n) for n in numbers if n is not None]
    if len(values) == 1:
        values = values * 2
    if values[0] > values[1] or (len(values) == 3 and not values[2] > 0):
        raise InputError(message + ("" if len(values) < 3 else "; STEP must be > 0"))
    if low is not None and values[0] < low:
        raise InputError(f"{name} must be >= {low:g} {unit}; got {value!r}")
    return tuple(values)
