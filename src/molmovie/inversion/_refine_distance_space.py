"""The signal fit in log distances, and the posterior standard deviation that both spaces report.

The MAP of :func:`molmovie.inversion.refine_distances` over u = log R, one
batch of series at a time: Levenberg-Marquardt with the compiled kernels
(:mod:`._refine_gauss_newton`), or L-BFGS (:func:`_lbfgs`, also the geometry
fit's) on variables whitened by each frame's Gauss-Newton Hessian at the
prior mean (:func:`_hessians`); then the Laplace approximation or the prior's
width around the answer (:func:`_posterior`). See :mod:`molmovie.inversion._refine`
for the objective and the measurements behind these choices.
"""

from __future__ import annotations

import math

import numpy as np

#: The fit of distances with the compiled kernels: rounds of frames alone then the whole series (frame 0 held, then
#: moved with them; reference "first"), at most this many, each whole-series fit at most this many iterations, and
#: the last one, from the continuation's answer, at most this many (measured on the quick preset's NMM, whose large
#: residuals make Gauss-Newton converge slowly: its objective still fell after 100 iterations of the whole series)
_ROUNDS, _ROUND_ITER, _FINAL_ITER = 2, 10, 20


def _refine_batch(
    debye,
    mu,
    s,
    data,
    sigma,
    ref,
    mask,
    weight: float,
    max_iter: int,
    posterior: str,
    memory_mb: float,
    mix=None,
    solver="auto",
    continuation: bool = True,
):
    """MAP u = log R and the std of u for one batch of series (tensors (B, T, ·)); NumPy arrays out.

    L-BFGS runs on y = Lᵀz, L the Cholesky factor of each frame's Gauss-Newton
    Hessian at the prior mean (reference held there; for reference "first"
    frame 0's block counts once per later frame, as every frame's ΔS depends
    on it). Measured on exact CS2 signals with a given reference, the fit
    reaches 5e-5 to 4e-4 Å (sorted C-S) in 100 iterations; with reference "first" (frame 0 coupled
    to every frame, a coupling the block preconditioner leaves out) it
    converges more slowly, to about 1e-3 Å in 1000 iterations. ``mix`` (B, T, T),
    optional: the instrument response's time mixing of each series' ΔS (the
    preconditioner and the posterior then weight each frame's block by
    Σ_t mix[t, j]², the frames' coupling left out).
    """
    import torch

    from ..scattering import DebyeCompiled
    from ._refine_misfit import Misfit

    n = mask.sum()
    moved = (s != 0).any(0).any(0)  # the pairs the fit moves (a held pair has s = 0: u = log R̂)
    free, model, mu_f, s_f = None, debye, mu, s
    if isinstance(debye, DebyeCompiled):
        background = torch.zeros((), dtype=mu.dtype)
        if not bool(moved.all()):
            # the held pairs' part of Eq. (1) once, the moving pairs' at each evaluation: the same intensities
            free, held = torch.nonzero(moved).flatten(), torch.nonzero(~moved).flatten()
            with torch.no_grad():
                background = debye.const + debye.pairs(held.numpy())(mu[..., held].exp())
            model = debye.pairs(free.numpy())
            mu_f, s_f = mu[..., free], s[..., free]
        fixed = (
            background.numpy(),
            data.numpy(),
            sigma.numpy(),
            None if ref is None else ref.numpy(),
            None if mix is None else mix.numpy(),
        )

        def misfit(u_f):
            return Misfit.apply(u_f, model, *fixed)
    else:

        def misfit(u_f):
            intensity = debye(u_f.exp())
            signal = intensity / (intensity[:, :1] if ref is None else ref[:, None, :]) - 1.0
            if mix is not None:
                signal = mix @ signal
            resid = (signal - data) / sigma[:, None, :]
            return 0.5 * (resid**2).sum(-1)

    def reference_at(u):
        if ref is not None:
            return ref
        with torch.no_grad():
            return debye(u[:, 0].exp())

    P = mu_f.shape[-1]
    y = torch.zeros(mu_f.shape, dtype=mu.dtype, device=mu.device)
    if solver == "auto":
        solver = "gauss-newton" if isinstance(debye, DebyeCompiled) and mix is None else "lbfgs"
    if solver == "gauss-newton" and max_iter > 0 and P > 0:
        from ._refine_gauss_newton import _CONT_F_TOL, _CONT_ITER, continue_in_time, fit_frames, gauss_newton

        arrays = (model, fixed[0], mu_f.numpy(), s_f.numpy(), *fixed[1:4], mask.numpy(), weight)
        # each frame to its own minimum with the reference held (each its own damping), the whole series (frame 0
        # with them) a few times, the neighbours' answers tried, and the whole series to convergence
        z = np.zeros(mu_f.shape)
        for _ in range(_ROUNDS if ref is None else 1):  # a fixed count: no series' rounds depend on its batch
            z = fit_frames(*arrays, z, min(max_iter, _CONT_ITER), _CONT_F_TOL)
            if ref is None:
                z, _ = gauss_newton(*arrays, min(max_iter, _ROUND_ITER), z0=z, f_tol=_CONT_F_TOL)
        if continuation:
            z = continue_in_time(*arrays, z, max_iter)
        z, _ = gauss_newton(*arrays, min(max_iter, _FINAL_ITER), z0=z)
        u_f = mu_f + s_f * torch.from_numpy(z)
    elif max_iter > 0 and P > 0:
        H0 = _hessians(model, mu_f, s_f, sigma, reference_at(mu), weight, memory_mb, mix)  # (B, T, P, P)
        if ref is None:
            # the first frame is every frame's reference: ∂ΔS_t/∂u_0 ≈ -∂I_0/∂u_0 / I_0, once per later valid frame
            later = (mask.sum(1) - 1).clamp(min=0)[:, None, None]
            eye = torch.eye(P, dtype=mu.dtype, device=mu.device)
            H0[:, 0] = weight * eye + later * (H0[:, 0] - weight * eye)
        L = torch.linalg.cholesky(H0)

        def z_of(y):
            return torch.linalg.solve_triangular(L.mT, y.unsqueeze(-1), upper=True).squeeze(-1)

        def objective(y):
            z = z_of(y)
            per_frame = misfit(mu_f + s_f * z) + 0.5 * weight * (z**2).sum(-1)
            return (per_frame * mask).sum() / n

        y = _lbfgs(y, objective, max_iter)
        with torch.no_grad():
            u_f = mu_f + s_f * z_of(y)
    else:
        u_f = mu_f
    u = u_f if free is None else mu.index_copy(-1, free, u_f)
    return _posterior(debye, u, s, sigma, ref, weight, posterior, memory_mb, mix)


def _posterior(debye, u, s, sigma, ref, weight: float, posterior: str, memory_mb: float, mix=None):
    """The MAP u = log R and its std (module notes), NumPy: the prior's relative width, or the Laplace
    approximation's with the reference held at the MAP (the first frame of a reference "first" keeps the prior's)."""
    import torch

    if posterior == "prior":
        sd_z = torch.full_like(u, 1.0 / math.sqrt(weight))
    else:
        with torch.no_grad():
            ref_u = ref if ref is not None else debye(u[:, 0].exp())
        H = _hessians(debye, u, s, sigma, ref_u, weight, memory_mb, mix)
        sd_z = torch.cholesky_inverse(torch.linalg.cholesky(H)).diagonal(dim1=-2, dim2=-1).sqrt()
        if ref is None:
            sd_z[:, 0] = 1.0 / math.sqrt(weight)
    return u.cpu().numpy(), (s * sd_z).cpu().numpy()


def _lbfgs(x0, objective, max_iter: int):
    """``x0`` moved by at most ``max_iter`` L-BFGS iterations (strong-Wolfe line search) down ``objective``; detached."""
    import torch

    x = x0.detach().clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [x],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        loss = objective(x)
        loss.backward()
        return loss

    opt.step(closure)
    return x.detach()


def _hessians(debye, u, s, sigma, ref, weight: float, memory_mb: float, mix=None):
    """Per frame, the Gauss-Newton Hessian in z, w 1 + AᵀA (A: ΔS's Jacobian, whitened), with the reference held fixed; (B, T, P, P).

    With a time mixing ``mix`` (B, T, T), frame j's block is Σ_t mix[t, j]² AᵀA + w 1: the diagonal blocks of the
    mixed data's Gauss-Newton Hessian (the coupling between frames left out).
    """
    import torch

    B, T, P = u.shape
    Q = sigma.shape[-1]
    rows_u = u.reshape(B * T, P)
    rows_s = s.reshape(B * T, P)
    rows_unit = (sigma * ref)[:, None, :].expand(B, T, Q).reshape(B * T, Q)  # ∂ΔS = ∂I / I_ref, in units of σ
    H = torch.empty((B * T, P, P), dtype=u.dtype, device=u.device)
    if getattr(debye, "closed_form_jacobian", False):
        # dI/du = dI/dR R in closed form by the kernel, for a chunk of frames: (F, Q, P) and A
        chunk = max(1, int(memory_mb * 2**20 // (8 * Q * P * 3)))
        for a in range(0, B * T, chunk):
            b = min(B * T, a + chunk)
            R = rows_u[a:b].exp()
            _, dI_dR = debye.value_and_jacobian(R)
            A = dI_dR * (R * rows_s[a:b])[:, None, :] / rows_unit[a:b, :, None]  # (F, Q, P)
            H[a:b] = A.transpose(1, 2) @ A
    else:
        # dI/du for a chunk of frames by one batched backward pass over the Q outputs: Q copies of the chunk's (P, Q) graph
        chunk = max(1, int(memory_mb * 2**20 // (8 * Q * P * Q * 4)))
        eye = torch.eye(Q, dtype=u.dtype, device=u.device)[:, None, :]
        for a in range(0, B * T, chunk):
            b = min(B * T, a + chunk)
            x = rows_u[a:b].detach().requires_grad_(True)
            intensity = debye(x.exp())
            (grad,) = torch.autograd.grad(intensity, x, eye.expand(Q, b - a, Q), is_grads_batched=True)  # (Q, F, P)
            A = grad.permute(1, 0, 2) * rows_s[a:b, None, :] / rows_unit[a:b, :, None]  # (F, Q, P)
            H[a:b] = A.transpose(1, 2) @ A
    H = H.reshape(B, T, P, P)
    if mix is not None:
        H = H * (mix * mix).sum(1)[:, :, None, None]
    H.diagonal(dim1=-2, dim2=-1).add_(weight)
    return H
