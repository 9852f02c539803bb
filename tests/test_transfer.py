"""Transfer: a trained method scored on trajectories of other dynamics (evaluation.transfer, `molmovie transfer`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from molmovie import InputError
from molmovie.datasets import Dataset
from molmovie.evaluation.transfer import foreign_dataset, read_foreign, resample_ensemble, symmetric_distance_error, transfer
from molmovie.geometry import automorphisms, distances
from molmovie.inversion import get_method
from molmovie.io.model import read_model_file, write_model_file
from molmovie.scattering import SignalSpec, q_grid, simulate
from molmovie.trajectories import Ensemble

from _fixtures import CS2_SYMBOLS, assert_one_line_error, cs2_positions, run_cli, write_sharc

CS2_SWAP = np.array([[0, 1, 2], [0, 2, 1]])


def _ensemble(positions, time, lengths, symbols=CS2_SYMBOLS) -> Ensemble:
    m = len(positions)
    return Ensemble("cs2", symbols, time, positions, np.asarray(lengths), np.zeros(m, bool), [f"run{k}" for k in range(m)])


def _fitted_nearest(ensemble: Ensemble, spec: SignalSpec):
    """The nearest-frame method with ``ensemble``'s own frames as its library."""
    dS, I_ref, spec = simulate(ensemble.symbols, ensemble.positions, ensemble.length, ensemble.time, spec)
    return get_method("nearest").fit(Dataset(ensemble, dS=dS, I_ref=I_ref, spec=spec))


# --------------------------------------------------------------------------- the symmetry-aware distance error


def test_error_is_zero_for_the_truth_and_for_the_truth_with_the_s_atoms_swapped():
    pos = np.stack([cs2_positions(40, seed=1), cs2_positions(40, dissociate=True, seed=2)])
    true = distances(pos)
    perms = automorphisms(CS2_SYMBOLS, pos[0, 0])
    assert perms.tolist() == CS2_SWAP.tolist()
    swapped = distances(pos[:, :, [0, 2, 1]])
    assert not np.allclose(swapped, true)  # the labels differ, the molecule does not
    assert np.array_equal(symmetric_distance_error(true, true, perms), np.zeros_like(true))
    assert np.array_equal(symmetric_distance_error(swapped, true, perms), np.zeros_like(true))


def test_error_of_a_known_offset_and_of_a_known_swap():
    true = np.array([1.5, 1.7, 3.1])  # C-S1, C-S2, S1-S2
    # labelled: 0.1 + 0.2 + 0.3; swapped: |1.9-1.5| + |1.6-1.7| + 0.3 = 0.8, so the labels stay
    np.testing.assert_allclose(symmetric_distance_error(true + [0.1, 0.2, -0.3], true, CS2_SWAP), [0.1, 0.2, 0.3], atol=1e-12)
    # labelled: |1.72-1.5| + |1.52-1.7| + 0.1 = 0.5; with the S atoms swapped: 0.02 + 0.02 + 0.1 = 0.14, the smaller
    pred = np.array([1.72, 1.52, 3.0])
    np.testing.assert_allclose(symmetric_distance_error(pred, true, CS2_SWAP), [0.02, 0.02, 0.1], atol=1e-12)
    np.testing.assert_allclose(symmetric_distance_error(pred, true, CS2_SWAP[:1]), [0.22, 0.18, 0.1], atol=1e-12)


def test_error_for_cs2_is_the_sorted_c_s_pairing():
    rng = np.random.default_rng(0)
    pred, true = rng.uniform(1.0, 4.0, (2, 500, 3))
    err = symmetric_distance_error(pred, true, CS2_SWAP)
    sorted_cs = np.abs(np.sort(pred[:, :2], axis=1) - np.sort(true[:, :2], axis=1)).sum(axis=1)
    np.testing.assert_allclose(err.sum(axis=1), sorted_cs + np.abs(pred[:, 2] - true[:, 2]), atol=1e-12)


def test_error_keeps_nan_frames_and_refuses_mismatched_shapes():
    true = np.array([[1.5, 1.7, 3.1], [np.nan] * 3])
    err = symmetric_distance_error(true, true, CS2_SWAP)
    assert np.array_equal(err[0], np.zeros(3)) and np.all(np.isnan(err[1]))
    with pytest.raises(InputError, match="do not match"):
        symmetric_distance_error(true[:, :2], true, CS2_SWAP)
    with pytest.raises(InputError, match="4 atoms do not fit 3 pairs"):
        symmetric_distance_error(true, true, np.arange(4)[None])


# --------------------------------------------------------------------------- resampling


def test_resampling_is_exact_for_linear_motion_on_any_steps():
    rng = np.random.default_rng(3)
    time = np.cumsum(rng.uniform(0.3, 0.9, 120)) - 0.3  # irregular steps, starting at 0
    time[0] = 0.0
    x0, v = rng.standard_normal((2, 3, 3))
    pos = x0 + v * time[:, None, None] * 0.01
    ens = resample_ensemble(_ensemble(pos[None], time, [120]), 5.0)
    grid = 5.0 * np.arange(int(time[-1] // 5.0) + 1)
    np.testing.assert_array_equal(ens.time, grid)
    assert ens.length.tolist() == [grid.size]
    np.testing.assert_allclose(ens.positions[0], x0 + v * grid[:, None, None] * 0.01, rtol=0, atol=1e-13)


def test_resampling_onto_the_runs_own_steps_picks_them_exactly_and_cuts_each_run():
    pos = np.stack([cs2_positions(201, seed=4), cs2_positions(201, dissociate=True, seed=5)])
    pos[1, 123:] = np.nan  # a run that ends early, at 61 fs
    time = 0.5 * np.arange(201)
    ens = resample_ensemble(_ensemble(pos, time, [201, 123]), 5.0)
    assert ens.length.tolist() == [21, 13]  # 0..100 fs, 0..60 fs
    np.testing.assert_array_equal(ens.positions[0], pos[0, ::10])
    np.testing.assert_array_equal(ens.positions[1, :13], pos[1, :121:10])
    assert np.all(np.isnan(ens.positions[1, 13:]))
    assert resample_ensemble(_ensemble(pos, time, [201, 123]), 5.0, tmax=30.0).length.tolist() == [7, 7]


# --------------------------------------------------------------------------- the whole evaluation


def test_a_method_that_knows_the_foreign_frames_transfers_with_zero_error():
    """Nearest frame with the foreign runs' own frames as library: every frame found exactly, so the error is 0.

    Against the ground-state reference: with each run's own first frame every run's ΔS(t0) is 0, and the
    first frames of all runs would tie.
    """
    pos = np.stack([cs2_positions(201, seed=6), cs2_positions(201, dissociate=True, seed=7)])
    fine = _ensemble(pos, 0.5 * np.arange(201), [201, 201])
    spec = SignalSpec(q_grid(n_q=30), reference="ground")
    method = _fitted_nearest(resample_ensemble(fine, 5.0), spec)
    result = transfer(method, fine, dt=5.0)
    summary = result.summary()
    assert result.dataset.spec == method.spec_ and result.dataset.n_frames == 21
    assert summary["transfer_error"] == 0.0 and summary["transfer_error_runs"] == [0.0, 0.0]
    from _fixtures import relabelling_tolerance

    # per frame, round-off may pick the other S labelling of this near-linear CS2 (_fixtures.relabelling_tolerance);
    # a wrong frame costs tenths of an Angstrom
    ds = result.dataset
    assert summary["rmsd_sym_sum"] < ds.mask.sum() * relabelling_tolerance(ds.positions, ds.masses) and summary["ssr_sum"] == 0.0


def test_error_per_run_is_the_mean_of_its_frames_and_the_score_the_mean_of_the_runs():
    pos = np.stack([cs2_positions(201, seed=8), cs2_positions(201, seed=9)])
    lib = _ensemble(pos[:1], 0.5 * np.arange(201), [201])
    spec = SignalSpec(q_grid(n_q=30))
    method = _fitted_nearest(resample_ensemble(lib, 5.0), spec)
    result = transfer(method, _ensemble(pos, 0.5 * np.arange(201), [201, 81]), dt=5.0)
    frame = result.error.mean(axis=-1)
    runs = [frame[0, :21].mean(), frame[1, :9].mean()]
    assert result.dataset.length.tolist() == [21, 9]
    assert result.summary()["transfer_error_runs"][0] == 0.0  # its own frames
    np.testing.assert_allclose(result.run_error, runs, rtol=1e-12)
    np.testing.assert_allclose(result.summary()["transfer_error"], np.mean(runs), rtol=1e-12)
    np.testing.assert_allclose(result.summary()["transfer_error_frames"], frame[result.dataset.mask].mean(), rtol=1e-12)


def test_foreign_signals_are_made_with_the_models_spec_not_the_datasets_own():
    pos = cs2_positions(101, seed=10)[None]
    ens = _ensemble(pos, 0.5 * np.arange(101), [101])
    model_spec = SignalSpec(q_grid(n_q=20), reference="first", inelastic=False)
    method = _fitted_nearest(resample_ensemble(ens, 5.0), model_spec)
    other = Dataset(
        ens, **dict(zip(("dS", "I_ref", "spec"), simulate(CS2_SYMBOLS, pos, [101], ens.time, SignalSpec(q_grid(n_q=7)))))
    )
    ds = foreign_dataset(method, other.ensemble, dt=5.0)
    assert ds.spec == model_spec
    np.testing.assert_array_equal(ds.dS, simulate(CS2_SYMBOLS, pos[:, ::10], [11], ds.time, model_spec).dS)


def test_same_atoms_in_another_order_are_put_in_the_models_order():
    pos = cs2_positions(101, seed=11)[None]
    ens = _ensemble(pos, 0.5 * np.arange(101), [101])
    method = _fitted_nearest(resample_ensemble(ens, 5.0), SignalSpec(q_grid(n_q=20)))
    shuffled = _ensemble(pos[:, :, [1, 0, 2]], ens.time, [101], symbols=("S", "C", "S"))
    result = transfer(method, shuffled, dt=5.0)
    assert result.dataset.symbols == CS2_SYMBOLS and result.summary()["transfer_error"] == 0.0


def test_a_foreign_run_of_another_molecule_is_refused_in_one_line():
    pos = cs2_positions(41, seed=12)[None]
    method = _fitted_nearest(resample_ensemble(_ensemble(pos, 0.5 * np.arange(41), [41]), 5.0), SignalSpec(q_grid(n_q=10)))
    ocs = _ensemble(pos, 0.5 * np.arange(41), [41], symbols=("C", "O", "S"))
    with pytest.raises(InputError) as info:
        transfer(method, ocs, dt=5.0)
    message = str(info.value)
    assert "\n" not in message and "COS (C O S)" in message and "CS2 (C S S)" in message


def test_cli_scores_sharc_folders_and_refuses_another_molecule(tmp_path, capsys):
    pos = np.stack([cs2_positions(101, seed=13), cs2_positions(101, dissociate=True, seed=14)])
    runs = tmp_path / "runs"
    for k in range(2):
        write_sharc(runs / f"TRAJ_{k:05d}", pos[k])
    ens = read_foreign(runs)
    method = _fitted_nearest(resample_ensemble(ens, 5.0), SignalSpec(q_grid(n_q=20), reference="ground"))
    model = method.save(tmp_path / "m.safetensors")
    code, out, err = run_cli(["transfer", model, runs, "--dt", "5", "-o", tmp_path / "t.json"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "t.json").read_text())
    assert summary["transfer_error"] == 0.0 and summary["runs"] == 2 and "0.0000 Å" in out
    write_sharc(tmp_path / "ocs" / "TRAJ_00001", pos[0], symbols=("C", "O", "S"))
    code, out, err = run_cli(["transfer", model, tmp_path / "ocs", "--dt", "5", "-o", tmp_path / "u.json"], capsys)
    assert_one_line_error(code, err, "the foreign trajectories are of COS")
    assert not (tmp_path / "u.json").exists()
    # the model file records its training frame interval (5 fs): no --dt needed, the same answer
    code, out, err = run_cli(["transfer", model, runs, "-o", tmp_path / "v.json"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "v.json").read_text())["transfer_error_runs"] == summary["transfer_error_runs"]
    # a model file written before the frame interval was recorded needs --dt
    name, config, arrays = read_model_file(model)
    del config["dt_fs"]
    old = write_model_file(tmp_path / "old.safetensors", name, config, arrays)
    code, out, err = run_cli(["transfer", old, runs, "-o", tmp_path / "u.json"], capsys)
    assert_one_line_error(code, err, "give dt")
    assert not (tmp_path / "u.json").exists()


def test_real_sharc_runs_transfer_exactly_to_a_library_of_their_own_frames(sharc_cs2):
    ens = read_foreign(sharc_cs2)
    assert ens.symbols == CS2_SYMBOLS and ens.length.tolist() == [2001, 1027]
    spec = SignalSpec(q_grid(n_q=25), reference="ground")  # each run's first frame would make every ΔS(t0) 0, a tie
    method = _fitted_nearest(resample_ensemble(ens, 5.0), spec)
    result = transfer(method, ens, dt=5.0)
    assert result.dataset.length.tolist() == [201, 103]  # 1000 fs; 510 fs of a run that stops at 513 fs
    assert result.dataset.dissociated.tolist() == [False, True]
    assert result.summary()["transfer_error"] == 0.0
