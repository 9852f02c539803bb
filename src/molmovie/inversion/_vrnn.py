"""The paper's method: a variational recurrent neural network (VRNN) with supervised latents.

After Chung et al., "A Recurrent Latent Variable Model for Sequential Data"
(NeurIPS 2015), as used in vid2param (Asenov et al., "Vid2Param: Modelling of
Dynamics Parameters from Video", IEEE RA-L 2019) and in Asenov, Zotev,
Ramamoorthy & Kirrander, "Inversion of Ultrafast X-ray Scattering with
Dynamics Constraints". The network is in :mod:`._vrnn_net`; this module holds
the estimator: data scaling, the loss, training and prediction.

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

import copy
import math
import time

import numpy as np

from .._errors import InputError
from ._base import (
    InversionMethod,
    Prediction,
    check_choice,
    check_dataset,
    check_number,
    check_signals,
    need_array,
)

__all__ = ["VRNN", "TARGETS"]

#: Target transforms g(R) of the distances before standardisation.
TARGETS = ("log", "inverse", "linear")

_LOG_2PI = math.log(2.0 * math.pi)


def _forward_target(R: np.ndarray, target: str) -> np.ndarray:
    if target == "log":
        return np.log(R)
    if target == "inverse":
        return 1.0 / R
    return R


class VRNN(InversionMethod):
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
        refines them. The validation loss always uses the full weight.
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
        Adam learning rate.
    weight_decay : float, default 0.0
        Adam L2 weight decay.
    clip : float, default 5.0
        Gradient-norm clipping threshold.
    input_noise : float, default 0.0
        Standard deviation of Gaussian noise added to the standardised input
        during training (robustness to measurement noise).
    seed : int, default 0
        Seed of weight initialisation, batch order and latent sampling.
    device : {"auto", "cpu", "cuda"}, default "auto"
        Where to train and predict; "auto" takes CUDA when PyTorch finds it.

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
        Per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``seconds``.
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
    """

    name = "vrnn"
    _fitted_attr = "net_"

    def __init__(
        self,
        *,
        hidden: int = 128,
        features: int = 64,
        latent_free: int = 8,
        decoder: bool = False,
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
        weight_decay: float = 0.0,
        clip: float = 5.0,
        input_noise: float = 0.0,
        seed: int = 0,
        device: str = "auto",
    ):
        self.hidden = hidden
        self.features = features
        self.latent_free = latent_free
        self.decoder = decoder
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
        self.weight_decay = weight_decay
        self.clip = clip
        self.input_noise = input_noise
        self.seed = seed
        self.device = device

    # ------------------------------------------------------------------ settings
    def _validate_settings(self) -> None:
        for name in ("hidden", "features", "epochs", "batch_size"):
            check_number(name, getattr(self, name), low=1, integer=True)
        check_number("latent_free", self.latent_free, low=0, integer=True)
        check_number("physics_frames", self.physics_frames, low=0, integer=True)
        check_number("physics_warmup", self.physics_warmup, low=0, integer=True)
        check_number("patience", self.patience, low=1, integer=True)
        check_number("seed", self.seed, low=0, integer=True)
        for name in ("alpha", "beta", "gamma", "physics", "weight_decay", "input_noise"):
            check_number(name, getattr(self, name), low=0)
        check_number("lr", self.lr, low=0, low_open=True)
        check_number("clip", self.clip, low=0, low_open=True)
        if not isinstance(self.decoder, (bool, np.bool_)):
            raise InputError(f"The 'decoder' setting must be True or False; got {self.decoder!r}")
        if not (isinstance(self.symmetry, (bool, np.bool_)) or self.symmetry == "auto"):
            raise InputError(f"The 'symmetry' setting must be True, False or 'auto'; got {self.symmetry!r}")
        check_choice("target", self.target, TARGETS)
        check_choice("device", self.device, ("auto", "cpu", "cuda"))
        if self.alpha == 0:
            raise InputError("The 'alpha' setting must be > 0: without the supervised loss the latents carry no distances")

    def _torch_device(self):
        import torch

        if self.device == "cuda" and not torch.cuda.is_available():
            raise InputError("device 'cuda' was asked for but PyTorch finds no CUDA GPU; use --device cpu or auto")
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    # ------------------------------------------------------------------ scaling
    def _g_to_R(self, g):
        """Inverse target transform, NumPy or torch."""
        if self.target == "log":
            return np.exp(g) if isinstance(g, np.ndarray) else g.exp()
        if self.target == "inverse":
            floor = self.g_floor_
            return 1.0 / (np.maximum(g, floor) if isinstance(g, np.ndarray) else g.clamp(min=floor))
        floor = 0.05
        return np.maximum(g, floor) if isinstance(g, np.ndarray) else g.clamp(min=floor)

    def _dR_dg(self, R: np.ndarray) -> np.ndarray:
        if self.target == "log":
            return R
        if self.target == "inverse":
            return R**2
        return np.ones_like(R)

    def _standardise_x(self, dS: np.ndarray, mask: np.ndarray) -> np.ndarray:
        x = (dS - self.x_mean_) / self.x_std_
        return np.where(mask[..., None], x, 0.0).astype(np.float32)

    # ------------------------------------------------------------------ fit
    def fit(self, train, val=None, *, progress=None) -> "VRNN":
        """Train on the training trajectories, early-stopping on the validation ones.

        Parameters
        ----------
        train : Dataset
            Trajectories with signals ``dS`` (M, T, Q) and positions.
        val : Dataset, optional
            Validation trajectories of the same molecule and q grid.
        progress : callable(done, info), optional
            Called after every epoch as ``progress(epoch, info)``; ``info`` is a
            dict with ``epoch``, ``epochs``, ``train_loss``, ``val_loss`` (None
            without val), ``best_loss``, ``best_epoch``, ``seconds`` and the
            loss parts ``nll``, ``kl``, ``rec``, ``phys`` (training means).

        Returns
        -------
        self
        """
        import torch

        self._reset()
        self._validate_settings()
        mask = check_dataset(train, "training")
        val = self._check_val(train, val)
        device = self._torch_device()
        R = np.asarray(train.distances, dtype=float)
        if not np.all(np.isfinite(R[mask])) or np.any(R[mask] <= 0):
            raise InputError("the training positions give NaN, inf or zero distances within a trajectory's length")
        self._record_dataset(train)
        self._fit_scaling(train, R, mask)

        data = self._tensors(train, mask, R, device)
        vdata = None
        if val is not None:
            vmask = check_dataset(val, "validation")
            vR = np.asarray(val.distances, dtype=float)
            if not np.all(np.isfinite(vR[vmask])) or np.any(vR[vmask] <= 0):
                raise InputError("the validation positions give NaN, inf or zero distances within a trajectory's length")
            vdata = self._tensors(val, vmask, vR, device)

        from ._vrnn_net import VRNNNet

        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(int(self.seed))
            net = VRNNNet(len(self.q_), self.n_pairs_ + self.latent_free, self.hidden, self.features, bool(self.decoder))
        net = net.to(device)
        debye = self._debye(device) if self.physics > 0 else None
        perms = torch.as_tensor(self.pair_perms_, dtype=torch.long, device=device)
        const = self._loss_constants(device)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        gen_cpu = torch.Generator().manual_seed(int(self.seed))
        gen_dev = gen_cpu if device.type == "cpu" else torch.Generator(device=device).manual_seed(int(self.seed))

        M = data["x"].shape[0]
        best = math.inf
        best_state = copy.deepcopy(net.state_dict())
        self.history_ = []
        self.best_epoch_ = 0
        since_best = 0
        for epoch in range(1, int(self.epochs) + 1):
            t0 = time.perf_counter()
            net.train()
            order = torch.randperm(M, generator=gen_cpu)
            sums = {"loss": 0.0, "nll": 0.0, "kl": 0.0, "rec": 0.0, "phys": 0.0}
            frames = 0.0
            weight = self._physics_weight(epoch)
            for start in range(0, M, int(self.batch_size)):
                idx = order[start : start + int(self.batch_size)].to(device)
                batch = {k: v[idx] for k, v in data.items()}
                x = batch["x"]
                if self.input_noise > 0:
                    noise = torch.randn(x.shape, generator=gen_dev, device=device)
                    x = x + self.input_noise * noise * batch["mask"][..., None]
                eps = torch.randn((x.shape[1], x.shape[0], net.latent), generator=gen_dev, device=device)
                out = net(x, eps)
                on = debye is not None and weight > 0
                frames_idx = self._physics_frames(x.shape[1], gen_cpu) if on else None
                loss, parts, n = self._loss(out, batch, perms, debye if on else None, const, frames_idx, weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), float(self.clip))
                opt.step()
                for k in sums:
                    sums[k] += parts[k] * n
                frames += n
            train_parts = {k: v / frames for k, v in sums.items()}
            val_loss = self._evaluate(net, vdata, perms, debye, const, weight) if vdata is not None else None
            monitor = val_loss if val_loss is not None else train_parts["loss"]
            if not math.isfinite(monitor):
                raise InputError(
                    f"training diverged at epoch {epoch} (loss {monitor}); lower 'lr' or 'physics', or check the data"
                )
            if epoch < self._full_weight_epoch():
                # the objective is still changing (physics ramp): keep the latest weights, count nothing
                best, self.best_epoch_, since_best = math.inf, epoch, 0
                best_state = copy.deepcopy(net.state_dict())
            elif monitor < best:
                best, self.best_epoch_, since_best = monitor, epoch, 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                since_best += 1
            record = {
                "epoch": epoch,
                "train_loss": train_parts["loss"],
                "val_loss": val_loss,
                "seconds": time.perf_counter() - t0,
            }
            self.history_.append(record)
            if progress is not None:
                parts = {k: train_parts[k] for k in ("nll", "kl", "rec", "phys")}
                progress(epoch, dict(record, epochs=int(self.epochs), best_loss=best, best_epoch=self.best_epoch_, **parts))
            if since_best >= int(self.patience):
                break
        net.load_state_dict(best_state)
        self.net_ = net.to("cpu").eval()
        return self

    def _fit_scaling(self, train, R: np.ndarray, mask: np.ndarray) -> None:
        from ..geometry import automorphisms, pair_permutations

        dS = np.asarray(train.dS, dtype=float)[mask]
        self.x_mean_ = dS.mean(axis=0)
        std = dS.std(axis=0)
        self.x_std_ = np.maximum(std, 1e-6 * max(float(std.max()), 1e-12))
        Rv = R[mask]
        self.g_floor_ = 1.0 / (10.0 * float(Rv.max()))
        g = _forward_target(Rv, self.target)
        m1, m2 = g.mean(axis=0), (g**2).mean(axis=0)
        if self.symmetry == "auto":
            self.symmetry_ = bool(np.any(train.dissociated))
        else:
            self.symmetry_ = bool(self.symmetry)
        if self.symmetry_:
            perms = automorphisms(self.symbols_, np.asarray(train.positions)[0, 0])
            self.pair_perms_ = np.asarray(pair_permutations(perms), dtype=np.int64)
            # average the statistics over each orbit of equivalent pairs, so that
            # standardising commutes with relabelling the molecule
            m1, m2 = m1[self.pair_perms_].mean(axis=0), m2[self.pair_perms_].mean(axis=0)
        else:
            self.pair_perms_ = np.arange(self.n_pairs_, dtype=np.int64)[None, :]
        self.y_mean_ = m1
        sd = np.sqrt(np.maximum(m2 - m1**2, 0.0))
        self.y_std_ = np.maximum(sd, 1e-3 * max(float(np.abs(m1).max()), 1e-12))
        attrs = self.signal_attrs_
        self.reference_ = str(attrs.get("reference", "first"))
        if self.reference_ not in ("first", "ground"):
            raise InputError(f"the training signals have an unknown reference {self.reference_!r} (expected first or ground)")
        self.inelastic_ = bool(attrs.get("inelastic", True))
        self.I_ref_ground_ = None
        if self.reference_ == "ground" and train.I_ref is not None:
            self.I_ref_ground_ = np.asarray(train.I_ref, dtype=float).mean(axis=0)
        if self.physics > 0 and self.reference_ == "ground" and self.I_ref_ground_ is None:
            raise InputError("the physics term needs the training set's I_ref for reference 'ground'; it has none")

    def _tensors(self, ds, mask: np.ndarray, R: np.ndarray, device) -> dict:
        import torch

        dS = np.asarray(ds.dS, dtype=float)
        g = _forward_target(np.where(mask[..., None], R, 1.0), self.target)
        y = np.where(mask[..., None], (g - self.y_mean_) / self.y_std_, 0.0)
        raw = np.where(mask[..., None], dS, 0.0)

        def t(a, dtype=torch.float32):
            return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

        return {
            "x": t(self._standardise_x(dS, mask)),
            "y": t(y),
            "dS": t(raw),
            "mask": t(mask.astype(np.float32)),
        }

    def _debye(self, device):
        import torch

        from ..scattering import DebyeTorch

        return DebyeTorch(self.symbols_, self.q_, inelastic=self.inelastic_, dtype=torch.float32).to(device)

    def _loss_constants(self, device) -> dict:
        import torch

        c = {
            "y_mean": torch.as_tensor(self.y_mean_, dtype=torch.float32, device=device),
            "y_std": torch.as_tensor(self.y_std_, dtype=torch.float32, device=device),
            "x_std": torch.as_tensor(self.x_std_, dtype=torch.float32, device=device),
        }
        if self.I_ref_ground_ is not None:
            c["I_ref"] = torch.as_tensor(self.I_ref_ground_, dtype=torch.float32, device=device)
        return c

    def _physics_weight(self, epoch: int) -> float:
        """Weight of the physics term at a (1-based) training epoch: off, then a linear ramp."""
        w = int(self.physics_warmup)
        if w == 0:
            return float(self.physics)
        return float(self.physics) * min(1.0, max(0.0, (epoch - w) / w))

    def _full_weight_epoch(self) -> int:
        """First (1-based) epoch at which the physics term has its full weight."""
        if self.physics <= 0 or int(self.physics_warmup) == 0:
            return 1
        return 2 * int(self.physics_warmup)

    def _physics_frames(self, T: int, generator=None):
        """Frame indices for the physics term: 0 and a random (or, without generator, evenly spaced) subset."""
        import torch

        k = int(self.physics_frames)
        if k == 0 or k >= T:
            return None
        if generator is None:
            rest = torch.linspace(1, T - 1, k - 1).round().long() if k > 1 else torch.zeros(0, dtype=torch.long)
        else:
            rest = 1 + torch.randperm(T - 1, generator=generator)[: k - 1]
        return torch.cat([torch.zeros(1, dtype=torch.long), rest.sort().values]).unique()

    def _loss(self, out: dict, batch: dict, perms, debye, const: dict, frames=None, physics=None):
        """Mean loss per valid frame of a batch, its parts (floats) and the frame count.

        ``frames`` (tensor of frame indices starting with 0, or None for all)
        selects the frames on which the physics term is evaluated;
        ``physics`` overrides its weight (default: the ``physics`` setting).
        """
        import torch

        P = self.n_pairs_
        mask = batch["mask"]
        n = mask.sum()
        mu, sd = out["q_mean"][..., :P], out["q_std"][..., :P]
        y = batch["y"]
        if perms.shape[0] > 1:
            y = _best_permutation(y, mu, sd, mask, perms)
        nll = (0.5 * ((y - mu) / sd) ** 2 + sd.log() + 0.5 * _LOG_2PI).sum(-1)
        qm, qs, pm, ps = out["q_mean"], out["q_std"], out["p_mean"], out["p_std"]
        kl = ((ps / qs).log() + (qs**2 + (qm - pm) ** 2) / (2 * ps**2) - 0.5).sum(-1)
        total = self.alpha * nll + self.beta * kl
        rec = torch.zeros_like(nll)
        if "x_mean" in out:
            rec = 0.5 * ((out["x_mean"] - batch["x"]) ** 2).sum(-1)
            total = total + self.gamma * rec
        loss = (total * mask).sum() / n
        if debye is not None:
            sel = slice(None) if frames is None else frames.to(mu.device)
            mu_sel, dS_sel, mask_sel = mu[:, sel], batch["dS"][:, sel], mask[:, sel]
            R_hat = self._g_to_R(mu_sel * const["y_std"] + const["y_mean"])
            intensity = debye(R_hat)
            I_ref = intensity[:, :1] if self.reference_ == "first" else const["I_ref"]
            dS_hat = intensity / I_ref - 1.0
            phys = 0.5 * (((dS_hat - dS_sel) / const["x_std"]) ** 2).sum(-1)
            phys_mean = (phys * mask_sel).sum() / mask_sel.sum()
            loss = loss + (self.physics if physics is None else physics) * phys_mean
        else:
            phys_mean = torch.zeros(())
        with torch.no_grad():
            parts = {k: float((v * mask).sum() / n) for k, v in (("nll", nll), ("kl", kl), ("rec", rec))}
        parts["phys"] = float(phys_mean.detach())
        parts["loss"] = float(loss.detach())
        return loss, parts, float(n)

    def _evaluate(self, net, data: dict, perms, debye, const: dict, physics=None) -> float:
        import torch

        net.eval()
        total, frames = 0.0, 0.0
        T = data["x"].shape[1]
        chosen = self._physics_frames(T) if debye is not None else None
        step = max(1, int(self.batch_size))
        with torch.no_grad():
            for start in range(0, data["x"].shape[0], step):
                batch = {k: v[start : start + step] for k, v in data.items()}
                _, parts, n = self._loss(net(batch["x"]), batch, perms, debye, const, chosen, physics)
                total += parts["loss"] * n
                frames += n
        return total / frames

    # ------------------------------------------------------------------ predict
    def predict(self, dS, *, q, lengths=None) -> Prediction:
        """Distances and their standard deviations for every frame.

        Parameters
        ----------
        dS : array_like, shape (M, T, Q)
            Difference signals, a fraction.
        q : array_like, shape (Q,), 1/Angstrom
            Must equal the training q grid.
        lengths : array_like of int, shape (M,), optional
            Valid frames per series (default: from trailing NaN frames).

        Returns
        -------
        Prediction
            ``distances`` and ``std``, shape (M, T, n_pairs), Angstrom, NaN
            past each length.
        """
        import torch

        self._check_fitted()
        dS, lengths = check_signals(dS, q, lengths, self.q_)
        M, T, _ = dS.shape
        mask = np.arange(T)[None, :] < lengths[:, None]
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
                    out = net(xb)
                    mu[start : start + 512] = out["q_mean"][..., :P].double().cpu().numpy()
                    sd[start : start + 512] = out["q_std"][..., :P].double().cpu().numpy()
        finally:
            self.net_ = net.to("cpu")
        R = self._g_to_R(mu * self.y_std_ + self.y_mean_)
        std = self._dR_dg(R) * self.y_std_ * sd
        R[~mask] = np.nan
        std[~mask] = np.nan
        return Prediction(distances=R, std=std)

    # ------------------------------------------------------------------ persistence
    def _config_state(self) -> dict:
        return {
            "n_q": len(self.q_),
            "reference": self.reference_,
            "inelastic": self.inelastic_,
            "g_floor": self.g_floor_,
            "symmetry": self.symmetry_,
            "best_epoch": self.best_epoch_,
            "history": self.history_,
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "x_mean": self.x_mean_,
            "x_std": self.x_std_,
            "y_mean": self.y_mean_,
            "y_std": self.y_std_,
            "pair_perms": self.pair_perms_,
        }
        if self.I_ref_ground_ is not None:
            arrays["I_ref_ground"] = self.I_ref_ground_
        for k, v in self.net_.state_dict().items():
            arrays[f"net.{k}"] = v.detach().cpu().numpy()
        return arrays

    def _restore(self, config: dict, arrays: dict, path) -> None:
        import torch

        from ._vrnn_net import VRNNNet

        self._validate_settings_loaded(path)
        try:
            self.reference_ = str(config["reference"])
            self.inelastic_ = bool(config["inelastic"])
            self.g_floor_ = float(config["g_floor"])
            self.symmetry_ = bool(config["symmetry"])
            self.best_epoch_ = int(config.get("best_epoch", 0))
            self.history_ = list(config.get("history", []))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: damaged molmovie model file (VRNN record incomplete)") from None
        Q, P = len(self.q_), self.n_pairs_
        shapes = {"x_mean": (Q,), "x_std": (Q,), "y_mean": (P,), "y_std": (P,)}
        for name, shape in shapes.items():
            a = np.asarray(need_array(arrays, name, path), dtype=float)
            if a.shape != shape or not np.all(np.isfinite(a)):
                raise InputError(f"{path}: damaged molmovie model file (array {name!r})")
            setattr(self, f"{name}_", a)
        perms = np.asarray(need_array(arrays, "pair_perms", path))
        if perms.ndim != 2 or perms.shape[1] != P or perms.min() < 0 or perms.max() >= P:
            raise InputError(f"{path}: damaged molmovie model file (array 'pair_perms')")
        self.pair_perms_ = perms.astype(np.int64)
        self.I_ref_ground_ = np.asarray(arrays["I_ref_ground"], dtype=float) if "I_ref_ground" in arrays else None
        net = VRNNNet(Q, P + self.latent_free, self.hidden, self.features, bool(self.decoder))
        state = {k[4:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("net.")}
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise InputError(f"{path}: damaged molmovie model file (network weights do not fit: {first})") from None
        self.net_ = net.eval()

    def _validate_settings_loaded(self, path) -> None:
        try:
            self._validate_settings()
        except InputError as exc:
            raise InputError(f"{path}: damaged molmovie model file ({exc})") from None


def _best_permutation(y, mu, sd, mask, perms):
    """Relabel each sequence's targets by the symmetry permutation of least NLL.

    The NLL's quadratic part for permutation π is
    Σ_t Σ_p A_tp (y_{t,π(p)} − μ_tp)², A = mask/σ²; expanding it, every π is
    scored at once from two (P, P) matrices per sequence,
    M1[r, p] = Σ_t y_tr² A_tp and M2[r, p] = Σ_t y_tr A_tp μ_tp, as
    Σ_p (M1 − 2 M2)[π(p), p] (the term in μ² is the same for all π).
    The choice is made in float64 without gradients; the loss is then
    computed directly on the chosen relabelling. Ties go to the lowest index
    (the identity is first).

    Parameters
    ----------
    y, mu, sd : tensor, shape (B, T, P)
    mask : tensor, shape (B, T)
    perms : tensor of long, shape (K, P)

    Returns
    -------
    tensor, shape (B, T, P): y relabelled per sequence.
    """
    import torch

    with torch.no_grad():
        yd, md = y.double(), mu.double()
        A = mask.double()[..., None] / sd.double() ** 2
        M1 = torch.einsum("btr,btp->brp", yd**2, A)
        M2 = torch.einsum("btr,btp->brp", yd, A * md)
        D = M1 - 2.0 * M2
        P = y.shape[-1]
        cost = D[:, perms, torch.arange(P, device=y.device)].sum(-1)  # (B, K)
        best = cost.argmin(dim=1)
    index = perms[best][:, None, :].expand_as(y)
    return torch.gather(y, 2, index)
