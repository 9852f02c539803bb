"""The Viterbi-decoded nearest frames: exact k-best search, exact path, and the baseline as its limits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from molmovie.inversion import NearestReference, NearestViterbi, get_method, load_method, nearest_frames, nearest_k_frames
from molmovie.inversion._viterbi import viterbi_path
from molmovie.io import write_dataset

from _fixtures import assert_one_line_error, run_cli
from test_inversion import make_dataset


@pytest.fixture(scope="module")
def data():
    ds = make_dataset(M=30, T=12, Q=16, dissociate=0.4, seed=5)
    return ds.split("train"), ds.split("test")


def brute_k(query, library, k):
    """The definition: all SSRs, sorted by SSR then by row."""
    index = np.empty((len(query), k), dtype=np.int64)
    ssr = np.empty((len(query), k))
    for i, a in enumerate(query):
        s = np.array([np.sum((a - b) ** 2) for b in library])
        order = np.lexsort((np.arange(len(library)), s))[:k]
        index[i], ssr[i] = order, s[order]
    return index, ssr


def path_cost(unary, states, lam, path):
    x = states[np.arange(len(path)), path]
    return unary[np.arange(len(path)), path].sum() + lam * np.sum((x[1:] - x[:-1]) ** 2)


# ----------------------------------------------------------------------------- the k-best search


@pytest.mark.parametrize("seed", [0, 1])
def test_k_nearest_equals_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    library = 0.05 * rng.standard_normal((300, 12))
    library[40:52] = library[7]  # twelve exact duplicates: more than k, ties to the lowest rows
    library[200] = library[100] + 1e-12  # near-ties far below the float64 bound
    library[-1] = 3.0  # one large frame loosens the bound for everyone
    query = np.concatenate(
        [library[[7, 100, 200]], library[rng.integers(0, 300, 20)] + 1e-9, 0.05 * rng.standard_normal((20, 12))]
    )
    want_index, want_ssr = brute_k(query, library, 5)
    for memory_mb in (1e-3, 0.05, 256.0):  # one query per block, several blocks, one block
        index, ssr = nearest_k_frames(query, library, 5, memory_mb=memory_mb)
        np.testing.assert_array_equal(index, want_index)
        np.testing.assert_array_equal(ssr, want_ssr)
    np.testing.assert_array_equal(want_index[0], [7, 40, 41, 42, 43])
    one, one_ssr = nearest_k_frames(query, library, 1)
    near, near_ssr = nearest_frames(query, library)
    np.testing.assert_array_equal(one[:, 0], near)
    np.testing.assert_array_equal(one_ssr[:, 0], near_ssr)
    every, _ = nearest_k_frames(query[:2], library[:4], 10)  # k larger than the library: all of it
    assert every.shape == (2, 4) and sorted(every[1]) == [0, 1, 2, 3]


# ----------------------------------------------------------------------------- the path


def test_hand_made_path_is_the_known_optimum():
    # one distance; frame costs favour 0, 5, 0 one by one (greedy path 0 -> 5 -> 0, jumps 25 + 25),
    # but the path 0 -> 0 -> 0 in distance pays only the middle frame's 3: total 3 against 1 + 50 lam
    unary = np.array([[[0.0, 10.0], [1.0, 3.0], [0.0, 10.0]]])
    states = np.array([[[[0.0], [5.0]], [[5.0], [0.0]], [[0.0], [5.0]]]])
    np.testing.assert_array_equal(viterbi_path(unary, states, 1.0), [[0, 1, 0]])
    np.testing.assert_array_equal(viterbi_path(unary, states, 0.0), [[0, 0, 0]])  # lam = 0: each frame's best
    np.testing.assert_array_equal(viterbi_path(unary, states, 0.03), [[0, 0, 0]])  # 1 + 1.5 < 3
    np.testing.assert_array_equal(viterbi_path(unary, states, 0.05), [[0, 1, 0]])  # 1 + 2.5 > 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_path_equals_brute_force_over_all_paths(seed):
    rng = np.random.default_rng(seed)
    M, T, k, P = 6, 5, 3, 2
    unary = rng.exponential(1.0, (M, T, k))
    states = rng.normal(0, 1, (M, T, k, P))
    lengths = np.array([5, 4, 1, 3, 5, 2])
    for lam in (0.0, 0.3, 1.0, 10.0):
        path = viterbi_path(unary, states, lam, lengths)
        for m in range(M):
            L = lengths[m]
            costs = {p: path_cost(unary[m, :L], states[m, :L], lam, np.array(p)) for p in itertools.product(range(k), repeat=L)}
            best = min(costs, key=costs.get)
            assert tuple(path[m, :L]) == best  # random costs: the optimum is unique
            assert np.all(path[m, L:] == 0)


# ----------------------------------------------------------------------------- the method


def test_lam_zero_and_k_one_are_the_baseline_exactly(data):
    train, test = data
    want = NearestReference().fit(train).predict(test.dS, q=test.q, lengths=test.length).distances
    for settings in (dict(lam=0.0, k=10), dict(lam=1.0, k=1, symmetry=False), dict(lam=0.0, k=1), dict(lam=0.0, symmetry=False)):
        got = NearestViterbi(**settings).fit(train).predict(test.dS, q=test.q, lengths=test.length).distances
        np.testing.assert_array_equal(got, want)
    # k = 1 with relabelling: each frame is the nearest frame, its two C-S distances perhaps swapped
    got = NearestViterbi(k=1, lam=1.0).fit(train).predict(test.dS, q=test.q, lengths=test.length).distances
    np.testing.assert_array_equal(np.sort(got[test.mask][:, :2], axis=1), np.sort(want[test.mask][:, :2], axis=1))
    np.testing.assert_array_equal(got[..., 2], want[..., 2])


def test_the_path_is_the_optimum_over_the_candidates_and_differs_from_the_baseline(data):
    train, test = data
    lengths = np.minimum(test.length, 6)  # short enough to try all 3**6 paths
    mask = np.arange(test.n_frames)[None, :] < lengths[:, None]
    model = NearestViterbi(k=3, lam=1.0, symmetry=False).fit(train)
    index, relabel, ssr = model.decode(test.dS, q=test.q, lengths=lengths)
    assert np.all(relabel[mask] == 0) and np.all(relabel[~mask] == -1)
    base, _ = NearestReference().fit(train).query(test.dS, q=test.q, lengths=lengths)
    cand, cand_ssr = nearest_k_frames(test.dS[mask], train.dS[train.mask], 3)
    R = train.distances[train.mask] / np.sqrt(model.jump_scale_)
    start = np.r_[0, np.cumsum(lengths)[:-1]]
    for m, (s0, L) in enumerate(zip(start, lengths)):
        c, u = cand[s0 : s0 + L], cand_ssr[s0 : s0 + L]
        u = u / max(model.ssr_scale_, np.median(u[:, 0]))
        chosen = np.array([list(c[t]).index(index[m, t]) for t in range(L)])
        np.testing.assert_array_equal(ssr[m, :L], cand_ssr[s0 : s0 + L][np.arange(L), chosen])
        best = min(path_cost(u, R[c], 1.0, np.array(p)) for p in itertools.product(range(3), repeat=L))
        assert path_cost(u, R[c], 1.0, chosen) == pytest.approx(best, rel=1e-12)
        assert np.all(index[m, L:] == -1) and np.all(np.isnan(ssr[m, L:]))
    assert np.any(index[mask] != base[mask])  # the dynamics term does change some frames on this data


def test_with_relabelling_the_path_is_the_optimum_over_candidates_and_mirror_images(data):
    train, test = data
    lengths = np.minimum(test.length, 5)  # all (3 candidates x 2 labellings)**5 paths
    mask = np.arange(test.n_frames)[None, :] < lengths[:, None]
    sym = NearestViterbi(k=3, lam=1.0, symmetry=True).fit(train)
    plain = NearestViterbi(k=3, lam=1.0, symmetry=False).fit(train)
    # "auto" relabels only when a training trajectory dissociates
    auto = NearestViterbi(k=3, lam=1.0).fit(train).pair_permutations_
    np.testing.assert_array_equal(auto, sym.pair_permutations_ if train.dissociated.any() else [[0, 1, 2]])
    np.testing.assert_array_equal(sym.pair_permutations_, [[0, 1, 2], [1, 0, 2]])  # S2 <-> S3 swaps C1-S2 and C1-S3
    index, relabel, ssr = sym.decode(test.dS, q=test.q, lengths=lengths)
    pred = sym.predict(test.dS, q=test.q, lengths=lengths).distances
    cand, cand_ssr = nearest_k_frames(test.dS[mask], train.dS[train.mask], 3)
    R = train.distances[train.mask]
    start = np.r_[0, np.cumsum(lengths)[:-1]]
    for m, (s0, L) in enumerate(zip(start, lengths)):
        c, u = cand[s0 : s0 + L], cand_ssr[s0 : s0 + L]
        u = np.repeat(u / max(sym.ssr_scale_, np.median(u[:, 0])), 2, axis=1)  # states: candidate-major, then labelling
        states = np.stack([R[c], R[c][..., [1, 0, 2]]], axis=2).reshape(L, 6, 3) / np.sqrt(sym.jump_scale_)
        chosen = np.array([2 * list(c[t]).index(index[m, t]) + relabel[m, t] for t in range(L)])
        best = min(path_cost(u, states, 1.0, np.array(p)) for p in itertools.product(range(6), repeat=L))
        assert path_cost(u, states, 1.0, chosen) == pytest.approx(best, rel=1e-12)
        # the library's distances, divided by d and multiplied by it again here: two roundings
        np.testing.assert_allclose(
            pred[m, :L], states[np.arange(L), chosen] * np.sqrt(sym.jump_scale_), rtol=2 * np.finfo(float).eps, atol=0
        )
        # more states can only lower the least cost
        p_index, _, _ = plain.decode(test.dS[m : m + 1], q=test.q, lengths=lengths[m : m + 1])
        p_chosen = np.array([2 * list(c[t]).index(p_index[0, t]) for t in range(L)])
        assert best <= path_cost(u, states, 1.0, p_chosen) * (1 + 1e-12)


def test_scales_are_the_training_datas(data):
    train, _ = data
    model = NearestViterbi().fit(train)
    R = train.distances
    steps = np.concatenate([np.sum(np.diff(R[m, : train.length[m]], axis=0) ** 2, axis=1) for m in range(train.n_trajectories)])
    assert model.jump_scale_ == pytest.approx(np.median(steps), rel=1e-12)
    halves = [train.dS[m, : train.length[m]] for m in range(train.n_trajectories)]
    even, odd = np.concatenate(halves[0::2]), np.concatenate(halves[1::2])
    ssr = np.concatenate([nearest_k_frames(even, odd, 1)[1][:, 0], nearest_k_frames(odd, even, 1)[1][:, 0]])
    assert model.ssr_scale_ == pytest.approx(np.median(ssr), rel=1e-12)
    assert "s² =" in model.fit_summary() and "λ = 0.3" in model.fit_summary()


def test_save_and_load_give_identical_predictions_and_scales(data, tmp_path):
    train, test = data
    model = get_method("nearest-viterbi", k=5, lam=2.0).fit(train)
    path = model.save(tmp_path / "v.safetensors")
    loaded = load_method(path)
    assert isinstance(loaded, NearestViterbi) and loaded.get_params() == model.get_params()
    assert (loaded.ssr_scale_, loaded.jump_scale_) == (model.ssr_scale_, model.jump_scale_)
    np.testing.assert_array_equal(loaded.pair_permutations_, model.pair_permutations_)
    np.testing.assert_array_equal(
        loaded.predict(test.dS, q=test.q).distances, model.predict(test.dS, q=test.q, lengths=test.length).distances
    )


def test_bad_settings_through_the_cli_are_one_line(tmp_path, capsys):
    ds = make_dataset(M=8, T=6, Q=8)
    data = write_dataset(ds, tmp_path / "cs2.h5")
    model = tmp_path / "v.safetensors"
    for bad, words in (
        ("k=0", "'k' setting must be >= 1"),
        ("lam=-2", "'lam' setting must be >= 0"),
        ("k=3.5", "'k' setting must be a whole number"),
    ):
        code, _, err = run_cli(["train", data, "--method", "nearest-viterbi", "-o", model, "--set", bad], capsys)
        assert_one_line_error(code, err, words)
        assert not model.exists()
    code, out, err = run_cli(
        ["train", data, "--method", "nearest-viterbi", "-o", model, "--set", "k=3", "--set", "lam=0.5"], capsys
    )
    assert code == 0, err
    assert load_method(model).get_params() == {"k": 3, "lam": 0.5, "symmetry": "auto", "memory_mb": 256.0}


@pytest.mark.parametrize("memory_mb", [1e-6, 2e-3])
def test_path_in_small_memory_blocks_is_the_same_path(memory_mb):
    """Blocks of one candidate row (1e-6 MB) or of a few series give the path of one block, bit for bit."""
    rng = np.random.default_rng(5)
    M, T, k, P = 4, 9, 7, 3
    unary = rng.random((M, T, k))
    states = rng.random((M, T, k, P))
    lengths = np.array([9, 4, 0, 7])
    want = viterbi_path(unary, states, 0.7, lengths)
    np.testing.assert_array_equal(viterbi_path(unary, states, 0.7, lengths, memory_mb=memory_mb), want)
