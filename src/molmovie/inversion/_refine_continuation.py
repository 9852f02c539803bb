"""Continuation in time of the geometry fit: each frame refitted from its neighbour's answer, kept if better.

Forward then backward over the frames, the same frame of every series at
once, each a small least-squares problem of 3N coordinates solved by
Levenberg-Marquardt with the Jacobian in closed form (see the notes of
:mod:`molmovie.inversion._refine`).
"""

from __future__ import annotations

import math

import numpy as np

from .._numba import parallel_lock
from ._refine_geometry_space import _log_distances, _pair_offsets, _pairs

#: Levenberg-Marquardt iterations of one frame's fit in a continuation pass (it starts next to an answer).
_SWEEP_ITER = 40


def _continuation(X, rows, debye, mu, s, data, sigma, ref, lengths, weight: float, sweeps: int, memory_mb: float) -> None:
    """``sweeps`` forward and backward passes over the frames of the series ``rows``: frame t refitted from frame t ∓ 1's answer, kept if better.

    X (M, T, N, 3), a tensor, changed in place; the prior, data and noise
    (M, T, ·), the given references (M, Q) or None and the lengths (M,) as
    NumPy arrays, of which only a chunk of series and one frame is made a
    tensor at a time. The reference is held: given, or each series' first
    frame (which is then not refitted: its own ΔS is 0 by construction).
    Each step starts from the answer its neighbour has just been given, so a
    series is swept frame by frame; the same frame of all series is fitted at
    once, each its own problem (:func:`_levenberg_marquardt`,
    :data:`_SWEEP_ITER` iterations), in chunks of series that fit in
    ``memory_mb``. With the first frame as the reference, the forward pass
    starts at frame 2 and the backward pass ends at frame 1.
    """
    import torch

    from ..scattering import DebyeCompiled

    _, T, N, _ = X.shape
    P, Q = mu.shape[-1], sigma.shape[-1]
    # per problem: Eq. (1)'s (P, Q) temporaries, the Jacobians (Q + P, 3N) held and tried, the normal matrices
    per_problem = 8 * (6 * P * Q + 4 * (Q + P) * 3 * N + 3 * P * 3 * N + 3 * (3 * N) ** 2)
    chunk = max(1, int(memory_mb * 2**20 // per_problem))

    def tensor(a):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64, device=X.device)

    compiled = isinstance(debye, DebyeCompiled)
    if compiled:
        from ..geometry import pair_indices
        from ._refine_lm import levenberg_marquardt

        pi, pj = (np.ascontiguousarray(a, dtype=np.int64) for a in pair_indices(N))
        model = (debye._q, debye._pair_weight, np.ascontiguousarray(debye.const.numpy()))

        def fit(X0, part, t, iterations):
            """The frame problems of series ``part`` at frame t from X0 (F, N, 3), compiled: (X, f) tensors."""
            out, f = np.empty(X0.shape), np.empty(len(X0))
            rows = (mu[part, t], s[part, t], data[part, t], sigma[part], refs[part])
            args = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in rows)
            with parallel_lock:
                levenberg_marquardt(np.ascontiguousarray(X0.numpy()), pi, pj, *args, *model, weight, iterations, out, f)
            return torch.from_numpy(out), torch.from_numpy(f)

    if ref is None:  # each series' first frame, held
        refs = np.empty((len(X), Q))
        for part in np.array_split(rows, -(-len(rows) // chunk)):
            refs[part] = debye(_log_distances(X[part, 0]).exp()).cpu().numpy()
    else:
        refs = ref
    first = 0 if ref is not None else 1
    for _ in range(sweeps):
        for step, frames in ((1, range(first + 1, T)), (-1, range(T - 2, first - 1, -1))):
            for t in frames:
                # the series that have frame t and the neighbour it starts from
                active = rows[lengths[rows] > (t if step == 1 else t + 1)]
                for part in np.array_split(active, -(-len(active) // chunk)) if len(active) else ():
                    if compiled:
                        trial, f_trial = fit(X[part, t - step], part, t, _SWEEP_ITER)
                        _, f_now = fit(X[part, t], part, t, 0)
                        better = (f_trial < f_now) | (~torch.isfinite(f_now) & torch.isfinite(f_trial))
                        X[torch.as_tensor(part)[better], t] = trial[better]
                        continue
                    args = (
                        debye,
                        tensor(mu[part, t]),
                        tensor(s[part, t]),
                        tensor(data[part, t]),
                        tensor(sigma[part]),
                        tensor(refs[part]),
                        weight,
                    )

                    def residuals(Xt, args=args):
                        return _frame_residuals(Xt, *args)

                    trial, f_trial = _levenberg_marquardt(X[part, t - step], residuals, _SWEEP_ITER)
                    r_now, _ = _frame_residuals(X[part, t], *args, jacobian=False)
                    f_now = 0.5 * (r_now * r_now).sum(-1)
                    # a better objective, or a finite one where the frame had none
                    better = (f_trial < f_now) | (~torch.isfinite(f_now) & torch.isfinite(f_trial))
                    keep = torch.as_tensor(part, device=X.device)[better]
                    X[keep, t] = trial[better]


def _frame_residuals(Xt, debye, mu, s, data, sigma, ref, weight: float, jacobian: bool = True):
    """Whitened residuals r (F, Q + P) of F single-frame problems, 0.5 |r|² their posterior objective, and dr/dX (F, Q + P, 3N).

    Signal rows (I(R)/I_ref - 1 - ΔS)/σ, prior rows √w (log R - log R̂)/(σ̂/R̂);
    the Jacobian in closed form (:meth:`DebyeTorch.value_and_jacobian`, and
    ∂ log R_ij/∂X_i = (X_i - X_j)/R_ij²).
    """
    import torch

    F, N, _ = Xt.shape
    i, j = _pairs(N, Xt.device)
    diff, r2 = _pair_offsets(Xt)  # (F, P, 3), (F, P)
    u = 0.5 * torch.log(r2)
    R = u.exp()
    intensity, dI_dR = debye.value_and_jacobian(R)
    root_w = math.sqrt(weight)
    r = torch.cat([(intensity / ref - 1.0 - data) / sigma, root_w * (u - mu) / s], dim=-1)
    if not jacobian:
        return r, None
    du_dX = torch.zeros((F, len(i), N, 3), dtype=Xt.dtype, device=Xt.device)
    rows = torch.arange(len(i), device=Xt.device)
    du_dX[:, rows, i] = diff / r2[..., None]
    du_dX[:, rows, j] = -diff / r2[..., None]
    du_dX = du_dX.reshape(F, len(i), 3 * N)
    J = torch.cat([(dI_dR * (R[:, None, :] / (ref * sigma)[:, :, None])) @ du_dX, (root_w / s)[..., None] * du_dX], dim=1)
    return r, J


def _levenberg_marquardt(x0, residuals, iterations: int):
    """``iterations`` Levenberg-Marquardt steps on each of F independent least-squares problems; (x (F, ...), 0.5 |r(x)|² (F,)).

    ``residuals(x)`` gives r (F, K) and dr/dx (F, K, n). The damping is
    Marquardt's (λ diag(JᵀJ)), per problem: divided by 3 after a step that
    lowers that problem's objective, multiplied by 4 (and the step refused)
    otherwise. Every operation is per problem, so a problem's answer does not
    depend on the others fitted with it. (Moré, "The Levenberg-Marquardt
    algorithm: implementation and theory", Lecture Notes in Math. 630 (1978);
    Nocedal and Wright, "Numerical Optimization" (2006), sec. 10.3.)
    """
    import torch

    x = x0.clone()
    r, J = residuals(x)
    f = 0.5 * (r * r).sum(-1)
    lam = torch.full_like(f, 1e-3)
    for _ in range(iterations):
        H = J.mT @ J
        g = (J.mT @ r.unsqueeze(-1)).squeeze(-1)
        diag = H.diagonal(dim1=-2, dim2=-1)
        damped = H + torch.diag_embed(lam[:, None] * diag + 1e-12 * diag.amax(-1, keepdim=True))
        step, _ = torch.linalg.solve_ex(damped, -g)
        x_try = x + step.reshape(x.shape)
        r_try, J_try = residuals(x_try)
        f_try = 0.5 * (r_try * r_try).sum(-1)
        better = f_try < f  # NaN is never better
        x = torch.where(better.reshape(-1, *([1] * (x.dim() - 1))), x_try, x)
        r = torch.where(better[:, None], r_try, r)
        J = torch.where(better[:, None, None], J_try, J)
        f = torch.where(better, f_try, f)
        lam = torch.where(better, lam / 3.0, lam * 4.0).clamp(1e-12, 1e12)
    return x, f
