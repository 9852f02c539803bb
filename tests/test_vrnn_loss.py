"""The VRNN's loss terms (molmovie.inversion.losses) on small tensors with exact or independently known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from molmovie.inversion.losses import (
    best_permutation,
    full_weight_epoch,
    gaussian_kl,
    gaussian_nll,
    masked_mean,
    physics_misfit,
    reconstruction_error,
    relative_change,
    vrnn_loss,
)

D = torch.float64
EPS = float(np.finfo(float).eps)


def test_nll_is_minus_the_gaussian_log_density():
    y = torch.tensor([[0.3, -1.2, 2.0]], dtype=D)
    mean = torch.tensor([[0.0, -1.0, 0.5]], dtype=D)
    std = torch.tensor([[1.0, 0.2, 3.0]], dtype=D)
    want = -norm.logpdf(y.numpy(), mean.numpy(), std.numpy()).sum(-1)
    np.testing.assert_allclose(gaussian_nll(y, mean, std).numpy(), want, rtol=1e-14)
    # the standard normal at its mean: ½ log 2π per dimension
    assert float(gaussian_nll(torch.zeros(4, dtype=D), torch.zeros(4, dtype=D), torch.ones(4, dtype=D))) == pytest.approx(
        2 * math.log(2 * math.pi), rel=8 * EPS
    )  # torch's log (its vectorised kernels, <= 1 ulp, differ from CPU to CPU) and a sum: a few eps


def test_kl_of_identical_gaussians_is_zero_and_otherwise_the_closed_form():
    m = torch.tensor([[0.3, -2.0], [1.0, 5.0]], dtype=D)
    s = torch.tensor([[0.7, 1.0], [2.5, 0.01]], dtype=D)
    assert torch.equal(gaussian_kl(m, s, m, s), torch.zeros(2, dtype=D))
    # KL(N(1, 0.5²) || N(0, 2²)) = log(2/0.5) + (0.5² + 1²)/(2·2²) - ½
    one = gaussian_kl(*(torch.tensor([v], dtype=D) for v in (1.0, 0.5, 0.0, 2.0)))
    assert float(one) == pytest.approx(math.log(4.0) + 1.25 / 8.0 - 0.5, rel=8 * EPS)  # a log (<= 1 ulp) and 3 additions
    # against torch.distributions, summed over independent dimensions
    qm, qs, pm, ps = (torch.tensor(v, dtype=D) for v in ([0.1, -0.4, 2.0], [0.3, 1.1, 0.9], [0.0, 0.5, 1.0], [1.0, 0.7, 2.2]))
    want = torch.distributions.kl_divergence(torch.distributions.Normal(qm, qs), torch.distributions.Normal(pm, ps)).sum()
    assert float(gaussian_kl(qm, qs, pm, ps)) == pytest.approx(float(want), rel=1e-14)
    assert float(gaussian_kl(qm, qs, pm, ps)) > 0


def test_reconstruction_physics_misfit_relative_change_and_masked_mean():
    x_hat = torch.tensor([[1.0, 2.0, 3.0]], dtype=D)
    x = torch.tensor([[1.0, 0.0, 4.0]], dtype=D)
    assert float(reconstruction_error(x_hat, x)) == 0.5 * (4.0 + 1.0)
    scale = torch.tensor([1.0, 2.0, 0.5], dtype=D)
    assert float(physics_misfit(x_hat, x, scale)) == 0.5 * ((2.0 / 2.0) ** 2 + (1.0 / 0.5) ** 2)
    np.testing.assert_array_equal(relative_change(torch.tensor([3.0, 1.0]), torch.tensor([2.0, 4.0])).numpy(), [0.5, -0.75])
    v = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert float(masked_mean(v, mask)) == 2.0


def test_best_permutation_picks_the_known_swap():
    perms = torch.tensor([[0, 1, 2], [1, 0, 2]])  # CS2: identity, and the two C-S pairs swapped
    mean = torch.tensor([[[1.0, 2.0, 3.0], [1.5, 2.5, 3.5]], [[1.0, 2.0, 3.0], [1.5, 2.5, 3.5]]])
    y = mean.clone()
    y[1] = mean[1][:, [1, 0, 2]]  # sequence 1 labels the sulfurs the other way round
    std = torch.ones_like(mean)
    mask = torch.ones(2, 2)
    got = best_permutation(y, mean, std, mask, perms)
    assert torch.equal(got, mean)  # both relabelled onto the prediction
    # a frame past the length does not vote: its swapped values are ignored
    y2 = mean.clone()
    y2[0, 1] = mean[0, 1][[1, 0, 2]] * 10
    got = best_permutation(y2, mean, std, torch.tensor([[1.0, 0.0], [1.0, 1.0]]), perms)
    assert torch.equal(got[0], y2[0])


def test_the_loss_composes_its_terms_over_valid_frames():
    # one sequence, two frames (the second past its length), one pair, one free latent
    q_mean = torch.tensor([[[0.5, 0.0], [9.0, 9.0]]], dtype=D)
    q_std = torch.tensor([[[2.0, 1.0], [1.0, 1.0]]], dtype=D)
    p_mean = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]], dtype=D)
    p_std = torch.tensor([[[1.0, 1.0], [1.0, 1.0]]], dtype=D)
    out = {"q_mean": q_mean, "q_std": q_std, "p_mean": p_mean, "p_std": p_std}
    batch = {
        "y": torch.tensor([[[1.5], [0.0]]], dtype=D),
        "x": torch.zeros(1, 2, 1, dtype=D),
        "dS": torch.tensor([[[0.25], [7.0]]], dtype=D),
        "mask": torch.tensor([[1.0, 0.0]], dtype=D),
    }
    perms = torch.tensor([[0]])
    nll = 0.5 * (1.0 / 2.0) ** 2 + math.log(2.0) + 0.5 * math.log(2 * math.pi)
    kl = (math.log(1 / 2.0) + (4.0 + 0.25) / 2 - 0.5) + (0.0 + (1.0 + 1.0) / 2 - 0.5)
    loss, parts, n = vrnn_loss(out, batch, n_pairs=1, perms=perms, alpha=2.0, beta=0.5, gamma=1.0)
    assert n == 1.0 and float(loss) == pytest.approx(2.0 * nll + 0.5 * kl, rel=1e-14)
    assert parts["nll"] == pytest.approx(nll, rel=1e-14) and parts["kl"] == pytest.approx(kl, rel=1e-14)
    assert parts["rec"] == 0.0 and parts["phys"] == 0.0
    # a signal model ΔS = μ/4 misses the frame's 0.25 by 0.125; the misfit is ½ (0.125 / 0.5)²
    loss2, parts2, _ = vrnn_loss(
        out,
        batch,
        n_pairs=1,
        perms=perms,
        alpha=2.0,
        beta=0.5,
        gamma=1.0,
        physics=0.1,
        signal=lambda mu: mu / 4,
        scale=torch.tensor([0.5], dtype=D),
    )
    assert parts2["phys"] == pytest.approx(0.5 * 0.25**2, rel=1e-14)
    assert float(loss2) == pytest.approx(float(loss) + 0.1 * parts2["phys"], rel=1e-14)


def test_full_weight_epoch():
    assert full_weight_epoch(0.1, 20) == 40
    assert full_weight_epoch(0.1, 0) == 1 and full_weight_epoch(0.0, 20) == 1
