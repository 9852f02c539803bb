"""The data term of the signal fit in one autograd node, by the compiled kernels (:class:`Misfit`)."""

from __future__ import annotations

import numpy as np
import torch


class Misfit(torch.autograd.Function):
    r"""Per frame, :math:`\tfrac12 \sum_q ((I(e^u)/I_\mathrm{ref} - 1 - \Delta S)/\sigma)^2` (B, T) from log distances u (B, T, P).

    The data term of :func:`molmovie.inversion.refine_distances` as one node
    instead of a dozen (the fit evaluates it a hundred times per series, and
    for a small molecule PyTorch's overhead per node outweighed Eq. (1)):
    I = background + model(e^u), with model a
    :class:`~molmovie.scattering.DebyeCompiled` (background 0) or the sum over
    its moving pairs (:meth:`~molmovie.scattering.DebyeCompiled.pairs`, the
    held pairs' part and the constant as background (B, T, Q)); I_ref given
    (B, Q) or, for None, each series' first frame. NumPy arrays for
    background, ΔS (B, T, Q), σ (B, Q) and I_ref. The backward pass is the
    kernel's vector-Jacobian product of ∂/∂I, the first frame's share through
    the reference included; first order. ``mix`` (B, T, T), optional: the
    instrument response's time mixing, applied to I/I_ref − 1 before the
    residual (rows over output frames, columns over input frames).
    """

    @staticmethod
    def forward(ctx, u, model, background, data, sigma, ref, mix=None):
        B, T, P = u.shape
        R = np.exp(u.detach().numpy()).reshape(B * T, P)
        intensity = model.intensity_numpy(R).reshape(B, T, -1) + background
        r0 = intensity[:, :1] if ref is None else ref[:, None, :]
        signal = intensity / r0 - 1.0
        if mix is not None:
            signal = np.einsum("btj,bjq->btq", mix, signal)
        resid = (signal - data) / sigma[:, None, :]
        ctx.model, ctx.first, ctx.mix = model, ref is None, mix
        ctx.arrays = R, intensity, r0, resid, sigma
        return torch.from_numpy(0.5 * (resid * resid).sum(-1))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        R, intensity, r0, resid, sigma = ctx.arrays
        B, T, Q = intensity.shape
        a = grad.numpy()[..., None] * resid / sigma[:, None, :]  # ∂/∂(I/I_ref), after the mixing
        if ctx.mix is not None:
            a = np.einsum("btj,btq->bjq", ctx.mix, a)  # before it
        g_I = a / r0
        if ctx.first:  # I_ref = I[:, 0]: every frame's share
            g_I[:, 0] -= (a * intensity).sum(1) / (r0[:, 0] * r0[:, 0])
        g_R = ctx.model.vjp_numpy(R, np.ascontiguousarray(g_I.reshape(B * T, Q)))
        return torch.from_numpy((g_R * R).reshape(B, T, -1)), None, None, None, None, None, None
