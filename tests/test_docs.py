"""The README and the documentation site: a page-long README, links that resolve, an API reference
that covers every public name, and a command-line reference written from the code.

``mkdocs build --strict`` (run by CI) checks the rendered site; these tests check what can be checked
without building it, in a second, so that a broken link or an undocumented name fails the test suite too.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

import molmovie

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"

#: A Markdown link or image: [text](target) or ![alt](target); the target up to a space or ')'.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
#: Fenced code blocks and inline code spans hold no links.
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE = re.compile(r"`[^`\n]*`")


def relative_links(path: Path) -> list[str]:
    """Every relative link target of a Markdown file, without its #anchor (external links and anchors alone left out)."""
    text = CODE.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))
    out = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # https:, mailto:, ... and links inside the page
        out.append(target.split("#", 1)[0])
    return out


def test_relative_links_finds_links_and_skips_code(tmp_path) -> None:
    text = (
        "see [a](docs/a.md#x), ![f](figures/f.png), [web](https://x.org), [in](#here)\n`[not](a link)`\n```\n[no](pe.md)\n```\n"
    )
    path = tmp_path / "links-probe.md"  # not in the checkout: two runs at once would share (and remove) one file there
    path.write_text(text, encoding="utf-8")
    assert relative_links(path) == ["docs/a.md", "figures/f.png"]


def test_readme_is_a_page_long() -> None:
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= 150, f"README.md has {n} lines; move detail into a page under docs/ (at most 150)"


def test_readme_keeps_the_two_set_up_commands() -> None:
    # CI (.ci/run) runs the test command; the quick preset is the main job on built-in data
    text = README.read_text(encoding="utf-8")
    assert 'pip install -e ".[learn,generate]" && molmovie reproduce --preset quick --output runs/quick' in text
    assert 'pip install -e ".[test]" && python -m pytest -q -n 2' in text


@pytest.mark.parametrize(
    "page",
    [README, ROOT / "CHANGELOG.md", *sorted(DOCS.rglob("*.md"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_every_relative_link_resolves(page: Path) -> None:
    broken = [t for t in relative_links(page) if not (page.parent / t).exists()]
    assert not broken, f"{page.relative_to(ROOT)} links to files that do not exist: {broken}"


def public_modules() -> list[ModuleType]:
    """molmovie's public modules with an ``__all__``: no part of the path starts with '_'; the CLI aside."""
    names = ["molmovie"] + [m.name for m in pkgutil.walk_packages(molmovie.__path__, "molmovie.")]
    out = []
    for name in names:
        if name.startswith("molmovie.cli") or any(part.startswith("_") for part in name.split(".")):
            continue
        module = importlib.import_module(name)
        if hasattr(module, "__all__"):
            out.append(module)
    return out


def documented() -> tuple[set[tuple[str, str]], set[int]]:
    """What the API pages render: (module, name) pairs and the ids of the functions and classes.

    A ``::: module`` directive renders every name of the module's ``__all__``; ``::: module.name``
    renders one object. A function or class re-exported by several modules counts wherever it is
    rendered.
    """
    pairs: set[tuple[str, str]] = set()
    objects: set[int] = set()
    for page in sorted((DOCS / "api").glob("*.md")):
        for target in re.findall(r"^:::\s*(\S+)", page.read_text(encoding="utf-8"), re.M):
            try:
                module: ModuleType | None = importlib.import_module(target)
            except ImportError:  # not a module: one object, `::: module.name`
                module = None
            if module is not None:
                for name in getattr(module, "__all__", ()):
                    pairs.add((target, name))
                    objects.add(id(getattr(module, name)))
                continue
            parent, _, name = target.rpartition(".")
            pairs.add((parent, name))
            objects.add(id(getattr(importlib.import_module(parent), name)))
    return pairs, objects


def test_api_reference_covers_every_public_name() -> None:
    pairs, objects = documented()
    missing = []
    for module in public_modules():
        for name in module.__all__:
            obj = getattr(module, name)
            if (module.__name__, name) in pairs:
                continue
            if (callable(obj) or isinstance(obj, ModuleType)) and id(obj) in objects:
                continue
            missing.append(f"{module.__name__}.{name}")
    assert not missing, f"names in an __all__ on no page under docs/api/ (add a `::: module` directive): {missing}"


def test_api_pages_are_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in sorted((DOCS / "api").glob("*.md")):
        assert f"api/{page.name}" in nav, f"docs/api/{page.name} is not in mkdocs.yml's nav"


def test_cli_reference_is_written_from_the_app() -> None:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "tools" / "docs_hooks.py")
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    import typer.main

    from molmovie.cli import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="molmovie")
    markdown = hooks.on_page_markdown(f"# CLI\n\n{hooks.MARKER}\n", None, None, None)
    assert hooks.MARKER not in markdown
    for name in root.list_commands(ctx):
        command = root.get_command(ctx, name)
        assert f"## `molmovie {name}`" in markdown
        for param in command.params:
            if getattr(param, "hidden", False):  # an old spelling kept for one release: deprecated, not documented
                continue
            for opt in param.opts:
                if opt.startswith("-"):
                    assert f"`{opt}`" in markdown, f"{name} {opt} missing from the CLI reference"
    # a page without the marker is left alone
    assert hooks.on_page_markdown("# other", None, None, None) == "# other"


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = [*DOCS.rglob("*.md"), *(DOCS / "tutorials").glob("*.py")]
    missing = [str(p.relative_to(DOCS)) for p in pages if str(p.relative_to(DOCS)) not in nav]
    assert not missing, f"pages under docs/ that mkdocs.yml's nav does not list: {missing}"


@pytest.mark.parametrize("tutorial", sorted((DOCS / "tutorials").glob("*.py")), ids=lambda p: p.name)
def test_executable_tutorials_need_no_shared_data(tutorial: Path) -> None:
    # they run at every docs build, in CI and on a user's clone: no ../shared, no network
    code = "\n".join(line for line in tutorial.read_text(encoding="utf-8").splitlines() if not line.startswith("#"))
    assert "shared" not in code and "http" not in code


def test_the_quickstarts_ci_runs_are_the_readmes_commands_without_their_comments() -> None:
    spec = importlib.util.spec_from_file_location("readme_quickstarts", ROOT / "tools" / "readme_quickstarts.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    text = "# x\n## Install\n```\npip install x\n```\n## Quickstart: one\n```\na --b 1   # note\n# a comment\n\nc\n```\n## Next\n"
    assert tool.quickstarts(text) == [("Quickstart: one", ["a --b 1", "c"])]
    sections = tool.quickstarts(README.read_text(encoding="utf-8"))
    assert [h for h, _ in sections] == ["Quickstart: simulation", "Quickstart: a measurement"]
    assert all(cmds and all(c.startswith("molmovie ") for c in cmds) for _, cmds in sections)
