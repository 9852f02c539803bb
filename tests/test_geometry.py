"""Geometry: classical MDS, Kabsch superposition, RMSD and the symmetry of equivalent atoms.

Reference answers are exact: distances of a point set must come back from MDS,
superposed copies of a structure have RMSD 0, a stretched diatomic has the
RMSD worked out by hand in the test, and the automorphism counts are derived
from the chemistry (and checked against RDKit's independent substructure matcher).
NumPy floating-point errors raise in every test (tests/conftest.py).
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest

from molmovie._errors import InputError
from molmovie.geometry import (
    align,
    automorphisms,
    coordinates_from_distances,
    distances,
    kabsch,
    n_pairs,
    pair_permutations,
    permute_distances,
    rmsd,
    rmsd_from_distances,
)
from molmovie.molecules import atomic_masses, bond_graph, builtin


def orthogonal(rng: np.random.Generator, proper: bool) -> np.ndarray:
    """A random 3x3 orthogonal matrix with determinant +1 (proper) or -1."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if (np.linalg.det(q) > 0) != proper:
        q[:, 0] *= -1
    return q


def transform(x: np.ndarray, rng: np.random.Generator, proper: bool) -> np.ndarray:
    return x @ orthogonal(rng, proper).T + rng.normal(scale=5.0, size=3)


def flattened(x: np.ndarray) -> np.ndarray:
    """x projected onto its best plane, so that it is planar to rounding."""
    c = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(c)
    return (c @ vt[:2].T) @ vt[:2]


def bent_cs2() -> tuple[np.ndarray, np.ndarray]:
    """An asymmetric bent CS2 (C, S, S): C-S 1.55 and 1.75 Angstrom, 140 degrees."""
    ang = np.deg2rad(140.0)
    pos = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.55], [1.75 * np.sin(ang), 0.0, 1.75 * np.cos(ang)]])
    return pos, atomic_masses(["C", "S", "S"])


# --------------------------------------------------------------------------
# coordinates_from_distances
# --------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(2, 21))
def test_mds_recovers_distances_of_random_point_sets(n):
    rng = np.random.default_rng(n)
    for scale in (0.5, 3.0, 40.0):
        x = rng.normal(scale=scale, size=(n, 3))
        d = distances(x)
        y = coordinates_from_distances(d)
        assert y.shape == (n, 3)
        np.testing.assert_allclose(distances(y), d, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-12 * scale)


def test_mds_degenerate_sets_are_exact_and_flat():
    cs2 = builtin("cs2").positions  # linear
    y = coordinates_from_distances(distances(cs2))
    np.testing.assert_allclose(distances(y), distances(cs2), atol=1e-14)
    assert np.all(y[:, 1:] == 0.0)  # rounding noise does not give the line a thickness

    c2h4 = flattened(builtin("c2h4").positions)  # planar
    y = coordinates_from_distances(distances(c2h4))
    np.testing.assert_allclose(distances(y), distances(c2h4), atol=1e-14)
    assert np.all(y[:, 2] == 0.0)

    y = coordinates_from_distances(np.array([1.3]))  # two atoms
    np.testing.assert_allclose(y, [[0.65, 0, 0], [-0.65, 0, 0]] if y[0, 0] > 0 else [[-0.65, 0, 0], [0.65, 0, 0]])

    assert np.all(coordinates_from_distances(np.zeros(n_pairs(4))) == 0.0)  # coincident atoms
    assert coordinates_from_distances(np.zeros(0)).shape == (1, 3)  # one atom, no pairs
    assert coordinates_from_distances(distances(cs2), n_dim=2).shape == (3, 2)


def test_mds_is_batched_over_leading_dimensions():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 7, 3))
    d = distances(x)
    y = coordinates_from_distances(d)
    assert y.shape == (2, 3, 7, 3)
    for a, b in itertools.product(range(2), range(3)):
        np.testing.assert_allclose(distances(y[a, b]), d[a, b], atol=1e-12)
        np.testing.assert_allclose(np.abs(y[a, b]), np.abs(coordinates_from_distances(d[a, b])), atol=1e-12)


def test_mds_non_euclidean_distances_give_finite_least_squares_answer():
    rng = np.random.default_rng(1)
    x = rng.normal(scale=1.5, size=(50, 9, 3))
    d = distances(x)
    broken = d * rng.uniform(0.5, 1.5, size=d.shape)
    # Make the triangle inequality fail outright in every frame: R_01 > R_02 + R_12.
    broken[:, 0] = broken[:, 1] + broken[:, 8] + 1.0
    assert np.all(broken[:, 0] > broken[:, 1] + broken[:, 8])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = coordinates_from_distances(broken)
    assert np.all(np.isfinite(y))
    # Slightly noisy distances come back close to the noisy input (MDS is stable).
    noisy = d * (1 + 1e-3 * rng.standard_normal(d.shape))
    err = np.abs(distances(coordinates_from_distances(noisy)) - noisy)
    assert err.max() < 0.02 * noisy.max()


def test_mds_nan_rows_give_nan_rows_and_leave_others_alone():
    rng = np.random.default_rng(2)
    d = distances(rng.normal(size=(4, 5, 3)))
    d[1, 3] = np.nan
    d[2] = np.nan
    d[3, 0] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = coordinates_from_distances(d)
    assert np.all(np.isnan(y[1:])) and np.all(np.isfinite(y[0]))
    np.testing.assert_allclose(y[0], coordinates_from_distances(d[0]))


def test_mds_rejects_a_length_that_is_no_pair_count():
    with pytest.raises(InputError, match="n\\(n-1\\)/2"):
        coordinates_from_distances(np.ones((3, 4)))


# --------------------------------------------------------------------------
# kabsch / align
# --------------------------------------------------------------------------


def test_kabsch_recovers_rotation_and_translation():
    rng = np.random.default_rng(3)
    p = rng.normal(size=(6, 8, 3))
    w = rng.uniform(1, 30, size=8)
    r0 = np.stack([orthogonal(rng, proper=True) for _ in range(6)])
    t0 = rng.normal(size=(6, 3))
    q = np.einsum("fab,fnb->fna", r0, p) + t0[:, None, :]
    r, t = kabsch(p, q, w)
    np.testing.assert_allclose(r, r0, atol=1e-12)
    np.testing.assert_allclose(t, t0, atol=1e-12)
    np.testing.assert_allclose(align(p, q, w), q, atol=1e-12)


def test_kabsch_is_proper_unless_reflection_is_allowed():
    rng = np.random.default_rng(4)
    p = rng.normal(size=(10, 3))
    m = orthogonal(rng, proper=False)
    q = p @ m.T
    r, _ = kabsch(p, q)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-12)
    assert np.abs(align(p, q) - q).max() > 0.1  # a rotation cannot undo a reflection
    r, t = kabsch(p, q, reflection=True)
    np.testing.assert_allclose(r, m, atol=1e-12)
    np.testing.assert_allclose(t, 0.0, atol=1e-12)


def test_kabsch_nan_frame_gives_nan():
    rng = np.random.default_rng(5)
    p = rng.normal(size=(3, 4, 3))
    p[1, 2, 0] = np.nan
    r, t = kabsch(p, p)
    assert np.all(np.isnan(r[1])) and np.all(np.isnan(t[1]))
    np.testing.assert_allclose(r[[0, 2]], np.broadcast_to(np.eye(3), (2, 3, 3)), atol=1e-12)


# --------------------------------------------------------------------------
# rmsd
# --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 4, 7, 12, 20])
def test_rmsd_is_zero_after_any_rigid_transform_or_reflection(n):
    rng = np.random.default_rng(10 + n)
    masses = rng.uniform(1.0, 40.0, size=n)
    true = rng.normal(scale=2.0, size=(6, n, 3))
    pred = np.stack([transform(x, rng, proper=bool(k % 2)) for k, x in enumerate(true)])
    assert rmsd(pred, true, masses).max() < 1e-8
    assert rmsd_from_distances(distances(pred), true, masses).max() < 1e-8
    assert rmsd_from_distances(distances(true), pred, masses).max() < 1e-8


@pytest.mark.parametrize("name", ["cs2", "c2h4", "nmm"])
def test_rmsd_from_exact_distances_of_builtin_molecules(name):
    mol = builtin(name)
    rng = np.random.default_rng(7)
    true = mol.positions if name != "c2h4" else flattened(mol.positions)
    perms = automorphisms(mol.symbols, mol.positions)
    for proper in (True, False):
        moved = transform(true, rng, proper)
        assert rmsd(moved, true, mol.masses) < 1e-8
        assert rmsd_from_distances(distances(moved), true, mol.masses) < 1e-8
        assert rmsd_from_distances(distances(moved), true, mol.masses, permutations=perms) < 1e-8


def test_rmsd_known_values_by_hand():
    # Diatomic A-B stretched from r to r + delta: after centring both on their centre
    # of mass, A moves by m_B delta / M and B by m_A delta / M, so
    # RMSD^2 = (m_A (m_B delta/M)^2 + m_B (m_A delta/M)^2) / M = m_A m_B delta^2 / M^2.
    rng = np.random.default_rng(8)
    m = atomic_masses(["O", "H"])
    true = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.97]])
    pred = transform(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.27]]), rng, proper=True)
    expected = 0.3 * math.sqrt(m[0] * m[1]) / m.sum()
    assert rmsd(pred, true, m) == pytest.approx(expected, rel=1e-12)
    assert rmsd(pred, true, m, mirror=False) == pytest.approx(expected, rel=1e-12)
    assert rmsd_from_distances(np.array([1.27]), true, m) == pytest.approx(expected, rel=1e-12)
    assert rmsd(pred, true, np.ones(2)) == pytest.approx(0.15, rel=1e-12)  # equal masses: delta / 2
    # Symmetric stretch of linear S-C-S by delta: C stays at the centre of mass,
    # each S moves by delta, RMSD = delta sqrt(2 m_S / (m_C + 2 m_S)).
    cs2 = builtin("cs2")
    stretched = cs2.positions * np.array([1.0, 1.0, (1.55011472 + 0.2) / 1.55011472])
    expected = 0.2 * math.sqrt(2 * cs2.masses[1] / cs2.masses.sum())
    assert rmsd(stretched, cs2.positions, cs2.masses) == pytest.approx(expected, rel=1e-9)


def test_rmsd_mirror_is_the_minimum_over_the_mirror_image():
    rng = np.random.default_rng(9)
    masses = rng.uniform(1.0, 20.0, size=6)
    true = rng.normal(size=(30, 6, 3))
    pred = true + 0.3 * rng.normal(size=true.shape)
    reflect = np.array([1.0, 1.0, -1.0])
    both = np.minimum(rmsd(pred, true, masses, mirror=False), rmsd(pred * reflect, true, masses, mirror=False))
    np.testing.assert_allclose(rmsd(pred, true, masses), both, rtol=1e-12)
    # A chiral structure and its enantiomer: identical for mirror=True only.
    enantiomer = transform(true[0] * reflect, rng, proper=True)
    assert rmsd(enantiomer, true[0], masses) < 1e-8
    assert rmsd(enantiomer, true[0], masses, mirror=False) > 0.05


def test_symmetry_aware_rmsd_forgives_swapped_identical_atoms():
    true, masses = bent_cs2()
    rng = np.random.default_rng(11)
    swapped = transform(true[[0, 2, 1]], rng, proper=True)
    perms = automorphisms(["C", "S", "S"], true)
    np.testing.assert_array_equal(perms, [[0, 1, 2], [0, 2, 1]])
    assert rmsd(swapped, true, masses) > 0.05
    assert rmsd(swapped, true, masses, permutations=perms) < 1e-8
    d = distances(swapped)
    assert rmsd_from_distances(d, true, masses) > 0.05
    assert rmsd_from_distances(d, true, masses, permutations=perms) < 1e-8
    # The identity is always among the candidates, so the swap alone also works.
    assert rmsd(swapped, true, masses, permutations=[[0, 2, 1]]) < 1e-8
    assert rmsd(true, true, masses, permutations=[[0, 2, 1]]) < 1e-8


@pytest.mark.parametrize("mirror", [True, False])
def test_symmetry_aware_rmsd_equals_brute_force_minimum(mirror):
    mol = builtin("nmm")
    perms = automorphisms(mol.symbols, mol.positions)
    rng = np.random.default_rng(12)
    f = 40
    true = mol.positions + 0.1 * rng.normal(size=(f, mol.n_atoms, 3))
    # Predictions: the truth relabelled by a random automorphism, noisy, moved.
    relabel = perms[rng.integers(0, len(perms), size=f)]
    pred = np.take_along_axis(true, relabel[:, :, None], axis=1) + 0.1 * rng.normal(size=true.shape)
    pred = np.stack([transform(x, rng, proper=True) for x in pred])
    fast = rmsd(pred, true, mol.masses, mirror=mirror, permutations=perms)
    brute = np.min([rmsd(pred[:, p], true, mol.masses, mirror=mirror) for p in perms], axis=0)
    np.testing.assert_allclose(fast, brute, rtol=1e-12)
    labelled = rmsd(pred, true, mol.masses, mirror=mirror)
    assert np.all(fast <= labelled + 1e-12)
    assert np.mean(fast < labelled - 0.05) > 0.5  # relabelling matters for most frames
    # Permutations that do not preserve masses take the general path.
    arbitrary = np.stack([rng.permutation(mol.n_atoms) for _ in range(7)])
    fast = rmsd(pred, true, mol.masses, mirror=mirror, permutations=arbitrary)
    brute = np.min([rmsd(pred[:, p], true, mol.masses, mirror=mirror) for p in [np.arange(18), *arbitrary]], axis=0)
    np.testing.assert_allclose(fast, brute, rtol=1e-12)


def test_rmsd_nan_frames_give_nan_without_warnings():
    true, masses = bent_cs2()
    rng = np.random.default_rng(13)
    pred = true + 0.1 * rng.normal(size=(5, 3, 3))
    truth = np.broadcast_to(true, pred.shape).copy()
    pred[1, 0, 2] = np.nan
    truth[3] = np.nan
    perms = automorphisms(["C", "S", "S"], true)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for kw in ({}, {"permutations": perms}):
            r = rmsd(pred, truth, masses, **kw)
            assert np.all(np.isnan(r[[1, 3]])) and np.all(np.isfinite(r[[0, 2, 4]]))
            np.testing.assert_allclose(r[[0, 2, 4]], rmsd(pred[[0, 2, 4]], true, masses, **kw), rtol=1e-12)
            d = distances(pred)
            r = rmsd_from_distances(d, truth, masses, **kw)
            assert np.all(np.isnan(r[[1, 3]])) and np.all(np.isfinite(r[[0, 2, 4]]))


def test_rmsd_of_non_euclidean_distances_is_finite():
    mol = builtin("nmm")
    rng = np.random.default_rng(14)
    d = distances(mol.positions) * rng.uniform(0.3, 2.0, size=(20, n_pairs(mol.n_atoms)))
    r = rmsd_from_distances(d, mol.positions, mol.masses, permutations=automorphisms(mol.symbols, mol.positions))
    assert r.shape == (20,) and np.all(np.isfinite(r)) and np.all(r > 0.05)


def test_rmsd_broadcasts_and_validates():
    true, masses = bent_cs2()
    pred = np.broadcast_to(true, (4, 2, 3, 3))
    assert rmsd(pred, true, masses).shape == (4, 2)
    assert rmsd(true, true, masses).shape == ()
    with pytest.raises(InputError, match="masses"):
        rmsd(true, true, masses[:2])
    with pytest.raises(InputError, match="same number of atoms"):
        rmsd(true[:2], true, masses)
    with pytest.raises(InputError, match="permutation"):
        rmsd(true, true, masses, permutations=[[0, 1, 1]])
    with pytest.raises(InputError, match="pred_distances"):
        rmsd_from_distances(np.ones(2), true, masses)


# --------------------------------------------------------------------------
# automorphisms and their action on distances
# --------------------------------------------------------------------------


def check_automorphism_group(symbols, positions, perms):
    adj = bond_graph(symbols, positions)
    n = len(symbols)
    np.testing.assert_array_equal(perms[0], np.arange(n))
    assert len({tuple(p) for p in perms}) == len(perms)
    for p in perms:
        assert sorted(p) == list(range(n))
        assert [symbols[i] for i in p] == list(symbols)
        np.testing.assert_array_equal(adj[np.ix_(p, p)], adj)
    group = {tuple(p) for p in perms}
    for a, b in itertools.product(perms[:12], perms):
        assert tuple(a[b]) in group  # closed under composition


def test_automorphism_counts_of_builtin_molecules():
    from rdkit import Chem

    counts = {}
    for name in ("cs2", "c2h4", "nmm"):
        mol = builtin(name)
        perms = automorphisms(mol.symbols, mol.positions)
        check_automorphism_group(mol.symbols, mol.positions, perms)
        counts[name] = len(perms)
        # RDKit's substructure matcher, an independent implementation, agrees.
        rd = Chem.AddHs(Chem.MolFromSmiles(mol.smiles))
        assert len(rd.GetSubstructMatches(rd, uniquify=False, maxMatches=100000)) == len(perms)
    # CS2: swap the two S. C2H4: swap the Hs on either C (2 x 2), swap the CH2 groups (x 2).
    # NMM: methyl Hs 3! = 6, the Hs of each of the 4 ring CH2 2^4 = 16, the ring's
    # mirror through N...O exchanging C2/C6 and C3/C5 with their Hs x 2: 6 * 16 * 2 = 192.
    assert counts == {"cs2": 2, "c2h4": 8, "nmm": 3 * 2 * 2**4 * 2}


def test_automorphisms_cap_keeps_identity_and_warns():
    mol = builtin("nmm")
    with pytest.warns(UserWarning, match="more than 10 automorphisms"):
        perms = automorphisms(mol.symbols, mol.positions, max_count=10)
    assert perms.shape == (10, 18)
    adj = bond_graph(mol.symbols, mol.positions)
    np.testing.assert_array_equal(perms[0], np.arange(18))
    for p in perms:
        np.testing.assert_array_equal(adj[np.ix_(p, p)], adj)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(automorphisms(mol.symbols, mol.positions, max_count=192)) == 192


def test_pair_permutations_match_distances_of_relabelled_positions():
    rng = np.random.default_rng(15)
    x = rng.normal(size=(5, 7, 3))
    perms = np.stack([rng.permutation(7) for _ in range(6)])
    d = distances(x)
    pp = pair_permutations(perms)
    assert pp.shape == (6, n_pairs(7))
    for p, idx in zip(perms, pp):
        np.testing.assert_array_equal(d[..., idx], distances(x[:, p]))
        np.testing.assert_array_equal(permute_distances(d, p), distances(x[:, p]))
    mol = builtin("nmm")
    perms = automorphisms(mol.symbols, mol.positions)
    frames = mol.positions + 0.1 * rng.normal(size=(3, 18, 3))
    for p, idx in zip(perms, pair_permutations(perms)):
        np.testing.assert_array_equal(distances(frames)[:, idx], distances(frames[:, p]))
    with pytest.raises(InputError, match="permutation"):
        pair_permutations([[0, 0, 1]])
    with pytest.raises(InputError, match="distances"):
        permute_distances(np.ones(4), [0, 1, 2])


def test_relabelling_per_trajectory_is_the_brute_force_choice():
    from molmovie.geometry import relabelling_per_trajectory

    mol = builtin("c2h4")
    perms = automorphisms(mol.symbols, mol.positions)  # 8: H swaps and the C=C flip
    rng = np.random.default_rng(4)
    M, T = 5, 7
    true = mol.positions + 0.05 * rng.normal(size=(M, T, 6, 3))
    # each trajectory predicted with one relabelling (and noise, a rotation, a mirror image)
    from scipy.spatial.transform import Rotation

    rot = Rotation.random(random_state=1).as_matrix() @ np.diag([1.0, 1.0, -1.0])
    chosen = rng.integers(len(perms), size=M)
    pred = np.stack([true[m][:, np.argsort(perms[chosen[m]]), :] for m in range(M)]) @ rot.T
    pred += 0.02 * rng.normal(size=pred.shape)
    pred[2, 3:] = np.nan  # a shorter trajectory
    cands, best = relabelling_per_trajectory(pred, true, mol.masses, perms)
    assert np.array_equal(cands[0], np.arange(6)) and len(cands) == len(perms)
    for m in range(M):  # brute force: labelled RMSD (Kabsch) of every relabelling, summed over valid frames
        sums = [np.nansum(rmsd(pred[m][:, c, :], true[m], mol.masses)) for c in cands]
        assert best[m] == int(np.argmin(sums)), (m, sums)
        # and it undoes the relabelling applied above: what is left is the noise
        assert np.nanmax(rmsd(pred[m][:, cands[best[m]], :], true[m], mol.masses)) < 0.1


def test_best_relabellings_choose_per_frame_as_rmsd_does_and_per_trajectory_as_the_sum_does():
    from molmovie.geometry import best_relabellings, relabelling_per_trajectory

    mol = builtin("c2h4")
    perms = automorphisms(mol.symbols, mol.positions)
    rng = np.random.default_rng(5)
    M, T = 4, 6
    true = mol.positions + 0.05 * rng.normal(size=(M, T, 6, 3))
    # every frame relabelled at random: the per-frame and per-trajectory choices differ
    pred = np.stack([[true[m, t][np.argsort(perms[rng.integers(len(perms))])] for t in range(T)] for m in range(M)])
    pred += 0.02 * rng.normal(size=pred.shape)
    pred[1, 4:] = np.nan
    cands, per_frame, per_trajectory = best_relabellings(pred, true, mol.masses, perms)
    assert per_frame.shape == (M, T) and per_trajectory.shape == (M,)
    relabelled = np.take_along_axis(pred, cands[per_frame][..., None], axis=2)
    # the same numbers, to the bit, as rmsd's own per-frame choice
    np.testing.assert_array_equal(rmsd(relabelled, true, mol.masses), rmsd(pred, true, mol.masses, permutations=perms))
    for m in range(M):  # brute force per frame: the least labelled RMSD over the candidates
        for t in range(T if m != 1 else 4):
            each = [rmsd(pred[m, t][c], true[m, t], mol.masses) for c in cands]
            assert per_frame[m, t] == int(np.argmin(each))
    np.testing.assert_array_equal(per_trajectory, relabelling_per_trajectory(pred, true, mol.masses, perms)[1])
