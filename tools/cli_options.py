"""Write the table of every option of every ``molmovie`` command (docs/cli-options.md), generated from the code.

Each row: the command, the option (and its short form), what it means and its
unit or form (from the registry of option meanings,
:data:`molmovie.cli._meanings.OPTIONS`), the command's own help text, and the
default. Old spellings still read for one release are listed below the table.

Usage::

    python tools/cli_options.py [OUTPUT]      # default docs/cli-options.md beside this folder
    python tools/cli_options.py --check       # exit 1 when the file differs from what the code gives

``tests/test_cli_options.py`` runs the check with the tests.
"""

from __future__ import annotations

import argparse
import sys
from enum import Enum
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "docs" / "cli-options.md"


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, Enum):
        value = value.value
    return f"`{value}`"


def table() -> str:
    """The markdown page."""
    from molmovie.cli._meanings import DEPRECATED, OPTIONS, option_rows

    rows = option_rows()
    lines = [
        "# Command-line options",
        "",
        "Every option of every `molmovie` command, generated from the code by `python tools/cli_options.py`",
        "(do not edit by hand). One name has one meaning and one unit in every command that takes it:",
        "the registry `molmovie.cli._meanings.OPTIONS` says which, and `tests/test_cli_options.py` fails",
        "when a command's option disagrees with it.",
        "",
        "Times are in fs everywhere (`ingest` converts the file's delays, and reads `--t0` in fs). Ranges are",
        "`LO:HI`; grids are `LO:HI:STEP` (`--q 0.5:6.8:0.05`, `--delays -200:1000:25`); lists are comma-separated",
        "(`--trajectories 0,3,5`). `--photons` is the expected number of photons per q bin per delay (per frame",
        "of a simulated dataset), in `scatter` and in `simulate-experiment` alike.",
        "",
        "| command | option | meaning | unit or form | help | default |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.hidden:
            continue
        m = OPTIONS.get(r.option)
        name = f"`{r.option}`" + (f" (`{r.short}`)" if r.short else "")
        lines.append(
            f"| {r.command} | {name} | {_cell(m.meaning if m else '?')} | {_cell(m.unit if m else '?')} | "
            f"{_cell(r.help)} | {_default(r.default)} |"
        )
    lines += [
        "",
        "## Old spellings",
        "",
        "Read until the next minor release, each with one `molmovie: deprecated:` line on stderr:",
        "",
        "| command | old | new |",
        "|---|---|---|",
    ]
    lines += [f"| {command} | `{old}` | `{new}` |" for (command, old), new in DEPRECATED.items()]
    lines += [
        "| all ranges | `LO,HI` | `LO:HI` |",
        "| `--q` | `QMIN:QMAX:COUNT` | `QMIN:QMAX:STEP` |",
        "",
        "`ingest --t0` and `--reference-before` were in the file's delay units before 0.2; they are in fs now",
        "(a note on stderr says so when the file's delays are not in fs).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--check", action="store_true", help="exit 1 when OUTPUT differs from what the code gives")
    args = parser.parse_args(argv)
    text = table()
    if args.check:
        current = args.output.read_text() if args.output.is_file() else ""
        if current != text:
            print(f"{args.output} is out of date: run python tools/cli_options.py", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"{args.output}: {sum(1 for line in text.splitlines() if line.startswith('| ') and '`--' in line)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
