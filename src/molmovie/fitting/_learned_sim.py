r"""Simulated measurements to train the learned measurement method on: sub-ensembles of a basis, seen as a beamline sees them.

Each training example is one pump-probe measurement made by the measurement
model of :mod:`molmovie.measurement` (the same model the ensemble fit inverts)
from a random sub-ensemble of the training trajectories:

.. math::

    \Delta S(q, t_k) = \gamma \Big[\sum_i w_i\, \Delta S_i \otimes G - \sum_j h_j\, \Delta S^\mathrm{gs}_j \otimes G\Big](q, t_k - t_0)
        + \sigma_{kq}\,\varepsilon_{kq},
    \qquad \sigma_{kq} = \sqrt{(1 + \Delta S_{kq}) / n},

with, drawn afresh for every example,

* the excited sub-ensemble: ``members`` trajectories (between the two bounds)
  of the basis's excited ones, Dirichlet(1) weights w (so every mix of
  bound and dissociating motion is seen, from one channel alone to both);
* γ log-uniform in ``gamma_range``; time zero after the first delay by a
  lead uniform in ``lead_range`` (fs: the network reads no delay axis, only
  its frames, so it finds t0 as the lead from its first frame); the IRF's
  FWHM uniform in ``irf_range`` (fs);
* photon noise: n (photons per q bin of the laser-off pattern) log-uniform in
  ``photons_range``, Gaussian with the Poisson variance (n >= 10^3 here, where
  the two agree to the third moment);
* with ``hole`` (a basis that holds ground-state dynamics, see
  :func:`molmovie.fitting._ensemble._hole_split`): the ground-state hole,
  removal probabilities :math:`p_j \propto \mathrm{sigmoid}(s (R_j - R_c)/w)`
  of each ground-state sample's bond lengths R_j at excitation (the sum over
  its pairs), with a random sign s, centre R_c and width w, or uniform (no
  hole) with probability 1/3; h = γ p / Σp;
* the delays: the network's frames t_k = t_start + k dt, each kept with a
  probability drawn in [``keep_min``, 1] (a measurement samples some delays
  and not others; the network is told which it has).

The targets are what every measurement method answers (the convention of
:class:`molmovie.measurement.Truth`: a delay's distances are those of the
frame nearest to delay − t0, the first frame before time zero, no IRF): per
channel (bound, dissociated, and with the hole the molecules left in the
ground state) the weighted mean of every distance, the dissociated channel's
share of the excited ensemble, γ, t0 and the IRF.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._errors import InputError
from ..datasets import Dataset
from ..geometry import distances
from ..measurement.model import _cell_edges, irf_operator

__all__ = ["MeasurementSimulator"]


class MeasurementSimulator:
    """Draws simulated measurements (inputs and targets) from a basis, on a q grid and a frame step.

    Built from the basis's distances (:meth:`from_dataset`, or a model file's copy of them), so that a
    saved model can remake every signal it was trained on.

    Parameters
    ----------
    symbols : tuple of str
    R : ndarray, shape (M, T, P), Angstrom
        Every trajectory's distances, the last valid frame held past its length.
    time : ndarray, shape (T,), fs
        The basis's frame times; the first is the excitation.
    dissociated : ndarray of bool, shape (M,)
    excited, ground, reference : ndarray of int
        The excited trajectories, the ground-state ones of the hole (empty without it), and those whose mean first
        frame is the laser-off pattern (:func:`molmovie.measurement.basis_signals`).
    q : ndarray, shape (Q,), 1/Angstrom
    dt : float
        Spacing of the network's frames, fs.
    settings : object
        The method's settings (``members``, ``gamma_range``, ``lead_range``, ``irf_range``,
        ``photons_range``, ``keep_min``, ``hole``).
    """

    def __init__(
        self,
        symbols: Any,
        R: Any,
        time: Any,
        dissociated: Any,
        excited: Any,
        ground: Any,
        reference: Any,
        q: Any,
        dt: float,
        settings: Any,
    ) -> None:
        from ..scattering import intensity_from_distances

        self.s = settings
        self.dt = float(dt)
        self.symbols = tuple(symbols)
        self.R = np.asarray(R, dtype=float)
        self.time = np.asarray(time, dtype=float)
        self.flag = np.asarray(dissociated, dtype=bool)
        self.excited = np.asarray(excited, dtype=np.int64)
        self.ground = np.asarray(ground, dtype=np.int64)
        self.reference = np.asarray(reference, dtype=np.int64)
        self.q = np.asarray(q, dtype=float)
        if self.excited.size < 2:
            raise InputError(f"the basis has {self.excited.size} excited trajectory(ies); the learned method needs at least 2")
        I = intensity_from_distances(self.symbols, self.R, self.q)  # (M, T, Q)
        self.I_gs = I[self.reference, 0].mean(axis=0)  # the laser-off pattern the signals are against
        self.dS = I / self.I_gs - 1.0
        _, T, Q = self.dS.shape
        self._excited_flat = np.ascontiguousarray(self.dS[self.excited].reshape(self.excited.size, T * Q))
        self._ground_flat = np.ascontiguousarray(self.dS[self.ground].reshape(self.ground.size, T * Q))
        self.edges = _cell_edges(self.time)
        self.r0 = self.R[self.ground, 0].sum(axis=1) if self.ground.size else np.zeros(0)
        self.span = float(self.time[-1] - self.time[0])
        self.n_pairs = self.R.shape[2]
        # the channels the basis can make: its excited trajectories by fate (a fate it lacks is no channel), the ground state's
        fates = (("bound", ~self.flag[self.excited]), ("dissociated", self.flag[self.excited]))
        self.excited_channels = tuple((name, sel) for name, sel in fates if sel.any())
        self.channels = tuple(name for name, _ in self.excited_channels) + (("ground",) if self.ground.size else ())

    @classmethod
    def from_dataset(cls, basis: Dataset, q: np.ndarray, dt: float, settings: Any) -> MeasurementSimulator:
        """The simulator of a dataset's trajectories (with ``settings.hole``: its ground-state dynamics as the hole's)."""
        from ..measurement import ground_start_flags
        from ._ensemble import _hole_split

        ens = basis.ensemble
        if settings.hole:
            ground, excited = _hole_split(ens)
            if ground.size == 0:
                raise InputError("hole: the basis has no ground-state dynamics (bound Wigner-started runs) to make it from")
        else:
            ground, excited = np.zeros(0, dtype=np.int64), np.arange(ens.n_trajectories)
        flags = ground_start_flags(ens)
        reference = np.flatnonzero(flags) if flags is not None and flags.any() else np.arange(ens.n_trajectories)
        held = np.minimum(np.arange(ens.n_frames)[None, :], ens.length[:, None] - 1)
        pos = np.take_along_axis(ens.positions, held[:, :, None, None], axis=1)
        # the distances at the precision a model file keeps them (float32), so that a saved model remakes the same signals
        R = distances(pos).astype(np.float32).astype(float)
        return cls(ens.symbols, R, ens.time, ens.dissociated, excited, ground, reference, q, dt, settings)

    def frames(self) -> int:
        """Frames of a training sequence: the longest lead, then the whole basis."""
        return int(np.floor((max(self.s.lead_range[1], 0.0) + self.span) / self.dt)) + 1

    def targets(self, w_exc: np.ndarray, h: np.ndarray, delays: np.ndarray, t0: float) -> tuple[np.ndarray, np.ndarray, float]:
        """Per-channel mean distances at delays − t0 (C, T_d, P) with NaN for an empty channel, and the dissociated share."""
        frames = np.searchsorted(self.edges, np.clip(delays - t0, 0.0, None), side="right") - 1
        out = np.full((len(self.channels), delays.size, self.n_pairs), np.nan)
        idx = self.excited
        for k, (_, sel) in enumerate(self.excited_channels):
            wk = w_exc[sel]
            if wk.sum() > 0:
                out[k] = np.tensordot(wk / wk.sum(), self.R[idx[sel]][:, frames], axes=(0, 0))
        share = float(w_exc[self.flag[idx]].sum() / w_exc.sum())
        if self.ground.size:
            Mg = self.ground.size
            left = np.clip(1.0 / Mg - h, 0.0, None)
            left = left / left.sum() if left.sum() > 0 else np.full(Mg, 1.0 / Mg)
            out[-1] = np.tensordot(left, self.R[self.ground][:, frames], axes=(0, 0))
        return out, frames, share

    def signal(self, w_exc: np.ndarray, h: np.ndarray, gamma: float, t0: float, irf: float, delays: np.ndarray) -> np.ndarray:
        """The noise-free ΔS (T_d, Q) of weights ``w_exc`` over the excited trajectories (sum 1) and hole ``h`` (sum γ or empty).

        The measurement model of :func:`molmovie.measurement.ensemble_signal`; delays past the basis hold its last frame.
        """
        flat = w_exc @ self._excited_flat  # (T Q): one matrix-vector product, no copy of the basis
        if h.size:
            flat = flat - (h / gamma) @ self._ground_flat
        mix = flat.reshape(self.dS.shape[1:])
        K = irf_operator(self.time, delays, t0=t0, irf_fs=irf, allow_beyond_end=True)
        with np.errstate(under="ignore"):  # products with the IRF's far tails
            return gamma * (K @ mix)

    def draw(self, n: int, rng: np.random.Generator, frames: int | None = None) -> dict:
        """``n`` simulated measurements on ``frames`` network frames: inputs, targets and their masks."""
        s = self.s
        L = self.frames() if frames is None else int(frames)
        Q = self.dS.shape[2]
        C, P = len(self.channels), self.n_pairs
        out = {
            "dS": np.zeros((n, L, Q)),
            "sigma": np.ones((n, L, Q)),
            "observed": np.zeros((n, L), dtype=bool),
            "channel_mean": np.full((n, L, C, P), np.nan),
            "share": np.zeros(n),
            "gamma": np.zeros(n),
            "lead": np.zeros(n),
            "irf": np.zeros(n),
            "photons": np.zeros(n),
            "clean": np.zeros((n, L, Q)),
        }
        for e in range(n):
            delays = self.dt * np.arange(L)
            t0 = rng.uniform(*s.lead_range)
            irf = rng.uniform(*s.irf_range)
            gamma = float(np.exp(rng.uniform(*np.log(s.gamma_range))))
            photons = float(np.exp(rng.uniform(*np.log(s.photons_range))))
            m = int(rng.integers(s.members[0], min(s.members[1], self.excited.size) + 1))
            pick = rng.choice(self.excited.size, size=min(m, self.excited.size), replace=False)
            w_exc = np.zeros(self.excited.size)
            w_exc[pick] = rng.dirichlet(np.ones(pick.size))
            h = np.zeros(self.ground.size)
            if self.ground.size:
                if rng.uniform() < 1 / 3:
                    p = np.ones(self.ground.size)
                else:
                    spread = max(float(np.std(self.r0)), 1e-6)
                    centre = np.quantile(self.r0, rng.uniform(0.1, 0.9))
                    p = 1.0 / (1.0 + np.exp(-rng.choice((-1.0, 1.0)) * (self.r0 - centre) / (spread * rng.uniform(0.2, 1.5))))
                h = gamma * p / p.sum()
            clean = self.signal(w_exc, h, gamma, t0, irf, delays)
            sigma = np.sqrt(np.clip(1.0 + clean, 1e-6, None) / photons)
            noisy = clean + sigma * rng.standard_normal(clean.shape)
            keep = rng.uniform() * (1 - s.keep_min) + s.keep_min
            obs = rng.uniform(size=L) < keep
            obs[rng.integers(L)] = True
            target, _, share = self.targets(w_exc, h, delays, t0)
            out["dS"][e] = np.where(obs[:, None], noisy, 0.0)
            out["sigma"][e] = sigma
            out["observed"][e] = obs
            out["clean"][e] = clean
            out["channel_mean"][e] = np.moveaxis(target, 0, 1)
            out["share"][e], out["gamma"][e], out["lead"][e], out["irf"][e], out["photons"][e] = share, gamma, t0, irf, photons
        return out
