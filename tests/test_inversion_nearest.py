"""The nearest-reference baseline is exact: it equals a brute-force loop, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from molmovie.inversion import NearestReference, nearest_frames

from test_inversion import make_dataset


def brute_force(query, library):
    """The definition: for each query frame, loop over the library, keep the first strict minimum."""
    index = np.empty(len(query), dtype=np.int64)
    ssr = np.empty(len(query))
    for i, a in enumerate(query):
        best, best_j = np.inf, -1
        for j, b in enumerate(library):
            s = np.sum((a - b) ** 2)
            if s < best:
                best, best_j = s, j
        index[i], ssr[i] = best_j, best
    return index, ssr


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_brute_force_with_ties_and_near_ties(seed):
    rng = np.random.default_rng(seed)
    library = 0.05 * rng.standard_normal((400, 20))
    library[50:60] = library[7]  # exact duplicates: ties go to the lowest index
    library[200] = library[100] + 1e-12  # near-ties far below float32 resolution
    library[300] = library[100] - 1e-12
    library[-1] = 3.0  # one frame of large norm loosens the float32 bound for everyone
    query = np.concatenate(
        [
            library[[7, 55, 100, 200, 300]],
            library[rng.integers(0, 400, 40)] + 1e-9 * rng.standard_normal((40, 20)),
            0.05 * rng.standard_normal((40, 20)),
            (library[100] + library[200]) / 2 + np.zeros((1, 20)),
        ]
    )
    want_index, want_ssr = brute_force(query, library)
    for memory_mb in (1e-3, 0.05, 256.0):  # one query per block, a few blocks, one block
        index, ssr = nearest_frames(query, library, memory_mb=memory_mb)
        np.testing.assert_array_equal(index, want_index)
        np.testing.assert_array_equal(ssr, want_ssr)
    assert want_index[0] == 7 and want_index[1] == 7


def test_many_exact_ties_take_the_overflow_path():
    # 100 identical frames (more than the 64 candidates kept per query in the fast pass)
    rng = np.random.default_rng(3)
    library = np.concatenate([0.01 * rng.standard_normal((30, 8)), np.zeros((100, 8)), 0.01 * rng.standard_normal((30, 8))])
    query = np.concatenate([1e-6 * np.ones((2, 8)), np.zeros((1, 8)), library[:5]])
    index, ssr = nearest_frames(query, library)
    want_index, want_ssr = brute_force(query, library)
    np.testing.assert_array_equal(index, want_index)
    np.testing.assert_array_equal(ssr, want_ssr)
    assert index[2] == 30  # the first of the identical frames


def test_predict_answers_the_reference_frames_distances():
    ds = make_dataset(M=10, T=8, Q=12, dissociate=0.5)
    model = NearestReference().fit(ds)
    mask = ds.mask
    np.testing.assert_array_equal(model.library_, ds.dS[mask])
    np.testing.assert_array_equal(model.library_source_, np.argwhere(mask))
    # querying with a training series itself: every frame is found at distance 0 (or
    # at an identical earlier frame, as every trajectory's ΔS is 0 at t = 0)
    index, ssr = model.query(ds.dS, q=ds.q, lengths=ds.length)
    assert np.all(ssr[mask] == 0)
    pred = model.predict(ds.dS, q=ds.q, lengths=ds.length)
    R = ds.distances
    first = mask.copy()
    first[:, 0] = False
    np.testing.assert_array_equal(pred.distances[first], R[first])
    np.testing.assert_array_equal(pred.distances[:, 0], np.broadcast_to(R[0, 0], (10, 3)))  # tie -> lowest index
    assert pred.std is None
    assert np.all(index[~mask] == -1) and np.all(np.isnan(ssr[~mask]))


def test_predict_matches_brute_force_on_new_signals():
    ds = make_dataset(M=20, T=10, Q=12, seed=4)
    train, test = ds.split("train"), ds.split("test")
    model = NearestReference(memory_mb=0.01).fit(train)
    pred = model.predict(test.dS, q=test.q, lengths=test.length)
    want, _ = brute_force(test.dS[test.mask], train.dS[train.mask])
    np.testing.assert_array_equal(pred.distances[test.mask], train.distances[train.mask][want])
