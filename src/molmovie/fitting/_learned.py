r"""The paper's learned method on a measurement: a VRNN trained on simulated measurements (amortised inference).

The per-trajectory VRNN (:class:`molmovie.inversion.VRNN`) reads one
trajectory's noise-free ΔS against its own first frame. A measurement is an
ensemble average, scaled by the excitation fraction γ, shifted by an unknown
time zero, smeared by the instrument response, noisy, with a ground-state
hole where the pump depletes the ground state selectively, and on the
beamline's delays. This method is the same network (:class:`._vrnn_net.VRNNNet`:
learned prior p(z_t | history), encoder q(z_t | x_{1:T}) with the smoother,
supervised latents) trained instead on *measurements*: each training sequence
is a measurement of a random sub-ensemble of the training trajectories made
by molmovie's own measurement model with random γ, time zero, IRF, photon
noise and hole (:mod:`._learned_sim`, which states the distributions), and
its supervised latents are what every measurement method answers:

* per channel (bound, dissociated; with the hole also the molecules left in
  the ground state) and pair, the log of the channel's mean distance at
  delay − t0 (the :class:`~molmovie.measurement.Truth` convention);
* the dissociated channel's share of the excited molecules (logit), γ (log),
  the lead of time zero after the first delay, and the IRF's FWHM (log): the
  same target at every frame.

The loss per frame is the Gaussian negative log-likelihood of those targets
under the encoder (empty channels masked) plus β times KL(q(z_t) ‖ p(z_t)),
as in the paper's VRNN; every epoch draws new measurements, so the network
never sees one twice. The input at each frame is ΔS/s_q, log σ (standardised)
and a flag saying whether the frame holds a measured delay, so a measurement
with gaps, or of higher noise, is read as such: the network has learned from
measurements of every noise level in ``photons_range`` how far to trust
them, and its σ widens with the noise (amortised posterior).

Inference on a measurement (:meth:`EnsembleVRNN.fit`, ``molmovie invert``) is
one forward pass: ΔS is mapped onto the model's q grid by linear
interpolation inside the common q range (σ alike) when the grids differ, and
its delays are placed on the network's frames (step ``dt``, from the first
delay; delays sharing a frame averaged with 1/σ² weights): both stated in the
result's provenance. Distances and σ at each measured delay are those of its
frame: R = exp(m + s μ_q), σ_R = R s σ_q (delta method). γ, t0, the IRF and
the channel shares are the frame average of the encoder's means, with the
root-mean-square of its σ.

How well the answer reproduces the data (``dS_fit``, χ²): the training
trajectories of each channel are reweighted (non-negative least squares,
weights summing to 1) to the network's mean distances of that channel over
the delays, mixed by the predicted shares and passed through the measurement
model at the predicted γ, t0 and IRF. It is a check of the answer, not a fit
to the data: χ² judges the learned method by the signal it implies.

What it assumes of a measurement: an isotropic ΔS(q, t) (Legendre order 0) of
the molecule it was trained for, against a laser-off reference, with σ; time
zero within ``lead_range`` of the first delay; an IRF, γ and photon count in
the ranges trained on; motion that the training trajectories span. What it
does not handle: anisotropy, a heated or thermal ground state the basis does
not hold, channels the basis lacks (its answer is then the nearest mix of
those it has), q outside the trained grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np

from .._errors import InputError
from .._typing import PathLike, Progress
from ..datasets import Dataset
from ..geometry import pair_labels
from ..inversion._base import _frame_interval, check_choice, check_number, interpolate_signals
from ..io.fit import EnsemblePart, FitResult
from ..measurement import Measurement
from ..measurement.model import irf_operator
from ._base import MeasurementMethod, measurement_sigma
from ._ensemble import _pair
from ._learned_refine import Refined
from ._learned_sim import MeasurementSimulator

__all__ = ["EnsembleVRNN"]

_LOGIT_CLIP = 6.0


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1.0 / (1.0 + np.exp(_LOGIT_CLIP)), 1.0 / (1.0 + np.exp(-_LOGIT_CLIP)))
    return np.log(p / (1.0 - p))


class EnsembleVRNN(MeasurementMethod):
    """The paper's VRNN, trained on simulated measurements of its basis, answering a measurement per channel.

    Parameters
    ----------
    hidden, features, latent_free : int
        Network sizes (LSTM state and MLP width, φ sizes, unsupervised latents).
    epochs : int
        Training epochs, each of ``examples`` fresh simulated measurements.
    examples : int
        Simulated measurements per epoch.
    batch_size : int
    lr : float
        Adam's learning rate.
    beta : float
        Weight of the KL term.
    seed : int
        Seed of the network's initialisation and of the simulated measurements.
    members : (int, int)
        Fewest and most excited trajectories in a simulated measurement's ensemble.
    gamma_range : (float, float)
        Excitation fractions trained on (log-uniform), in (0, 1].
    lead_range : (float, float), fs
        Time zero after the first delay (uniform).
    irf_range : (float, float), fs
        IRF FWHM trained on (uniform), >= 0.
    photons_range : (float, float)
        Photons per q bin of the laser-off pattern (log-uniform), >= 1000.
    keep_min : float
        Each simulated measurement keeps each frame with a probability drawn in [keep_min, 1].
    hole : bool
        Train with the ground-state hole (the basis must hold ground-state dynamics), answering a third channel.
    dt : float or None, fs
        Spacing of the network's frames; None: the measurement's median delay spacing when trained for one
        (``fit``), else the basis's frame interval.
    sigma : {"measured", "pre-t0"}
        The measurement's σ, or σ estimated from the scatter before time zero.
    refine : bool
        After the network's pass, fit its answer to the measurement through the measurement model (γ, t0, IRF,
        ensemble, hole; :func:`._learned_refine.refine_through_measurement`), the network's answer as the prior.
        Off by default: on synthetic CS2 and C2H4 experiments with truth (``benchmarks/learned_vs_ensemble.py``,
        5 experiments at each of two photon levels) the fit lowered the reduced χ² (e.g. 42 → 6 on CS2 at 1e7
        photons) but raised the per-channel heavy-atom distance error in three of four cases (C2H4 0.12 → 0.16-0.18 Å,
        CS2 at 1e7 photons 0.70 → 1.11 Å) and narrowed ±2σ below the truth (coverage 0.92-0.96 → 0.54-0.85): the
        shifts it may apply absorb what t0, γ and the held hydrogen pairs get wrong. On the LCLS I2 run it finds the
        ground state's coherent vibration (15 mÅ; the network alone 0.5 mÅ, the ensemble fit 12 mÅ) and χ²_red 1.86.
    refine_iter : int
        Most L-BFGS iterations of that fit (0: the network's answer, with the Laplace σ of the data about it).
    """

    name = "vrnn-ensemble"
    needs_basis = True  # without one, a trained model file (molmovie invert)
    draws_figures = False
    learned = True

    def __init__(
        self,
        *,
        hidden: int = 64,
        features: int = 32,
        latent_free: int = 4,
        epochs: int = 30,
        examples: int = 384,
        batch_size: int = 32,
        lr: float = 2e-3,
        beta: float = 1.0,
        seed: int = 0,
        members: tuple[int, int] = (2, 40),
        gamma_range: tuple[float, float] = (0.03, 0.35),
        lead_range: tuple[float, float] = (0.0, 300.0),
        irf_range: tuple[float, float] = (10.0, 200.0),
        photons_range: tuple[float, float] = (1e4, 1e9),
        keep_min: float = 0.5,
        hole: bool = False,
        dt: float | None = None,
        sigma: str = "measured",
        refine: bool = False,
        refine_iter: int = 200,
    ) -> None:
        self.hidden = hidden
        self.features = features
        self.latent_free = latent_free
        self.epochs = epochs
        self.examples = examples
        self.batch_size = batch_size
        self.lr = lr
        self.beta = beta
        self.seed = seed
        self.members = members
        self.gamma_range = gamma_range
        self.lead_range = lead_range
        self.irf_range = irf_range
        self.photons_range = photons_range
        self.keep_min = keep_min
        self.hole = hole
        self.dt = dt
        self.sigma = sigma
        self.refine = refine
        self.refine_iter = refine_iter

    # ------------------------------------------------------------------ settings
    def check_settings(self) -> list[str]:
        sizes: tuple[tuple[str, float], ...] = (
            ("hidden", 4096),
            ("features", 4096),
            ("epochs", 1e5),
            ("examples", 1e6),
            ("batch_size", 4096),
        )
        for name, most in sizes:
            check_number(name, getattr(self, name), low=1, high=most, integer=True)
        check_number("latent_free", self.latent_free, low=0, high=1024, integer=True)
        check_number("seed", self.seed, low=0, integer=True)
        check_number("lr", self.lr, low=0, low_open=True, high=1)
        check_number("beta", self.beta, low=0, high=1e6)
        check_number("keep_min", self.keep_min, low=0.05, high=1)
        m_lo, m_hi = _pair("members", self.members)
        if m_lo < 1 or m_lo != int(m_lo) or m_hi != int(m_hi) or m_hi > 100000:
            raise InputError(f"The 'members' setting must be two whole numbers 1 <= low <= high; got {self.members!r}")
        lo, hi = _pair("gamma_range", self.gamma_range)
        if not 0 < lo <= hi <= 1:
            raise InputError(f"The 'gamma_range' setting must lie in (0, 1]; got {self.gamma_range!r}")
        lo, hi = _pair("lead_range", self.lead_range)
        if hi > 1e5 or lo < -1e5:
            raise InputError(f"The 'lead_range' setting must lie within ±1e5 fs; got {self.lead_range!r}")
        lo, hi = _pair("irf_range", self.irf_range)
        if lo < 0 or hi > 1e5:
            raise InputError(f"The 'irf_range' setting must lie in [0, 1e5] fs; got {self.irf_range!r}")
        lo, hi = _pair("photons_range", self.photons_range)
        if lo < 1e3 or hi > 1e15:
            raise InputError(f"The 'photons_range' setting must lie in [1e3, 1e15] photons; got {self.photons_range!r}")
        if not isinstance(self.hole, bool):
            raise InputError(f"The 'hole' setting must be true or false; got {self.hole!r}")
        if self.dt is not None:
            check_number("dt", self.dt, low=0, low_open=True, high=1e5)
        check_choice("sigma", self.sigma, ("measured", "pre-t0"))
        if not isinstance(self.refine, bool):
            raise InputError(f"The 'refine' setting must be true or false; got {self.refine!r}")
        check_number("refine_iter", self.refine_iter, low=0, high=100000, integer=True)
        return []

    # ------------------------------------------------------------------ training
    @property
    def is_trained(self) -> bool:
        return hasattr(self, "net_")

    def train(
        self,
        basis: Dataset,
        *,
        like: Measurement | None = None,
        q: np.ndarray | None = None,
        dt: float | None = None,
        progress: Progress | None = None,
    ) -> Self:
        """Train on simulated measurements of ``basis`` on the q grid ``q`` (default: the basis's signal grid).

        Parameters
        ----------
        basis : Dataset
            The training trajectories.
        like : Measurement, optional
            The measurement to train for: its molecule must be the basis's; ``q`` and ``dt`` default to its
            q grid and median delay spacing.
        q : ndarray, optional, 1/Angstrom
            The q grid of the measurements to read; default that of ``like``, else the basis's own signal grid.
        dt : float, optional, fs
            The network's frame spacing when the ``dt`` setting is None; default the median delay spacing of
            ``like``, else the basis's frame interval.
        progress : callable, optional
            ``progress(done, info)`` after each epoch.
        """
        import torch

        from ..inversion._vrnn_net import VRNNNet

        self.check_settings()
        if like is not None:
            from ..measurement.types import check_molecule

            check_molecule(like, basis.symbols, what="the basis")
            q = like.q if q is None else q
            dt = _frame_interval(like.delays) if dt is None else dt
        if q is None:
            if basis.q is None:
                raise InputError("the basis has no signals, so no q grid: give the measurement to train for (--for)")
            q = basis.q
        q = np.asarray(q, dtype=float)
        step = self.dt if self.dt is not None else dt
        if step is None:
            step = _frame_interval(basis.time)
        self.dt_ = float(step or 1.0)  # one frame or one delay: any step
        sim = MeasurementSimulator.from_dataset(basis, q, self.dt_, self)
        self._adopt(sim, basis.molecule)
        rng = np.random.default_rng(self.seed)
        gen = torch.Generator().manual_seed(int(self.seed))
        calib = sim.draw(64, rng)
        self._fit_scaling(calib)
        F = 2 * q.size + 1
        S = self._n_supervised()
        with torch.random.fork_rng(devices=[]):  # the initial weights from the seed, the caller's random state untouched
            torch.manual_seed(int(self.seed))
            net = VRNNNet(F, S + int(self.latent_free), int(self.hidden), int(self.features), decoder=False, smoother=True)
        opt = torch.optim.Adam(net.parameters(), lr=float(self.lr))
        val = self._batch_tensors(sim.draw(max(32, self.batch_size), np.random.default_rng(self.seed + 1)))
        self.history_ = []
        best, best_state = np.inf, None
        total = int(self.epochs)
        for epoch in range(1, total + 1):
            net.train()
            losses = []
            for _ in range(max(1, int(self.examples) // int(self.batch_size))):
                batch = self._batch_tensors(sim.draw(int(self.batch_size), rng))
                eps = torch.randn(batch["x"].shape[1], batch["x"].shape[0], net.latent, generator=gen)
                loss = self._loss(net(batch["x"], eps=eps), batch)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                opt.step()
                losses.append(loss.item())
            net.eval()
            with torch.no_grad():
                v = float(self._loss(net(val["x"]), val))
            self.history_.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": v})
            if v < best:
                best, best_state = v, {k: t.detach().clone() for k, t in net.state_dict().items()}
                self.best_epoch_ = epoch
            if progress is not None:
                progress(
                    epoch, {"total": total, "train_loss": float(np.mean(losses)), "val_loss": v, "best_epoch": self.best_epoch_}
                )
        if best_state is not None:
            net.load_state_dict(best_state)
        self.net_ = net.eval()
        return self

    def _adopt(self, sim: MeasurementSimulator, molecule: str) -> None:
        self.symbols_ = sim.symbols
        self.molecule_ = str(molecule)
        self.q_ = sim.q
        self.pair_labels_ = tuple(pair_labels(sim.symbols))
        self.channels_ = sim.channels
        self.basis_ = {
            "R": sim.R.astype(np.float32),
            "time": sim.time,
            "dissociated": sim.flag,
            "excited": sim.excited,
            "ground": sim.ground,
            "reference": sim.reference,
        }
        self.sim_ = sim

    def _n_supervised(self) -> int:
        return len(self.channels_) * len(self.pair_labels_) + 4

    def _fit_scaling(self, calib: dict) -> None:
        clean = calib["clean"]
        self.x_scale_ = np.maximum(clean.std(axis=(0, 1)), 1e-8)
        ls = np.log(calib["sigma"])
        self.logsig_mean_, self.logsig_std_ = float(ls.mean()), float(max(ls.std(), 1e-3))
        # each channel's targets standardised by its own trajectories' log distances, so that the ground state's
        # milliangstrom vibration is not measured in the units of a dissociation's tens of angstroms
        sim = self.sim_
        members = [sim.excited[sel] for _, sel in sim.excited_channels] + ([sim.ground] if sim.ground.size else [])
        logs = [np.log(sim.R[idx].reshape(-1, sim.n_pairs)) for idx in members]
        self.y_mean_ = np.stack([g.mean(axis=0) for g in logs])  # (C, P)
        self.y_std_ = np.stack([np.maximum(g.std(axis=0), 1e-4) for g in logs])
        lg = np.log(np.asarray(self.gamma_range, dtype=float))
        li = np.log(np.asarray(self.irf_range, dtype=float) + 1.0)
        le = np.asarray(self.lead_range, dtype=float)
        # static targets: (centre, half width) of logit share, log γ, lead, log(1 + IRF)
        self.static_scale_ = np.array(
            [
                [0.0, 3.0],
                [lg.mean(), max(np.ptp(lg) / 2, 0.1)],
                [le.mean(), max(np.ptp(le) / 2, 10.0)],
                [li.mean(), max(np.ptp(li) / 2, 0.1)],
            ]
        )

    def _inputs(self, dS: np.ndarray, sigma: np.ndarray, observed: np.ndarray) -> np.ndarray:
        x = np.where(observed[..., None], dS / self.x_scale_, 0.0)
        ls = np.where(observed[..., None], (np.log(sigma) - self.logsig_mean_) / self.logsig_std_, 0.0)
        return np.concatenate([x, ls, observed[..., None].astype(float)], axis=-1).astype(np.float32)

    def _batch_tensors(self, d: dict) -> dict:
        import torch

        n, L = d["observed"].shape
        C, P = len(self.channels_), len(self.pair_labels_)
        y = (np.log(d["channel_mean"]) - self.y_mean_) / self.y_std_  # (n, L, C, P), NaN for an empty channel
        static = np.stack([_logit(d["share"]), np.log(d["gamma"]), d["lead"], np.log(d["irf"] + 1.0)], axis=-1)
        static = (static - self.static_scale_[:, 0]) / self.static_scale_[:, 1]
        y = np.concatenate([y.reshape(n, L, C * P), np.broadcast_to(static[:, None, :], (n, L, 4))], axis=-1)
        mask = np.isfinite(y)
        return {
            "x": torch.as_tensor(self._inputs(d["dS"], d["sigma"], d["observed"])),
            "y": torch.as_tensor(np.where(mask, y, 0.0), dtype=torch.float32),
            "mask": torch.as_tensor(mask, dtype=torch.float32),
        }

    def _loss(self, out: dict, batch: dict) -> Any:
        import torch

        S = batch["y"].shape[-1]
        m, s = out["q_mean"][..., :S], out["q_std"][..., :S]
        nll = (0.5 * ((batch["y"] - m) / s) ** 2 + torch.log(s)) * batch["mask"]
        nll = nll.sum() / batch["mask"].sum().clamp(min=1)
        qm, qs, pm, ps = out["q_mean"], out["q_std"], out["p_mean"], out["p_std"]
        kl = torch.log(ps / qs) + (qs**2 + (qm - pm) ** 2) / (2 * ps**2) - 0.5
        return nll + float(self.beta) * kl.sum(-1).mean() / max(S, 1)

    # ------------------------------------------------------------------ a measurement
    def fit(self, measurement: Measurement, basis: Dataset | None = None, progress: Progress | None = None) -> Self:
        """Answer ``measurement``; trains first on ``basis`` (for this measurement's q and delay spacing) when given."""
        meas = measurement
        self._check_measurement(meas)
        self.check_settings()
        if basis is not None:
            self.train(basis, like=meas, progress=progress)
        elif not self.is_trained:
            raise InputError("the learned measurement method needs a basis to train on (--basis), or a trained model file")
        self.result_ = self._answer(meas)
        return self

    def _answer(self, meas: Measurement) -> FitResult:
        import torch

        if meas.symbols is not None and tuple(meas.symbols) != tuple(self.symbols_):
            raise InputError(
                f"the measurement is of {'-'.join(meas.symbols)}, the model was trained for {'-'.join(self.symbols_)}"
            )
        sigma, source = measurement_sigma(meas, self.sigma)
        q, dS, sigma, q_note = _onto_grid(meas.q, meas.dS, sigma, self.q_)
        delays = np.asarray(meas.delays, dtype=float)
        frame, x_dS, x_sig, observed = on_frames(delays, dS, sigma, self.dt_)
        L = observed.size
        shared = int(frame.size - np.unique(frame).size)
        x = torch.as_tensor(self._inputs(x_dS[None], x_sig[None], observed[None]))
        with torch.no_grad():
            out = self.net_(x)
        mu = out["q_mean"][0].double().numpy()
        sd = out["q_std"][0].double().numpy()
        C, P = len(self.channels_), len(self.pair_labels_)
        Rm = np.exp(self.y_mean_ + self.y_std_ * mu[:, : C * P].reshape(L, C, P))
        Rs = Rm * self.y_std_ * sd[:, : C * P].reshape(L, C, P)
        st_m = mu[:, C * P : C * P + 4].mean(axis=0) * self.static_scale_[:, 1] + self.static_scale_[:, 0]
        st_s = np.sqrt((sd[:, C * P : C * P + 4] ** 2).mean(axis=0)) * self.static_scale_[:, 1]
        share = 1.0 / (1.0 + np.exp(-st_m[0]))
        share_sd = share * (1 - share) * st_s[0]
        gamma = float(np.exp(st_m[1]))
        gamma_sd = gamma * st_s[1]
        t0 = float(delays[0] + st_m[2])
        irf = float(max(np.exp(st_m[3]) - 1.0, 0.0))
        irf_sd = float((irf + 1.0) * st_s[3])
        ch_mean = np.moveaxis(Rm[frame], 1, 0)  # (C, T_d, P)
        ch_sd = np.moveaxis(Rs[frame], 1, 0)
        names = [c for c in self.channels_ if c != "ground"]
        excited = np.array([share if c == "dissociated" else 1.0 - share for c in names])
        if excited.size == 1:  # the basis has one fate: all the excited molecules take it
            excited, share_sd = np.ones(1), 0.0
        E = excited.size
        if "ground" in self.channels_:
            frac = np.concatenate([gamma * excited, [1.0 - gamma]])
            frac_sd = np.concatenate([np.hypot(gamma * share_sd, excited * gamma_sd), [gamma_sd]])
        else:
            frac, frac_sd = excited, np.full(E, share_sd)
        members, hole = self._mixture(ch_mean, excited, gamma, t0, delays)
        n_params = 4.0
        ch_spread = np.full_like(ch_mean, np.nan)
        fit_note = "one pass of the trained network (amortised); no optimisation to converge"
        if self.refine:
            statics = {
                "gamma": gamma,
                "gamma_std": gamma_sd,
                "t0": t0,
                "t0_std": float(st_s[2]),
                "irf_fs": irf,
                "irf_fs_std": irf_sd,
            }
            ref = self._refined(Rm, Rs, members, hole, excited, statics, delays, dS, sigma)
            gamma, gamma_sd, t0, irf, irf_sd = ref.gamma, ref.gamma_std, ref.t0, ref.irf_fs, ref.irf_fs_std
            t0_sd = ref.t0_std
            T_b = self.sim_.time.size
            cell = np.clip(np.searchsorted(self.sim_.edges, np.clip(delays - t0, 0.0, None), side="right") - 1, 0, T_b - 1)
            ch_mean, ch_sd = ch_mean.copy(), ch_sd.copy()
            ch_mean, ch_sd, ch_spread = ref.mean[:, cell], ref.std[:, cell], ref.spread[:, cell]
            if "ground" in self.channels_:
                frac = np.concatenate([gamma * excited, [1.0 - gamma]])
                frac_sd = np.concatenate([np.hypot(gamma * share_sd, excited * gamma_sd), [gamma_sd]])
            dS_fit = ref.dS_fit
            n_params = ref.n_effective
            fit_note = (
                f"the network's answer, then fitted to the data through the measurement model ({ref.iterations} L-BFGS "
                f"iterations; σ by the Laplace approximation, {ref.laplace}; {ref.n_effective:.1f} effective parameters)"
            )
        else:
            t0_sd = float(st_s[2])
            dS_fit = self._signal_of(members, hole, excited, gamma, t0, irf, delays)
        mean = np.tensordot(excited, ch_mean[:E], axes=(0, 0))
        mean_sd = np.sqrt(np.tensordot(excited**2, ch_sd[:E] ** 2, axes=(0, 0)))
        chi2 = float(np.sum(((dS - dS_fit) / sigma) ** 2))
        n_data = int(dS.size)
        T_d = delays.size
        nan_tp = np.full((T_d, P), np.nan)
        part = EnsemblePart(
            gamma=gamma,
            gamma_std=float(gamma_sd),
            t0=t0,
            t0_std=t0_sd,
            irf_fs=irf,
            irf_fs_std=irf_sd,
            trajectories=np.zeros(0, dtype=np.int64),
            weights=np.zeros(0),
            weights_std=np.zeros(0),
            dissociated=np.zeros(0, dtype=bool),
            pair_labels=tuple(self.pair_labels_),
            quantile_levels=np.zeros(0),
            distance_mean=mean,
            distance_mean_std=mean_sd,
            distance_std=nan_tp,
            distance_std_std=nan_tp,
            distance_quantiles=np.zeros((T_d, P, 0)),
            distance_quantiles_std=np.zeros((T_d, P, 0)),
            channels=tuple(self.channels_),
            channel_fraction=frac,
            channel_fraction_std=frac_sd,
            channel_distance_mean=ch_mean,
            channel_distance_mean_std=ch_sd,
            channel_distance_std=ch_spread,
            channel_distance_quantiles=np.zeros(ch_mean.shape + (0,)),
            dissociated_fraction=np.where(delays >= t0, share, 0.0),
            dissociated_fraction_std=np.where(delays >= t0, share_sd, 0.0),
            bootstrap_gamma=np.zeros(0),
            bootstrap_t0=np.zeros(0),
            bootstrap_irf_fs=np.zeros(0),
            regularization=0.0,
            rule="none",
            rank=0,
        )
        provenance: dict[str, Any] = dict(meas.provenance or {})
        provenance["learned"] = {
            "model_molecule": self.molecule_,
            "q": q_note,
            "delays": f"{T_d} delays on {L} network frames of {self.dt_:g} fs from {delays[0]:g} fs"
            + (f"; {shared} delay(s) shared a frame (averaged, 1/σ² weights)" if shared else "")
            + (
                "; distances at each delay are its frame's"
                if np.any(np.abs(delays - delays[0] - frame * self.dt_) > 1e-6)
                else ""
            ),
            "dS_fit": "training trajectories of each channel reweighted to the predicted channel means, through the measurement model"
            + (
                "; then every member of a channel moved by one factor per heavy pair and frame, and γ, t0 and the IRF, "
                "fitted to the data (the network's answer as the prior)"
                if self.refine
                else ""
            ),
        }
        return FitResult(
            method=self.name,
            molecule=self.molecule_,
            symbols=tuple(self.symbols_),
            delays=delays,
            q=q,
            dS=dS,
            sigma=sigma,
            dS_fit=dS_fit,
            chi2=chi2,
            n_data=n_data,
            n_params=n_params,
            reduced_chi2=chi2 / max(n_data - n_params, 1.0),
            converged=True,
            message=fit_note,
            sigma_source=source,
            settings=self.settings_json(),
            provenance=provenance,
            ensemble=part,
        )

    def _mixture(
        self, ch_mean: np.ndarray, excited: np.ndarray, gamma: float, t0: float, delays: np.ndarray
    ) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray | None]:
        """The answer's ensemble: each excited channel's training trajectories reweighted (NNLS, weights summing to 1)
        to its mean distances over the delays, and the ground-state trajectories' weights in the hole (None without one)."""
        from scipy.optimize import nnls

        sim = self.sim_
        frames = np.searchsorted(sim.edges, np.clip(delays - t0, 0.0, None), side="right") - 1

        def weights(members: np.ndarray, target: np.ndarray) -> np.ndarray:
            if members.size == 0 or not np.all(np.isfinite(target)):
                return np.full(members.size, 1.0 / max(members.size, 1))
            A = sim.R[members][:, frames].reshape(members.size, -1).T
            b = target.ravel()
            big = 1e3 * max(float(np.abs(A).max()), 1.0)
            a, _ = nnls(np.vstack([A, np.full((1, members.size), big)]), np.concatenate([b, [big]]))
            return a / a.sum() if a.sum() > 0 else np.full(members.size, 1.0 / members.size)

        members = [(sim.excited[sel], weights(sim.excited[sel], ch_mean[k])) for k, (_, sel) in enumerate(sim.excited_channels)]
        hole = None
        if sim.ground.size:
            Mg = sim.ground.size
            left = weights(sim.ground, ch_mean[-1])
            h = np.clip(1.0 / Mg - (1.0 - gamma) * left, 0.0, None)
            hole = h / h.sum() if h.sum() > 0 else np.full(Mg, 1.0 / Mg)
        return members, hole

    def _signal_of(
        self,
        members: list[tuple[np.ndarray, np.ndarray]],
        hole: np.ndarray | None,
        excited: np.ndarray,
        gamma: float,
        t0: float,
        irf: float,
        delays: np.ndarray,
    ) -> np.ndarray:
        """ΔS of the answer's ensemble (:meth:`_mixture`), mixed by the channel shares, through the measurement model."""
        sim = self.sim_
        mix = np.zeros(sim.dS.shape[1:])
        for (idx, w), share_k in zip(members, excited, strict=True):
            if share_k > 0:
                mix += share_k * np.tensordot(w, sim.dS[idx], axes=(0, 0))
        if hole is not None:
            mix -= np.tensordot(hole, sim.dS[sim.ground], axes=(0, 0))
        K = irf_operator(sim.time, delays, t0=t0, irf_fs=irf, allow_beyond_end=True)
        with np.errstate(under="ignore"):  # products with the IRF's far tails
            return gamma * (K @ mix)

    def _refined(
        self,
        Rm: np.ndarray,
        Rs: np.ndarray,
        members: list[tuple[np.ndarray, np.ndarray]],
        hole: np.ndarray | None,
        excited: np.ndarray,
        statics: dict[str, float],
        delays: np.ndarray,
        dS: np.ndarray,
        sigma: np.ndarray,
    ) -> Refined:
        """The fit through the measurement model (:mod:`._learned_refine`), the network's answer on the basis frames as its prior."""
        from ._learned_refine import refine_through_measurement

        sim = self.sim_
        tau = sim.time - sim.time[0]
        frame = np.clip(np.rint((statics["t0"] + tau - delays[0]) / self.dt_).astype(np.int64), 0, Rm.shape[0] - 1)
        prior_mean = np.moveaxis(Rm[frame], 1, 0)  # (C, T, P)
        prior_rel = np.moveaxis((Rs / Rm)[frame], 1, 0)
        return refine_through_measurement(
            sim,
            members,
            excited,
            hole,
            prior_mean,
            prior_rel,
            statics,
            delays,
            dS,
            sigma,
            knot_dt=self.dt_,
            max_iter=int(self.refine_iter),
        )

    # ------------------------------------------------------------------ the model file
    def save(self, path: PathLike, *, force: bool = False) -> Path:
        """Save the trained network, its scaling and the basis's distances (to remake its signals) to one safetensors file."""
        from ..io.model import write_model_file

        if not self.is_trained:
            raise InputError("this vrnn-ensemble model is not trained yet: train it on a basis first")
        config = {
            "settings": self.settings_json(),
            "symbols": list(self.symbols_),
            "molecule": self.molecule_,
            "pair_labels": list(self.pair_labels_),
            "channels": list(self.channels_),
            "dt": self.dt_,
            "logsig": [self.logsig_mean_, self.logsig_std_],
            "history": getattr(self, "history_", []),
            "best_epoch": getattr(self, "best_epoch_", 0),
        }
        arrays = {
            "q": self.q_,
            "x_scale": self.x_scale_,
            "y_mean": self.y_mean_,
            "y_std": self.y_std_,
            "static_scale": self.static_scale_,
        }
        arrays.update({f"basis.{k}": np.asarray(v) for k, v in self.basis_.items()})
        arrays.update({f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()})
        return write_model_file(path, self.name, config, arrays, force=force)

    @classmethod
    def load(cls, path: PathLike) -> EnsembleVRNN:
        """Load a model file written by :meth:`save` (never runs code from the file)."""
        from ..io.model import read_model_file

        method, config, arrays = read_model_file(path)
        return cls._from_parts(method, config, arrays, path)

    @classmethod
    def _from_parts(cls, method: str, config: dict, arrays: dict, path: PathLike) -> EnsembleVRNN:
        import torch

        from ..inversion._vrnn_net import VRNNNet

        if method != cls.name:
            raise InputError(f"{path} holds a {method!r} model, not a {cls.name!r} one")
        try:
            obj = cls(**config["settings"])
            obj.check_settings()
            obj.dt_ = float(config["dt"])
            obj.logsig_mean_, obj.logsig_std_ = (float(v) for v in config["logsig"])
            obj.history_ = list(config.get("history", []))
            obj.best_epoch_ = int(config.get("best_epoch", 0))
            for name in ("q", "x_scale", "y_mean", "y_std", "static_scale"):
                setattr(obj, f"{name}_", np.asarray(arrays[name], dtype=float))
            b = {k[6:]: arrays[k] for k in arrays if k.startswith("basis.")}
            sim = MeasurementSimulator(
                config["symbols"],
                b["R"],
                b["time"],
                b["dissociated"],
                b["excited"],
                b["ground"],
                b["reference"],
                obj.q_,
                obj.dt_,
                obj,
            )
            obj._adopt(sim, config["molecule"])
            state = {k[4:]: torch.as_tensor(v) for k, v in arrays.items() if k.startswith("net.")}
            F, S = 2 * obj.q_.size + 1, obj._n_supervised()
            with torch.device("meta"):  # no initial weights drawn (the caller's random state untouched): the file's are assigned
                net = VRNNNet(F, S + int(obj.latent_free), int(obj.hidden), int(obj.features), decoder=False, smoother=True)
            net.load_state_dict(state, assign=True)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise InputError(f"{path}: damaged vrnn-ensemble model file ({type(exc).__name__}: {str(exc)[:200]})") from None
        obj.net_ = net.eval()
        return obj


def on_frames(
    delays: np.ndarray, dS: np.ndarray, sigma: np.ndarray, dt: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A measurement on the network's frames: each delay at the frame nearest to it, counted from the first delay.

    Delays that share a frame are averaged with weights 1/σ² (σ of the average: 1/√Σσ⁻²); frames without a
    delay are marked unobserved.

    Returns
    -------
    frame : ndarray of int, shape (T_d,)
        Each delay's frame.
    dS, sigma : ndarray, shape (L, Q)
        On the frames (0 and 1 where unobserved).
    observed : ndarray of bool, shape (L,)
    """
    frame = np.rint((delays - delays[0]) / dt).astype(np.int64)
    L = int(frame[-1]) + 1
    if L > 100000:
        raise InputError(f"the delays span {L} frames of {dt:g} fs (the model's step); at most 100000")
    w = 1.0 / sigma**2
    num = np.zeros((L, dS.shape[1]))
    den = np.zeros((L, dS.shape[1]))
    np.add.at(num, frame, w * dS)
    np.add.at(den, frame, w)
    observed = np.zeros(L, dtype=bool)
    observed[frame] = True
    safe = np.where(den > 0, den, 1.0)
    return frame, np.where(observed[:, None], num / safe, 0.0), np.where(observed[:, None], 1.0 / np.sqrt(safe), 1.0), observed


def _onto_grid(
    q: np.ndarray, dS: np.ndarray, sigma: np.ndarray, q_model: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """ΔS and σ on the model's q grid: as they are when the grids agree, else linear interpolation inside the common range."""
    if q.size == q_model.size and np.allclose(q, q_model, rtol=1e-6, atol=1e-9):
        return q, dS, sigma, "the measurement's own grid"
    lo, hi = max(q[0], q_model[0]), min(q[-1], q_model[-1])
    outside = (q_model < q[0] - 1e-9) | (q_model > q[-1] + 1e-9)
    if outside.any():
        raise InputError(
            f"the model reads q {q_model[0]:.4g}-{q_model[-1]:.4g} 1/Å; the measurement covers only {q[0]:.4g}-{q[-1]:.4g} 1/Å: "
            "train the model for this measurement (molmovie train --method vrnn-ensemble BASIS --for MEASUREMENT)"
        )
    both = interpolate_signals(np.stack([dS, sigma]), q, q_model, np.full(2, dS.shape[0]))
    dS_m, sig_m = both[0], both[1]
    return (
        q_model,
        dS_m,
        sig_m,
        f"interpolated linearly from {q.size} to the model's {q_model.size} q points in {lo:.4g}-{hi:.4g} 1/Å",
    )
