"""Names of the types the public API takes and returns, for its annotations."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

#: A file or folder: a ``str`` or a path-like object (:class:`pathlib.Path`).
PathLike: TypeAlias = str | os.PathLike[str]

#: Element symbols, one per atom, e.g. ``["C", "S", "S"]``.
Symbols: TypeAlias = Sequence[str]

#: The one progress callback: ``progress(done, info)``, ``info`` a dict that says what is done
#: (``"total"``, ``"stage"``, ...).
Progress: TypeAlias = Callable[[int, dict[str, Any]], None]

__all__ = ["PathLike", "Symbols", "Progress"]
