"""The import graph of molmovie has no circle (tools/import_cycles.py, imports inside functions included)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("import_cycles", ROOT / "tools" / "import_cycles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_circle_in_the_package():
    tool = _tool()
    graph = tool.import_graph(ROOT / "src" / "molmovie")
    cycles = [set(c) for c in tool.strongly_connected(graph) if len(c) > 1]
    assert cycles == []
    assert "molmovie.io" not in graph["molmovie.datasets"] and "molmovie.datasets" in graph["molmovie.io.dataset"]


def test_the_checker_finds_a_circle_through_a_deferred_import(tmp_path):
    tool = _tool()
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import thing\n")
    (pkg / "sub" / "__init__.py").write_text("from .b import thing\n")
    (pkg / "sub" / "b.py").write_text("thing = 1\n\ndef f():\n    from .. import a\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import e\n")
    (pkg / "e.py").write_text("from . import d\n")  # d -> e for the type checker only: no circle
    graph = tool.import_graph(pkg)
    assert [c for c in tool.strongly_connected(graph) if len(c) > 1] == [["pkg.a", "pkg.sub", "pkg.sub.b"]]
    top = tool.import_graph(pkg, top_level=True)
    assert [c for c in tool.strongly_connected(top) if len(c) > 1] == []
    assert tool.main([str(pkg)]) == 1 and tool.main([str(pkg), "--top-level"]) == 0
