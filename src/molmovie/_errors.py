"""Errors that molmovie reports to its user.

:class:`InputError` is raised for anything the user can fix (a malformed file,
a bad option, a missing output directory). The CLI turns it into one line on
stderr and exit code 2; library callers can catch it like any ``ValueError``.
"""

from __future__ import annotations

import zipfile
import zlib

__all__ = ["InputError", "shorten", "MAX_QUOTE", "NPZ_ERRORS"]

#: What reading a damaged ``.npz`` raises (truncated, bytes flipped, a member missing): a file
#: molmovie wrote itself and reads again (a checkpoint, a stage's scores) is then made anew. zipfile raises
#: RuntimeError for a member whose "encrypted" flag bit is set ("password required"), NotImplementedError
#: for a compression method it lacks.
NPZ_ERRORS = (OSError, ValueError, KeyError, EOFError, NotImplementedError, RuntimeError, zipfile.BadZipFile, zlib.error)

#: Most characters of a value an error message quotes (a file can hold a million symbols).
MAX_QUOTE = 200


class InputError(ValueError):
    """Bad input from the user: the message says what was wrong and where."""


def shorten(value: object, limit: int = MAX_QUOTE) -> str:
    """``repr``-like text of ``value`` for an error message, cut to about ``limit`` characters.

    Sequences longer than ten items show their first ten and how many more
    ("['C', 'S', ... and 999990 more]"); any text longer than ``limit`` is cut
    with the count of characters left out. Every message that quotes what a
    user or a file gave goes through this, so one line stays one short line.
    """
    if isinstance(value, (list, tuple)) and len(value) > 10:
        head = ", ".join(shorten(v, 40) for v in value[:10])
        text = f"[{head}, ... and {len(value) - 10} more]"
    elif isinstance(value, str):
        text = value
    else:
        text = repr(value)
    if "\n" in text:  # one line: a NumPy array's repr spans several
        text = " ".join(text.split())
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return text
