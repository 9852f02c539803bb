"""Scattering (interim reference implementation; the scattering helper replaces this file).

Eq. (1), IAM: I(q) = Σ_A f_A² + Σ_A Σ_{B≠A} f_A f_B sin(qR)/(qR) (+ Σ_A S_A).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .._errors import InputError
from ..molecules import atomic_numbers

__all__ = [
    "form_factors", "incoherent", "intensity", "intensity_from_distances", "difference_signal",
    "q_grid", "simulate_signals", "DebyeTorch", "intensity_torch",
]


def _check_q(q) -> np.ndarray:
    q = np.atleast_1d(np.asarray(q, dtype=float))
    if q.ndim != 1 or not np.all(np.isfinite(q)):
        raise InputError("q must be a 1-D array of finite numbers")
    if np.any(q < 0):
        raise InputError(f"q must be >= 0; got {q.min():g}")
    return q


@lru_cache(maxsize=256)
def _table(kind: str, z: int, qs: tuple) -> np.ndarray:
    import xraylib

    x = np.asarray(qs) / (4 * np.pi)
    if kind == "f":
        return np.array([xraylib.FF_Rayl(z, xi) for xi in x])
    return np.array([xraylib.SF_Compt(z, xi) if xi > 0 else 0.0 for xi in x])


def form_factors(symbols, q) -> np.ndarray:
    q = _check_q(q)
    return np.stack([_table("f", int(z), tuple(q)) for z in atomic_numbers(symbols)])


def incoherent(symbols, q) -> np.ndarray:
    q = _check_q(q)
    return np.stack([_table("S", int(z), tuple(q)) for z in atomic_numbers(symbols)])


def intensity_from_distances(symbols, distances, q, *, inelastic: bool = True) -> np.ndarray:
    q = _check_q(q)
    f = form_factors(symbols, q)
    n = len(f)
    i, j = np.triu_indices(n, 1)
    d = np.asarray(distances, dtype=float)
    base = np.sum(f**2, axis=0) + (np.sum(incoherent(symbols, q), axis=0) if inelastic else 0.0)
    qr = d[..., :, None] * q
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(qr == 0, 1.0, np.sin(qr) / np.where(qr == 0, 1.0, qr))
    return base + 2 * np.einsum("...pq,pq->...q", s, f[i] * f[j])


def intensity(symbols, positions, q, *, inelastic: bool = True) -> np.ndarray:
    from ..geometry import distances

    return intensity_from_distances(symbols, distances(positions), q, inelastic=inelastic)


def difference_signal(I, I_ref) -> np.ndarray:
    return (np.asarray(I) - I_ref) / I_ref


def q_grid(q_min: float = 0.5, q_max: float = 6.8, n_q: int = 100) -> np.ndarray:
    if q_min < 0:
        raise InputError(f"The 'q_min' parameter must be >= 0; got {q_min}")
    if q_max <= q_min:
        raise InputError(f"The 'q_max' parameter must be > q_min; got {q_max}")
    if n_q < 2:
        raise InputError(f"The 'n_q' parameter must be >= 2; got {n_q}")
    return np.linspace(q_min, q_max, int(n_q))


def simulate_signals(symbols, positions, length, time, q, *, inelastic=True, reference="first", photons=None, irf_fs=None, seed=None, progress=None):
    q = _check_q(q)
    I = intensity(symbols, positions, q, inelastic=inelastic)
    length = np.asarray(length)
    if reference == "first":
        I_ref = I[:, 0].copy()
    else:
        I_ref = np.repeat(I[:, 0].mean(axis=0, keepdims=True), len(I), axis=0)
    dS = difference_signal(I, I_ref[:, None])
    if progress is not None:
        progress(len(I))
    return dS, I_ref


def DebyeTorch(symbols, q, *, inelastic=True, dtype=None, device=None):
    import torch

    class _Debye(torch.nn.Module):
        def __init__(self):
            super().__init__()
            qq = _check_q(q)
            f = form_factors(symbols, qq)
            i, j = np.triu_indices(len(f), 1)
            base = np.sum(f**2, 0) + (np.sum(incoherent(symbols, qq), 0) if inelastic else 0)
            dt = dtype or torch.float64
            self.register_buffer("q", torch.as_tensor(qq, dtype=dt, device=device))
            self.register_buffer("ff", torch.as_tensor(2 * f[i] * f[j], dtype=dt, device=device))
            self.register_buffer("base", torch.as_tensor(base, dtype=dt, device=device))

        def forward(self, d):
            qr = d[..., :, None] * self.q
            small = qr.abs() < 1e-4
            safe = torch.where(small, torch.ones_like(qr), qr)
            s = torch.where(small, 1 - qr**2 / 6, torch.sin(safe) / safe)
            return self.base + torch.einsum("...pq,pq->...q", s, self.ff)

    return _Debye()


def intensity_torch(symbols, distances, q, inelastic=True):
    return DebyeTorch(symbols, q, inelastic=inelastic, dtype=distances.dtype)(distances)
