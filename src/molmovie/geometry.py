"""Geometry: pair indexing, distances, coordinates from distances, superposition, RMSD, symmetry.

Pairs are atoms i < j in row-major order (``numpy.triu_indices(n, 1)``), and
every distances array is ``(..., n_pairs)``. Every function is vectorised over
leading (frame) dimensions, and a frame with NaN input gives NaN output
without floating-point warnings.

- :func:`coordinates_from_distances`: classical multidimensional scaling.
- :func:`kabsch`, :func:`align`: mass-weighted optimal superposition.
- :func:`rmsd`, :func:`rmsd_from_distances`: mass-weighted RMSD after
  superposition, minimised over the mirror image and, optionally, over
  relabellings of chemically equivalent atoms.
- :func:`automorphisms`, :func:`pair_permutations`, :func:`permute_distances`:
  the permutations of equivalent atoms (bond-graph automorphisms) and their
  action on distances.
"""

from __future__ import annotations

import math

import numpy as np

from ._errors import InputError
from .molecules import BOND_SCALE, bond_graph, normalise_symbols

__all__ = [
    "n_pairs",
    "pair_indices",
    "pair_labels",
    "heavy_pairs",
    "distances",
    "n_atoms_from_pairs",
    "coordinates_from_distances",
    "kabsch",
    "align",
    "rmsd",
    "rmsd_from_distances",
    "best_relabellings",
    "relabelling_per_trajectory",
    "automorphisms",
    "pair_permutations",
    "permute_distances",
]


def n_pairs(n_atoms: int) -> int:
    """Number of atom pairs, n(n-1)/2."""
    return n_atoms * (n_atoms - 1) // 2


def n_atoms_from_pairs(n_pairs_: int) -> int:
    """Invert :func:`n_pairs`; raises ValueError if no atom count fits."""
    n = int(round((1 + np.sqrt(1 + 8 * n_pairs_)) / 2))
    if n * (n - 1) // 2 != n_pairs_:
        raise ValueError(f"{n_pairs_} is not a number of atom pairs n(n-1)/2")
    return n


def pair_indices(n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major pair indices (i, j) with i < j, each shape (n_pairs,)."""
    return np.triu_indices(n_atoms, 1)


def heavy_pairs(symbols) -> np.ndarray:
    """Indices of the pairs of two non-hydrogen atoms, in the row-major pair order of :func:`pair_indices`."""
    i, j = pair_indices(len(symbols))
    heavy = np.array([s != "H" for s in symbols])
    return np.flatnonzero(heavy[i] & heavy[j])


def pair_labels(symbols) -> list[str]:
    """Human labels of the pairs, e.g. ``["C1-S2", "C1-S3", "S2-S3"]`` (1-based)."""
    i, j = pair_indices(len(symbols))
    return [f"{symbols[a]}{a + 1}-{symbols[b]}{b + 1}" for a, b in zip(i, j)]


def distances(positions: np.ndarray) -> np.ndarray:
    """All atom-atom distances.

    Parameters
    ----------
    positions : ndarray, shape (..., n_atoms, 3), Angstrom

    Returns
    -------
    ndarray, shape (..., n_pairs), Angstrom. NaN positions give NaN distances.
    """
    pos = np.asarray(positions, dtype=float)
    i, j = pair_indices(pos.shape[-2])
    # One Cartesian component at a time: the same sums (dx² + dy²) + dz² as
    # numpy.linalg.norm over the last axis, to the bit, at a quarter of the cost.
    square = 0.0
    for k in range(3):
        x = pos[..., k]
        d = x[..., i] - x[..., j]
        square = square + d * d
    return np.sqrt(square)


# --------------------------------------------------------------------------
# Shared input checks
# --------------------------------------------------------------------------


def _as_positions(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim < 2 or arr.shape[-1] != 3:
        raise InputError(f"The '{name}' array must have shape (..., n_atoms, 3); got shape {arr.shape}")
    return arr


def _as_masses(masses, n_atoms: int) -> np.ndarray:
    w = np.asarray(masses, dtype=float)
    if w.shape != (n_atoms,):
        raise InputError(f"The 'masses' array must have shape ({n_atoms},), one mass per atom; got shape {w.shape}")
    if not (np.all(np.isfinite(w)) and np.all(w > 0)):
        raise InputError("The 'masses' array must hold finite, positive masses (u)")
    return w


def _as_permutations(perms, n_atoms: int, name: str = "permutations") -> np.ndarray:
    p = np.asarray(perms)
    if p.ndim == 1:
        p = p[None, :]
    if p.ndim != 2 or p.shape[1] != n_atoms or p.shape[0] < 1:
        raise InputError(
            f"The '{name}' array must have shape (K, {n_atoms}), one atom permutation per row; "
            f"got shape {np.shape(perms)}"
        )
    if not np.issubdtype(p.dtype, np.integer):
        raise InputError(f"The '{name}' array must hold integer atom indices; got dtype {p.dtype}")
    if not np.array_equal(np.sort(p, axis=1), np.broadcast_to(np.arange(n_atoms), p.shape)):
        raise InputError(f"Every row of '{name}' must be a permutation of 0..{n_atoms - 1}")
    return p.astype(np.intp)


# --------------------------------------------------------------------------
# Distances -> coordinates
# --------------------------------------------------------------------------

#: Eigenvalues of the MDS Gram matrix below this fraction of the largest, times
#: the number of atoms, are rounding noise and set to zero: without it an exactly
#: planar or linear molecule would come back with ~1e-7 Angstrom of spurious
#: thickness (the square root of a ~1e-14 relative eigenvalue error).
_MDS_RELATIVE_TOL = 10 * np.finfo(float).eps


def coordinates_from_distances(distances: np.ndarray, n_dim: int = 3) -> np.ndarray:
    r"""Cartesian coordinates that reproduce a set of distances (classical MDS).

    Classical (Torgerson) multidimensional scaling: the squared-distance matrix
    :math:`D^{(2)}_{ij} = R_{ij}^2` is double-centred into the Gram matrix of
    centred coordinates,

    .. math::

        B = -\tfrac12 J D^{(2)} J, \qquad J = I - \tfrac1N \mathbf{1}\mathbf{1}^T,

    and the coordinates are :math:`X = V_k \Lambda_k^{1/2}` from its ``n_dim``
    largest eigenpairs (Torgerson 1952; Gower 1966). Negative eigenvalues (a
    distance set that no point set in 3D reproduces: noisy or violating the
    triangle inequality) are clipped to zero, which gives the least-squares
    closest Gram matrix of rank ``n_dim``, so any finite input has a finite answer.
    Eigenvalues below ``10 * N * eps`` of the largest are rounding noise and are
    zeroed too, so planar and linear molecules stay exactly flat.

    The result is centred at the origin (unweighted); its orientation and
    handedness are arbitrary: distances do not determine them.

    Parameters
    ----------
    distances : ndarray, shape (..., n_pairs), Angstrom
        Pair distances in :func:`pair_indices` order. A frame (row) with any
        non-finite distance gives an all-NaN frame.
    n_dim : int
        Number of dimensions of the embedding (3 for molecules). Molecules with
        fewer than ``n_dim`` atoms are padded with zero columns.

    Returns
    -------
    ndarray, shape (..., n_atoms, n_dim), Angstrom
    """
    d = np.asarray(distances, dtype=float)
    if d.ndim < 1:
        raise InputError("The 'distances' array must have shape (..., n_pairs); got a scalar")
    if int(n_dim) != n_dim or n_dim < 1:
        raise InputError(f"The 'n_dim' parameter must be a positive integer; got {n_dim!r}")
    n_dim = int(n_dim)
    try:
        n = n_atoms_from_pairs(d.shape[-1])
    except ValueError:
        raise InputError(
            f"The last axis of 'distances' must hold n(n-1)/2 pair distances; got length {d.shape[-1]}"
        ) from None
    lead = d.shape[:-1]
    flat = d.reshape(math.prod(lead), d.shape[-1])
    bad = ~np.all(np.isfinite(flat), axis=-1)
    flat = np.where(bad[:, None], 0.0, flat)

    i, j = pair_indices(n)
    d2 = np.zeros((flat.shape[0], n, n))
    sq = flat * flat
    d2[:, i, j] = sq
    d2[:, j, i] = sq
    row = d2.mean(axis=-1, keepdims=True)
    gram = -0.5 * (d2 - row - np.swapaxes(row, -1, -2) + row.mean(axis=-2, keepdims=True))

    k = min(n_dim, n)
    evals, evecs = np.linalg.eigh(gram)  # ascending
    evals = evals[:, ::-1][:, :k]
    evecs = evecs[:, :, ::-1][:, :, :k]
    top = evals[:, :1]
    evals = np.where(evals > _MDS_RELATIVE_TOL * n * np.maximum(top, 0.0), evals, 0.0)
    coords = np.zeros((flat.shape[0], n, n_dim))
    coords[:, :, :k] = evecs * np.sqrt(evals)[:, None, :]
    coords[bad] = np.nan
    return coords.reshape(*lead, n, n_dim)


# --------------------------------------------------------------------------
# Superposition
# --------------------------------------------------------------------------


def _centre(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted centroid (..., 3) and centred coordinates of x (..., N, 3) with weights w (..., N)."""
    c = np.einsum("...n,...na->...a", w, x) / w.sum(axis=-1)[..., None]
    return c, x - c[..., None, :]


def _rotation_from_covariance(h: np.ndarray, reflection: bool) -> np.ndarray:
    """Orthogonal R maximising tr(R h), h = sum_i w_i p_i q_i^T; proper unless ``reflection``."""
    u, _, vt = np.linalg.svd(h)
    v = np.swapaxes(vt, -1, -2)
    ut = np.swapaxes(u, -1, -2)
    if not reflection:
        sign = np.where(np.linalg.det(v @ ut) < 0, -1.0, 1.0)
        v = v.copy()
        v[..., :, 2] *= sign[..., None]
    return v @ ut


def kabsch(P: np.ndarray, Q: np.ndarray, weights=None, *, reflection: bool = False) -> tuple[np.ndarray, np.ndarray]:
    r"""Optimal weighted superposition of P onto Q (Kabsch algorithm).

    Finds the rotation R and translation t that minimise

    .. math:: \sum_i w_i \lVert R p_i + t - q_i \rVert^2

    from the singular value decomposition of the weighted covariance
    :math:`H = \sum_i w_i (p_i - \bar p)(q_i - \bar q)^T = U \Sigma V^T`:
    :math:`R = V\,\mathrm{diag}(1, 1, d)\,U^T` with :math:`d = \mathrm{sign}\det(VU^T)`,
    so R is a proper rotation (Kabsch 1976, 1978), and
    :math:`t = \bar q - R \bar p` with weighted centroids.

    Parameters
    ----------
    P : ndarray, shape (..., n_atoms, 3), Angstrom
        Mobile coordinates.
    Q : ndarray, shape (..., n_atoms, 3), Angstrom
        Target coordinates; leading dimensions broadcast against P's.
    weights : ndarray, shape (n_atoms,) or (..., n_atoms), optional
        Positive weights (atomic masses for a mass-weighted fit); equal weights if None.
    reflection : bool
        If True, R may also be improper (det -1): the best orthogonal transform,
        that is the better of the fit of P and of its mirror image.

    Returns
    -------
    R : ndarray, shape (..., 3, 3)
        Rotation, applied as ``P @ R.swapaxes(-1, -2) + t[..., None, :]``.
    t : ndarray, shape (..., 3), Angstrom
        Frames with any non-finite coordinate give NaN R and t.
    """
    p = _as_positions(P, "P")
    q = _as_positions(Q, "Q")
    if p.shape[-2] != q.shape[-2]:
        raise InputError(f"P and Q must have the same number of atoms; got {p.shape[-2]} and {q.shape[-2]}")
    n = p.shape[-2]
    if weights is None:
        w = np.ones(n)
    else:
        w = np.asarray(weights, dtype=float)
        if w.ndim < 1 or w.shape[-1] != n or not (np.all(np.isfinite(w)) and np.all(w > 0)):
            raise InputError(
                f"The 'weights' array must hold {n} finite positive weights per frame; got shape {w.shape}"
            )
    lead = np.broadcast_shapes(p.shape[:-2], q.shape[:-2], w.shape[:-1])
    p = np.broadcast_to(p, lead + (n, 3))
    q = np.broadcast_to(q, lead + (n, 3))
    w = np.broadcast_to(w, lead + (n,))
    bad = ~(np.all(np.isfinite(p), axis=(-1, -2)) & np.all(np.isfinite(q), axis=(-1, -2)))
    p = np.where(bad[..., None, None], 0.0, p)
    q = np.where(bad[..., None, None], 0.0, q)
    pc, p0 = _centre(p, w)
    qc, q0 = _centre(q, w)
    h = np.einsum("...n,...na,...nb->...ab", w, p0, q0)
    r = _rotation_from_covariance(h, reflection)
    t = qc - np.einsum("...ab,...b->...a", r, pc)
    r[bad] = np.nan
    t[bad] = np.nan
    return r, t


def align(mobile: np.ndarray, target: np.ndarray, masses=None, *, reflection: bool = False) -> np.ndarray:
    """``mobile`` superposed on ``target`` by the (mass-)weighted Kabsch fit.

    Parameters
    ----------
    mobile, target : ndarray, shape (..., n_atoms, 3), Angstrom
    masses : ndarray, shape (n_atoms,), optional
        Weights of the fit (u); equal weights if None.
    reflection : bool
        Allow an improper fit (the mirror image of ``mobile``), see :func:`kabsch`.

    Returns
    -------
    ndarray, shape broadcast of (..., n_atoms, 3), Angstrom
        ``mobile`` rotated and translated; NaN frames stay NaN.
    """
    r, t = kabsch(mobile, target, masses, reflection=reflection)
    mob = np.asarray(mobile, dtype=float)
    return np.einsum("...ab,...nb->...na", r, mob) + t[..., None, :]


# --------------------------------------------------------------------------
# RMSD
# --------------------------------------------------------------------------

#: Scratch array elements (float64) per block of frames in the symmetry-aware
#: RMSD (~32 MB), whatever the number of frames and permutations.
_RMSD_BLOCK = 1 << 22


def _largest_root(e1: np.ndarray, det_h: np.ndarray, frob_hth: np.ndarray, start: np.ndarray) -> np.ndarray:
    r"""Largest eigenvalue of Horn's 4x4 quaternion key matrix, by Newton's method (QCP).

    The characteristic polynomial is :math:`\lambda^4 - 2 e_1 \lambda^2 - 8 \det H \lambda
    + (2\lVert H^TH\rVert_F^2 - e_1^2)` with :math:`e_1 = \lVert H\rVert_F^2`; its
    largest root is :math:`\sigma_1 + \sigma_2 + \mathrm{sign}(\det H)\,\sigma_3`, the
    maximum of tr(RH) over proper rotations (Horn 1987; Theobald 2005). Newton's
    method from an upper bound descends monotonically onto it.
    """
    c2 = -2.0 * e1
    c1 = -8.0 * det_h
    c0 = 2.0 * frob_hth - e1 * e1
    lam = start.copy()
    for _ in range(100):
        lam2 = lam * lam
        poly = (lam2 + c2) * lam2 + c1 * lam + c0
        slope = 4.0 * lam2 * lam + 2.0 * c2 * lam + c1
        ok = slope > 0
        step = np.divide(poly, slope, out=np.zeros_like(lam), where=ok)
        step = np.maximum(step, 0.0)
        lam -= step
        if not np.any(step > 1e-13 * np.abs(lam)):
            break
    return lam


def _best_relabelling_per_frame(p0: np.ndarray, q0: np.ndarray, w: np.ndarray, perms: np.ndarray, mirror: bool) -> np.ndarray:
    """Index of the permutation of p0 that gives the smallest weighted RMSD to q0, per frame."""
    best = np.zeros(p0.shape[0], dtype=np.intp)
    for lo, hi, resid in _permutation_residuals(p0, q0, w, perms, mirror):
        best[lo:hi] = np.argmin(resid, axis=0)
    return best


def _permutation_residuals(p0: np.ndarray, q0: np.ndarray, w: np.ndarray, perms: np.ndarray, mirror: bool):
    """Yield ``(lo, hi, resid)`` block by block of frames: resid (K, hi - lo) is the
    least weighted sum of squared deviations, sum_i w_i |R p_perm(i) + t - q_i|^2,
    of every relabelling of frames lo:hi.

    p0 and q0 (F, N, 3) are centred with the identity labelling's weights. For
    each candidate relabelling ``p0[:, perm]`` the best superposition residual is
    ``E_P + E_Q - 2 lambda`` (Kabsch), with lambda the largest root of the QCP
    polynomial. The covariances H_k = sum_i w_i p_perm(i) q_i^T of all
    permutations come from one matrix product (a 0/1 selection of the N^2 atom
    products, when K >= N) or from gathered copies of p0 (K < N); everything
    after works on the nine components of H as separate (K, frames) arrays.
    """
    f, n, _ = p0.shape
    k = perms.shape[0]
    w_perm = w[np.argsort(perms, axis=1)]  # (K, N): weight carried by original atom j after relabelling
    gather = k < n
    if not gather:
        # select[k, perm[k, i] * N + i] = 1 picks the N terms of H_k out of all N^2 products p_j q_i^T.
        rows = np.repeat(np.arange(k), n)
        cols = (perms * n + np.arange(n)).ravel()
        if k * n * n <= 1 << 22:
            select = np.zeros((k, n * n))
            select[rows, cols] = 1.0
        else:
            from scipy.sparse import csr_matrix

            select = csr_matrix((np.ones(rows.size), (rows, cols)), shape=(k, n * n))
    pt = np.ascontiguousarray(p0.transpose(1, 2, 0))  # (N, 3, F)
    wqt = np.ascontiguousarray((q0 * w[:, None]).transpose(1, 2, 0))
    e_q = np.einsum("nbf,nbf->f", wqt, q0.transpose(1, 2, 0))
    total = w.sum()
    per_frame = 3 * k * n if gather else 9 * n * n
    step = max(1, _RMSD_BLOCK // max(per_frame, 24 * k))
    for lo in range(0, f, step):
        hi = min(f, lo + step)
        m = hi - lo
        pb = pt[:, :, lo:hi]
        if gather:
            pp = p0[lo:hi][:, perms].swapaxes(-1, -2)  # (m, K, 3_a, N)
            wq = wqt[:, :, lo:hi].transpose(2, 0, 1)[:, None]  # (m, 1, N, 3_b)
            h = (pp @ wq).transpose(2, 3, 1, 0)
        else:
            cross = pb[:, None, :, None, :] * wqt[None, :, None, :, lo:hi]  # (N_j, N_i, 3_a, 3_b, m)
            h = np.asarray(select @ cross.reshape(n * n, 9 * m)).reshape(k, 3, 3, m).transpose(1, 2, 0, 3)
        # E_P of each relabelling, centred with its own weights (= E_P when masses are preserved).
        sq = np.einsum("jaf,jaf->jf", pb, pb)
        mean = (w_perm @ pb.reshape(n, 3 * m)).reshape(k, 3, m)
        e_p = np.maximum(w_perm @ sq - np.einsum("kaf,kaf->kf", mean, mean) / total, 0.0)
        (a, b, c), (d, e, g), (x, y, z) = h
        det_h = a * (e * z - g * y) - b * (d * z - g * x) + c * (d * y - e * x)
        if mirror:
            det_h = np.abs(det_h)
        e1 = np.einsum("abkf,abkf->kf", h, h)
        # ||H^T H||_F^2 from the Gram entries of H's columns.
        c00 = a * a + d * d + x * x
        c11 = b * b + e * e + y * y
        c22 = c * c + g * g + z * z
        c01 = a * b + d * e + x * y
        c02 = a * c + d * g + x * z
        c12 = b * c + e * g + y * z
        frob = c00 * c00 + c11 * c11 + c22 * c22 + 2.0 * (c01 * c01 + c02 * c02 + c12 * c12)
        start = np.sqrt(e_p * e_q[lo:hi]) * (1 + 1e-12)
        lam = _largest_root(e1, det_h, frob, start)
        yield lo, hi, e_p - 2.0 * lam + e_q[lo:hi]


def rmsd(
    pred_positions: np.ndarray,
    true_positions: np.ndarray,
    masses,
    *,
    mirror: bool = True,
    permutations=None,
) -> np.ndarray:
    r"""Mass-weighted RMSD after optimal superposition.

    .. math::

        \mathrm{RMSD} = \min_{\pi, R, t} \sqrt{\frac{\sum_i m_i
        \lVert R\, x_{\pi(i)} + t - y_i\rVert^2}{\sum_i m_i}}

    over translations t, rotations R (proper, or any orthogonal transform when
    ``mirror`` is True: the predicted structure and its mirror image z -> -z,
    since scattering cannot tell enantiomers apart) and, when ``permutations``
    are given, relabellings pi of the predicted atoms (the symmetry-aware RMSD,
    since scattering cannot tell identical atoms apart). The masses are those of
    the true atoms y_i.

    The best relabelling of each frame is chosen by the QCP method (the residual
    of every candidate from the largest eigenvalue of Horn's quaternion matrix,
    vectorised over frames and permutations); the reported value is then
    recomputed from the explicitly superposed coordinates (Kabsch), accurate to
    ~1e-15 Angstrom.

    Parameters
    ----------
    pred_positions : ndarray, shape (..., n_atoms, 3), Angstrom
    true_positions : ndarray, shape (..., n_atoms, 3), Angstrom
        Leading dimensions broadcast against ``pred_positions``.
    masses : ndarray, shape (n_atoms,), u
    mirror : bool
        Also allow the mirror image of the prediction (default True).
    permutations : ndarray of int, shape (K, n_atoms), optional
        Relabellings of the predicted atoms, ``pred[..., perm, :]`` (new atom i is
        old atom ``perm[i]``), e.g. from :func:`automorphisms`. The identity is
        always included, whether or not a row holds it.

    Returns
    -------
    ndarray, shape (...), Angstrom
        NaN for frames with any non-finite coordinate.
    """
    pred = _as_positions(pred_positions, "pred_positions")
    true = _as_positions(true_positions, "true_positions")
    n = true.shape[-2]
    if pred.shape[-2] != n:
        raise InputError(
            f"Predicted and true positions must have the same number of atoms; got {pred.shape[-2]} and {n}"
        )
    w = _as_masses(masses, n)
    try:
        lead = np.broadcast_shapes(pred.shape[:-2], true.shape[:-2])
    except ValueError:
        raise InputError(
            f"Leading dimensions of predicted {pred.shape[:-2]} and true {true.shape[:-2]} positions do not broadcast"
        ) from None
    p = np.broadcast_to(pred, lead + (n, 3)).reshape(-1, n, 3)
    q = np.broadcast_to(true, lead + (n, 3)).reshape(-1, n, 3)
    bad = ~(np.all(np.isfinite(p), axis=(1, 2)) & np.all(np.isfinite(q), axis=(1, 2)))
    p = np.where(bad[:, None, None], 0.0, p)
    q = np.where(bad[:, None, None], 0.0, q)
    _, p0 = _centre(p, w)
    _, q0 = _centre(q, w)

    if permutations is not None:
        perms = _as_permutations(permutations, n)
        identity = np.arange(n)
        if not np.any(np.all(perms == identity, axis=1)):
            perms = np.vstack([identity, perms])
        if perms.shape[0] > 1 and p.shape[0] > 0:
            with np.errstate(under="ignore"):  # harmless: tiny products flush to zero
                best = _best_relabelling_per_frame(p0, q0, w, perms, mirror)
            p = np.take_along_axis(p, perms[best][:, :, None], axis=1)
            _, p0 = _centre(p, w)

    h = np.einsum("n,fna,fnb->fab", w, p0, q0)
    r = _rotation_from_covariance(h, reflection=mirror)
    resid = np.einsum("fab,fnb->fna", r, p0) - q0
    out = np.sqrt(np.einsum("n,fna,fna->f", w, resid, resid) / w.sum())
    out[bad] = np.nan
    return out.reshape(lead)


def rmsd_from_distances(
    pred_distances: np.ndarray,
    true_positions: np.ndarray,
    masses,
    *,
    mirror: bool = True,
    permutations=None,
) -> np.ndarray:
    """RMSD of the structure that predicted distances describe, against true positions.

    Coordinates come from :func:`coordinates_from_distances` (classical MDS),
    then :func:`rmsd`. Distances do not fix handedness, so the MDS structure is
    of arbitrary chirality: keep ``mirror=True`` (the default) for a chiral
    molecule; ``mirror=False`` scores whichever enantiomer MDS returned.

    Parameters
    ----------
    pred_distances : ndarray, shape (..., n_pairs), Angstrom
    true_positions : ndarray, shape (..., n_atoms, 3), Angstrom
    masses : ndarray, shape (n_atoms,), u
    mirror, permutations
        As in :func:`rmsd`.

    Returns
    -------
    ndarray, shape (...), Angstrom
        NaN for frames with any non-finite distance or position.
    """
    true = _as_positions(true_positions, "true_positions")
    d = np.asarray(pred_distances, dtype=float)
    if d.ndim < 1 or d.shape[-1] != n_pairs(true.shape[-2]):
        raise InputError(
            f"The 'pred_distances' array must have shape (..., {n_pairs(true.shape[-2])}) for "
            f"{true.shape[-2]} atoms; got shape {d.shape}"
        )
    return rmsd(coordinates_from_distances(d), true, masses, mirror=mirror, permutations=permutations)


def best_relabellings(pred_positions: np.ndarray, true_positions: np.ndarray, masses, permutations, *, mirror: bool = True):
    """The best relabelling of each predicted frame and of each whole predicted trajectory, from one pass.

    Both choices are read off the same QCP residuals (the least weighted sum
    of squared deviations of every candidate relabelling of every frame): per
    frame, the candidate with the least residual, as :func:`rmsd` chooses it;
    per trajectory, the candidate with the least RMSD summed over the
    trajectory's frames (atoms keep their identity in time, so a trajectory
    may be relabelled as a whole, by an automorphism, not frame by frame).
    Frames with any non-finite coordinate do not count.

    Parameters
    ----------
    pred_positions, true_positions : ndarray, shape (M, T, n_atoms, 3), Angstrom
    masses : ndarray, shape (n_atoms,), u
    permutations : ndarray of int, shape (K, n_atoms)
        As in :func:`rmsd`; the identity is added when missing.
    mirror : bool
        Allow the mirror image of each frame (default True).

    Returns
    -------
    perms : ndarray of int, shape (K', n_atoms)
        The candidates, the identity first (it wins ties).
    per_frame : ndarray of int, shape (M, T)
        Row of ``perms`` chosen for each frame.
    per_trajectory : ndarray of int, shape (M,)
        Row of ``perms`` chosen for each trajectory: relabel with
        ``pred[m][..., perms[per_trajectory[m]], :]``.
    """
    pred = _as_positions(pred_positions, "pred_positions")
    true = _as_positions(true_positions, "true_positions")
    if pred.ndim != 4 or pred.shape != true.shape:
        raise InputError(
            f"Predicted and true positions must both have shape (trajectories, frames, atoms, 3); got {pred.shape} and {true.shape}"
        )
    m, t, n, _ = pred.shape
    w = _as_masses(masses, n)
    perms = _as_permutations(permutations, n)
    identity = np.arange(n)
    perms = np.vstack([identity, perms[~np.all(perms == identity, axis=1)]])
    p = pred.reshape(-1, n, 3)
    q = true.reshape(-1, n, 3)
    bad = ~(np.all(np.isfinite(p), axis=(1, 2)) & np.all(np.isfinite(q), axis=(1, 2)))
    _, p0 = _centre(np.where(bad[:, None, None], 0.0, p), w)
    _, q0 = _centre(np.where(bad[:, None, None], 0.0, q), w)
    trajectory = np.repeat(np.arange(m), t)
    per_frame = np.zeros(m * t, dtype=np.intp)
    sums = np.zeros((len(perms), m))
    if p.shape[0]:
        with np.errstate(under="ignore"):  # harmless: tiny products flush to zero
            for lo, hi, resid in _permutation_residuals(p0, q0, w, perms, mirror):
                per_frame[lo:hi] = np.argmin(resid, axis=0)
                r = np.sqrt(np.maximum(resid, 0.0) / w.sum())
                r[:, bad[lo:hi]] = 0.0
                np.add.at(sums, (slice(None), trajectory[lo:hi]), r)
    return perms, per_frame.reshape(m, t), np.argmin(sums, axis=0)


def relabelling_per_trajectory(pred_positions: np.ndarray, true_positions: np.ndarray, masses, permutations, *, mirror: bool = True):
    """The one relabelling of each predicted trajectory with the least RMSD summed over its frames.

    :func:`best_relabellings` without the per-frame choice.

    Returns
    -------
    perms : ndarray of int, shape (K', n_atoms)
        The candidates, the identity first (it wins ties).
    best : ndarray of int, shape (M,)
        Row of ``perms`` chosen for each trajectory: relabel with
        ``pred[m][..., perms[best[m]], :]``.
    """
    perms, _, best = best_relabellings(pred_positions, true_positions, masses, permutations, mirror=mirror)
    return perms, best


# --------------------------------------------------------------------------
# Symmetry: equivalent atoms
# --------------------------------------------------------------------------


def automorphisms(symbols, positions, scale: float | None = None, *, max_count: int = 5000) -> np.ndarray:
    """Permutations of chemically equivalent atoms: automorphisms of the bond graph.

    A permutation p (atom i -> atom p[i]) is an automorphism when it maps every
    atom to one of the same element and bonded pairs to bonded pairs. The bond
    graph is :func:`molmovie.molecules.bond_graph` of the given geometry; the
    automorphisms are enumerated with networkx's VF2 matcher. They ignore
    geometry and chirality (the two H of a CH2 are interchangeable even where
    they are diastereotopic), which is what an observable that cannot tell
    identical atoms apart, like X-ray scattering, calls for. Relabelling a
    structure by any of them, ``positions[..., p, :]``, gives the same molecule
    with the same bond graph.

    Parameters
    ----------
    symbols : sequence of str, length n_atoms
    positions : ndarray, shape (n_atoms, 3), Angstrom
        Geometry that defines the bonds (the reference structure).
    scale : float, optional
        Bond tolerance of :func:`~molmovie.molecules.bond_graph` (its default if None).
    max_count : int
        Most permutations returned. A molecule with more automorphisms (many
        methyl groups: each multiplies the count by 6) gets the identity and the
        first ``max_count - 1`` others found, with a :class:`UserWarning`; a
        symmetry-aware RMSD over this subset is then an upper bound.

    Returns
    -------
    ndarray of int, shape (K, n_atoms)
        Distinct permutations, the identity first, the rest in lexicographic order.
    """
    import networkx as nx
    from networkx.algorithms.isomorphism import GraphMatcher

    if int(max_count) != max_count or max_count < 1:
        raise InputError(f"The 'max_count' parameter must be a positive integer; got {max_count!r}")
    max_count = int(max_count)
    symbols = normalise_symbols(symbols)
    pos = np.asarray(positions, dtype=float)
    n = len(symbols)
    if pos.shape != (n, 3):
        raise InputError(f"The 'positions' array must have shape ({n}, 3) for {n} symbols; got shape {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise InputError("The 'positions' array must be finite to define the bond graph")
    adj = bond_graph(symbols, pos, BOND_SCALE if scale is None else scale)
    graph = nx.Graph()
    graph.add_nodes_from((i, {"element": s}) for i, s in enumerate(symbols))
    graph.add_edges_from(zip(*np.nonzero(np.triu(adj))))
    matcher = GraphMatcher(graph, graph, node_match=lambda a, b: a["element"] == b["element"])
    identity = tuple(range(n))
    found = []
    truncated = False
    for mapping in matcher.isomorphisms_iter():
        perm = tuple(mapping[i] for i in range(n))
        if perm == identity:
            continue
        if len(found) == max_count - 1:
            truncated = True
            break
        found.append(perm)
    if truncated:
        import warnings

        warnings.warn(
            f"the bond graph has more than {max_count} automorphisms; returning {max_count} of them "
            "(raise 'max_count' for the full set: a symmetry-aware RMSD over a subset is an upper bound)",
            UserWarning,
            stacklevel=2,
        )
    return np.array([identity] + sorted(found), dtype=np.intp).reshape(-1, n)


def pair_permutations(perms) -> np.ndarray:
    """Pair-index arrays that apply atom permutations to distances.

    Parameters
    ----------
    perms : ndarray of int, shape (K, n_atoms)
        Atom permutations (relabelling ``positions[..., perm, :]``).

    Returns
    -------
    ndarray of int, shape (K, n_pairs)
        ``distances[..., out[k]]`` are the pair distances of the molecule
        relabelled by ``perms[k]``: pair (i, j) of the relabelled molecule is
        pair (perm[i], perm[j]) of the original.
    """
    p = np.asarray(perms)
    if p.ndim != 2:
        raise InputError(f"The 'perms' array must have shape (K, n_atoms); got shape {p.shape}")
    p = _as_permutations(p, p.shape[1], "perms")
    n = p.shape[1]
    i, j = pair_indices(n)
    lookup = np.zeros((n, n), dtype=np.intp)
    lookup[i, j] = np.arange(i.size)
    lookup[j, i] = np.arange(i.size)
    return lookup[p[:, i], p[:, j]]


def permute_distances(distances: np.ndarray, perm) -> np.ndarray:
    """Distances of the molecule relabelled by one atom permutation.

    Parameters
    ----------
    distances : ndarray, shape (..., n_pairs), Angstrom
    perm : ndarray of int, shape (n_atoms,)
        New atom i is old atom ``perm[i]``.

    Returns
    -------
    ndarray, shape (..., n_pairs), Angstrom
        Equal to ``distances(positions[..., perm, :])``.
    """
    d = np.asarray(distances)
    p = np.asarray(perm)
    if p.ndim != 1:
        raise InputError(f"The 'perm' array must have shape (n_atoms,); got shape {p.shape}")
    if d.ndim < 1 or d.shape[-1] != n_pairs(p.size):
        raise InputError(
            f"The 'distances' array must have shape (..., {n_pairs(p.size)}) for a permutation of {p.size} atoms; "
            f"got shape {d.shape}"
        )
    return d[..., pair_permutations(p[None, :])[0]]
