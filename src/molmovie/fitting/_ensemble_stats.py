r"""What the weights of an ensemble fit say about the distances: weighted statistics of the basis at the delays.

:class:`_Stats` gives, for weights over the basis trajectories and a time
zero, every distance's weighted mean, standard deviation and quantiles at
delay − t0 (the convention of :class:`molmovie.measurement.Truth`: nearest
frame, last valid frame held, no IRF), the dissociated fraction, and the same
per channel (bound, dissociated); :func:`_with_ground` adds the molecules left
in the ground state as a third channel when the fit models the hole.
"""

from __future__ import annotations

import numpy as np

from ..datasets import Dataset
from ..geometry import distances
from ..measurement import parting_frames, weighted_quantiles
from ..trajectories import Ensemble


def _with_ground(st: dict, gs: _Stats, h: np.ndarray, gamma: float, t0: float) -> dict:
    """Add the remaining ground state as a third channel; channel fractions become fractions of all molecules.

    The molecules left in the ground state are its samples with weights 1/M_g − h_j (clipped at 0 where
    the hole removes more than a sample holds), normalised.
    """
    Mg = h.size
    left = np.clip(1.0 / Mg - h, 0.0, None)
    g = gs(left / left.sum() if left.sum() > 0 else np.full(Mg, 1.0 / Mg), t0)
    out = dict(st)
    frac = np.concatenate([gamma * st["channel_fraction"], [max(1.0 - gamma, 0.0)]])
    out["channel_fraction"] = frac
    for key, src in (
        ("channel_distance_mean", "distance_mean"),
        ("channel_distance_std", "distance_std"),
        ("channel_distance_quantiles", "distance_quantiles"),
    ):
        out[key] = np.concatenate([st[key], g[src][None]])
    return out


class _Stats:
    """Weighted distance statistics of the basis at delays − t0 (the Truth's convention)."""

    def __init__(self, basis: Dataset | Ensemble, delays: np.ndarray, levels: np.ndarray) -> None:

        ens = basis.ensemble if hasattr(basis, "ensemble") else basis
        self.time = np.asarray(ens.time, dtype=float) - float(ens.time[0])
        self.edges = np.concatenate([[0.0], 0.5 * (self.time[1:] + self.time[:-1])])
        T = ens.n_frames
        held = np.minimum(np.arange(T)[None, :], ens.length[:, None] - 1)
        pos = np.take_along_axis(ens.positions, held[:, :, None, None], axis=1)
        self.r = distances(pos)  # (M, T, P), each trajectory's last valid frame held
        self.part = parting_frames(ens)
        self.length = ens.length
        self.flag = np.asarray(ens.dissociated, dtype=bool)
        self.delays = np.asarray(delays, dtype=float)
        self.levels = levels

    def __call__(self, w: np.ndarray, t0: float) -> dict:
        frames = np.searchsorted(self.edges, np.clip(self.delays - t0, 0.0, None), side="right") - 1
        use = np.flatnonzero(w > 0)
        ww = w[use]
        r = self.r[use][:, frames]  # (m, T_d, P)
        held = np.minimum(frames[None, :], self.length[use, None] - 1)
        apart = (self.part[use, None] >= 0) & (held >= self.part[use, None])
        mean, std, quant = _moments(r, ww, self.levels)
        T_d, P = mean.shape
        K = self.levels.size
        ch_mean = np.full((2, T_d, P), np.nan)
        ch_std = np.full((2, T_d, P), np.nan)
        ch_quant = np.full((2, T_d, P, K), np.nan)
        ch_frac = np.zeros(2)
        for k, sel in enumerate((~self.flag[use], self.flag[use])):
            ch_frac[k] = ww[sel].sum()
            if ch_frac[k] > 0:
                ch_mean[k], ch_std[k], ch_quant[k] = _moments(r[sel], ww[sel] / ch_frac[k], self.levels)
        return dict(
            distance_mean=mean,
            distance_std=std,
            distance_quantiles=quant,
            dissociated_fraction=np.clip(ww @ apart, 0, 1),
            channel_fraction=ch_frac,
            channel_distance_mean=ch_mean,
            channel_distance_std=ch_std,
            channel_distance_quantiles=ch_quant,
        )


def _moments(r: np.ndarray, w: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = np.tensordot(w, r, axes=(0, 0))
    var = np.tensordot(w, (r - mean) ** 2, axes=(0, 0))
    return mean, np.sqrt(var), weighted_quantiles(r, w, levels, axis=0)
