"""The ``molmovie`` Typer application, to which each command module adds its commands."""

from __future__ import annotations

import typer

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
    version: bool = typer.Option(
        False, "--version", help="Print molmovie's version and exit.", callback=_print_version, is_eager=True
    ),
) -> None:
    """Molecular movies from ultrafast X-ray scattering: trajectories -> signals -> inversion -> evaluation."""
