"""The ``molmovie`` Typer application, to which each command module adds its commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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


def _print_version(value: bool) -> None:
    if value:
        from .._version import __version__

        typer.echo(f"molmovie {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", help="Print molmovie's version and exit.", callback=_print_version, is_eager=True)
    ] = False,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            help="More log lines on stderr: -v information (the command line, stages), -vv debugging.",
        ),
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr: no progress.")] = False,
    log: Annotated[
        Path | None,
        typer.Option(
            "--log",
            help="Also append the log to this file, with times: the command line, version, progress, warnings, errors.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Molecular movies from ultrafast X-ray scattering: trajectories -> signals -> inversion -> evaluation.

    Options of molmovie itself go before the command: molmovie -v --log run.log fit ...
    """
    from .._provenance import current
    from ._progress import LOGGER, configure

    if verbose and quiet:
        raise InputError("give -v or -q, not both")
    try:
        configure(verbose, quiet, log)
    except OSError as exc:
        raise InputError(f"--log {log}: cannot append to it ({exc.strerror or exc})") from None
    record = current()
    if record is not None:
        LOGGER.info("%s (molmovie %s)", record["command_line"], record["molmovie_version"])
