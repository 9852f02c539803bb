"""RMSD after superposition, minimised over the mirror image and relabellings of equivalent atoms (QCP).

Also the best relabelling of each frame and of each whole trajectory, read
off the same QCP residuals.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from ._checks import _as_masses, _as_permutations, _as_positions
from ._mds import coordinates_from_distances
from ._pairs import n_pairs
from ._superposition import _centre, _rotation_from_covariance

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


def _permutation_residuals(
    p0: np.ndarray, q0: np.ndarray, w: np.ndarray, perms: np.ndarray, mirror: bool
) -> Iterator[tuple[int, int, np.ndarray]]:
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
    masses: ArrayLike,
    *,
    mirror: bool = True,
    permutations: ArrayLike | None = None,
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
        raise InputError(f"Predicted and true positions must have the same number of atoms; got {pred.shape[-2]} and {n}")
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
    masses: ArrayLike,
    *,
    mirror: bool = True,
    permutations: ArrayLike | None = None,
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


def best_relabellings(
    pred_positions: np.ndarray, true_positions: np.ndarray, masses: ArrayLike, permutations: ArrayLike, *, mirror: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
                np.add.at(sums.T, trajectory[lo:hi], r.T)  # sums[:, trajectory] += r, repeated trajectories summed
    return perms, per_frame.reshape(m, t), np.argmin(sums, axis=0)


def relabelling_per_trajectory(
    pred_positions: np.ndarray, true_positions: np.ndarray, masses: ArrayLike, permutations: ArrayLike, *, mirror: bool = True
) -> tuple[np.ndarray, np.ndarray]:
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
