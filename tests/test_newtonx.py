"""The Newton-X reader (molmovie._newtonx, READERS["newtonx"]) on dyn.out files written as Newton-X CS writes them.

The files are written here with the Fortran formats of Newton-X CS's ``writedyn`` (the step header,
format 101, and ``(1x,a2,2x,f5.1,4f14.8)`` for an atom: symbol, Z, x, y, z in bohr, mass in u);
positions come back in Angstrom at 0.529177210903 Å per bohr (CODATA 2018; the reader takes ASE's
constant, whose CODATA revision may differ by a few parts in 10^10: the tolerance).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from molmovie import InputError, read_dataset
from molmovie.trajectories import read_ensemble, read_newtonx, read_trajectory, trajectory_files

from _fixtures import assert_one_line_error, cs2_positions, run_cli

BOHR = 0.529177210903  # Angstrom
CS2 = [("C", 6.0, 12.0), ("S", 16.0, 31.972071), ("S", 16.0, 31.972071)]


def step_header(step: int, state: int, time: float) -> str:
    return f"STEP {step:8d}    Molecular dynamics on state {state:2d}    TIME = {time:10.2f} fs"


def atom_line(symbol: str, z: float, xyz, mass: float) -> str:
    return f" {symbol:<2s}  {z:5.1f}" + "".join(f"{v:14.8f}" for v in (*xyz, mass))


def write_dyn_out(run: Path, positions_bohr: np.ndarray, *, dt=0.5, states=None, coefficients=False, repeat=None) -> Path:
    """A TRAJn folder with RESULTS/dyn.out: one printed step per frame (positions in bohr)."""
    states = [2] * len(positions_bohr) if states is None else states
    lines = ["", "      *** Molecular Dynamics ***", "", "Output printed at each kt=   1 steps ( 0.50 fs).", ""]
    steps = list(range(len(positions_bohr))) + ([repeat] if repeat is not None else [])
    for k in steps:
        lines += [
            step_header(k, states[k], k * dt),
            "Type of dyn. =    1    N. of hoppings =    0    N. of rejec. hoppings =    0",
            "",
        ]
        lines.append("  Initial geometry: " if k == 0 else "  New geometry: " if coefficients else " geometry:")
        for (symbol, z, mass), xyz in zip(CS2, positions_bohr[k]):
            lines.append(atom_line(symbol, z, xyz, mass))
            if coefficients:
                lines += ["( 0.100000 +0.000000 ) ( 0.000000 -0.100000 ) ( 0.000000 +0.000000 ) "] * 2
        lines += ["", " velocity:", *["    0.00010000    0.00000000   -0.00020000"] * 3, "", "------------", ""]
    (run / "RESULTS").mkdir(parents=True)
    path = run / "RESULTS" / "dyn.out"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "TRAJECTORIES"
    made = []
    for k in range(3):
        pos = cs2_positions(6, dt=0.5, seed=k) / BOHR
        write_dyn_out(root / f"TRAJ{k + 1}", np.round(pos, 8), states=[2, 2, 2, 1, 1, 1])
        made.append(np.round(pos, 8) * BOHR)
    return root, made


def test_a_run_reads_to_angstrom_with_times_and_states(runs):
    root, made = runs
    for given in (root / "TRAJ1", root / "TRAJ1" / "RESULTS", root / "TRAJ1" / "RESULTS" / "dyn.out"):
        tr = read_newtonx(given)
        assert tr.symbols == ("C", "S", "S")
        np.testing.assert_allclose(tr.positions, made[0], rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(tr.time, np.arange(6) * 0.5)
        np.testing.assert_array_equal(tr.state, [2, 2, 2, 1, 1, 1])
    assert read_trajectory(root / "TRAJ2").positions.shape == (6, 3, 3)  # the folder is told from a SHARC run


def test_coefficient_lines_are_skipped_and_a_reprinted_step_keeps_its_last_print(tmp_path):
    pos = np.arange(4 * 3 * 3, dtype=float).reshape(4, 3, 3) / 10
    write_dyn_out(tmp_path / "TRAJ1", pos, coefficients=True, repeat=None)
    np.testing.assert_allclose(read_newtonx(tmp_path / "TRAJ1").positions, pos * BOHR, rtol=1e-9, atol=1e-12)
    dyn = write_dyn_out(tmp_path / "TRAJ2", pos)
    text = dyn.read_text().replace(step_header(3, 2, 1.5), step_header(2, 1, 1.0), 1)  # step 2 printed again at 1.0 fs
    dyn.write_text(text)
    tr = read_newtonx(tmp_path / "TRAJ2")
    np.testing.assert_array_equal(tr.time, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(tr.positions[2], pos[3] * BOHR, rtol=1e-9, atol=1e-12)  # the reprint replaced the first print
    assert tr.state[2] == 1


def test_import_of_a_trajectories_folder_makes_a_dataset(runs, capsys, tmp_path):
    root, made = runs
    assert sorted(p.name for p in trajectory_files([root]) if p.name == "dyn.out") == ["dyn.out"] * 3
    code, out, err = run_cli(["import", root, "-o", tmp_path / "d.h5"], capsys)
    assert code == 0, err
    ds = read_dataset(tmp_path / "d.h5")
    assert ds.n_trajectories == 3 and ds.symbols == ("C", "S", "S")
    np.testing.assert_allclose(ds.positions[1], made[1], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(ds.ensemble.state[0], [2, 2, 2, 1, 1, 1])
    assert len(read_ensemble([root / "TRAJ3"]).source) == 1


def test_damaged_dyn_out_is_one_line(tmp_path, capsys):
    pos = np.zeros((2, 3, 3)) + np.arange(3)[:, None]
    dyn = write_dyn_out(tmp_path / "TRAJ1", pos)
    same = (atom_line("S", 16.0, pos[1, 1], 31.972071), atom_line("O", 8.0, pos[1, 1], 15.994915))
    dyn.write_text(dyn.read_text().replace(*same, 1))  # step 0 now has C O S, step 1 C S S
    with pytest.raises(InputError, match=r"dyn.out, line \d+: the atoms C S S differ from the first step's C O S"):
        read_newtonx(tmp_path / "TRAJ1")
    (tmp_path / "TRAJ2" / "RESULTS").mkdir(parents=True)
    (tmp_path / "TRAJ2" / "RESULTS" / "dyn.out").write_text("nothing here\n")
    code, _, err = run_cli(["import", tmp_path / "TRAJ2", "-o", tmp_path / "d.h5"], capsys)
    assert_one_line_error(code, err, "no Newton-X step with a geometry")
    assert not (tmp_path / "d.h5").exists()
