"""The signal fit over the atoms' coordinates: the joint MAP from the geometry nearest the prior.

The same objective as the fit in log distances (:mod:`molmovie.inversion._refine`),
over distance sets that some geometry has: two L-BFGS stages per batch of
series (the prior alone from classical MDS of the prior means, then prior and
signal), and the log distances of coordinates that the continuation in time
(:mod:`._refine_continuation`) and the posterior also use.
"""

from __future__ import annotations

import functools

from ..geometry import pair_indices
from ._refine_distance_space import _lbfgs


def _geometry_start(debye, mu, s, data, sigma, ref, mask, weight: float, max_iter: int, mix=None):
    """The coordinates (B, T, N, 3) of every frame of one batch of series that the joint MAP fit reaches (tensors (B, T, ·) in).

    Two L-BFGS stages of at most ``max_iter`` iterations each: the prior
    alone (a weighted stress in log distances, from classical MDS of the prior
    means: the geometry nearest the prior), then prior and signal together.
    The objective is invariant to each frame's rotation and translation; the
    optimiser follows the gradient, which has no component along them.
    ``mix`` (B, T, T), optional: the instrument response's time mixing of ΔS.
    """
    import torch

    from ..geometry import coordinates_from_distances
    from ..scattering import DebyeCompiled
    from ._refine_misfit import Misfit

    n = mask.sum()

    def prior_term(X):
        z = (_log_distances(X) - mu) / s
        return 0.5 * weight * (z**2).sum(-1)

    def signal(X):
        intensity = debye(_log_distances(X).exp())
        out = intensity / (intensity[:, :1] if ref is None else ref[:, None, :]) - 1.0
        return out if mix is None else mix @ out

    def projection(X):
        return (prior_term(X) * mask).sum() / n

    def posterior_objective(X):
        resid = (signal(X) - data) / sigma[:, None, :]
        return ((0.5 * (resid**2).sum(-1) + prior_term(X)) * mask).sum() / n

    if isinstance(debye, DebyeCompiled):  # the data term in one node (Misfit), the same objective
        fixed = (0.0, data.numpy(), sigma.numpy(), None if ref is None else ref.numpy(), None if mix is None else mix.numpy())

        def posterior_objective(X):
            return ((Misfit.apply(_log_distances(X), debye, *fixed) + prior_term(X)) * mask).sum() / n

    X = torch.as_tensor(coordinates_from_distances(mu.exp().cpu().numpy()), dtype=mu.dtype, device=mu.device)
    if max_iter > 0:
        for objective in (projection, posterior_objective):
            X = _lbfgs(X, objective, max_iter)
    return X


def _log_distances(X):
    """log R of every pair (..., P) from coordinates (..., N, 3), the pairs in :func:`molmovie.geometry.pair_indices` order."""
    import torch

    return 0.5 * torch.log(_pair_offsets(X)[1])


def _pair_offsets(X):
    """X_i - X_j of every pair (..., P, 3) and its squared length (..., P), plus :data:`_TINY_R2`."""
    i, j = _pairs(X.shape[-2], X.device)
    diff = X[..., i, :] - X[..., j, :]
    return diff, (diff * diff).sum(-1) + _TINY_R2


@functools.lru_cache(maxsize=16)
def _pairs(n_atoms: int, device):
    """The atom indices (i, j) of every pair, as tensors on ``device`` (made once: the fits ask for them at every evaluation)."""
    import torch

    return tuple(torch.as_tensor(a, device=device) for a in pair_indices(n_atoms))


#: Added to squared distances (Angstrom²) before their logarithm, so atoms that meet give a finite value.
_TINY_R2 = 1e-12
