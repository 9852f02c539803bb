"""The paper's method: a variational recurrent neural network (VRNN) with supervised latents.

After Chung et al., "A Recurrent Latent Variable Model for Sequential Data"
(NeurIPS 2015), as used in vid2param (Asenov et al., "Vid2Param: Modelling of
Dynamics Parameters from Video", IEEE RA-L 2019) and in Asenov, Zotev,
Ramamoorthy & Kirrander, "Inversion of Ultrafast X-ray Scattering with
Dynamics Constraints". The network is in :mod:`._vrnn_net`, the loss term by
term in :mod:`molmovie.inversion.losses`; this module holds the estimator:
its settings and prediction. The training loop and the data scaling are in
:mod:`._vrnn_training`, the model file's contents in :mod:`._vrnn_file`.

Loss per valid frame t of a sequence (everything is averaged over the valid
frames of a batch):

.. math::

    \\mathcal{L}_t = \\alpha\\,\\mathrm{NLL}\\!\\left(y_{t,\\pi} \\mid \\mu_{q,1:P}, \\sigma_{q,1:P}\\right)
      + \\beta\\,\\mathrm{KL}\\!\\left(q(z_t)\\,\\|\\,p(z_t)\\right)
      + \\gamma\\,\\tfrac12 \\lVert \\hat x_t - x_t \\rVert^2
      + \\lambda\\,\\tfrac12 \\sum_q \\left(\\frac{\\Delta S^{\\mathrm{Eq.1}}_t(\\hat R) - \\Delta S_t}{s_q}\\right)^2

* y are the standardised transformed true distances, :math:`y = (g(R) - m)/s`
  with :math:`g = \\log` by default; π is, per sequence, the permutation of the
  molecule's symmetry group (bond-graph automorphisms) that fits best
  (``symmetry`` on), else the identity;
* the KL term is between the encoder and the learned prior (the dynamics
  constraint: the prior predicts frame t from the history);
* :math:`\\hat x` is the optional decoder's reconstruction of the standardised
  input (``decoder=True``);
* the physics term re-simulates ΔS from the predicted distances
  :math:`\\hat R = g^{-1}(m + s\\,\\mu_q)` with the differentiable Eq. (1)
  (:class:`molmovie.scattering.DebyeTorch`) and compares it with the input,
  in units of the training set's per-q standard deviation :math:`s_q`.
  Its reference intensity follows the training signals: for
  ``reference="first"`` it is the intensity of the *predicted* first frame
  (so the re-simulated ΔS is 0 at t = 0 like the data, and no ground truth is
  needed); for ``reference="ground"`` it is the training set's mean I_ref (the
  ground-state pattern, which is the same for every trajectory). It is
  averaged over a random subset of ``physics_frames`` frames per step (its
  cost grows as frames × pairs × q), and switched on only after
  ``physics_warmup`` epochs, ramping up over as many: from a random start
  the oscillating misfit traps dissociating fragments in wrong minima
  (measured on synthetic dissociating CS2: symmetry-aware mean |ΔR| 2.0 Å
  without the warm-up, 0.09 Å with it).

Prediction is the encoder mean of the supervised latents with z_t = μ_q fed
to the recurrence; the reported standard deviation is the encoder's σ mapped
to Angstrom by the delta method, :math:`\\sigma_R = |dR/dg|\\, s\\, \\sigma_q`
(for :math:`g = \\log`: :math:`\\sigma_R = R\\, s\\, \\sigma_q`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from ._base import InversionMethod, Prediction, check_choice, check_number
from ._refine import check_refine_settings, refine_distances
from ._vrnn_file import _SETTINGS_BEFORE, _VRNNFile  # noqa: F401  (_SETTINGS_BEFORE: importable from here)
from ._vrnn_training import _distances, _EarlyStopping, _VRNNTraining  # noqa: F401  (importable from here)
from .losses import SCHEDULES, TARGETS, from_target, full_weight_epoch, target_slope

__all__ = ["VRNN", "TARGETS", "ENCODERS", "SCHEDULES", "REFINE_PRIOR_SCALE", "REFINE_STD_SCALE"]

#: What the encoder sees: the frames up to t, or the whole sequence.
ENCODERS = ("filter", "smoother")


#: The width of the prior in the VRNN's signal fit: the network's σ times this. Chosen on validation data
#: (the quick preset's CS2 and bound CS2 validation splits, ladder-trained VRNNs of study revision 8: CS2
#: seed 0, bound CS2 seeds 0-2; the noise-free signals and the noise ladder 0.001-0.03, the study's draws)
#: among 0.5, 1, 2 and 4 by the per-frame symmetry-aware RMSD sum relative to the best scale of each
#: (experiment, seed, level): 1 had the smallest mean ratio (1.06, against 1.07 for 2, 1.14 for 4 and 1.40 for
#: 0.5); a wider prior lowered the sum only at σ = 0.03 (187 → 170 Å with 2) and raised it at 0.001-0.01
#: (``python benchmarks/vrnn_fit_width.py STUDY --out DIR``, then ``--choose``; docs/where-dynamics-help.md).
REFINE_PRIOR_SCALE = 1.0

#: The σ the VRNN reports after its signal fit (``refine_std_scale="auto"``, for a network trained on noisy
#: signals): this times the prior's relative width at the refined distances, at every noise level. Chosen on the same validation answers
#: (prior scale 1): the Laplace σ of a fit told the true noise covered the truth in 62-77 % of the (pair,
#: frame)s at σ = 0.001 and in 97 % on bound CS2 at 0.03; the network's own σ in 91-100 %. Among rules
#: of one constant, that which keeps every (experiment, level)'s ±2σ coverage (mean over its seeds) furthest
#: inside 80-98 %: a multiple of the fit's σ per level gave 82-96 %, a floor σ_m = 0.007 added to the noise
#: 81-97 %, the Laplace σ and 0.2 × the prior's width in quadrature 80-98 %, and this rule, 0.43, 87-91 % at
#: every level of both experiments. Same command as :data:`REFINE_PRIOR_SCALE`.
REFINE_STD_SCALE = 0.43


#: Largest ``hidden``, ``features`` and ``latent_free`` settings: a VRNN with hidden=8192 already has
#: 4·8192² LSTM weights (1 GiB with its gradients and Adam's moments); the paper's networks are below 512.
MAX_HIDDEN = 8192
MAX_FEATURES = 8192
MAX_LATENT_FREE = 4096


class VRNN(_VRNNTraining, _VRNNFile, InversionMethod):
    """Variational recurrent network that reads ΔS(q, t) and answers R_AB(t) ± σ.

    Parameters
    ----------
    hidden : int, default 128
        LSTM state size and the width of every MLP.
    features : int, default 64
        Size of the feature vectors φ_x(ΔS_t) and φ_z(z_t).
    latent_free : int, default 8
        Unsupervised latent dimensions beyond the n_pairs supervised ones.
    decoder : bool, default False
        Add the decoder p(ΔS_t | z_t, h_{t-1}) and its reconstruction loss.
    encoder : {"filter", "smoother"}, default "filter"
        What the encoder q(z_t | ·) sees. "filter": the frames up to t (the
        paper's causal VRNN, for data that arrive frame by frame);
        "smoother": the whole sequence, through a backward GRU over ΔS whose
        state feeds the encoder (q(z_t | x_{1:T}), as in the SRNN of
        Fraccaro et al., NeurIPS 2016). Model files written before this
        setting existed load as filters.
    alpha : float, default 1.0
        Weight of the supervised Gaussian NLL of the distances.
    beta : float, default 1.0
        Weight of KL(q || p) between encoder and learned prior (1 is the
        evidence lower bound of Chung et al.).
    gamma : float, default 1.0
        Weight of the reconstruction loss (only with ``decoder=True``).
    physics : float, default 0.1
        Weight of the Eq. (1) misfit between re-simulated and input ΔS; 0 turns
        it off (and training needs no scattering model).
    physics_warmup : int, default 20
        Epochs without the physics term at the start of training; it then
        ramps up linearly to ``physics`` over as many epochs. Early on, far
        from the true distances, the oscillating sin(qR)/(qR) misfit pulls
        predictions into wrong local minima (dissociating fragments above
        all); once the supervised loss has placed them near the truth it
        refines them. The validation loss uses the same weight.
    physics_frames : int, default 16
        Frames per sequence on which the physics term is evaluated at each
        step: a random subset (evenly spaced ones for the validation loss),
        always with the first frame. Its cost grows as frames x pairs x q, so
        this bounds it for long sequences of large molecules; 0 takes every
        frame. The term is a mean per frame, so the subset only adds noise.
    symmetry : {"auto", True, False}, default "auto"
        Make the supervised loss invariant to the molecule's symmetry
        permutations (automorphisms of the bond graph of the first training
        frame): each sequence is scored against its best-fitting relabelling.
        "auto" turns it on when some training trajectories dissociate. There
        the labelled loss averages outcomes that scattering cannot tell apart
        (which S of CS2 leaves) into a geometry that never happens; for bound
        molecules the labels of the shared starting geometry are a learnable
        convention and the labelled loss does as well or better (see Notes).
    target : {"log", "inverse", "linear"}, default "log"
        Transform of the distances before standardisation (see Notes).
    epochs : int, default 300
        Most training epochs.
    patience : int, default 30
        Stop when the validation loss (the training loss without ``val``) has
        not improved for this many epochs; the best epoch's weights are kept.
        The count starts once the physics term has reached its full weight:
        until then the loss being minimised changes from epoch to epoch, and
        its values cannot be compared.
    batch_size : int, default 32
        Sequences per optimisation step.
    lr : float, default 1e-3
        Adam learning rate (the peak rate of the "onecycle" schedule).
    schedule : {"constant", "plateau", "onecycle"}, default "constant"
        Learning-rate schedule. "constant": ``lr`` throughout.
        "plateau": ``lr`` (after a linear warm-up over the first epoch), divided
        by 3 whenever the monitored loss has not improved for
        ``max(1, patience // 4)`` epochs (counted, like the patience, from
        the physics term's full weight). "onecycle": PyTorch's one-cycle
        policy over ``epochs`` (warm-up to ``lr`` over the first 30 %, cosine
        annealing to ``lr``/10⁴): ``epochs`` is then a budget rather than a cap.
    weight_decay : float, default 0.0
        Adam L2 weight decay.
    clip : float, default 5.0
        Gradient-norm clipping threshold.
    input_noise : float, default 0.0
        Standard deviation of Gaussian noise added to the standardised input
        during training (robustness to measurement noise).
    signal_noise : float or sequence of float, default 0.0
        σ of Gaussian noise added to the training signals, in ΔS's own units (a
        fraction, per q bin and frame, as a measurement's noise is stated); a
        sequence of levels: each training sequence draws one of them at every
        batch (one model across noise levels; 0 among them keeps clean
        sequences). The loss's targets (distances, the physics term's ΔS) stay
        clean; validation is on the clean validation signals.
    seed : int, default 0
        Seed of weight initialisation, batch order and latent sampling.
    device : {"auto", "cpu", "cuda"}, default "auto"
        Where to train and predict; "auto" takes CUDA when PyTorch finds it.
    refine : bool, default True
        Refine the predicted distances at the end of ``predict`` by a signal
        fit, the MAP under the network's Gaussian as prior (its σ times
        :data:`REFINE_PRIOR_SCALE`, 1; :func:`molmovie.inversion.refine_distances`,
        over what ``refine_space`` names); the std becomes what
        ``refine_std_scale`` says. On by default: on the quick preset (seed 0,
        test and validation splits) the fit of distances lowered the SSR sum in
        5/5 experiments (by 29-91 %) and raised no RMSD sum
        (benchmarks/refine_study.py). For a model trained on signals with a
        time resolution (``irf_fs``) the fit smears its ΔS in time as the
        signals were (at the training frame interval; skipped only for model
        files written before that interval was recorded).
    refine_weight : float, default 1.0
        The prior term's multiplier in that fit (> 0).
    refine_noise : float or None, default None
        σ of ΔS (a fraction) in that fit; None: from the training signals'
        spec (Poisson for photons, else ``NOISE_FREE_SIGMA``).
    refine_std_scale : float, None or "auto", default "auto"
        The std after that fit: this times the network's relative width at the
        refined distances (:math:`\\sigma_R = c\\,\\hat\\sigma\\,R/\\hat R`), whatever the
        noise; None: the fit's own, the Laplace approximation's where the noise
        is known, else the prior's relative width; "auto": :data:`REFINE_STD_SCALE`
        (0.43) for a network trained on noisy signals (a ``signal_noise`` level
        above 0), what it was calibrated on (the study's ladder-trained VRNNs:
        ±2σ covered 87-91 % of validation distances at every noise level,
        against 62-97 % with the Laplace σ), else None (not measured there; on
        the tests' toy problem a network trained on clean signals covers
        96-99 % with the fit's own σ and 58 % with 0.43). :attr:`fit_std_scale`
        says which.
    refine_space : {"geometry", "distances"}, default "geometry"
        What that fit varies: every frame's atomic coordinates, so that the
        answer is a geometry (all pairs follow the atoms, with one pass of
        continuation in time; see :func:`molmovie.inversion.refine_distances`),
        or the log distances of the heavy-atom pairs. The default since study
        revision 5: on the quick preset's validation splits (3 seeds) it
        lowered the per-frame symmetry-aware RMSD sum and the SSR sum in
        every experiment and seed, or left them equal (per frame: NMM 112-117
        → 87-92, C2H4 449-460 → 416-428, CS2 799-897 → 114-134; SSR 3× lower
        on C2H4), but it raised the labelled RMSD sum on both C2H4
        experiments by 5-11 %: a geometry commits where freely fitted
        distances average (benchmarks/refine_study.py; README).

    Attributes
    ----------
    net_ : VRNNNet
        The trained network (on the CPU after ``fit``/``load``).
    x_mean_, x_std_ : ndarray, shape (Q,)
        Standardisation of ΔS.
    y_mean_, y_std_ : ndarray, shape (n_pairs,)
        Standardisation of g(R).
    pair_perms_ : ndarray of int, shape (K, n_pairs)
        Symmetry permutations of the pairs (identity first; only it without symmetry).
    symmetry_ : bool
        Whether the symmetry-invariant loss was used (``symmetry`` resolved).
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``seconds``, ``lr``
        (the learning rate at the epoch's end).
    best_epoch_ : int

    Notes
    -----
    Target scaling. A dissociating fragment's distances grow without bound
    while its signal fades as sin(qR)/(qR). On a linear scale these few large
    distances dominate the standardisation and the loss. ``log`` (the default)
    compresses them: a vibration of a bond is a small relative change,
    ``log R`` is always invertible (R = exp g > 0), the Gaussian in g is a
    log-normal in R, and the delta-method σ_R = R s σ_q is a relative error,
    growing with R as the information about a far fragment fades.
    ``inverse`` (1/R) bounds them in [0, 1/R_min]; predictions of g below
    1/(10 R_max) are clipped there.

    Symmetry, measured on GFN2-xTB trajectories (test splits; mean |ΔR| in
    Angstrom, labelled / symmetry-aware with one relabelling per trajectory):
    CS2, 82 % dissociating: 1.24 / 0.22 with the invariant loss against
    1.26 / 1.15 without; C2H4, 36 % dissociating: 0.17 / 0.15 against
    0.19 / 0.18; NMM, bound (192 automorphisms): 0.29 / 0.20 against
    0.20 / 0.19. Hence "auto".

    Training speed (``benchmarks/bench_vrnn.py``, both runs in one process,
    one thread on a shared 2-core machine, epoch cap 150 and patience 20, as
    in the paper preset): the fast settings (``lr=3e-3, schedule="plateau",
    physics_warmup=10``) against the defaults (constant 1e-3, warm-up 20). An epoch costs the same (same network and
    batch); the gain is in epochs. Synthetic C2H4 (106 training trajectories
    x 101 frames): the before run's best validation loss, 20.79, was reached
    at epoch 40 instead of 72, and the runs stopped at 65 and 92 epochs with
    the same accuracy (best validation loss 20.66 against 20.79; test RMSD
    per frame 0.0642 against 0.0640 Å). The quick preset's generated C2H4
    (96 x 151 frames): the before run's best, 8.998, at epoch 90 instead of
    145 (both ran to the cap, the after run improving to 8.435; test loss
    8.58 against 8.70, RMSD labelled 0.241 against 0.238 Å, symmetry-aware
    per frame 0.198 against 0.199 Å). So 1.6-1.8x fewer epochs to the same
    loss, not the 3x asked for. Tried and not kept (one seed each, epochs to
    those targets, synthetic / quick C2H4): batch 64 (1.35x cheaper epochs,
    but on 96 trajectories it needed more of them: validation loss 10.64
    against 9.08 at epoch 69); the one-cycle schedule over 60 epochs (10.57
    at epoch 44 against 10.33 on the plateau); learning rate 1e-2 (never
    reached the target); warm-up 5 (41 / -); warm-up 20 (50 / 66); a plateau
    wait of patience // 2 (46 / 83, best validation loss 7.81 at the cap on
    quick C2H4). They are not the defaults: over three seeds of the quick
    preset's study (``reproduce --seeds 3 --jobs 2``, 60-epoch cap) the fast
    settings took 501 s against 558 s, equal scores within the spread on four
    experiments, and on dissociating CS2 one seed of three failed under each
    (symmetry-aware RMSD per frame 1331 with the fast settings, 651 with the
    defaults, against 188-280 for the other seeds; signal fit of study revision 3): no study-level gain to
    justify changing the models of every study.

    Encoder, measured on the quick preset's generated data (one seed, 60
    epochs, sums over the test frames: RMSD labelled / symmetry-aware per
    trajectory / per frame, SSR): C2H4 (96 training trajectories) smoother
    441 / 384 / 361 / 10.4 against the filter's 448 / 391 / 368 / 20.1;
    CS2 (48, 62 % dissociating) 948 / 314 / 309 / 63.2 against
    993 / 292 / 288 / 65.5; bound CS2 (80 epochs, batch 64) 92.5 / 84.0 /
    82.3 / 74.3 against 94.5 / 82.0 / 79.2 / 73.0. The smoother lowers the
    labelled RMSD in all three and the SSR in two, but loses both
    symmetry-aware RMSDs on both CS2 experiments (by 2-7 %), so the causal
    filter stays the default until the study's numbers over several seeds
    say otherwise.
    """

    name = "vrnn"
    label = "VRNN"
    _fitted_attr = "net_"

    def __init__(
        self,
        *,
        hidden: int = 128,
        features: int = 64,
        latent_free: int = 8,
        decoder: bool = False,
        encoder: str = "filter",
        alpha: float = 1.0,
        beta: float = 1.0,
        gamma: float = 1.0,
        physics: float = 0.1,
        physics_warmup: int = 20,
        physics_frames: int = 16,
        symmetry: bool | str = "auto",
        target: str = "log",
        epochs: int = 300,
        patience: int = 30,
        batch_size: int = 32,
        lr: float = 1e-3,
        schedule: str = "constant",
        weight_decay: float = 0.0,
        clip: float = 5.0,
        input_noise: float = 0.0,
        signal_noise: float | tuple[float, ...] = 0.0,
        seed: int = 0,
        device: str = "auto",
        refine: bool = True,
        refine_weight: float = 1.0,
        refine_noise: float | None = None,
        refine_space: str = "geometry",
        refine_std_scale: float | str | None = "auto",
    ):
        self.hidden = hidden
        self.features = features
        self.latent_free = latent_free
        self.decoder = decoder
        self.encoder = encoder
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.physics = physics
        self.physics_warmup = physics_warmup
        self.physics_frames = physics_frames
        self.symmetry = symmetry
        self.target = target
        self.epochs = epochs
        self.patience = patience
        self.batch_size = batch_size
        self.lr = lr
        self.schedule = schedule
        self.weight_decay = weight_decay
        self.clip = clip
        self.input_noise = input_noise
        self.signal_noise = signal_noise
        self.seed = seed
        self.device = device
        self.refine = refine
        self.refine_weight = refine_weight
        self.refine_noise = refine_noise
        self.refine_space = refine_space
        self.refine_std_scale = refine_std_scale

    # ------------------------------------------------------------------ settings
    def check_settings(self) -> list[str]:
        """Validate the settings; an :class:`InputError` names the first bad one.

        Returns
        -------
        list of str
            Warnings about valid settings that will not do what one may expect
            (the physics term never reaching its full weight).
        """
        for name in ("hidden", "features", "epochs", "batch_size"):
            check_number(name, getattr(self, name), low=1, integer=True)
        check_number("latent_free", self.latent_free, low=0, integer=True)
        # sizes of the network: beyond these a typed number (or a model file's header) asks for
        # tens of GB before the first step; the limits are far above any network trained here
        check_number("hidden", self.hidden, high=MAX_HIDDEN, integer=True)
        check_number("features", self.features, high=MAX_FEATURES, integer=True)
        check_number("latent_free", self.latent_free, high=MAX_LATENT_FREE, integer=True)
        check_number("physics_frames", self.physics_frames, low=0, integer=True)
        check_number("physics_warmup", self.physics_warmup, low=0, integer=True)
        check_number("patience", self.patience, low=1, integer=True)
        check_number("seed", self.seed, low=0, integer=True)
        for name in ("alpha", "beta", "gamma", "physics", "weight_decay", "input_noise"):
            check_number(name, getattr(self, name), low=0)
        check_number("lr", self.lr, low=0, low_open=True)
        check_number("clip", self.clip, low=0, low_open=True)
        levels = self.signal_noise if isinstance(self.signal_noise, (list, tuple)) else [self.signal_noise]
        if not levels:
            raise InputError("The 'signal_noise' setting must be a number >= 0 or a non-empty list of them; got an empty list")
        for level in levels:
            check_number("signal_noise", level, low=0)
        if not isinstance(self.decoder, (bool, np.bool_)):
            raise InputError(f"The 'decoder' setting must be True or False; got {self.decoder!r}")
        if not (isinstance(self.symmetry, (bool, np.bool_)) or self.symmetry == "auto"):
            raise InputError(f"The 'symmetry' setting must be True, False or 'auto'; got {self.symmetry!r}")
        check_choice("target", self.target, TARGETS)
        check_choice("encoder", self.encoder, ENCODERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("device", self.device, ("auto", "cpu", "cuda"))
        check_refine_settings(self)
        if self.alpha == 0:
            raise InputError("The 'alpha' setting must be > 0: without the supervised loss the latents carry no distances")
        full = full_weight_epoch(self.physics, self.physics_warmup)
        if self.physics > 0 and self.epochs < full:
            return [
                f"the physics term reaches its full weight at epoch {full} (physics_warmup {self.physics_warmup}); "
                f"with {self.epochs} epochs it never does, and early stopping never starts"
            ]
        return []

    def fit_summary(self) -> str:
        """One line on how training went: the best epoch and its loss."""
        self._check_fitted("summarising its fit")
        if not self.history_ or not 1 <= self.best_epoch_ <= len(self.history_):
            return ""
        best = self.history_[self.best_epoch_ - 1]
        which = "val" if best["val_loss"] is not None else "train"
        return f"best epoch {self.best_epoch_} of {len(self.history_)} ({which} loss {best[f'{which}_loss']:.4g})"

    @property
    def fit_std_scale(self) -> float | None:
        """The multiple of the prior's relative width reported as σ after the signal fit (``refine_std_scale`` resolved), or None."""
        if self.refine_std_scale != "auto":
            return None if self.refine_std_scale is None else float(self.refine_std_scale)
        levels = self.signal_noise if isinstance(self.signal_noise, (list, tuple)) else [self.signal_noise]
        return REFINE_STD_SCALE if any(float(x) > 0 for x in levels) else None

    # ------------------------------------------------------------------ predict
    def predict(self, dS: ArrayLike, *, q: ArrayLike, lengths: ArrayLike | None = None) -> Prediction:
        """Distances and their standard deviations for every frame (parameters: :meth:`InversionMethod.predict`).

        Returns
        -------
        Prediction
            ``distances`` and ``std``, shape (M, T, n_pairs), Angstrom, NaN
            past each length.
        """
        import torch

        dS, lengths, mask = self._signals(dS, q, lengths)
        M, T, _ = dS.shape
        x = self._standardise_x(np.where(mask[..., None], dS, 0.0), mask)
        device = self._torch_device()
        net = self.net_.to(device)
        P = self.n_pairs_
        mu = np.empty((M, T, P))
        sd = np.empty((M, T, P))
        try:
            with torch.no_grad():
                for start in range(0, M, 512):
                    xb = torch.as_tensor(x[start : start + 512], device=device)
                    mb = torch.as_tensor(mask[start : start + 512], dtype=torch.float32, device=device)
                    out = net(xb, mask=mb)
                    mu[start : start + 512] = out["q_mean"][..., :P].double().cpu().numpy()
                    sd[start : start + 512] = out["q_std"][..., :P].double().cpu().numpy()
        finally:
            self.net_ = net.to("cpu")
        R = from_target(mu * self.y_std_ + self.y_mean_, self.target, self.g_floor_)
        std = target_slope(R, self.target) * self.y_std_ * sd
        R[~mask] = np.nan
        std[~mask] = np.nan
        # with a time resolution the signal fit needs the frame interval (model files of before it was recorded lack it)
        if self.refine and (self.spec_.irf_fs is None or self.dt_ is not None):
            R, std = refine_distances(
                R,
                REFINE_PRIOR_SCALE * std,
                dS,
                symbols=self.symbols_,
                spec=self.spec_,
                lengths=lengths,
                I_ref=self.I_ref_ground_,
                noise=self.refine_noise,
                weight=self.refine_weight,
                space=self.refine_space,
                device=self.device,
                dt=self.dt_,
                posterior="auto" if self.fit_std_scale is None else "prior",
            )
            if self.fit_std_scale is not None:
                std = self.fit_std_scale * std
        return Prediction(distances=R, std=std)
