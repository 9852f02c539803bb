r"""The spreads of an ensemble fit: the profile likelihood of γ, added to the bootstrap's variance.

:func:`_profile_gamma` traces χ² along γ with Σ c = γ_k imposed;
:func:`_profile_weights` turns it into a distribution over γ_k
(p_k ∝ exp(−Δχ²_k / 2R_B²) Δγ_k); :func:`_spreads` adds the variance of every
derived quantity over it to the bootstrap's (the law of total variance, see
:mod:`molmovie.fitting._ensemble`).
"""

from __future__ import annotations

import numpy as np

from .._typing import Progress
from ._ensemble_system import _System


def _profile_gamma(
    sys_: _System, d_w: np.ndarray, gamma: float, M_e: int, n: int, birge: float, report: Progress
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The profile likelihood of γ at the fitted (t0, IRF): NNLS with Σ_excited c = γ_k imposed.

    On each side the range starts at 5 % of γ and is halved or doubled until it just reaches Δχ² = 9 R_B²
    (between one and two times as far as needed; or γ_k = 0, or 4 γ above); ``n`` points in all over it,
    γ itself among them.

    Returns
    -------
    gammas : ndarray, shape (K,)
        The sums Σ c the constrained solutions reached (within ~1e-4 of the requested γ_k), increasing.
    chi2 : ndarray, shape (K,)
        Data χ² of the constrained NNLS at each γ_k.
    weights : list of ndarray, shape (M,)
        The constrained solutions.
    """
    if n < 3:
        return np.zeros(0), np.zeros(0), []
    d = d_w.ravel()
    dd = float(d @ d)
    row = np.zeros(sys_.Phi.shape[1])
    row[:M_e] = 1.0
    solved: dict = {}  # the range search's solutions are points of the grid too (its ends and γ itself)

    def at(g: float) -> tuple[np.ndarray, float]:
        if g not in solved:
            solved[g] = sys_.solve(d, dd, total=(row, g))
            report(len(solved), {"stage": "profile", "total": None})
        return solved[g]

    _, chi2_0 = at(gamma)
    target = 9.0 * birge**2

    def rise(sign: float, h: float) -> float:
        g = gamma + sign * h
        return np.inf if g <= 0 else at(g)[1] - chi2_0

    half = []
    for sign in (-1.0, 1.0):
        h = 0.05 * gamma
        if rise(sign, h) >= target:  # too far already: halve while half as far still reaches the target
            for _ in range(40):
                if rise(sign, h / 2) < target:
                    break
                h /= 2
        else:  # not far enough: double until it reaches the target (or γ_k = 0, or 4 γ above)
            while h < 4 * gamma and rise(sign, h) < target:
                if sign < 0 and h >= gamma:
                    break
                h *= 2.0
            if sign < 0:
                h = min(h, gamma)
        half.append(h)
    n_lo = max((n - 1) // 2, 1)
    gammas = np.concatenate([np.linspace(gamma - half[0], gamma, n_lo + 1), np.linspace(gamma, gamma + half[1], n - n_lo)[1:]])
    gammas = gammas[gammas > 0]
    sols = [at(g) for g in gammas]
    reached = np.array([s[0][:M_e].sum() for s in sols])  # the exact profile point (see PROFILE_WEIGHT)
    order = np.argsort(reached, kind="stable")
    return reached[order], np.array([sols[k][1] for k in order]), [sols[k][0] for k in order]


def _profile_weights(gammas: np.ndarray, chi2: np.ndarray, birge: float) -> np.ndarray:
    """p_k ∝ exp(−Δχ²_k / 2 R_B²) Δγ_k (trapezoid widths), summing to 1; empty without a profile."""
    if gammas.size < 2:
        return np.zeros(0)
    width = np.gradient(gammas)
    logp = -(chi2 - chi2.min()) / (2.0 * birge**2)
    with np.errstate(under="ignore"):
        p = np.exp(logp - logp.max()) * np.abs(width)
    return p / p.sum()


def _weighted_var(values: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Σ_k p_k (x_k − x̄)² over axis 0, ignoring NaN entries (a channel without weight at some γ_k)."""
    ok = np.isfinite(values)
    pk = p.reshape((-1,) + (1,) * (values.ndim - 1)) * ok
    norm = pk.sum(axis=0)
    x = np.where(ok, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (pk * x).sum(axis=0) / norm
        var = (pk * (x - mean) ** 2).sum(axis=0) / norm
    return np.where(norm > 0, var, 0.0)


def _spreads(replicates: list[dict], main: dict, profile: list[dict] | None = None, p: np.ndarray | None = None) -> dict:
    """Spreads of the derived quantities: the bootstrap's variance plus the profile's (law of total variance)."""
    out = {}
    names = {
        "distance_mean": "distance_mean_std",
        "distance_std": "distance_std_std",
        "distance_quantiles": "distance_quantiles_std",
        "dissociated_fraction": "dissociated_fraction_std",
        "channel_fraction": "channel_fraction_std",
        "channel_distance_mean": "channel_distance_mean_std",
    }
    for key, name in names.items():
        if len(replicates) > 1:
            with np.errstate(invalid="ignore"):
                stack = np.array([rep[key] for rep in replicates])
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    out[name] = np.nanstd(stack, axis=0, ddof=1)
        else:
            out[name] = np.zeros_like(main[key])
        if profile and p is not None and p.size:
            var = _weighted_var(np.array([st[key] for st in profile], dtype=float), p)
            out[name] = np.sqrt(np.where(np.isfinite(out[name]), out[name] ** 2, 0.0) + var)
            out[name] = np.where(np.isnan(main[key]), np.nan, out[name]) if np.ndim(main[key]) else out[name]
    return out
