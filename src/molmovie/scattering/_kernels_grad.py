r"""Compiled derivatives of the Debye sum (numba); called by :mod:`molmovie.scattering.debye_compiled`.

For a batch of geometries g, pairs p and q points k, with the per-pair
weights :math:`w_p(q) = 2 f_{i_p}(q) f_{j_p}(q)` of Eq. (1),

.. math::

    \frac{\partial I_g(q_k)}{\partial R_{gp}} = w_p(q_k)\, q_k\, \mathrm{sinc}'(q_k R_{gp}),
    \qquad \mathrm{sinc}'(x) = \frac{\cos x - \sin(x)/x}{x},

which cancels as x → 0, so below :data:`SERIES_BELOW` it is the series
-x/3 + x³/30 - x⁵/840 + x⁷/45360 instead (the PyTorch version's rule,
:mod:`molmovie.scattering.debye_torch`). :func:`debye_vjp` contracts it with
a gradient of the intensities (the vector-Jacobian product of reverse-mode
differentiation, never holding the Jacobian); :func:`debye_jacobian` writes
it out. The sine and cosine are the forward kernel's branch-free Cephes port
(:func:`molmovie.scattering._kernels._sincos`), so the inner loop over a
block of geometries vectorises; blocks run in parallel (``prange``). No
``fastmath``: IEEE float64 in the written order.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._numba import configure
from ._kernels import BLOCK, RESEED, _sincos

configure()  # the threading layer, before any kernel runs

#: |x| below which sinc'(x) is its series (float64; the PyTorch version's switch-over).
SERIES_BELOW = 0.05


@njit(cache=True, inline="always", fastmath=False)
def _dsinc(x):
    """d sinc(x)/dx in float64, branch-free: the formula, or its series near 0."""
    s, c = _sincos(x)
    small = abs(x) < SERIES_BELOW
    inv = 1.0 / (1.0 if small else x)
    formula = (c - s * inv) * inv
    x2 = x * x
    series = x * (-1.0 / 3.0 + x2 * (1.0 / 30.0 + x2 * (-1.0 / 840.0 + x2 / 45360.0)))
    return series if small else formula


@njit(cache=True, fastmath=False)
def _vjp_pair_direct(rp, gt, q, wp, acc):
    """acc[g] = Σ_k gt[k, g] w_p(q_k) q_k sinc'(q_k r_g): one sine and cosine per q point and lane."""
    acc[:] = 0.0
    for k in range(q.shape[0]):
        qk = q[k]
        wq = wp[k] * qk
        gk = gt[k]
        for g in range(BLOCK):
            acc[g] += gk[g] * (wq * _dsinc(qk * rp[g]))


@njit(cache=True, fastmath=False)
def _vjp_pair_uniform(rp, gt, q0, dq, inv_q, wp, acc, state):
    """The same sum on the grid q_k = q0 + k dq with every q0 r_g >= :data:`SERIES_BELOW`.

    (sin, cos)(q_k r) advance by a rotation through Δq r (angle addition),
    re-seeded exactly every ``RESEED`` steps; q_k sinc'(q_k r) = (cos - sin/(q_k r))/r.
    """
    n_q = inv_q.shape[0]
    sn, cs, sa, ca, ir = state[0], state[1], state[2], state[3], state[4]
    for g in range(BLOCK):
        sa[g], ca[g] = _sincos(dq * rp[g])
        ir[g] = 1.0 / rp[g]
    acc[:] = 0.0
    for k0 in range(0, n_q, RESEED):
        for g in range(BLOCK):
            sn[g], cs[g] = _sincos((q0 + k0 * dq) * rp[g])
        for k in range(k0, min(n_q, k0 + RESEED)):
            wk = wp[k]
            iqk = inv_q[k]
            gk = gt[k]
            for g in range(BLOCK):
                s = sn[g]
                c = cs[g]
                acc[g] += (gk[g] * wk) * (c - s * (iqk * ir[g]))
                sn[g] = s * ca[g] + c * sa[g]
                cs[g] = c * ca[g] - s * sa[g]
    for g in range(BLOCK):
        acc[g] *= ir[g]


@njit(cache=True, parallel=True, fastmath=False)
def debye_vjp(dist, grad, q, pair_weight, uniform, q0, dq, out):
    """out[g, p] = Σ_k grad[g, k] w_p(q_k) q_k sinc'(q_k R_gp).

    dist (G, P) float64, Angstrom; grad (G, Q); q (Q,); pair_weight (P, Q);
    ``uniform``: q_k = q0 + k dq (the forward kernel's plan), which takes the
    recurrence wherever every q r of a pair's block is >= :data:`SERIES_BELOW`;
    out (G, P), written. Padding lanes hold r = 1 and a zero gradient.
    """
    n_geom, n_pair = dist.shape
    n_q = q.shape[0]
    inv_q = np.empty(n_q)
    for k in range(n_q):
        inv_q[k] = 1.0 / (q0 + k * dq) if uniform and q0 > 0.0 else 0.0
    for blk in prange((n_geom + BLOCK - 1) // BLOCK):
        g0 = blk * BLOCK
        n = min(BLOCK, n_geom - g0)
        gt = np.zeros((n_q, BLOCK))  # the block's gradient, q-major (padding lanes 0)
        r = np.ones((n_pair, BLOCK))
        for g in range(n):
            for k in range(n_q):
                gt[k, g] = grad[g0 + g, k]
            for p in range(n_pair):
                r[p, g] = dist[g0 + g, p]
        acc = np.empty(BLOCK)
        state = np.empty((5, BLOCK))
        for p in range(n_pair):
            rp = r[p]
            fast = uniform and q0 > 0.0
            if fast:
                for g in range(BLOCK):
                    # not (>=) so that NaN takes the direct path
                    if not (q0 * rp[g] >= SERIES_BELOW) or not (abs(rp[g]) * (q0 + n_q * dq) < 1e6):
                        fast = False
            if fast:
                _vjp_pair_uniform(rp, gt, q0, dq, inv_q, pair_weight[p], acc, state)
            else:
                _vjp_pair_direct(rp, gt, q, pair_weight[p], acc)
            for g in range(n):
                out[g0 + g, p] = acc[g]


@njit(cache=True, parallel=True, fastmath=False)
def debye_jacobian(dist, q, pair_weight, out):
    """out[g, k, p] = w_p(q_k) q_k sinc'(q_k R_gp) (dI/dR); dist (G, P), q (Q,), pair_weight (P, Q), out (G, Q, P)."""
    n_geom, n_pair = dist.shape
    n_q = q.shape[0]
    for g in prange(n_geom):
        row = np.empty((n_pair, n_q))
        for p in range(n_pair):
            r = dist[g, p]
            wp = pair_weight[p]
            for k in range(n_q):
                row[p, k] = wp[k] * q[k] * _dsinc(q[k] * r)
        for k in range(n_q):
            for p in range(n_pair):
                out[g, k, p] = row[p, k]


@njit(cache=True, parallel=True, fastmath=False)
def pairs_value(dist, q, pair_weight, uniform, q0, dq, out):
    """out[g, k] = Σ_p w_p(q_k) sinc(q_k R_gp), any set of pairs with their own weights (no constant term).

    dist (G, P); q (Q,); pair_weight (P, Q); ``uniform`` as :func:`debye_vjp`: the
    rotation recurrence wherever every q r of a pair's block is >= :data:`SERIES_BELOW`,
    else one sine per q point (sinc(0) = 1); out (G, Q), written.
    """
    n_geom, n_pair = dist.shape
    n_q = q.shape[0]
    inv_q = np.empty(n_q)
    for k in range(n_q):
        inv_q[k] = 1.0 / (q0 + k * dq) if uniform and q0 > 0.0 else 0.0
    for blk in prange((n_geom + BLOCK - 1) // BLOCK):
        g0 = blk * BLOCK
        n = min(BLOCK, n_geom - g0)
        r = np.ones((n_pair, BLOCK))
        for g in range(n):
            for p in range(n_pair):
                r[p, g] = dist[g0 + g, p]
        acc = np.zeros((n_q, BLOCK))
        state = np.empty((5, BLOCK))
        sn, cs, sa, ca, ir = state[0], state[1], state[2], state[3], state[4]
        for p in range(n_pair):
            rp = r[p]
            wp = pair_weight[p]
            fast = uniform and q0 > 0.0
            if fast:
                for g in range(BLOCK):
                    if not (q0 * rp[g] >= SERIES_BELOW) or not (abs(rp[g]) * (q0 + n_q * dq) < 1e6):
                        fast = False
            if fast:
                for g in range(BLOCK):
                    sa[g], ca[g] = _sincos(dq * rp[g])
                    ir[g] = 1.0 / rp[g]
                for k0 in range(0, n_q, RESEED):
                    for g in range(BLOCK):
                        sn[g], cs[g] = _sincos((q0 + k0 * dq) * rp[g])
                    for k in range(k0, min(n_q, k0 + RESEED)):
                        wk = wp[k] * inv_q[k]
                        ak = acc[k]
                        for g in range(BLOCK):
                            s = sn[g]
                            c = cs[g]
                            ak[g] += wk * (s * ir[g])
                            sn[g] = s * ca[g] + c * sa[g]
                            cs[g] = c * ca[g] - s * sa[g]
            else:
                for k in range(n_q):
                    qk = q[k]
                    wk = wp[k]
                    ak = acc[k]
                    for g in range(BLOCK):
                        x = qk * rp[g]
                        s, _ = _sincos(x)
                        ak[g] += wk * (1.0 if x == 0.0 else s / x)
        for g in range(n):
            for k in range(n_q):
                out[g0 + g, k] = acc[k, g]
