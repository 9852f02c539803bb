r"""The Gauss-Newton system of the fit of distances, compiled (numba): gradient and JᵀJ blocks from dI/dR in one pass.

:mod:`._refine_gauss_newton` minimises, per series, a sum of squares in the
prior-whitened log distances z. With the whitened residual
:math:`r_{tq} = (I_{tq}/I^{\mathrm{ref}}_q - 1 - \Delta S_{tq})/\sigma_q` its
Jacobian by frame t's own z is

.. math::

    A_{tq,p} = \frac{\partial I_{tq}}{\partial R_{tp}}\,\frac{R_{tp}\, s_{tp}}{\sigma_q I^{\mathrm{ref}}_q},

and, with the reference "first" (:math:`I^{\mathrm{ref}} = I_0`), by frame 0's
:math:`C_{tq,p} = -(I_{tq}/I_{0q})\, A_{0q,p}` for t ≥ 1 (frame 0's own
residual is then constant: :math:`A_0` counts only through C). The blocks of
:math:`J^\top J` are sums over q of outer products of these rows, so they are
accumulated here row by row, without writing A and C out (which, with the
batched matrix products of NumPy, was most of an iteration's time on a
molecule with 21 moving pairs):

* ∇f: :math:`g_t = m_t (A_t^\top r_t + w z_t)`, and frame 0 also
  :math:`\sum_{t \ge 1} m_t C_t^\top r_t`;
* :math:`H_t = m_t A_t^\top A_t + w\mathbb{1}`;
* :math:`H^c_t = m_t A_t^\top C_t` (the coupling of frame t to frame 0);
* :math:`H_{00} = H_0 + \sum_{t \ge 1} m_t C_t^\top C_t`.

The same quantities, in another order of summation, as the NumPy batched
products they replaced (a test holds them to the whole series' Jacobian by
central differences). Series run in parallel (``prange``); no ``fastmath``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._numba import configure
from ._refine_lm import cholesky, solve_factored

configure()


@njit(cache=True, parallel=True, fastmath=False)
def normal_blocks(dI_dR, Rs, unit, ratio, resid, mask, z, weight, first, g, H, Hc, H00):
    r"""Write g (B, T, P), H (B, T, P, P) and, for ``first``, Hc (B, T, P, P) and H00 (B, P, P).

    dI_dR (B, T, Q, P); Rs = R s (B, T, P); unit = σ I_ref (B, T, Q) (∂r/∂I = 1/unit);
    ratio = I_t / I_0 (B, T, Q) (read only for ``first``); resid (B, T, Q); mask (B, T); z (B, T, P).
    Frame 0's sums over t ≥ 1 are taken per q first: :math:`H_{00} - H_0 = \sum_q a_{0q} a_{0q}^\top
    \sum_t m_t (I_{tq}/I_{0q})^2` and :math:`-\sum_q a_{0q} \sum_t m_t (I_{tq}/I_{0q}) r_{tq}` in g_0.
    """
    B, T, Q, P = dI_dR.shape
    for b in prange(B):
        A = np.empty((Q, P))
        A0 = np.zeros((Q, P))
        W = np.empty((Q, P))
        if first:
            for k in range(Q):
                for p in range(P):
                    A0[k, p] = dI_dR[b, 0, k, p] * Rs[b, 0, p] / unit[b, 0, k]
        for t in range(T):
            m = mask[b, t]
            own = m != 0.0 and not (first and t == 0)  # frame 0's own residual is constant with the reference "first"
            if own:
                for k in range(Q):
                    for p in range(P):
                        A[k, p] = dI_dR[b, t, k, p] * Rs[b, t, p] / unit[b, t, k]
                At = A.T
                H[b, t] = m * np.dot(At, A)
                g[b, t] = m * (np.dot(At, resid[b, t]) + weight * z[b, t])
                if first:
                    for k in range(Q):
                        for p in range(P):
                            W[k, p] = -ratio[b, t, k] * A0[k, p]
                    Hc[b, t] = m * np.dot(At, W)
            else:
                H[b, t] = 0.0
                g[b, t] = m * weight * z[b, t]
                if first:
                    Hc[b, t] = 0.0
            for i in range(P):
                H[b, t, i, i] += weight
        if first:
            sq = np.zeros(Q)
            sr = np.zeros(Q)
            for t in range(1, T):
                m = mask[b, t]
                if m != 0.0:
                    for k in range(Q):
                        sq[k] += m * ratio[b, t, k] * ratio[b, t, k]
                        sr[k] += m * ratio[b, t, k] * resid[b, t, k]
            for k in range(Q):
                for p in range(P):
                    W[k, p] = sq[k] * A0[k, p]
            H00[b] = np.dot(A0.T, W) + H[b, 0]
            g[b, 0] -= np.dot(A0.T, sr)


@njit(cache=True, parallel=True, fastmath=False)
def cholesky_solve(H, lam, rhs, out):
    """out[m] = (H[m] + lam[m] 1)⁻¹ rhs[m] for every matrix m by Cholesky; NaN where the factorisation fails.

    H (M, P, P) symmetric (its lower triangle is read), lam (M,) ≥ 0, rhs and out (M, P, K). The damped
    Gauss-Newton matrices are positive definite (JᵀJ plus the prior's weight and the damping on the diagonal),
    so Cholesky takes half the operations of the LU factorisation of a general solve; one that fails (rounding
    in a matrix near singular) gives a NaN step, which the fit refuses as it refuses any step that does not
    lower the objective, and raises the damping.
    """
    M, P = rhs.shape[:2]
    for m in prange(M):
        D = H[m].copy()
        for a in range(P):
            D[a, a] += lam[m]
        L = np.empty((P, P))
        if not cholesky(D, L):
            out[m] = np.nan
            continue
        out[m] = rhs[m]
        solve_factored(L, out[m])
