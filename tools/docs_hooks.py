"""MkDocs hooks: the command-line reference, written from the code at every build.

``docs/cli.md`` holds the marker ``<!-- molmovie-cli -->``; this hook replaces it
with one section per command of the ``molmovie`` Typer application (its help,
usage and a table of its options: names, type or choices, default, help), and
a table of every option of every command. The page therefore always describes
the command line of the code being documented, never a frozen copy. Run it
alone (``python tools/docs_hooks.py``) to print the generated Markdown.
"""

from __future__ import annotations

import enum
import inspect
from typing import Any

MARKER = "<!-- molmovie-cli -->"


def _cell(text: object) -> str:
    """Text fit for one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|").replace("](", "]\\(")


def _type_of(param: Any) -> str:
    """The option's type in words: its choices, ``flag``, or the annotation's name."""
    descriptor = getattr(param, "type_descriptor", None)
    kind: Any = getattr(descriptor, "annotation", None) if descriptor is not None else getattr(param, "type", None)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return " \\| ".join(f"`{member.value}`" for member in kind)
    choices = getattr(kind, "choices", None)
    if choices:
        return " \\| ".join(f"`{c}`" for c in choices)
    if kind is bool or getattr(param, "is_flag", False):
        return "flag"
    name = getattr(kind, "__name__", None) or getattr(kind, "name", None) or str(kind)
    return {"Path": "path", "str": "text"}.get(name, name)


def _default_of(param: Any) -> str:
    default = param.default
    if default is None or callable(default) or getattr(param, "required", False):
        return "required" if getattr(param, "required", False) else ""
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, (list, tuple)):
        return ", ".join(str(d) for d in default) if default else ""
    if hasattr(default, "value"):  # an Enum member
        return f"`{default.value}`"
    return f"`{default}`"


def _names_of(param: Any) -> str:
    if param.param_type_name == "argument":
        return f"`{(param.metavar or param.name).upper()}`"
    names = list(param.opts) + list(getattr(param, "secondary_opts", []))
    return ", ".join(f"`{n}`" for n in names)


def root_command() -> Any:
    """The click group of the ``molmovie`` application, with every command registered.

    Typer builds it on the click it carries (``typer._click`` in recent releases), so the
    objects are used by their click interface only, never by ``isinstance``.
    """
    import typer.main

    from molmovie.cli import app

    return typer.main.get_command(app)


def cli_markdown() -> str:
    """The command-line reference in Markdown, generated from the application."""
    root = root_command()
    ctx = root.context_class(root, info_name="molmovie")
    names = root.list_commands(ctx)
    out: list[str] = []
    out.append("| command | what it does |")
    out.append("|---|---|")
    commands: list[tuple[str, Any]] = []
    for name in names:
        cmd = root.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        commands.append((name, cmd))
        out.append(f"| [`{name}`](#molmovie-{name}) | {_cell(cmd.get_short_help_str(limit=120))} |")
    out.append("")
    every: list[tuple[str, str, str, str]] = []
    for name, cmd in commands:
        sub = cmd.context_class(cmd, info_name=name, parent=ctx)
        out.append(f"## `molmovie {name}` {{#molmovie-{name}}}")
        out.append("")
        out.append("```")
        out.append(" ".join(cmd.collect_usage_pieces(sub)).join([f"molmovie {name} ", ""]))
        out.append("```")
        out.append("")
        out.append(inspect.cleandoc(cmd.help or "").replace("\b\n", "\n").replace("](", "]\\("))
        out.append("")
        params = [p for p in cmd.get_params(sub) if not getattr(p, "hidden", False) and p.name != "help"]
        if params:
            out.append("| option | type | default | help |")
            out.append("|---|---|---|---|")
            for p in params:
                help_text = getattr(p, "help", None) or ""
                out.append(f"| {_names_of(p)} | {_type_of(p)} | {_cell(_default_of(p))} | {_cell(help_text)} |")
                if p.param_type_name == "option":
                    every.append((name, _names_of(p), _type_of(p), _cell(help_text)))
            out.append("")
    out.append("## Every option of every command {#every-option}")
    out.append("")
    out.append("One row per option and command, sorted by option name, so that one name used in two")
    out.append("commands can be read side by side.")
    out.append("")
    out.append("| option | command | type | help |")
    out.append("|---|---|---|---|")
    for command, opt, kind, help_text in sorted(every, key=lambda row: (row[1], row[0])):
        out.append(f"| {opt} | `{command}` | {kind} | {help_text} |")
    out.append("")
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs hook: put the generated reference where the page has the marker."""
    if MARKER in markdown:
        return markdown.replace(MARKER, cli_markdown())
    return markdown


if __name__ == "__main__":
    print(cli_markdown())
