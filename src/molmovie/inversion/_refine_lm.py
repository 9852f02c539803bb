"""The continuation's Levenberg-Marquardt fits of single frames, compiled (numba): one problem per frame and series.

The same algorithm, residuals and Jacobian as
:func:`molmovie.inversion._refine_continuation._levenberg_marquardt` with
:func:`~molmovie.inversion._refine_continuation._frame_residuals` (see there),
evaluated without PyTorch: a frame's fit is 40 iterations of small matrices,
where PyTorch's overhead per operation was most of the continuation's time.
Eq. (1) and dI/dR are evaluated directly (one sine and cosine per pair and q
point, :func:`molmovie.scattering._kernels_grad._dsinc`); the damped normal
equations are solved by Cholesky (their matrix is positive definite; a failed
factorisation gives a NaN step, which is refused like any step that does not
lower the objective). Problems run in parallel (``prange``); each is its own,
so a problem's answer does not depend on the others fitted with it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .._numba import configure
from ..scattering._kernels import _sincos
from ..scattering._kernels_grad import _dsinc

configure()

#: As :data:`molmovie.inversion._refine_geometry_space._TINY_R2`.
_TINY_R2 = 1e-12


@njit(cache=True, fastmath=False)
def _residuals(x, pi, pj, mu, s, data, sigma, ref, q, pair_weight, const, root_w, r, J, with_jacobian):
    """r (Q + P) and, if asked, J (Q + P, 3N) of one frame's problem at coordinates x (N, 3)."""
    n_pair = pi.shape[0]
    n_q = q.shape[0]
    n_atoms = x.shape[0]
    diff = np.empty((n_pair, 3))
    r2 = np.empty(n_pair)
    R = np.empty(n_pair)
    u = np.empty(n_pair)
    for p in range(n_pair):
        acc = 0.0
        for a in range(3):
            d = x[pi[p], a] - x[pj[p], a]
            diff[p, a] = d
            acc += d * d
        r2[p] = acc + _TINY_R2
        u[p] = 0.5 * math.log(r2[p])
        R[p] = math.exp(u[p])
    intensity = const.copy()
    dI = np.empty((n_q, n_pair))
    for p in range(n_pair):
        rp = R[p]
        for k in range(n_q):
            xk = q[k] * rp
            sn, _ = _sincos(xk)
            intensity[k] += (1.0 if xk == 0.0 else sn / xk) * pair_weight[p, k]
            if with_jacobian:
                dI[k, p] = _dsinc(xk) * (pair_weight[p, k] * q[k])
    for k in range(n_q):
        r[k] = (intensity[k] / ref[k] - 1.0 - data[k]) / sigma[k]
    for p in range(n_pair):
        r[n_q + p] = root_w * (u[p] - mu[p]) / s[p]
    if not with_jacobian:
        return
    J[:] = 0.0
    for p in range(n_pair):
        i, j = pi[p], pj[p]
        for a in range(3):
            g = diff[p, a] / r2[p]  # ∂u_p/∂x_ia; -g for atom j
            for k in range(n_q):
                c = dI[k, p] * (R[p] / (ref[k] * sigma[k])) * g
                J[k, 3 * i + a] += c
                J[k, 3 * j + a] -= c
            c = root_w / s[p] * g
            J[n_q + p, 3 * i + a] += c
            J[n_q + p, 3 * j + a] -= c
    _ = n_atoms


@njit(cache=True, fastmath=False)
def _damped_step(J, r, lam, step):
    """step = -(JᵀJ + λ diag(JᵀJ) + 1e-12 max diag)⁻¹ Jᵀr by Cholesky; NaN where the factorisation fails."""
    n = J.shape[1]
    H = J.T @ J
    g = J.T @ r
    top = 0.0
    for a in range(n):
        top = max(top, H[a, a])
    for a in range(n):
        H[a, a] += lam * H[a, a] + 1e-12 * top
    L = np.empty((n, n))
    if not cholesky(H, L):
        step[:] = np.nan
        return
    x = np.empty((n, 1))
    for a in range(n):
        x[a, 0] = -g[a]
    solve_factored(L, x)
    step[:] = x[:, 0]


@njit(cache=True, fastmath=False)
def cholesky(H, L):
    """L (P, P) lower triangular with L Lᵀ = H, from H's lower triangle; False (L unfinished) where H is not
    positive definite to rounding. Shared by this module's frame fits and the fit of distances'
    :func:`~molmovie.inversion._refine_gn_kernels.cholesky_solve`."""
    P = H.shape[0]
    L[:] = 0.0
    for a in range(P):
        for b in range(a + 1):
            acc = H[a, b]
            for c in range(b):
                acc -= L[a, c] * L[b, c]
            if a == b:
                if not (acc > 0.0):
                    return False
                L[a, a] = math.sqrt(acc)
            else:
                L[a, b] = acc / L[b, b]
    return True


@njit(cache=True, fastmath=False)
def solve_factored(L, x):
    """x (P, K) ← (L Lᵀ)⁻¹ x, in place: forward then back substitution, every column at once (the inner loop runs
    along K)."""
    P, K = x.shape
    for a in range(P):  # L y = b
        for c in range(a):
            lac = L[a, c]
            for k in range(K):
                x[a, k] -= lac * x[c, k]
        for k in range(K):
            x[a, k] /= L[a, a]
    for a in range(P - 1, -1, -1):  # Lᵀ x = y
        for c in range(a + 1, P):
            lca = L[c, a]
            for k in range(K):
                x[a, k] -= lca * x[c, k]
        for k in range(K):
            x[a, k] /= L[a, a]


@njit(cache=True, parallel=True, fastmath=False)
def levenberg_marquardt(X0, pi, pj, mu, s, data, sigma, ref, q, pair_weight, const, weight, iterations, X, f):
    """``iterations`` Levenberg-Marquardt steps on each frame problem; X (F, N, 3) and f = ½|r|² (F,) written.

    X0 (F, N, 3) the starts; pi, pj (P,) the atoms of each pair; mu, s (F, P) the
    prior's log R̂ and relative width; data (F, Q), sigma (F, Q), ref (F, Q); q (Q,),
    pair_weight (P, Q), const (Q,) of Eq. (1); weight w. Damping as the PyTorch version:
    λ from 1e-3, divided by 3 after a step that lowers the objective, else multiplied
    by 4 (the step refused), within [1e-12, 1e12].
    """
    n_prob, n_atoms, _ = X0.shape
    n_q = q.shape[0]
    n_pair = pi.shape[0]
    n = 3 * n_atoms
    root_w = math.sqrt(weight)
    for m in prange(n_prob):
        x = X0[m].copy()
        r = np.empty(n_q + n_pair)
        J = np.empty((n_q + n_pair, n))
        _residuals(x, pi, pj, mu[m], s[m], data[m], sigma[m], ref[m], q, pair_weight, const, root_w, r, J, True)
        fm = 0.5 * np.sum(r * r)
        lam = 1e-3
        r_try = np.empty_like(r)
        J_try = np.empty_like(J)
        step = np.empty(n)
        for _ in range(iterations):
            _damped_step(J, r, lam, step)
            x_try = x + step.reshape(n_atoms, 3)
            _residuals(x_try, pi, pj, mu[m], s[m], data[m], sigma[m], ref[m], q, pair_weight, const, root_w, r_try, J_try, True)
            f_try = 0.5 * np.sum(r_try * r_try)
            if f_try < fm:  # NaN is never better
                x = x_try
                r[:] = r_try
                J[:] = J_try
                fm = f_try
                lam = lam / 3.0
            else:
                lam = lam * 4.0
            lam = min(max(lam, 1e-12), 1e12)
        X[m] = x
        f[m] = fm
