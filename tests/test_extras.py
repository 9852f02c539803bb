"""The optional extras (molmovie._extras, pyproject's optional dependencies).

A plain install runs ``simulate-experiment``, ``ingest``, ``show`` and ``fit``: here each runs in a
fresh interpreter in which torch, safetensors, tblite, rdkit, dask, distributed and dask-jobqueue
cannot be imported (an import hook refuses them, as a missing package would), and none of them is
loaded. A command that needs one ends with one line naming the extra to install, exit code 2. The
installed wheel itself is checked by ``.ci/wheel`` (a fresh virtual environment, no extras).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from molmovie._extras import EXTRA_OF_MODULE, MissingExtra, missing_extra, require
from molmovie.io import write_dataset

from _fit_fixtures import diatomic_ensemble
from _fixtures import assert_one_line_error

SRC = Path(__file__).resolve().parents[1] / "src"
TESTS = Path(__file__).resolve().parent

#: A fresh interpreter in which the extras' modules are absent; runs `molmovie ARGS` and then reports
#: which of those modules were loaded (none may be).
BLOCKED_RUN = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
from molmovie.cli import main
try:
    main(sys.argv[2:])
finally:
    print("loaded:", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED), file=sys.stderr)
"""
ALL = ",".join(EXTRA_OF_MODULE)


def run_without(modules: str, *args) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": f"{SRC}", "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "HOME": tempfile.gettempdir()}
    return subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, modules, *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )


def test_missing_extra_names_the_extra_of_the_missing_module():
    line = str(missing_extra(ModuleNotFoundError("No module named 'torch.nn'", name="torch.nn")))
    assert line == 'torch is not installed; it comes with molmovie\'s "learn" extra: pip install "molmovie[learn]"'
    assert 'pip install "molmovie[generate]"' in str(missing_extra(ModuleNotFoundError(name="tblite.interface")))
    assert 'pip install "molmovie[cluster]"' in str(missing_extra(ModuleNotFoundError(name="distributed")))
    assert missing_extra(ModuleNotFoundError(name="numpy")) is None  # not an extra's: a broken install
    assert missing_extra(ImportError("libtorch.so: cannot open shared object", name="torch")) is None  # installed, broken
    with pytest.raises(MissingExtra, match=r'pip install "molmovie\[generate\]"'):
        _require_absent()


def _require_absent():
    import importlib.util

    assert importlib.util.find_spec("molmovie_absent_module") is None
    EXTRA_OF_MODULE["molmovie_absent_module"] = "generate"  # a module of the extra, surely absent
    try:
        require("numpy", "molmovie_absent_module")
    finally:
        del EXTRA_OF_MODULE["molmovie_absent_module"]


def test_every_extras_module_is_in_pyproject():
    import tomllib

    extras = tomllib.loads((SRC.parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for module, extra in EXTRA_OF_MODULE.items():
        assert any(req.replace("-", "_").startswith(module) for req in extras[extra]), (module, extra)
    test = extras["test"][0]
    assert test.startswith("molmovie[") and set(test[9:-1].split(",")) == set(EXTRA_OF_MODULE.values())


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plain")
    write_dataset(diatomic_ensemble(8, seed=1, t_end=700.0, dt=25.0), folder / "basis.h5")
    q, delays = np.linspace(0.5, 6.0, 12), np.arange(-150.0, 451.0, 50.0)
    intensity = 100 + np.random.default_rng(0).random((delays.size, q.size))
    np.savez(folder / "beam.npz", q=q, delays=delays, intensity=intensity, variance=np.full(intensity.shape, 0.01))
    return folder


def test_a_plain_install_simulates_ingests_shows_and_fits_without_any_extra(plain, tmp_path):
    b, w = plain, tmp_path  # inputs from the module's folder, outputs in this test's own (tests run in any order)
    quick = ["--set", "bootstrap=2", "--set", "profile=3", "--set", "grid=[3,2]"]
    commands = [
        ["simulate-experiment", b / "basis.h5", "-o", w / "sim.h5", "--photons", "1e6", "--delays", "-100:500:13", "--seed", "0"],
        ["ingest", b / "beam.npz", "-o", w / "ing.h5", "--molecule", "I2", "--q-units", "1/A", "--delay-units", "fs"],
        ["show", w / "sim.h5", "-o", w / "show.png"],
        ["fit", w / "sim.h5", "--basis", b / "basis.h5", "-o", w / "fit.h5", *quick],
    ]
    for args in commands:
        done = run_without(ALL, *args)
        assert done.returncode == 0, (args[0], done.stderr)
        assert done.stderr.strip().splitlines()[-1] == "loaded: []", (args[0], done.stderr)
    for name in ("sim.h5", "ing.h5", "show.png", "fit.h5"):
        assert (w / name).stat().st_size > 0


@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [
        (
            "safetensors,torch",
            ["invert", TESTS / "data" / "vrnn_filter_v1.safetensors", "{w}/sim.h5", "-o", "{w}/inv.h5"],
            "learn",
        ),
        ("tblite,rdkit", ["generate", "I2", "-n", "2", "-o", "{w}/gen.h5"], "generate"),
    ],
)
def test_a_command_needing_a_missing_extra_says_which_in_one_line(plain, blocked, args, extra):
    if not (plain / "sim.h5").exists():
        run_without(ALL, "simulate-experiment", plain / "basis.h5", "-o", plain / "sim.h5", "--photons", "1e6")
    done = run_without(blocked, *(str(a).format(w=plain) for a in args))
    err = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("loaded:"))
    assert_one_line_error(done.returncode, err, rf'is not installed; .*pip install "molmovie\[{extra}\]"$')
    assert not (plain / "inv.h5").exists() and not (plain / "gen.h5").exists()
