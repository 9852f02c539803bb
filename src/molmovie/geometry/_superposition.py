"""Superposition: the mass-weighted Kabsch fit of one structure onto another."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from ._checks import _as_positions


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


def kabsch(
    P: np.ndarray, Q: np.ndarray, weights: ArrayLike | None = None, *, reflection: bool = False
) -> tuple[np.ndarray, np.ndarray]:
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
            raise InputError(f"The 'weights' array must hold {n} finite positive weights per frame; got shape {w.shape}")
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


def align(mobile: np.ndarray, target: np.ndarray, masses: ArrayLike | None = None, *, reflection: bool = False) -> np.ndarray:
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
