r"""The distance fit's MAP by Levenberg-Marquardt on the whole series, with the Jacobian in closed form.

The objective of :func:`molmovie.inversion.refine_distances` in the prior-whitened
log distances z of one series is a sum of squares,

.. math::

    f(z) = \tfrac12 \sum_t m_t \big(\lVert r_t(z)\rVert^2 + w \lVert z_t\rVert^2\big),
    \qquad r_{tq} = \frac{I_q(e^{u_t}) / I_{\mathrm{ref},q} - 1 - \Delta S_{tq}}{\sigma_q},
    \quad u_t = \mu_t + s_t \odot z_t ,

(m_t = 1 on the series' valid frames), so it is minimised as least squares are:
each iteration solves the Gauss-Newton system :math:`(J^\top J + (w + \lambda)\mathbb{1})\,\delta = -\nabla f`
(Levenberg's damping λ, raised until the step lowers f and then set by the
ratio of the actual to the predicted decrease, Nielsen's rule: Madsen,
Nielsen and Tingleff, "Methods for non-linear least squares problems", DTU
(2004), sec. 3.2). The Jacobian of frame t's
residual by its own distances is the kernel's closed form
(:meth:`~molmovie.scattering.DebyeCompiled.value_and_jacobian`); with the
reference "first" (:math:`I_\mathrm{ref} = I(e^{u_0})`) every frame's residual
also depends on frame 0's distances, so :math:`J^\top J` is block-arrowhead: a
(P, P) block per frame, frame 0's row and column, and nothing else. It is
solved exactly by eliminating the frames (one batched (P, P) solve per frame)
and then frame 0 (its Schur complement), at O(T P³ + T Q P²) per iteration.
With a given reference the frames are independent and each is its own block.
The gradient and the blocks are accumulated from dI/dR in one compiled pass
(:func:`._refine_gn_kernels.normal_blocks`, without writing the Jacobian out)
and the damped systems solved by a compiled Cholesky
(:func:`._refine_gn_kernels.cholesky_solve`): NumPy's batched products and
LU solves of (P, P) matrices, and their cost per call, were most of an
iteration on the quick preset's NMM (21 moving pairs).

Least squares converge this way where a single damping suits the whole
series. A large molecule's frames differ: on the quick preset's NMM (21
moving distances, residuals far above the noise floor) 100 iterations of the
whole series left its objective falling. So :func:`fit_frames` first fits
every frame alone with the reference held (each frame its own damping: the
frames are independent then), and the whole series follows for a few
iterations to move frame 0 with them (:mod:`._refine_distance_space`: at most
two such rounds). The misfit is not convex, and :func:`continue_in_time`
then refits each frame from its neighbours' answers, keeping what lowers its
objective. Against the L-BFGS of :mod:`._refine_distance_space` (the PyTorch
path, 100 iterations) this reaches lower minima of the same objective on
every quick-preset test split where they differ (``benchmarks/bench_refine.py
--study``; figures in :mod:`._refine`'s notes). Signals with an instrument
response stay with L-BFGS (a time mixing couples every frame to its
neighbours: JᵀJ is banded, not arrowhead).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Levenberg's damping: start and bounds (its changes: Nielsen's rule, in gauss_newton).
_LAMBDA0, _LAMBDA_MIN, _LAMBDA_MAX = 1e-3, 1e-12, 1e12
#: Stop when a step lowers f by less than this fraction of f, or moves no z by more than _STEP_TOL.
_F_TOL, _STEP_TOL = 1e-13, 1e-10
#: Continuation: a neighbour's answer closer than this in every log distance (2 %; 0.06 Å at 3 Å) is not tried;
#: each frame's refit from a neighbour stops at this relative decrease or this many iterations (the minimum it finds
#: is only compared with the frame's own; the whole series is fitted again from the result, to _F_TOL)
_NEAR, _CONT_F_TOL, _CONT_ITER = 0.02, 1e-8, 15


def gauss_newton(
    model,
    background,
    mu,
    s,
    data,
    sigma,
    ref,
    mask,
    weight: float,
    max_iter: int,
    z0: np.ndarray | None = None,
    f_tol: float = _F_TOL,
) -> tuple[np.ndarray, np.ndarray]:
    """The MAP z (B, T, P) of each series (each its own problem, damping and stop) and its objective f (B,).

    ``model``: a :class:`~molmovie.scattering.DebyeCompiled` or the sum over its
    moving pairs (``background`` (B, T, Q) or 0 then holds the rest of I);
    ``mu``, ``s`` (B, T, P): the prior's log distances and relative widths of
    those pairs; ``data`` (B, T, Q), ``sigma`` (B, Q), ``ref`` (B, Q) or None for
    the reference "first", ``mask`` (B, T) 1 on valid frames; NumPy float64.
    ``max_iter`` bounds the Jacobian evaluations per series; ``z0`` (B, T, P),
    optional: where to start (default the prior's mean, z = 0); ``f_tol``: stop
    when a step lowers f by less than this fraction of it. Only the series
    still moving are computed at each iteration.
    """
    B, T, P = mu.shape
    first = ref is None
    z = np.zeros((B, T, P)) if z0 is None else np.array(z0, dtype=float)
    lam, nu = np.full(B, _LAMBDA0), np.full(B, 2.0)
    active = np.ones(B, dtype=bool)
    per_row = np.ndim(background) == 3

    def take(i: np.ndarray) -> tuple[Any, Any, Any, Any, Any, Any, Any]:
        """Series i's arrays, in _evaluate's order."""
        return (
            background[i] if per_row else background,
            mu[i],
            s[i],
            data[i],
            sigma[i],
            None if first else ref[i],
            mask[i],
        )

    f, _ = _evaluate(model, *take(np.arange(B)), weight, z, jacobian=False)
    for _ in range(max_iter):
        i = np.flatnonzero(active)
        if i.size == 0:
            break
        args = take(i)
        zi, fi, lam_i, nu_i = z[i], f[i], lam[i], nu[i]
        _, jac = _evaluate(model, *args, weight, zi, jacobian=True)
        g, H, Hc, H00 = _normal_equations(jac, zi, args[-1], weight, first)
        step = _solve(g, H, Hc, H00, lam_i, first)
        retry = np.ones(i.size, dtype=bool)
        moving = np.ones(i.size, dtype=bool)
        while retry.any():
            r = np.flatnonzero(retry)
            f_trial, _ = _evaluate(model, *take(i[r]), weight, zi[r] + step[r], jacobian=False)
            better = f_trial < fi[r]
            small = np.abs(step[r]).reshape(r.size, -1).max(1) <= _STEP_TOL
            done = better & (fi[r] - f_trial <= f_tol * fi[r])
            # the damping by the gain ratio ρ = actual / predicted decrease (Nielsen's rule: Madsen, Nielsen and
            # Tingleff, "Methods for non-linear least squares problems", DTU (2004), sec. 3.2)
            predicted = 0.5 * (step[r] * (lam_i[r, None, None] * step[r] - g[r])).reshape(r.size, -1).sum(1)
            rho = (fi[r] - f_trial) / np.maximum(predicted, np.finfo(float).tiny)
            zi[r[better]] += step[r[better]]
            fi[r[better]] = f_trial[better]
            shrink = np.maximum(1 / 3, 1 - (2 * np.clip(rho, 0, 1) - 1) ** 3)
            lam_i[r] = np.clip(np.where(better, lam_i[r] * shrink, lam_i[r] * nu_i[r]), _LAMBDA_MIN, _LAMBDA_MAX)
            nu_i[r] = np.where(better, 2.0, nu_i[r] * 2)
            stuck = ~better & (small | (lam_i[r] >= _LAMBDA_MAX))
            moving[r] &= ~(done | stuck)
            retry[r] = ~(better | stuck)
            again = np.flatnonzero(retry)
            if again.size:  # a smaller step from the same point: the system again, with more damping
                sub = (g[again], H[again], None if Hc is None else Hc[again], None if H00 is None else H00[again])
                step[again] = _solve(*sub, lam_i[again], first)
        z[i], f[i], lam[i], nu[i] = zi, fi, lam_i, nu_i
        active[i] = moving
    return z, f


def _evaluate(model, background, mu, s, data, sigma, ref, mask, weight, z, *, jacobian: bool):
    """f per series (B,), and with ``jacobian`` what :func:`_normal_equations` takes: dI/dR (B, T, Q, P),
    R s (B, T, P), σ I_ref (B, T, Q) or (B, 1, Q), I / I_ref (B, T, Q) and the whitened residuals (B, T, Q)."""
    B, T, P = mu.shape
    R = np.exp(mu + s * z)
    rows = np.ascontiguousarray(R.reshape(B * T, P))
    if jacobian:
        import torch

        value, dI_dR = model.value_and_jacobian(torch.from_numpy(rows))
        intensity, dI_dR = value.numpy().reshape(B, T, -1), dI_dR.numpy().reshape(B, T, -1, P)
    else:
        intensity = model.intensity_numpy(rows).reshape(B, T, -1)
    intensity = intensity + background
    r0 = intensity[:, :1] if ref is None else ref[:, None, :]
    ratio = intensity / r0
    resid = (ratio - 1.0 - data) / sigma[:, None, :]
    f = 0.5 * (mask * ((resid * resid).sum(-1) + weight * (z * z).sum(-1))).sum(1)
    if not jacobian:
        return f, None
    return f, (dI_dR, R * s, sigma[:, None, :] * r0, ratio, resid)


def _normal_equations(jac, z, mask, weight, first):
    """∇f (B, T, P), the frames' blocks JᵀJ + w (B, T, P, P), and for "first" frame 0's coupling blocks (B, T, P, P)
    and its own block (B, P, P): :func:`._refine_gn_kernels.normal_blocks` (formulas there)."""
    from .._numba import parallel_lock
    from ._refine_gn_kernels import normal_blocks

    dI_dR, Rs, unit, ratio, resid = jac
    B, T, Q, P = dI_dR.shape
    unit = np.ascontiguousarray(np.broadcast_to(unit, (B, T, Q)))
    g, H = np.empty((B, T, P)), np.empty((B, T, P, P))
    Hc, H00 = (np.empty((B, T, P, P)), np.empty((B, P, P))) if first else (np.empty((1, 1, 1, 1)), np.empty((1, 1, 1)))
    arrays = (dI_dR, Rs, unit, ratio, resid, mask, z)
    with parallel_lock:
        normal_blocks(*(np.ascontiguousarray(a, dtype=float) for a in arrays), float(weight), bool(first), g, H, Hc, H00)
    return (g, H, Hc, H00) if first else (g, H, None, None)


def _solve(g, H, Hc, H00, lam, first):
    """The damped Gauss-Newton step (B, T, P): frames eliminated, then frame 0 by its Schur complement."""
    T, P = g.shape[1:]
    if not first:
        return -_damped_solve(H, np.repeat(lam, T), g[..., None])[..., 0]
    rest = _damped_solve(H[:, 1:], np.repeat(lam, T - 1), np.concatenate([Hc[:, 1:], g[:, 1:, :, None]], axis=-1))
    HcT = Hc[:, 1:].swapaxes(-1, -2)
    S = H00 - (HcT @ rest[..., :P]).sum(1)
    rhs = -g[:, 0] + (HcT @ rest[..., P:]).sum(1)[..., 0]
    d0 = _damped_solve(S[:, None], lam, rhs[:, None, :, None])[:, 0, :, 0]
    dt = -rest[..., P] - (rest[..., :P] @ d0[:, None, :, None])[..., 0]
    return np.concatenate([d0[:, None], dt], axis=1)


def _damped_solve(H, lam, rhs):
    """(H + λ 1)⁻¹ rhs for H (B, T, P, P), λ per matrix (B T,) and rhs (B, T, P, K), by the compiled Cholesky."""
    from .._numba import parallel_lock
    from ._refine_gn_kernels import cholesky_solve

    B, T, P, K = rhs.shape
    out = np.empty((B * T, P, K))
    with parallel_lock:
        cholesky_solve(
            np.ascontiguousarray(H.reshape(B * T, P, P)),
            np.ascontiguousarray(lam, dtype=float),
            np.ascontiguousarray(rhs.reshape(B * T, P, K)),
            out,
        )
    return out.reshape(B, T, P, K)


class _Frames:
    """Every valid frame of a batch of series as its own problem, the reference held: frame 0's intensity at ``z``
    (reference "first"; frame 0 itself is then not one of them) or the given one. Given the reference, the
    objective is the sum of these problems' objectives (and, for "first", frame 0's own prior term)."""

    def __init__(self, model, background, mu, s, data, sigma, ref, mask, weight: float, z: np.ndarray) -> None:
        self.model, self.background, self.mu, self.s, self.data, self.sigma, self.weight = (
            model, background, mu, s, data, sigma, weight,
        )  # fmt: skip
        self.per_row = np.ndim(background) == 3
        self.start = 1 if ref is None else 0
        if ref is None:
            R0 = np.ascontiguousarray(np.exp(mu[:, 0] + s[:, 0] * z[:, 0]))
            self.held = model.intensity_numpy(R0) + (background[:, 0] if self.per_row else background)
        else:
            self.held = ref
        b, t = np.nonzero(mask[:, self.start :] > 0)
        self.b, self.t = b, t + self.start

    def _args(self, k: np.ndarray) -> tuple[Any, Any, Any, Any, Any, Any, Any]:
        bk, tk = self.b[k], self.t[k]
        return (
            self.background[bk, tk][:, None] if self.per_row else self.background,
            self.mu[bk, tk][:, None],
            self.s[bk, tk][:, None],
            self.data[bk, tk][:, None],
            self.sigma[bk],
            self.held[bk],
            np.ones((k.size, 1)),
        )

    def objective(self, k: np.ndarray, z_k: np.ndarray) -> np.ndarray:
        """The objectives (K,) of frames k at z_k (K, P)."""
        f, _ = _evaluate(self.model, *self._args(k), self.weight, z_k[:, None], jacobian=False)
        return f

    def fit(self, k: np.ndarray, z_k: np.ndarray, max_iter: int, f_tol: float) -> tuple[np.ndarray, np.ndarray]:
        """Frames k fitted alone from z_k (K, P), each its own damping and stop: their z (K, P) and objectives (K,)."""
        out, f = gauss_newton(self.model, *self._args(k), self.weight, max_iter, z0=z_k[:, None], f_tol=f_tol)
        return out[:, 0], f


def fit_frames(model, background, mu, s, data, sigma, ref, mask, weight: float, z: np.ndarray, max_iter: int, f_tol: float):
    """``z`` (B, T, P) with every frame moved to its own minimum, the reference held (:class:`_Frames`): frames are
    independent problems then, each with its own damping, where one damping for the whole series must suit its worst
    frame (measured on the quick preset's NMM: 100 iterations of the whole series left its objective falling)."""
    frames = _Frames(model, background, mu, s, data, sigma, ref, mask, weight, z)
    if frames.b.size:
        k = np.arange(frames.b.size)
        z = z.copy()
        z[frames.b, frames.t], _ = frames.fit(k, z[frames.b, frames.t], max_iter, f_tol)
    return z


def continue_in_time(model, background, mu, s, data, sigma, ref, mask, weight: float, z: np.ndarray, max_iter: int):
    """``z`` (B, T, P), a minimum of each series' objective, searched better frame by frame from its neighbours.

    The misfit of a distance is not convex (module notes of
    :mod:`._refine`), and a few frames of a series can end in another minimum
    than their neighbours (measured on the quick preset's dissociating CS2:
    6 of 201 frames of one series, 2 of another). With the reference held
    (frame 0's intensity, or the given one) the frames are independent
    problems, so every frame is fitted again from its left and its right
    neighbour's answer (each one frame's Levenberg-Marquardt, all at once) and
    keeps the new answer where its own objective is lower; frames next to one
    that moved are tried again, until none moves (at most T passes). Frame 0 of
    the reference "first" stays (every frame depends on it). As in the geometry
    fit's continuation: the same MAP, searched better; the objective only falls.
    """
    B, T = mu.shape[:2]
    frames = _Frames(model, background, mu, s, data, sigma, ref, mask, weight, z)
    b, t, start = frames.b, frames.t, frames.start
    if T - start < 2 or b.size == 0:
        return z
    z = z.copy()
    row = np.full((B, T), -1)
    row[b, t] = np.arange(b.size)
    f = frames.objective(np.arange(b.size), z[b, t])
    u = mu + s * z
    tried = np.ones(b.size, dtype=bool)
    for _ in range(T):
        moved = np.zeros(b.size, dtype=bool)
        for side in (-1, 1):
            nb = t + side
            ok = tried & (nb >= start) & (nb < T)
            ok[ok] &= row[b[ok], nb[ok]] >= 0
            k = np.flatnonzero(ok)
            # worth a fit: a frame whose objective is above its neighbour's (one in a wrong minimum fits its signal
            # worse than neighbours in the right one), and whose neighbour is not within _NEAR in every log distance
            # (that start lies in its own minimum: the misfit's minima are π/q_max apart, 0.46 Å at 6.8 1/Å)
            k = k[f[k] > f[row[b[k], nb[k]]]]
            k = k[np.abs(u[b[k], nb[k]] - u[b[k], t[k]]).max(-1, initial=0.0) > _NEAR]
            if k.size == 0:
                continue
            # the neighbour's log distances as this frame's start (a held pair has s = 0 and stays at z = 0)
            sk = s[b[k], t[k]]
            with np.errstate(divide="ignore", invalid="ignore"):
                z_start = np.where(sk > 0, (u[b[k], nb[k]] - mu[b[k], t[k]]) / np.where(sk > 0, sk, 1.0), 0.0)
            z_new, f_new = frames.fit(k, z_start, min(max_iter, _CONT_ITER), _CONT_F_TOL)
            better = f_new < f[k] * (1 - 1e-12)
            kk = k[better]
            z[b[kk], t[kk]] = z_new[better]
            u[b[kk], t[kk]] = mu[b[kk], t[kk]] + s[b[kk], t[kk]] * z_new[better]
            f[kk] = f_new[better]
            moved[kk] = True
        if not moved.any():
            break
        # next pass: the frames beside one that moved
        tried = np.zeros(b.size, dtype=bool)
        for side in (-1, 1):
            nb = t[moved] + side
            inside = (nb >= start) & (nb < T)
            r = row[b[moved][inside], nb[inside]]
            tried[r[r >= 0]] = True
    return z
