"""Errors that molmovie reports to its user.

:class:`InputError` is raised for anything the user can fix (a malformed file,
a bad option, a missing output directory). The CLI turns it into one line on
stderr and exit code 2; library callers can catch it like any ``ValueError``.
"""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input from the user: the message says what was wrong and where."""
