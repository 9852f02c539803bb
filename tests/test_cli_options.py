"""One name, one unit, one meaning per option across every command (STYLE.md 21), and the table of them in the docs."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from molmovie.cli._meanings import DEPRECATED, OPTIONS, check_rows, option_rows, problems

from _fixtures import run_cli

ROOT = Path(__file__).resolve().parent.parent


def test_every_option_of_every_command_agrees_with_the_registry():
    assert problems() == []
    rows = option_rows()
    # the registry holds no name that no command uses (it is the list of the command line's words, not a wish list)
    used = {r.option for r in rows if not r.hidden}
    assert set(OPTIONS) - used == set()


def test_one_name_for_two_meanings_fails():
    rows = {(r.command, r.option): r for r in option_rows()}
    index_list = rows[("simulate-experiment", "--trajectories")]
    count_list = replace(index_list, command="generate", type=int, help="Number of trajectories.")
    assert check_rows([index_list]) == []
    assert check_rows([index_list, count_list]) == [
        "generate --trajectories: declared <class 'int'>, but --trajectories is a list (trajectories chosen by index) in the registry",
        "generate --trajectories: its help does not state the unit '0,3,5' of --trajectories (trajectories chosen by index)",
    ]
    photons = rows[("scatter", "--photons")]
    per_pattern = replace(photons, help="Poisson noise: expected photons per pattern.")
    assert check_rows([per_pattern]) == [
        "scatter --photons: its help does not state the unit 'per q bin per delay' of --photons (Poisson noise: expected photons)"
    ]
    assert check_rows([replace(photons, option="--photon-count")]) == [
        "scatter --photon-count: not in the registry of option meanings (molmovie.cli._meanings.OPTIONS)"
    ]


def test_every_old_spelling_is_a_hidden_option_of_its_command():
    hidden = {(r.command, r.option) for r in option_rows() if r.hidden}
    assert hidden == set(DEPRECATED)


def test_the_table_in_the_docs_is_what_the_code_gives():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "cli_options.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_help_lists_the_names_to_choose_from(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # rich draws --help in a table: one line per option
    from molmovie.evaluation.study import PRESETS
    from molmovie.fitting import MEASUREMENT_METHODS
    from molmovie.inversion import METHODS

    for command, names in (("fit", MEASUREMENT_METHODS), ("train", [*METHODS, "vrnn-ensemble"]), ("reproduce", PRESETS)):
        code, stdout, _ = run_cli([command, "--help"], capsys)
        assert code == 0
        assert "[" + "|".join(names) + "]" in stdout, (command, stdout)
