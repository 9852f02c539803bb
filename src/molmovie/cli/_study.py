"""Commands of this group are added here (see molmovie.cli)."""

from __future__ import annotations

from . import app  # noqa: F401
