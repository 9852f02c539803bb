"""The VRNN's loss, term by term, as pure functions of tensors.

Each term is a function of tensors alone (no model, no data set), so it can
be checked on small tensors against exact answers; :class:`~molmovie.inversion.VRNN`
composes them in :func:`vrnn_loss` and its training loop only calls that.
The functions use tensor methods, so this module imports PyTorch only where
a function needs it (:func:`best_permutation`, :func:`physics_frames`).

Per valid frame t (shapes ``(..., P)`` reduced over the last axis):

.. math::

    \\mathrm{NLL}_t = \\sum_p \\tfrac12 \\left(\\frac{y_{tp} - \\mu_{tp}}{\\sigma_{tp}}\\right)^2
        + \\log \\sigma_{tp} + \\tfrac12 \\log 2\\pi

    \\mathrm{KL}_t = \\sum_k \\log\\frac{\\sigma_{p,k}}{\\sigma_{q,k}}
        + \\frac{\\sigma_{q,k}^2 + (\\mu_{q,k} - \\mu_{p,k})^2}{2 \\sigma_{p,k}^2} - \\tfrac12

the negative log-likelihood of a diagonal Gaussian and the Kullback-Leibler
divergence KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) between diagonal Gaussians
(Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014, App. B;
Chung et al., NeurIPS 2015, Eq. 11).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "TARGETS",
    "to_target",
    "from_target",
    "target_slope",
    "gaussian_nll",
    "gaussian_kl",
    "reconstruction_error",
    "physics_misfit",
    "relative_change",
    "masked_mean",
    "best_permutation",
    "physics_weight",
    "full_weight_epoch",
    "physics_frames",
    "Patience",
    "LRSchedule",
    "SCHEDULES",
    "vrnn_loss",
]

#: Learning-rate schedules of :class:`LRSchedule`.
SCHEDULES = ("constant", "plateau", "onecycle")

#: Target transforms g(R) of the distances before standardisation.
TARGETS = ("log", "inverse", "linear")

LOG_2PI = math.log(2.0 * math.pi)

#: Smallest distance (Angstrom) the linear target answers.
LINEAR_FLOOR = 0.05


# --------------------------------------------------------------------------- targets


def to_target(R: np.ndarray, target: str) -> np.ndarray:
    """g(R): ``log R``, ``1/R`` or R itself (Angstrom in, NumPy)."""
    if target == "log":
        return np.log(R)
    if target == "inverse":
        return 1.0 / R
    return R


def from_target(g, target: str, floor: float):
    """R = g⁻¹(g), NumPy array or tensor; ``floor`` bounds g from below for ``inverse``.

    For ``inverse``, g is clipped at ``floor`` (so R <= 1/floor); for
    ``linear``, R at :data:`LINEAR_FLOOR`; ``log`` needs no bound (R = exp g > 0).
    """
    numpy = isinstance(g, np.ndarray)
    if target == "log":
        return np.exp(g) if numpy else g.exp()
    if target == "inverse":
        return 1.0 / (np.maximum(g, floor) if numpy else g.clamp(min=floor))
    return np.maximum(g, LINEAR_FLOOR) if numpy else g.clamp(min=LINEAR_FLOOR)


def target_slope(R: np.ndarray, target: str) -> np.ndarray:
    """|dR/dg| at R, the delta method's factor from σ_g to σ_R."""
    if target == "log":
        return R
    if target == "inverse":
        return R**2
    return np.ones_like(R)


# --------------------------------------------------------------------------- the terms


def gaussian_nll(y, mean, std):
    """Negative log-likelihood of ``y`` under N(mean, std²), summed over the last axis.

    Parameters
    ----------
    y, mean, std : tensor, shape (..., P)

    Returns
    -------
    tensor, shape (...)
    """
    return (0.5 * ((y - mean) / std) ** 2 + std.log() + 0.5 * LOG_2PI).sum(-1)


def gaussian_kl(q_mean, q_std, p_mean, p_std):
    """KL(N(q_mean, q_std²) ‖ N(p_mean, p_std²)) of diagonal Gaussians, summed over the last axis.

    Parameters
    ----------
    q_mean, q_std, p_mean, p_std : tensor, shape (..., K)

    Returns
    -------
    tensor, shape (...); 0 where the two Gaussians are the same.
    """
    return ((p_std / q_std).log() + (q_std**2 + (q_mean - p_mean) ** 2) / (2 * p_std**2) - 0.5).sum(-1)


def reconstruction_error(x_mean, x):
    """½ Σ (x_mean − x)² over the last axis: the NLL of x under N(x_mean, I) less its constant."""
    return 0.5 * ((x_mean - x) ** 2).sum(-1)


def relative_change(intensity, reference):
    """ΔS = I / I_ref − 1, a fraction; ``reference`` broadcasts against ``intensity``."""
    return intensity / reference - 1.0


def physics_misfit(dS_hat, dS, scale):
    """½ Σ_q ((ΔS_hat − ΔS) / s_q)² over the last axis.

    Parameters
    ----------
    dS_hat, dS : tensor, shape (..., Q), a fraction
    scale : tensor, shape (Q,)
        The per-q unit of the misfit (the training signals' standard deviation).
    """
    return 0.5 * (((dS_hat - dS) / scale) ** 2).sum(-1)


def masked_mean(values, mask):
    """Mean of ``values`` over the entries where ``mask`` is 1 (Σ values·mask / Σ mask)."""
    return (values * mask).sum() / mask.sum()


def best_permutation(y, mean, std, mask, perms):
    """Relabel each sequence's targets by the symmetry permutation of least NLL.

    The NLL's quadratic part for permutation π is
    Σ_t Σ_p A_tp (y_{t,π(p)} − μ_tp)², A = mask/σ²; expanding it, every π is
    scored at once from two (P, P) matrices per sequence,
    M1[r, p] = Σ_t y_tr² A_tp and M2[r, p] = Σ_t y_tr A_tp μ_tp, as
    Σ_p (M1 − 2 M2)[π(p), p] (the term in μ² is the same for all π).
    The choice is made in float64 without gradients; the loss is then
    computed directly on the chosen relabelling. Ties go to the lowest index
    (put the identity first).

    Parameters
    ----------
    y, mean, std : tensor, shape (B, T, P)
    mask : tensor, shape (B, T)
        1 on valid frames, 0 past each length.
    perms : tensor of long, shape (K, P)

    Returns
    -------
    tensor, shape (B, T, P): ``y[b][:, perms[k_b]]`` for each sequence's best k_b.
    """
    import torch

    with torch.no_grad():
        yd, md = y.double(), mean.double()
        A = mask.double()[..., None] / std.double() ** 2
        M1 = torch.einsum("btr,btp->brp", yd**2, A)
        M2 = torch.einsum("btr,btp->brp", yd, A * md)
        D = M1 - 2.0 * M2
        P = y.shape[-1]
        cost = D[:, perms, torch.arange(P, device=y.device)].sum(-1)  # (B, K)
        best = cost.argmin(dim=1)
    index = perms[best][:, None, :].expand_as(y)
    return torch.gather(y, 2, index)


# --------------------------------------------------------------------------- the physics term's schedule


def physics_weight(epoch: int, physics: float, warmup: int) -> float:
    """Weight of the physics term at a (1-based) epoch: 0 for ``warmup`` epochs, then a linear ramp to ``physics``.

    .. math:: w(e) = \\lambda \\min(1, \\max(0, (e - W)/W)), \\quad w = \\lambda \\text{ for } W = 0
    """
    w = int(warmup)
    if w == 0:
        return float(physics)
    return float(physics) * min(1.0, max(0.0, (epoch - w) / w))


def full_weight_epoch(physics: float, warmup: int) -> int:
    """First (1-based) epoch at which the physics term has its full weight (1 when it is off or has no warm-up)."""
    if physics <= 0 or int(warmup) == 0:
        return 1
    return 2 * int(warmup)


def physics_frames(n_frames: int, k: int, generator=None):
    """Frame indices for the physics term: frame 0 and ``k - 1`` others, sorted.

    A random subset with a ``torch.Generator``, evenly spaced ones without;
    None (every frame) when ``k`` is 0 or at least ``n_frames``.
    """
    import torch

    k = int(k)
    T = int(n_frames)
    if k == 0 or k >= T:
        return None
    if generator is None:
        rest = torch.linspace(1, T - 1, k - 1).round().long() if k > 1 else torch.zeros(0, dtype=torch.long)
    else:
        rest = 1 + torch.randperm(T - 1, generator=generator)[: k - 1]
    return torch.cat([torch.zeros(1, dtype=torch.long), rest.sort().values]).unique()


# --------------------------------------------------------------------------- early stopping and the learning rate


class Patience:
    """Early stopping: the best epoch so far, and whether the patience has run out.

    Epochs before ``start`` (while the physics term ramps up, the loss being
    minimised changes from epoch to epoch) are taken as the latest best and
    count nothing; from ``start`` on, an epoch improves when its loss is below
    the best so far, and training stops after ``patience`` epochs in a row
    without improvement.

    Parameters
    ----------
    patience : int
    start : int, default 1
        First (1-based) epoch whose loss is compared.

    Attributes
    ----------
    best_loss : float
        inf until ``start``.
    best_epoch : int
    since_best : int
        Epochs since the best one (0: the latest epoch is the best).
    """

    def __init__(self, patience: int, start: int = 1):
        self.patience, self.start = int(patience), int(start)
        self.best_loss, self.best_epoch, self.since_best = math.inf, 0, 0

    def update(self, epoch: int, loss: float) -> bool:
        """Record an epoch's monitored loss; True when training should stop."""
        if epoch < self.start or loss < self.best_loss:
            self.best_loss = math.inf if epoch < self.start else float(loss)
            self.best_epoch, self.since_best = int(epoch), 0
        else:
            self.since_best += 1
        return self.since_best >= self.patience


class LRSchedule:
    """The learning rate of an optimiser, set after every step and every epoch.

    Parameters
    ----------
    opt : torch.optim.Optimizer
    kind : {"constant", "plateau", "onecycle"}
        "constant": ``lr`` throughout. "plateau": a linear warm-up to ``lr``
        over the first epoch's ``steps``, then a division by 3 each time
        ``max(1, patience // 4)`` counted epochs in a row have not improved
        (:meth:`epoch_end`). "onecycle": :class:`torch.optim.lr_scheduler.OneCycleLR`
        over ``epochs`` x ``steps`` (warm-up from ``lr``/25 over the first 30 %,
        cosine annealing to ``lr``/10⁴; Smith & Topin, "Super-Convergence", 2019).
    lr : float
    epochs, steps : int
        Epochs planned and optimiser steps per epoch.
    patience : int
        The early-stopping patience (the plateau's wait is a quarter of it).

    Attributes
    ----------
    last_lr : float
        The rate the next step will use.
    """

    def __init__(self, opt, kind: str, lr: float, epochs: int, steps: int, patience: int):
        import torch

        if kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {kind!r}; known: {', '.join(SCHEDULES)}")
        self.opt, self.kind, self.lr, self.steps = opt, kind, float(lr), max(1, int(steps))
        self.wait = max(1, int(patience) // 4)
        self.step_count = 0
        self.cycle = None
        if kind == "onecycle":
            self.cycle = torch.optim.lr_scheduler.OneCycleLR(
                opt,
                max_lr=self.lr,
                total_steps=max(2, int(epochs) * self.steps),
                pct_start=0.3,
                div_factor=25.0,
                final_div_factor=1e4 / 25.0,
            )
        elif kind == "plateau":
            self._set(self.lr / self.steps)
        self.last_lr = self._get()

    def _get(self) -> float:
        return float(self.opt.param_groups[0]["lr"])

    def _set(self, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr

    def step_end(self) -> None:
        """After each optimiser step."""
        self.step_count += 1
        if self.cycle is not None and self.step_count < self.cycle.total_steps:
            self.cycle.step()
        elif self.kind == "plateau" and self.step_count <= self.steps:
            self._set(self.lr * min(1.0, (self.step_count + 1) / self.steps))
        self.last_lr = self._get()

    def epoch_end(self, counting: bool, since_best: int) -> None:
        """After each epoch: ``since_best`` counted epochs without improvement (:attr:`Patience.since_best`)."""
        if self.kind == "plateau" and counting and since_best > 0 and since_best % self.wait == 0:
            self._set(self._get() / 3.0)
        self.last_lr = self._get()


# --------------------------------------------------------------------------- the whole objective


def vrnn_loss(
    out: dict,
    batch: dict,
    *,
    n_pairs: int,
    perms,
    alpha: float,
    beta: float,
    gamma: float,
    physics: float = 0.0,
    signal=None,
    scale=None,
    frames=None,
):
    """The VRNN's mean loss per valid frame of a batch, its parts, and the frame count.

    .. math::

        \\mathcal{L} = \\frac{\\sum_{b,t} m_{bt} (\\alpha\\,\\mathrm{NLL}_{bt} + \\beta\\,\\mathrm{KL}_{bt}
            + \\gamma\\,\\mathrm{rec}_{bt})}{\\sum_{b,t} m_{bt}} + w\\,\\overline{\\mathrm{phys}}

    Parameters
    ----------
    out : dict of tensors
        The network's ``q_mean``, ``q_std``, ``p_mean``, ``p_std`` (B, T, latent)
        and, with a decoder, ``x_mean`` (B, T, Q).
    batch : dict of tensors
        ``y`` (B, T, P) standardised targets, ``x`` (B, T, Q) standardised
        input, ``dS`` (B, T, Q) raw input, ``mask`` (B, T).
    n_pairs : int
        P: the first P latents are the supervised ones.
    perms : tensor of long, shape (K, P)
        Symmetry permutations of the pairs; with K > 1 each sequence is scored
        against its best relabelling (:func:`best_permutation`).
    alpha, beta, gamma : float
        Weights of the NLL, the KL and the reconstruction (used only when
        ``out`` has ``x_mean``).
    physics : float
        Weight w of the physics term.
    signal : callable or None
        ΔS from supervised latent means (B, T', P) -> (B, T', Q); None: no physics term.
    scale : tensor, shape (Q,)
        Unit of the physics misfit (:func:`physics_misfit`).
    frames : tensor of long or None
        Frames on which the physics term is evaluated (None: all).

    Returns
    -------
    loss : tensor, scalar
    parts : dict of float
        ``nll``, ``kl``, ``rec`` (means per valid frame), ``phys`` (mean
        misfit over the chosen frames) and ``loss``.
    n : float
        The number of valid frames.
    """
    import torch

    P = n_pairs
    mask = batch["mask"]
    n = mask.sum()
    mu, sd = out["q_mean"][..., :P], out["q_std"][..., :P]
    y = batch["y"]
    if perms.shape[0] > 1:
        y = best_permutation(y, mu, sd, mask, perms)
    nll = gaussian_nll(y, mu, sd)
    kl = gaussian_kl(out["q_mean"], out["q_std"], out["p_mean"], out["p_std"])
    total = alpha * nll + beta * kl
    rec = torch.zeros_like(nll)
    if "x_mean" in out:
        rec = reconstruction_error(out["x_mean"], batch["x"])
        total = total + gamma * rec
    loss = (total * mask).sum() / n
    if signal is not None:
        sel = slice(None) if frames is None else frames.to(mu.device)
        phys = physics_misfit(signal(mu[:, sel]), batch["dS"][:, sel], scale)
        phys_mean = masked_mean(phys, mask[:, sel])
        loss = loss + physics * phys_mean
    else:
        phys_mean = torch.zeros(())
    with torch.no_grad():
        parts = {k: float((v * mask).sum() / n) for k, v in (("nll", nll), ("kl", kl), ("rec", rec))}
    parts["phys"] = float(phys_mean.detach())
    parts["loss"] = float(loss.detach())
    return loss, parts, float(n)
