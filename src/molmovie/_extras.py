"""The optional extras: which one brings a missing module, said in one line.

A plain ``pip install molmovie`` ingests, shows, fits and simulates
measurements; the learned methods need ``molmovie[learn]`` (torch,
safetensors), the generator ``molmovie[generate]`` (tblite, rdkit), parallel
work on Dask ``molmovie[cluster]`` (dask, distributed, dask-jobqueue). Those
modules are imported inside the functions that use them, so a command that
does not need them never loads them; one that does, and finds one missing,
ends with :func:`missing_extra`'s line (the CLI prints it, exit code 2).
"""

from __future__ import annotations

import importlib.util

from ._errors import InputError

__all__ = ["EXTRA_OF_MODULE", "MissingExtra", "missing_extra", "require"]

#: The top-level module -> the extra that installs it (pyproject.toml's optional dependencies).
EXTRA_OF_MODULE = {
    "torch": "learn",
    "safetensors": "learn",
    "tblite": "generate",
    "rdkit": "generate",
    "dask": "cluster",
    "distributed": "cluster",
    "dask_jobqueue": "cluster",
}


class MissingExtra(InputError):
    """A module of an optional extra is not installed: the message says which extra to install."""


def _line(module: str, extra: str) -> str:
    return f'{module} is not installed; it comes with molmovie\'s "{extra}" extra: pip install "molmovie[{extra}]"'


def missing_extra(exc: ImportError) -> MissingExtra | None:
    """The one-line error for an import of an extra's module that failed, or None for any other import.

    Only a module that is absent counts (``ModuleNotFoundError`` naming it or one of its
    submodules); a module that is installed but fails to load is another fault, reported as it is.
    """
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    module = exc.name.split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    return None if extra is None else MissingExtra(_line(module, extra))


def require(*modules: str) -> None:
    """Raise :class:`MissingExtra` for the first of ``modules`` (top-level names) that is not installed.

    For a command that would do long work before it first imports the module.
    """
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise MissingExtra(_line(module, EXTRA_OF_MODULE[module]))
