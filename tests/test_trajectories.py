"""Trajectory readers, resampling, padding and the dissociation flag."""

from __future__ import annotations

import numpy as np
import pytest

from molmovie import InputError
from molmovie.trajectories import is_dissociated, read_ensemble, read_sharc, read_trajectory, read_xyz, resample

from _fixtures import CS2_SYMBOLS, cs2_positions, write_sharc, write_xyz


def test_xyz_times_from_comments(tmp_path):
    pos = cs2_positions(5)
    tr = read_xyz(write_xyz(tmp_path / "a.xyz", CS2_SYMBOLS, pos, times=np.arange(5) * 0.5))
    assert tr.symbols == CS2_SYMBOLS
    np.testing.assert_allclose(tr.time, [0, 0.5, 1, 1.5, 2])
    # the file's 9 decimals: half a unit of the last one, plus the reading's half ulp
    np.testing.assert_allclose(tr.positions, pos, rtol=0, atol=0.5e-9 + np.spacing(np.abs(pos).max()))


def test_xyz_without_times_needs_dt(tmp_path):
    path = write_xyz(tmp_path / "a.xyz", CS2_SYMBOLS, cs2_positions(4))
    with pytest.raises(InputError, match="--dt"):
        read_xyz(path)
    np.testing.assert_allclose(read_xyz(path, dt=2.0).time, [0, 2, 4, 6])


def test_sharc_keeps_time_energy_state_and_skips_hop_notes(tmp_path):
    run = write_sharc(tmp_path / "TRAJ_00001", cs2_positions(6), hop_at=3)
    tr = read_sharc(run)
    np.testing.assert_allclose(tr.time, np.arange(6) * 0.5)
    np.testing.assert_allclose(tr.energy, 1.0 + 0.001 * np.arange(6))
    assert tr.state.tolist() == [2, 2, 2, 1, 1, 1]


def test_resample_picks_frames_on_the_grid(tmp_path):
    run = write_sharc(tmp_path / "r", cs2_positions(21))
    tr = resample(read_sharc(run), dt=2.5, tmax=7.5)
    np.testing.assert_allclose(tr.time, [0, 2.5, 5, 7.5])
    np.testing.assert_array_equal(tr.positions, read_sharc(run).positions[[0, 5, 10, 15]])
    np.testing.assert_allclose(tr.energy, 1.0 + 0.001 * np.array([0, 5, 10, 15]))
    with pytest.raises(InputError, match="multiple"):
        resample(read_sharc(run), dt=0.7)


def test_folder_of_runs_pads_unequal_lengths_with_nan(tmp_path):
    write_sharc(tmp_path / "TRAJ_00001", cs2_positions(41))
    write_sharc(tmp_path / "TRAJ_00002", cs2_positions(23, dissociate=True))
    ens = read_ensemble([tmp_path], dt=1.0)
    assert ens.molecule == "cs2"
    assert ens.positions.shape == (2, 21, 3, 3)
    assert ens.length.tolist() == [21, 12]
    assert np.isnan(ens.positions[1, 12:]).all() and np.isfinite(ens.positions[1, :12]).all()
    assert np.isnan(ens.energy[1, 12:]).all()
    assert ens.state[1, 12:].tolist() == [-1] * 9
    assert ens.dissociated.tolist() == [False, True]
    d = ens.distances
    assert np.isnan(d[1, 12:]).all() and np.isfinite(d[1, :12]).all()


def test_dissociation_rule():
    bound, gone = cs2_positions(400), cs2_positions(400, dissociate=True)
    assert not is_dissociated(CS2_SYMBOLS, bound)
    assert is_dissociated(CS2_SYMBOLS, gone)
    # only the last *valid* frame counts
    assert not is_dissociated(CS2_SYMBOLS, gone, length=2)
    # S atoms that bond to each other (S-S ~2.0 A) while C leaves: still one S2 fragment + C -> dissociated;
    # a ring-like isomer where all three stay bonded is not
    # a C-S bond stretched to 3.0 A (past 1.3 x but within 2 x the covalent radii) is hot, not broken
    stretched = np.array([[[0, 0, 0], [0, 0, 1.55], [0, 0, -1.55]], [[0, 0, 0], [0, 0, 3.0], [0, 0, -1.55]]], float)
    assert not is_dissociated(CS2_SYMBOLS, stretched)
    stretched[1, 1, 2] = 3.7  # beyond 2 x (0.76 + 1.05) = 3.62 A: gone
    assert is_dissociated(CS2_SYMBOLS, stretched)
    ring = np.array([[[0, 0, 0], [0, 0, 1.55], [0, 0, -1.55]], [[0, 0, 0], [0.9, 0, 1.3], [-0.9, 0, 1.3]]], float)
    assert not is_dissociated(CS2_SYMBOLS, ring)


def test_atoms_must_match_across_trajectories(tmp_path):
    write_sharc(tmp_path / "TRAJ_00001", cs2_positions(5))
    write_sharc(tmp_path / "TRAJ_00002", cs2_positions(5), symbols=("C", "S", "O"))
    with pytest.raises(InputError, match="TRAJ_00002.*differ"):
        read_ensemble([tmp_path])


@pytest.mark.parametrize(
    "text, message",
    [
        ("3\nt= 0.0\nC 0 0 0\nS 0 0 1.5\n", "truncated"),
        ("3\nt= 0.0\nC 0 0 0\nS 0 0 x1.5\nS 0 0 -1.5\n", "not a number"),
        ("3\nt= 0.0\nC 0 0 0\nS 0 0\nS 0 0 -1.5\n", "symbol x y z"),
        ("3\nt= 0.0\nC 0 0 0\nS 0 0 1.5\nS 0 0 -1.5\n2\nt= 0.5\nC 0 0 0\nS 0 0 1.5\n", "has 2 atoms"),
        ("3\nt= 0.0\nC 0 0 0\nXx 0 0 1.5\nS 0 0 -1.5\n", "unknown element"),
        ("three\nt= 0.0\nC 0 0 0\n", "atom count"),
        ("", "empty"),
        ("3\nt= 0.0\nC 0 0 0\nS 0 0 nan\nS 0 0 -1.5\n", "finite"),
    ],
)
def test_malformed_xyz_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        read_trajectory(path)
    assert "bad.xyz" in str(info.value)


def test_malformed_sharc(tmp_path):
    run = write_sharc(tmp_path / "r", cs2_positions(4))
    lis = run / "output.lis"
    lis.write_text(lis.read_text().replace("1.001000", "one"))
    with pytest.raises(InputError, match="output.lis, line .*not a number"):
        read_sharc(run)
    (run / "output.lis").unlink()
    with pytest.raises(InputError, match="no output.lis"):
        read_sharc(run)


def test_empty_folder(tmp_path):
    with pytest.raises(InputError, match="empty folder"):
        read_ensemble([tmp_path])


def test_real_sharc_runs(sharc_cs2):
    ens = read_ensemble([sharc_cs2], dt=5)
    assert ens.symbols == ("C", "S", "S")
    assert ens.length.tolist() == [201, 103]  # 1000 fs; 513 fs -> frames 0..510 fs
    assert ens.dissociated.tolist() == [False, True]
    np.testing.assert_allclose(np.diff(ens.time), 5.0)
    assert np.isfinite(ens.energy[0]).all() and np.isnan(ens.energy[1, 103:]).all()
    # total energy as SHARC reports it (eV): 6.7275 at t = 0, and it stays within 0.3 eV (hops shift it)
    assert ens.energy[0, 0] == pytest.approx(6.727528)
    assert np.ptp(ens.energy[0]) < 0.3
    full = read_ensemble([sharc_cs2])
    assert full.length.tolist() == [2001, 1027]
