"""Per-frame metrics (RMSD, SSR), their sums and per-time-step means, and the study's figures."""

from __future__ import annotations

import numpy as np
import pytest

from molmovie import Dataset
from molmovie.evaluation import evaluate, heavy_pairs
from molmovie.evaluation.figures import plot_distance_trace, plot_per_time_step, plot_rmsd_sums, plot_signals
from molmovie.scattering import SignalSpec, q_grid, simulate_signals
from molmovie.trajectories import Ensemble

from _fixtures import CS2_SYMBOLS, cs2_positions, mds_tolerance, relabelling_tolerance


@pytest.fixture
def cs2_dataset():
    pos = np.stack([cs2_positions(30, seed=0), cs2_positions(30, dissociate=True, seed=1)])
    length = np.array([30, 20])
    pos[1, 20:] = np.nan
    ens = Ensemble("cs2", CS2_SYMBOLS, np.arange(30) * 0.5, pos, length, [False, True], ["a", "b"])
    q = q_grid(q_min=0.5, q_max=5.0, n_q=25)
    dS, I_ref = simulate_signals(ens.symbols, ens.positions, ens.length, ens.time, q)
    return Dataset(ens, dS=dS, I_ref=I_ref, spec=SignalSpec(q, inelastic=True, reference="first"))


def sym_tol(ds) -> float:
    """Round-off of an exact answer's symmetry-aware RMSD (:func:`_fixtures.relabelling_tolerance`)."""
    return relabelling_tolerance(ds.positions, ds.masses)


def test_exact_prediction_scores_zero(cs2_dataset):
    ev = evaluate(cs2_dataset.distances, cs2_dataset)
    mask = cs2_dataset.mask
    # exact distances: MDS's round-off only (_fixtures.mds_tolerance, ~5e-10 A here; 9e-13 measured)
    assert np.nanmax(ev.rmsd) < mds_tolerance(cs2_dataset.positions) and np.nanmax(ev.rmsd_sym) < sym_tol(cs2_dataset)
    # the signal of the same distances by the same arithmetic: identical, or a few eps of |dS| ~ 0.1 per q (SSR ~ 1e-30)
    assert np.nanmax(ev.ssr) < 1e-20
    # padded frames never count
    assert np.isnan(ev.rmsd[~mask]).all() and np.isnan(ev.ssr[~mask]).all()
    s = ev.summary()
    assert s["frames"] == 50 and s["rmsd_sum"] < 50e-8


def test_swapped_sulfurs_are_wrong_labelled_but_right_symmetry_aware(cs2_dataset):
    d = cs2_dataset.distances  # pairs (C,S1), (C,S2), (S1,S2)
    swapped = d[..., [1, 0, 2]]
    ev = evaluate(swapped, cs2_dataset)
    # the dissociating run: the far S is mislabelled, so the labelled RMSD is large late in the run
    assert ev.rmsd[1, 19] > 0.2  # S atoms 1.6 and 2.5 A from C: swapping them moves each by ~0.9 A
    assert np.nanmax(ev.rmsd_sym) < sym_tol(cs2_dataset)
    # the signal cannot tell: SSR stays zero (the Debye sum in another order: a few eps of |dS| per q)
    assert np.nanmax(ev.ssr) < 1e-20


def test_per_trajectory_relabelling_allows_one_swap_per_trajectory(cs2_dataset):
    d = cs2_dataset.distances
    swapped = d[..., [1, 0, 2]]
    ev = evaluate(swapped, cs2_dataset)  # the same swap in every frame: one relabelling undoes it
    assert np.nanmax(ev.rmsd_sym_traj) < sym_tol(cs2_dataset)
    flicker = d.copy()
    flicker[:, 1::2] = swapped[:, 1::2]  # S atoms swapped in odd frames only
    ev = evaluate(flicker, cs2_dataset)
    assert np.nanmax(ev.rmsd_sym) < sym_tol(cs2_dataset)  # frame by frame, every swap is forgiven
    # one relabelling per trajectory: of the two labellings, the one with the smaller RMSD sum,
    # paying the full labelled RMSD on the frames it gets wrong
    as_is, relabelled = ev.rmsd[1, :20], evaluate(flicker[..., [1, 0, 2]], cs2_dataset).rmsd[1, :20]
    assert relabelled.sum() < as_is.sum()  # the swapped (odd) frames are the later, wider-apart ones
    # the same labelling, its coordinates from two MDS runs on distances in another order (5e-13 A measured)
    np.testing.assert_allclose(ev.rmsd_sym_traj[1, :20], relabelled, atol=mds_tolerance(cs2_dataset.positions))
    assert ev.rmsd_sym_traj[1, 18] > 0.2 and ev.rmsd_sym_traj[1, 19] < sym_tol(cs2_dataset)
    assert np.isnan(ev.rmsd_sym_traj[1, 20:]).all()
    s = ev.summary()
    # exact arithmetic gives per frame <= per trajectory <= labelled; each choice is made on QCP residuals,
    # which may pick a labelling up to sym_tol worse in a frame
    slack = s["frames"] * sym_tol(cs2_dataset)
    assert s["rmsd_sym_sum"] <= s["rmsd_sym_traj_sum"] + slack and s["rmsd_sym_traj_sum"] <= s["rmsd_sum"] + slack
    assert s["rmsd_sym_traj_sum"] < s["rmsd_sum"] - 0.3 and s["rmsd_sym_sum"] < s["rmsd_sym_traj_sum"] - 3.0  # and far apart here


def test_ssr_and_sums_match_a_direct_computation(cs2_dataset):
    rng = np.random.default_rng(5)
    pred = cs2_dataset.distances + rng.normal(0, 0.05, cs2_dataset.distances.shape)
    ev = evaluate(pred, cs2_dataset)
    from molmovie.scattering import intensity_from_distances

    m, t = 1, 7
    I = intensity_from_distances(CS2_SYMBOLS, pred[m, t], cs2_dataset.q)
    dS = (I - cs2_dataset.I_ref[m]) / cs2_dataset.I_ref[m]
    assert ev.ssr[m, t] == pytest.approx(np.sum((dS - cs2_dataset.dS[m, t]) ** 2), rel=1e-10)
    s = ev.summary()
    assert s["ssr_sum"] == pytest.approx(np.nansum(ev.ssr))
    assert s["rmsd_sum"] == pytest.approx(np.sum(ev.rmsd[cs2_dataset.mask]))
    per_t = ev.per_time_step()
    assert per_t["rmsd"][25] == pytest.approx(ev.rmsd[0, 25])  # only trajectory 0 is valid there
    assert per_t["rmsd"][3] == pytest.approx(ev.rmsd[:, 3].mean())
    # all CS2 pairs are heavy-atom pairs; heavy_pairs of C2H4 is the C-C pair only
    assert heavy_pairs(CS2_SYMBOLS).tolist() == [0, 1, 2]
    assert heavy_pairs(("C", "C", "H", "H", "H", "H")).tolist() == [0]


def test_figures_draw_the_numbers_given():
    import matplotlib.pyplot as plt

    fig = plot_rmsd_sums(["A", "B"], {"labelled": {"nearest": [3.0, 4.0], "vrnn": [1.0, 2.0]}})
    heights = sorted(p.get_height() for p in fig.axes[0].patches)
    assert heights == [1.0, 2.0, 3.0, 4.0]
    plt.close(fig)
    t = np.arange(5.0)
    fig = plot_distance_trace(t, t, {"vrnn": (t + 1, np.full(5, 0.5))}, pair_label="O–N")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "O–N distance (Å)" and ax.get_xlabel() == "time (fs)"
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), t + 1)
    plt.close(fig)
    fig = plot_per_time_step(t, {"nearest": {"rmsd": t, "ssr": t + 1}})
    assert fig.axes[1].get_yscale() == "log"
    plt.close(fig)
    fig = plot_signals(t, np.arange(3.0), {"a": np.full((5, 3), 0.01), "b": np.full((5, 3), -0.02)})
    assert fig.axes[-1].get_ylabel() == "ΔS (%)"
    plt.close(fig)


def test_choose_pair_by_label_by_elements_or_by_largest_variance():
    from molmovie import InputError
    from molmovie.evaluation.figures import choose_pair

    nmm = ("C", "N", "C", "C", "O", "C")
    # pairs in triu order: (0,1) C1-N2, (0,2), (0,3), (0,4) C1-O5, (0,5), (1,2), (1,3), (1,4) N2-O5, ...
    assert choose_pair(nmm, name="O-N") == (7, "N2-O5") == choose_pair(nmm, name="N–O")
    assert choose_pair(nmm, name="N2-O5") == (7, "N2-O5")
    assert choose_pair(nmm, name="C-O") == (3, "C1-O5")  # the first such pair
    cs2 = np.ones((2, 4, 3))
    cs2[1, :, 2] = [1.0, 2.0, 3.0, np.nan]  # S2-S3 varies, and has a frame past a length
    cs2[0, :, 1] = 1.5
    assert choose_pair(CS2_SYMBOLS, cs2) == (2, "S2-S3")
    with pytest.raises(InputError, match=r"no pair 'O-O'; its pairs are C1-S2, C1-S3, S2-S3"):
        choose_pair(CS2_SYMBOLS, name="O-O")
