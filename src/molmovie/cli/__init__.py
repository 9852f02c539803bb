"""The ``molmovie`` command.

The CLI is thin: each command parses its options, calls the library and
prints. Heavy modules (torch, tblite, dask, matplotlib) are imported inside the
command that needs them, so ``molmovie --help`` answers at once.

Errors the user can fix (:class:`molmovie.InputError`, a full disk or a
refused permission, a module of an optional extra not installed) become one line on stderr ("molmovie: error: ...") and
exit code 2, without a traceback; Ctrl-C is one line saying what was kept
("molmovie: interrupted; d.h5 is unchanged") and exit code 130. Every command
that writes claims its output with :func:`._outputs.writing` (checked against
all its inputs, locked) before it reads or computes anything.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import warnings
from typing import Any

import typer

from .._errors import InputError, shorten
from .._extras import missing_extra
from ._app import app
from ._options import OptionDeprecation
from ._outputs import interrupt_note

# Each module adds its commands to `app` (from ._app: no import circle); they import only light
# modules at top level. The import order is the order of the commands in --help.
# isort: off
from . import _data  # noqa: F401  import, scatter, info
from . import _generate  # noqa: F401  generate
from . import _inversion  # noqa: F401  train, invert
from . import _study  # noqa: F401  evaluate, reproduce
from . import _measure  # noqa: F401  ingest, show
from . import _simulate  # noqa: F401  simulate-experiment
from . import _fit  # noqa: F401  fit
from . import _transfer  # noqa: F401  transfer
# isort: on


def fail(message: str) -> typer.Exit:
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


#: Longest error line printed; anything longer is cut (a damaged file can quote megabytes).
_MAX_LINE = 1000


def _error_line(message: str) -> str:
    """The one line printed for an error: CLI words, no newlines, at most ``_MAX_LINE`` characters."""
    text = shorten(" ".join(_in_cli_words(str(message)).split()), _MAX_LINE)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")  # undecodable bytes from a file stay printable


#: Set when SIGTERM (``kill``, a batch system's time limit) stopped the command, not Ctrl-C.
_terminated: list[bool] = []


def _on_sigterm(signum, frame) -> None:
    """SIGTERM stops the command like Ctrl-C does (temporary files removed, the old output kept), exit 143."""
    _terminated.append(True)
    raise KeyboardInterrupt


def _interrupted() -> None:
    note = interrupt_note()
    word, code = ("terminated", 143) if _terminated else ("interrupted", 130)
    _terminated.clear()
    typer.echo(f"molmovie: {word}{'; ' + note if note else ''}", err=True)
    sys.exit(code)


#: click's ClickException, as the typer installed uses it (typer >= 0.20 carries its own copy of click).
_ClickException: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _show_usage_error(exc) -> None:
    """A usage error (unknown option, a value of the wrong kind) as one line and a --help hint."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "molmovie"
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    hint = f" (see '{command} --help')" if ctx is not None else ""
    _say(f"molmovie: error: {_error_line(message)}{hint}")


def _say(line: str) -> None:
    """A line on stderr, and in the --log file."""
    from ._progress import record

    typer.echo(line, err=True)
    record(line, logging.WARNING if line.startswith(("molmovie: warning", "molmovie: deprecated")) else logging.ERROR)


def _print_warnings(caught: list[warnings.WarningMessage]) -> None:
    """The warnings a successful command met, each once, as one line."""
    seen = set()
    for w in caught:
        if issubclass(w.category, OptionDeprecation):
            line = f"molmovie: deprecated: {_error_line(str(w.message))}"
        else:
            line = f"molmovie: warning: {_error_line(f'{w.category.__name__}: {w.message}')}"
        if line not in seen:
            seen.add(line)
            _say(line)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``molmovie`` console script.

    Exit codes: 0 done; 2 bad input, a usage error, or an output that could
    not be written (full disk, permissions: :class:`molmovie._guards.WriteError`);
    130 Ctrl-C (one line saying what was kept); 143 SIGTERM (the same); 1 an
    unexpected OS error (one line). typer would turn Ctrl-C into a silent exit 130, so the app runs
    with ``standalone_mode=False`` and the exceptions are handled here.
    """
    import shlex
    from datetime import UTC, datetime

    from .._provenance import recording
    from .._version import __version__
    from ._progress import teardown

    args = list(sys.argv[1:] if argv is None else argv)
    command = {
        "command_line": shlex.join(["molmovie", *map(str, args)]),
        "molmovie_version": __version__,
        "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "inputs": {},
    }
    previous = None
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    caught: list[warnings.WarningMessage] = []
    try:
        # Warnings (NumPy's overflow, a library's deprecation) are held while the command runs: after an
        # error they are dropped, so the error is the one line printed; after success each is one line.
        with warnings.catch_warnings(record=True) as caught, recording(command):
            warnings.simplefilter("always", OptionDeprecation)
            code = app(args=argv, prog_name="molmovie", standalone_mode=False)
        if code != 130:  # after Ctrl-C the one line says what was kept
            _print_warnings(caught)
    except InputError as exc:
        _say(f"molmovie: error: {_error_line(str(exc))}")
        sys.exit(2)
    except ModuleNotFoundError as exc:
        missing = missing_extra(exc)  # torch, tblite, dask... of an extra not installed: which one to install
        if missing is None:
            raise
        typer.echo(f"molmovie: error: {missing}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        _interrupted()
    except typer.Abort:
        _interrupted()  # EOF on a prompt, or Ctrl-C as click reports it
    except _ClickException as exc:
        _show_usage_error(exc)
        sys.exit(exc.exit_code)
    except OSError as exc:
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        _say(f"molmovie: error: {_error_line((exc.strerror or str(exc)) + where)}")
        sys.exit(1)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        teardown()
    if code == 130:  # typer turns KeyboardInterrupt into Exit(130)
        _interrupted()
    if isinstance(code, int) and code:
        sys.exit(code)
