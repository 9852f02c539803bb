r"""The learned method's signal fit through the measurement model (:func:`refine_through_measurement`).

The network's answer (:class:`molmovie.fitting.EnsembleVRNN`) is amortised:
one pass, no look at how well it explains *this* measurement. This fit lets
the data speak, as the per-trajectory VRNN's signal fit does
(:func:`molmovie.inversion.refine_distances`), but through the whole
measurement model: the excitation fraction γ, the time zero t0, the
instrument response, the ensemble and the ground-state hole.

The ensemble is the answer's own: each excited channel k is its training
trajectories reweighted (weights w_i, summing to 1) so that their mean
distances follow the network's channel means, mixed by the predicted shares
c_k (:meth:`EnsembleVRNN._mixture`); with a hole, the ground-state
trajectories weighted as the molecules the pump took out of the ground state
(h_i) form one more group. The fit moves every member of a group k at basis
frame j by one common factor on each heavy-atom pair p,

.. math::

    R_i(j, p) \to R_i(j, p)\, e^{\delta_k(j, p)},

with δ_k linear in time between knots every ``knot_dt`` (the network's own
frame step, from the excitation), so the channel's mean distance moves and its spread (what makes an
ensemble's signal differ from its mean geometry's) is kept. The measured
signal is then the measurement model's (:mod:`molmovie.measurement.model`),

.. math::

    \Delta S(q, t) = \gamma \sum_j K_{tj}(t_0, \mathrm{IRF})
        \sum_k a_k \Big[\sum_{i \in k} w_i \frac{I(R_i(j) e^{\delta_k(j)}, q)}{I_\mathrm{gs}(q)} - 1\Big],

a_k = c_k for an excited channel and −1 for the hole, with I Eq. (1)
(:class:`~molmovie.scattering.DebyeCompiled`; only the heavy pairs' part is
recomputed, the rest of each group's sum is fixed) and I_gs the laser-off
pattern. The molecules left in the ground state are all of them less the
hole: their mean distance is (R̄_all − γ R̄_hole) / (1 − γ), so fitting the
hole fits the coherent vibration left behind. The fit maximises the posterior with Gaussian priors from
the network: log of each channel mean (centre: the network's mean, width: its
relative σ; the hole's implied by the ground channel's), log γ, t0 and log(1 + IRF) (centres and widths: the network's),
whitened (z = 0 is the network's answer, each z ~ N(0, 1) a priori), by
L-BFGS. The knots' prior widths are the network's σ at the frame nearest each
knot; between knots the correction is interpolated, so it cannot follow the
noise of single basis frames (which the delays and the IRF do not resolve
anyway). Pairs with a hydrogen keep the network's answer, as in the
per-trajectory fit (the signal hardly constrains them).

The uncertainty is the Laplace approximation at the optimum: the
Gauss-Newton Hessian JᵀJ + 1 in z over every variable together (the IRF
couples neighbouring frames and γ couples all), inverted, its diagonal the
variance, mapped to each frame through the interpolation; at each frame the
network's σ shrinks by the ratio of that posterior σ to the interpolated
prior's (so without data it is the network's), and σ of a channel mean is
R̄ σ_δ (delta method). Beyond
:data:`_MAX_JOINT` variables (a molecule with many heavy pairs over many
knots) each knot's block is inverted alone, which ignores the coupling and
so understates σ; the result's provenance says which was done. The fit's
effective number of parameters, n − tr(H⁻¹) (each variable counts by how
much the data, not the prior, fix it), is the χ² reduction's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InputError
from .._guards import check_allocation
from ..geometry import heavy_pairs

#: Most variables for the joint Laplace approximation (its Hessian is n² float64: 4000² = 128 MB).
_MAX_JOINT = 4000


@dataclass
class Refined:
    """What the fit through the measurement model found (see :func:`refine_through_measurement`).

    ``mean``, ``std`` and ``spread`` are per channel of the answer (the excited ones, then the ground state's
    with a hole) on the basis frames, (C, T, P), Angstrom: the channel's mean distances, their σ, and the spread
    (weighted standard deviation) of its molecules.
    """

    mean: np.ndarray
    std: np.ndarray
    spread: np.ndarray
    gamma: float
    gamma_std: float
    t0: float
    t0_std: float
    irf_fs: float
    irf_fs_std: float
    dS_fit: np.ndarray
    n_effective: float
    laplace: str
    iterations: int


@dataclass
class _Group:
    """Trajectories moved together: their distances (M, T, P), weights (M,), the sign-and-share a, and the fixed part
    Σ w (I_held + const) of their weighted intensity (T, Q)."""

    R: np.ndarray
    w: np.ndarray
    a: float
    fixed: np.ndarray


def refine_through_measurement(
    sim: Any,
    members: list[tuple[np.ndarray, np.ndarray]],
    shares: np.ndarray,
    hole: np.ndarray | None,
    prior_mean: np.ndarray,
    prior_rel: np.ndarray,
    statics: dict[str, float],
    delays: np.ndarray,
    dS: np.ndarray,
    sigma: np.ndarray,
    *,
    knot_dt: float,
    max_iter: int = 200,
) -> Refined:
    """MAP of the answer given the measurement, through the measurement model (module notes).

    Parameters
    ----------
    sim : MeasurementSimulator
        The basis the model was trained on (its distances ``R`` (M, T, P), ``time``, ``q``, ``symbols``,
        ground-state trajectories ``ground`` and laser-off ``reference``).
    members : list of (indices, weights)
        Per excited channel, its trajectories in ``sim`` and their weights (summing to 1).
    shares : ndarray, shape (E,)
        Each excited channel's share of the excited molecules.
    hole : ndarray, shape (len(sim.ground),), or None
        The ground-state trajectories' weights in the hole (summing to 1; None: no hole).
    prior_mean, prior_rel : ndarray, shape (C, T, P)
        The network's channel means on the basis frames (Angstrom) and their relative σ: the E excited
        channels, then the ground state's when there is a hole.
    statics : dict
        ``gamma``, ``gamma_std``, ``t0``, ``t0_std``, ``irf_fs``, ``irf_fs_std`` of the network's answer.
    delays : ndarray, shape (T_d,), fs
    dS, sigma : ndarray, shape (T_d, Q)
        The measurement on ``sim.q`` and its σ (> 0).
    knot_dt : float, fs
        Spacing of the correction's knots from the excitation (the network's frame step): the shifts are
        linear between knots (module notes).
    max_iter : int
        Most L-BFGS iterations (0: the network's answer with the Laplace σ about it).
    """
    import torch

    from ..measurement.model import irf_operator_torch
    from ..scattering import DebyeCompiled

    T, P = prior_mean.shape[1:]
    E = len(members)
    with_hole = hole is not None and sim.ground.size > 0
    moved = np.asarray(heavy_pairs(list(sim.symbols)), dtype=np.int64)
    held = np.setdiff1d(np.arange(P), moved)
    Pm = moved.size
    debye = DebyeCompiled(list(sim.symbols), sim.q)
    f64 = torch.float64
    ref = sim.I_gs
    g0, t00, i0 = statics["gamma"], statics["t0"], statics["irf_fs"]
    M_most = max([len(idx) for idx, _ in members] + [sim.ground.size])
    check_allocation(8 * 3 * min(M_most, _CHUNK_ROWS // T + 1) * T * sim.q.size * max(Pm, 1), "the fit's Jacobian of one chunk")

    # the groups, and the prior of each one's shift: log(prior mean / the group's present mean), width the prior's
    groups, centre, width = [], [], []
    for k, ((idx, w), c_k) in enumerate(zip(members, shares, strict=True)):
        groups.append(_group(debye, sim.R[idx], w, float(c_k), held, ref))
        centre.append(prior_mean[k])
        width.append(prior_rel[k])
    if with_hole:
        R_g = sim.R[sim.ground]
        all_mean = R_g.mean(axis=0)
        groups.append(_group(debye, R_g, np.asarray(hole, dtype=float), -1.0, held, ref))
        hole_prior = np.maximum((all_mean - (1.0 - g0) * prior_mean[E]) / g0, 1e-3 * all_mean)
        centre.append(hole_prior)
        width.append((1.0 - g0) / g0 * prior_mean[E] * prior_rel[E] / hole_prior)
    G = len(groups)
    origin = np.stack([np.tensordot(gr.w, gr.R, axes=(0, 0)) for gr in groups])  # (G, T, P)
    delta0 = torch.as_tensor(np.log(np.stack(centre)[..., moved] / origin[..., moved]), dtype=f64)
    B, nearest = _knots(sim.time, knot_dt)  # (T, L) linear interpolation from the knots, each knot's nearest frame
    L = B.shape[1]
    s_d = torch.as_tensor(np.maximum(np.stack(width)[:, nearest][..., moved], 1e-6), dtype=f64)  # (G, L, Pm)
    B_t = torch.as_tensor(B, dtype=f64)
    data = torch.as_tensor(dS, dtype=f64)
    inv_sigma = torch.as_tensor(1.0 / sigma, dtype=f64)
    s_g = max(statics["gamma_std"] / g0, 1e-6)
    s_t = max(statics["t0_std"], 1e-6)
    s_i = max(statics["irf_fs_std"] / (i0 + 1.0), 1e-6)
    pair_sum = debye.pairs(moved)
    nd = G * L * Pm

    def unpack(z: Any) -> tuple[Any, Any, Any, Any]:
        zs = z[nd:]
        gamma = g0 * torch.exp(s_g * zs[0])
        t0 = t00 + s_t * zs[1]
        irf = torch.clamp((i0 + 1.0) * torch.exp(s_i * zs[2]) - 1.0, min=1e-3)
        return delta0 + torch.einsum("jl,glp->gjp", B_t, s_d * z[:nd].reshape(G, L, Pm)), gamma, t0, irf

    def model(z: Any) -> Any:
        delta, gamma, t0, irf = unpack(z)
        K = irf_operator_torch(sim.time, delays, t0=t0, irf_fs=irf, allow_beyond_end=True, dtype=f64)
        return gamma * (K @ _Mix.apply(delta, pair_sum, groups, moved, ref))

    def objective(z: Any) -> Any:
        resid = (model(z) - data) * inv_sigma
        return 0.5 * (resid * resid).sum() + 0.5 * (z * z).sum()

    n = nd + 3
    z = torch.zeros(n, dtype=f64, requires_grad=True)
    iterations = 0
    if max_iter > 0:
        opt = torch.optim.LBFGS(
            [z],
            lr=1.0,
            max_iter=int(max_iter),
            history_size=20,
            tolerance_grad=1e-10,
            tolerance_change=1e-14,
            line_search_fn="strong_wolfe",
        )

        def closure() -> Any:
            opt.zero_grad()
            loss = objective(z)
            loss.backward()
            return loss

        opt.step(closure)
        iterations = int(opt.state[opt._params[0]].get("n_iter", 0))
    z = z.detach()
    with torch.no_grad():
        delta, gamma, t0, irf = unpack(z)
        K = irf_operator_torch(sim.time, delays, t0=t0, irf_fs=irf, allow_beyond_end=True, dtype=f64)
        mix, g = _mix_and_jacobian(delta.numpy(), pair_sum, groups, moved, ref)
        fit = gamma * (K @ torch.as_tensor(mix))

    def static_model(zs: Any) -> Any:  # the signal as a function of (z_γ, z_t0, z_IRF), the groups held at the optimum
        _, gamma_, t0_, irf_ = unpack(torch.cat([z[:-3], zs]))
        K_ = irf_operator_torch(sim.time, delays, t0=t0_, irf_fs=irf_, allow_beyond_end=True, dtype=f64)
        return gamma_ * (K_ @ torch.as_tensor(mix))

    # three inputs, T_d Q outputs: forward mode, one pass per input
    Js = torch.autograd.functional.jacobian(static_model, z[-3:].clone(), strategy="forward-mode", vectorize=True)
    sd_d, sd_z, n_eff, laplace = _laplace_sd(K, float(gamma) * torch.as_tensor(g), B_t, s_d, Js, inv_sigma)
    # between knots the interpolated prior is narrower than the network's σ there: report the network's σ at each
    # frame shrunk by the posterior's share of the interpolated prior's variance (exactly the network's without data)
    prior_sd = np.sqrt(np.einsum("jl,glp->gjp", B * B, s_d.numpy() ** 2))
    sd_d = np.stack(width)[..., moved] * sd_d / prior_sd
    gam, t, i = float(gamma), float(t0), float(irf)

    # the answer: each group's members moved; an excited channel's weighted mean and spread, the ground state's from the hole
    mean, std, spread = prior_mean.copy(), prior_mean * prior_rel, np.full_like(prior_mean, np.nan)
    moments = []
    for k, gr in enumerate(groups):
        R = gr.R.copy()
        R[..., moved] *= np.exp(delta[k].numpy())[None]
        m1 = np.tensordot(gr.w, R, axes=(0, 0))
        m2 = np.tensordot(gr.w, R * R, axes=(0, 0))
        moments.append((m1, m2, m1[:, moved] * sd_d[k]))
    for k in range(E):
        m1, m2, sd = moments[k]
        mean[k][:, moved], std[k][:, moved] = m1[:, moved], sd
        spread[k] = np.sqrt(np.maximum(m2 - m1 * m1, 0.0))
    if with_hole:
        m1, m2, sd = moments[E]
        R_g = sim.R[sim.ground]
        a1, a2 = R_g.mean(axis=0), (R_g * R_g).mean(axis=0)
        left1 = (a1 - gam * m1) / (1.0 - gam)
        left2 = (a2 - gam * m2) / (1.0 - gam)
        mean[E][:, moved], std[E][:, moved] = left1[:, moved], gam / (1.0 - gam) * sd
        spread[E] = np.sqrt(np.maximum(left2 - left1 * left1, 0.0))
    return Refined(
        mean=mean,
        std=std,
        spread=spread,
        gamma=gam,
        gamma_std=gam * s_g * float(sd_z[-3]),
        t0=t,
        t0_std=s_t * float(sd_z[-2]),
        irf_fs=i,
        irf_fs_std=(i + 1.0) * s_i * float(sd_z[-1]),
        dS_fit=fit.numpy(),
        n_effective=n_eff,
        laplace=laplace,
        iterations=iterations,
    )


#: Rows (trajectory frames) of one chunk of the intensity Jacobian.
_CHUNK_ROWS = 1 << 16


def _group(debye: Any, R: np.ndarray, w: np.ndarray, a: float, held: np.ndarray, ref: np.ndarray) -> _Group:
    """A group, with the fixed part of its weighted intensity: the constant and the pairs the fit does not move.

    Members of weight 0 (most, after the non-negative least squares that weighted them) are left out: they add nothing.
    """
    import torch

    keep = w > 0
    R, w = R[keep], w[keep]
    fixed = np.broadcast_to(debye.const.numpy(), (R.shape[1], ref.size)).copy()
    if held.size:
        with torch.no_grad():
            I_held = debye.pairs(held)(torch.as_tensor(np.ascontiguousarray(R[..., held]))).numpy()  # (M, T, Q)
        fixed += np.tensordot(w, I_held, axes=(0, 0))
    return _Group(R=R, w=w, a=a, fixed=fixed)


def _mix_and_jacobian(
    delta: np.ndarray, pair_sum: Any, groups: list[_Group], moved: np.ndarray, ref: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Σ_k a_k (Σ_i w_i I_i / I_gs − 1) (T, Q) at the shifts δ (G, T, Pm), and its derivative by δ (G, T, Pm, Q)."""
    import torch

    G, T, Pm = delta.shape
    Q = ref.size
    mix = np.zeros((T, Q))
    g = np.zeros((G, T, Pm, Q))
    for k, gr in enumerate(groups):
        total = gr.fixed.copy()
        if Pm:
            factor = np.exp(delta[k])  # (T, Pm)
            chunk = max(1, _CHUNK_ROWS // T)
            for a in range(0, gr.R.shape[0], chunk):
                Rm = gr.R[a : a + chunk][..., moved] * factor[None]
                I, dI = pair_sum.value_and_jacobian(torch.as_tensor(np.ascontiguousarray(Rm)))  # (m, T, Q), (m, T, Q, Pm)
                w = gr.w[a : a + chunk]
                total += np.tensordot(w, I.numpy(), axes=(0, 0))
                g[k] += (dI.numpy() * (w[:, None, None] * Rm)[:, :, None, :]).sum(axis=0).transpose(0, 2, 1)
        mix += gr.a * (total / ref - 1.0)
        g[k] *= gr.a / ref
    return mix, g


class _Mix:
    """The groups' mixture as one autograd node: forward by the compiled kernels, backward by its Jacobian."""

    node: Any = None

    @classmethod
    def apply(cls, delta: Any, pair_sum: Any, groups: list[_Group], moved: np.ndarray, ref: np.ndarray) -> Any:
        if cls.node is None:  # made on first use: torch is imported only when a fit runs
            cls.node = _mix_function()
        return cls.node.apply(delta, pair_sum, groups, moved, ref)


def _mix_function() -> Any:
    import torch

    class MixFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, delta: Any, pair_sum: Any, groups: Any, moved: Any, ref: Any) -> Any:
            mix, g = _mix_and_jacobian(delta.detach().numpy(), pair_sum, groups, moved, ref)
            ctx.g = g
            return torch.as_tensor(mix)

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx: Any, grad: Any) -> Any:
            return torch.as_tensor(np.einsum("tq,ktpq->ktp", grad.numpy(), ctx.g)), None, None, None, None

    return MixFunction


def _knots(time: np.ndarray, knot_dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Knots every ``knot_dt`` fs from the excitation to the basis's end: the (T, L) matrix that interpolates
    linearly from them to the basis frames, and each knot's nearest frame."""
    tau = time - time[0]
    L = int(np.floor(tau[-1] / knot_dt + 1e-9)) + 1
    if L > 100000:
        raise InputError(f"the basis spans {L} knots of {knot_dt:g} fs; at most 100000")
    knots = np.arange(L) * knot_dt
    if knots[-1] < tau[-1]:
        knots = np.append(knots, tau[-1])
    eye = np.eye(knots.size)
    B = np.stack([np.interp(tau, knots, eye[l]) for l in range(knots.size)], axis=1)
    return B, np.abs(tau[:, None] - knots[None, :]).argmin(axis=0)


def _laplace_sd(K: Any, g: Any, B: Any, s: Any, Js: Any, inv_sigma: Any) -> tuple[np.ndarray, np.ndarray, float, str]:
    """The Laplace approximation at the optimum (module notes): σ of each group's log shift at every frame (G, T, Pm),
    σ of the whitened statics (3,), the effective number of parameters n − tr(H⁻¹), and how it was taken.

    The data's Jacobian by the whitened knot variables z_k(l, p) is γ Σ_j K[t, j] g_k(j, p, q) B[j, l] s_k(l, p)
    (``g`` with γ in it, (G, T, Pm, Q)), and ``Js`` (T_d, Q, 3) by the statics; rows over (t, q) whitened by σ.
    """
    import torch

    f64 = torch.float64
    G, T, Pm, Q = g.shape
    L = B.shape[1]
    Td = K.shape[0]
    nd = G * L * Pm
    n = nd + 3
    joint = n <= _MAX_JOINT
    if joint:
        check_allocation(8 * (2 * n * n + 2 * Q * n), f"the Laplace approximation's Hessian of {n} variables")
        H = torch.eye(n, dtype=f64)
    else:
        blocks = torch.zeros((G, L, Pm, Pm), dtype=f64)
        Hs = torch.eye(3, dtype=f64)
    for t in range(Td):
        Jd = torch.einsum("j,gjpq,jl,glp->glpq", K[t], g, B, s) * inv_sigma[t]  # (G, L, Pm, Q)
        Jst = Js[t] * inv_sigma[t][:, None]  # (Q, 3)
        if joint:
            Jt = torch.cat([Jd.reshape(nd, Q).T, Jst], dim=1)  # (Q, n)
            H += Jt.T @ Jt
        else:
            blocks += torch.einsum("glpq,glrq->glpr", Jd, Jd)
            Hs += Jst.T @ Jst
    if joint:
        cov = torch.cholesky_inverse(torch.linalg.cholesky(H))
        cov_d = cov[:nd, :nd].reshape(G, L, Pm, G, L, Pm)
        sd_d = np.empty((G, T, Pm))
        for k in range(G):
            for p in range(Pm):
                Mk = B * s[k, :, p][None, :]  # (T, L): the log shift at each frame from the knots' z
                sd_d[k, :, p] = ((Mk @ cov_d[k, :, p, k, :, p]) * Mk).sum(1).clamp(min=0).sqrt().numpy()
        var_z = cov.diagonal()
        return sd_d, var_z[nd:].sqrt().numpy(), float(n - var_z.sum()), "joint (every variable together)"
    blocks += torch.eye(Pm, dtype=f64)
    var = torch.cholesky_inverse(torch.linalg.cholesky(blocks)).diagonal(dim1=-2, dim2=-1)  # (G, L, Pm)
    sd_d = torch.einsum("jl,glp->gjp", B * B, s * s * var).sqrt().numpy()
    var_s = torch.cholesky_inverse(torch.linalg.cholesky(Hs)).diagonal()
    label = f"per knot ({n} variables > {_MAX_JOINT}: the coupling between knots left out, σ understated)"
    return sd_d, var_s.sqrt().numpy(), float(n - var.sum() - var_s.sum()), label
