"""The ``molmovie`` command.

The CLI is thin: each command parses its options, calls the library and
prints. Heavy modules (torch, tblite, dask, matplotlib) are imported inside the
command that needs them, so ``molmovie --help`` answers at once.

Errors the user can fix (:class:`molmovie.InputError`, and a few OS errors)
become one line on stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import sys

import typer

from .._errors import InputError

app = typer.Typer(
    name="molmovie",
    help="Molecular movies from ultrafast X-ray scattering: trajectories -> signals -> inversion -> evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Each module adds its commands to `app`; they import only light modules at top level.
from . import _data  # noqa: E402,F401  import, scatter, info
from . import _generate  # noqa: E402,F401  generate
from . import _inversion  # noqa: E402,F401  train, invert
from . import _study  # noqa: E402,F401  evaluate, reproduce
from . import _measure  # noqa: E402,F401  ingest, show
from . import _simulate  # noqa: E402,F401  simulate-experiment
from . import _fit  # noqa: E402,F401  fit


def fail(message: str) -> "typer.Exit":
    """Print one error line on stderr and return the exit-2 exception to raise."""
    typer.echo(f"molmovie: error: {message}", err=True)
    return typer.Exit(2)


#: The library's keyword arguments in its messages, and the options that set them here.
_OPTION_OF_KEYWORD = {"force=True": "--force"}


def _in_cli_words(message: str) -> str:
    """A library message with its keyword arguments named as this command's options."""
    for keyword, option in _OPTION_OF_KEYWORD.items():
        message = message.replace(keyword, option)
    return message


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``molmovie`` console script."""
    try:
        app(args=argv, prog_name="molmovie", standalone_mode=True)
    except InputError as exc:
        typer.echo(f"molmovie: error: {_in_cli_words(str(exc))}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("molmovie: interrupted", err=True)
        sys.exit(130)
