"""The VRNN's training: data scaling, the training loop with early stopping, and the loss it monitors.

:class:`_VRNNTraining` is a part (a base class) of :class:`molmovie.inversion.VRNN` (its
settings are the VRNN's; see its docstring and the notes of
:mod:`molmovie.inversion._vrnn`); the loss term by term is in
:mod:`molmovie.inversion.losses`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Self

import numpy as np

from .._errors import InputError
from .._guards import check_allocation
from .._typing import Progress
from ..datasets import Dataset
from ..geometry import automorphisms, pair_permutations
from ._base import check_dataset, check_signals
from ._vrnn_file import _VRNNFile
from .losses import (
    LRSchedule,
    Patience,
    from_target,
    full_weight_epoch,
    physics_frames,
    physics_weight,
    relative_change,
    to_target,
    vrnn_loss,
)

if TYPE_CHECKING:
    import torch


class _VRNNTraining(_VRNNFile):
    """The VRNN's ``fit`` and what it needs: scaling, tensors, the loss and its signal model, an epoch, the device."""

    # the settings of training and of its loss (set by VRNN.__init__; see VRNN's Parameters)
    alpha: float
    beta: float
    gamma: float
    physics: float
    physics_warmup: int
    physics_frames: int
    symmetry: bool | str
    target: str
    epochs: int
    patience: int
    batch_size: int
    lr: float
    schedule: str
    weight_decay: float
    clip: float
    input_noise: float
    signal_noise: float | tuple[float, ...]
    seed: int
    device: str

    def fit(self, train: Dataset, val: Dataset | None = None, *, progress: Progress | None = None) -> Self:
        """Train on the training trajectories, early-stopping on the validation ones.

        Parameters
        ----------
        train : Dataset
            Trajectories with signals ``dS`` (M, T, Q) and positions.
        val : Dataset, optional
            Validation trajectories of the same molecule and q grid.
        progress : callable(done, info), optional
            Called after every epoch as ``progress(epoch, info)`` (the
            protocol's shape); ``info`` has ``total`` (= ``epochs``), ``unit``
            ("epochs"), ``epoch``, ``epochs``, ``train_loss``, ``val_loss``
            (None without val), ``best_loss``, ``best_epoch``, ``seconds``, ``lr`` and
            the loss parts ``nll``, ``kl``, ``rec``, ``phys`` (training means).

        Returns
        -------
        self
        """
        import torch

        from ._vrnn_net import VRNNNet

        mask, val = self._start_fit(train, val)
        device = self._torch_device()
        R = _distances(train, mask, "training")
        self._record_dataset(train)
        self._fit_scaling(train, R, mask)
        data = self._tensors(train, mask, R, device)
        vdata = None
        if val is not None:
            vmask = check_dataset(val, "validation")
            vdata = self._tensors(val, vmask, _distances(val, vmask, "validation"), device)

        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(int(self.seed))
            shapes = self._net_shapes(len(self.q_), self.n_pairs_)
            # weights, gradients and Adam's two moments, float32
            check_allocation(
                16 * sum(math.prod(s) for s in shapes.values()),
                f"a VRNN with hidden={self.hidden}, features={self.features} on {len(self.q_)} q points",
            )
            net = VRNNNet(
                len(self.q_),
                self.n_pairs_ + self.latent_free,
                self.hidden,
                self.features,
                bool(self.decoder),
                self.encoder == "smoother",
            )
        net = net.to(device)
        terms = self._loss_terms(device)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        steps = math.ceil(data["x"].shape[0] / int(self.batch_size))
        scheduler = LRSchedule(opt, self.schedule, float(self.lr), int(self.epochs), steps, int(self.patience))
        gen_cpu = torch.Generator().manual_seed(int(self.seed))
        gen_dev = gen_cpu if device.type == "cpu" else torch.Generator(device=device).manual_seed(int(self.seed))

        stopping = _EarlyStopping(net, int(self.patience), full_weight_epoch(self.physics, self.physics_warmup))
        self.history_ = []
        self.best_epoch_ = 0
        for epoch in range(1, int(self.epochs) + 1):
            t0 = time.perf_counter()
            weight = physics_weight(epoch, self.physics, self.physics_warmup)
            train_parts = self._train_epoch(net, opt, scheduler, data, terms, weight, gen_cpu, gen_dev)
            val_loss = self._mean_loss(net, vdata, terms, weight) if vdata is not None else None
            monitor = val_loss if val_loss is not None else train_parts["loss"]
            if not math.isfinite(monitor):
                raise InputError(
                    f"training diverged at epoch {epoch} (loss {monitor}); lower 'lr' or 'physics', or check the data"
                )
            stop = stopping.update(epoch, monitor)
            scheduler.epoch_end(epoch >= stopping.start, stopping.since_best)
            self.best_epoch_ = stopping.best_epoch
            record = {
                "epoch": epoch,
                "train_loss": train_parts["loss"],
                "val_loss": val_loss,
                "seconds": time.perf_counter() - t0,
                "lr": scheduler.last_lr,
            }
            self.history_.append(record)
            if progress is not None:
                parts = {k: train_parts[k] for k in ("nll", "kl", "rec", "phys")}
                info = dict(record, total=int(self.epochs), unit="epochs", epochs=int(self.epochs))
                progress(epoch, dict(info, best_loss=stopping.best_loss, best_epoch=self.best_epoch_, **parts))
            if stop:
                break
        net.load_state_dict(stopping.best_state)
        self.net_ = net.to("cpu").eval()
        return self

    def _train_epoch(self, net, opt, scheduler, data: dict, terms: dict, weight: float, gen_cpu, gen_dev) -> dict:
        """One pass over the training sequences in random batches; the loss and its parts, means per valid frame."""
        import torch

        net.train()
        device = data["x"].device
        M = data["x"].shape[0]
        order = torch.randperm(M, generator=gen_cpu)
        sums = dict.fromkeys(("loss", "nll", "kl", "rec", "phys"), 0.0)
        frames = 0.0
        on = terms["signal"] is not None and weight > 0
        for start in range(0, M, int(self.batch_size)):
            idx = order[start : start + int(self.batch_size)].to(device)
            batch = {k: v[idx] for k, v in data.items()}
            x = batch["x"]
            if self.input_noise > 0:
                noise = torch.randn(x.shape, generator=gen_dev, device=device)
                x = x + self.input_noise * noise * batch["mask"][..., None]
            levels = self.signal_noise if isinstance(self.signal_noise, (list, tuple)) else [self.signal_noise]
            if any(level > 0 for level in levels):  # σ of ΔS, one level per sequence, in the standardised input's units
                pick = torch.randint(len(levels), (x.shape[0],), generator=gen_cpu)
                sigma = torch.as_tensor([float(v) for v in levels], dtype=x.dtype)[pick].to(device)
                noise = torch.randn(x.shape, generator=gen_dev, device=device)
                x = x + sigma[:, None, None] * noise / terms["scale"] * batch["mask"][..., None]
            eps = torch.randn((x.shape[1], x.shape[0], net.latent), generator=gen_dev, device=device)
            out = net(x, eps, batch["mask"])
            chosen = physics_frames(x.shape[1], self.physics_frames, gen_cpu) if on else None
            loss, parts, n = self._batch_loss(out, batch, terms, weight, chosen, physics_on=on)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), float(self.clip))
            opt.step()
            scheduler.step_end()
            for k in sums:
                sums[k] += parts[k] * n
            frames += n
        return {k: v / frames for k, v in sums.items()}

    def _batch_loss(self, out: dict, batch: dict, terms: dict, weight: float, frames, *, physics_on: bool = True):
        """:func:`~molmovie.inversion.losses.vrnn_loss` with this model's settings."""
        return vrnn_loss(
            out,
            batch,
            n_pairs=self.n_pairs_,
            perms=terms["perms"],
            alpha=self.alpha,
            beta=self.beta,
            gamma=self.gamma,
            physics=weight,
            signal=terms["signal"] if physics_on else None,
            scale=terms["scale"],
            frames=frames,
        )

    def _mean_loss(self, net, data: dict, terms: dict, weight: float) -> float:
        """Mean loss per valid frame over a whole dataset: latents at their means, physics on evenly spaced frames."""
        import torch

        net.eval()
        total, frames = 0.0, 0.0
        chosen = physics_frames(data["x"].shape[1], self.physics_frames) if terms["signal"] is not None else None
        step = max(1, int(self.batch_size))
        with torch.no_grad():
            for start in range(0, data["x"].shape[0], step):
                batch = {k: v[start : start + step] for k, v in data.items()}
                _, parts, n = self._batch_loss(net(batch["x"], mask=batch["mask"]), batch, terms, weight, chosen)
                total += parts["loss"] * n
                frames += n
        return total / frames

    def loss(self, dataset: Dataset) -> float:
        """The loss per valid frame on a dataset, as training monitors it on the validation data.

        The latents are taken at their means, the physics term (with the full
        ``physics`` weight) on ``physics_frames`` evenly spaced frames.

        Parameters
        ----------
        dataset : Dataset
            Trajectories with signals, of the molecule and q grid the model was trained on.
        """
        self._check_fitted("scoring a loss")
        mask = check_dataset(dataset, "given")
        self.check_molecule(dataset.symbols)
        assert dataset.dS is not None and dataset.q is not None  # check_dataset refuses a dataset without signals
        check_signals(dataset.dS, dataset.q, dataset.length, self.q_)
        device = self._torch_device()
        data = self._tensors(dataset, mask, _distances(dataset, mask, "given"), device)
        net = self.net_.to(device)
        try:
            return self._mean_loss(net, data, self._loss_terms(device), float(self.physics))
        finally:
            self.net_ = net.to("cpu")

    def signal_model(self, device: str | torch.device = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
        """The physics term's differentiable forward model: ΔS from standardised distance latents.

        Returns
        -------
        callable
            Maps a float32 tensor (B, T, n_pairs) of standardised targets
            (g(R) - y_mean_) / y_std_ to ΔS (B, T, Q): :math:`R = g^{-1}`, Eq. (1)
            (:class:`molmovie.scattering.DebyeTorch`), then
            :math:`I/I_\\mathrm{ref} - 1` against the predicted first frame
            (reference "first") or the training set's mean I_ref ("ground").
        """
        import torch

        self._check_fitted("building its signal model")
        return self._signal_model(torch.device(device))

    def _signal_model(self, device):
        import torch

        from ..scattering import DebyeTorch

        # the probe of the training signals (X-rays, or electrons at their beam energy), as the spec says
        probe = {"probe": self.spec_.probe, "energy_kev": self.spec_.energy_kev}
        debye = DebyeTorch(self.symbols_, self.q_, inelastic=self.inelastic_, **probe, dtype=torch.float32).to(device)
        y_std = torch.as_tensor(self.y_std_, dtype=torch.float32, device=device)
        y_mean = torch.as_tensor(self.y_mean_, dtype=torch.float32, device=device)
        I_ref = None
        if self.reference_ != "first":
            I_ref = torch.as_tensor(self.I_ref_ground_, dtype=torch.float32, device=device)
        target, floor = self.target, self.g_floor_

        def signal(mu):
            intensity = debye(from_target(mu * y_std + y_mean, target, floor))
            return relative_change(intensity, intensity[:, :1] if I_ref is None else I_ref)

        return signal

    def _loss_terms(self, device) -> dict:
        """What the loss needs besides a batch: the pair permutations, the signal model (None without physics), the misfit's unit."""
        import torch

        return {
            "perms": torch.as_tensor(self.pair_perms_, dtype=torch.long, device=device),
            "signal": self._signal_model(device) if self.physics > 0 else None,
            "scale": torch.as_tensor(self.x_std_, dtype=torch.float32, device=device),
        }

    def _fit_scaling(self, train, R: np.ndarray, mask: np.ndarray) -> None:
        dS = np.asarray(train.dS, dtype=float)[mask]
        self.x_mean_ = dS.mean(axis=0)
        std = dS.std(axis=0)
        self.x_std_ = np.maximum(std, 1e-6 * max(float(std.max()), 1e-12))
        Rv = R[mask]
        self.g_floor_ = 1.0 / (10.0 * float(Rv.max()))
        g = to_target(Rv, self.target)
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
        self.reference_ = self.spec_.reference
        self.inelastic_ = self.spec_.inelastic
        self.I_ref_ground_ = None
        if self.reference_ == "ground" and train.I_ref is not None:
            self.I_ref_ground_ = np.asarray(train.I_ref, dtype=float).mean(axis=0)
        if self.physics > 0 and self.reference_ == "ground" and self.I_ref_ground_ is None:
            raise InputError("the physics term needs the training set's I_ref for reference 'ground'; it has none")

    def _torch_device(self) -> torch.device:
        import torch

        if self.device == "cuda" and not torch.cuda.is_available():
            raise InputError("device 'cuda' was asked for but PyTorch finds no CUDA GPU; use --device cpu or auto")
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def _standardise_x(self, dS: np.ndarray, mask: np.ndarray) -> np.ndarray:
        x = (dS - self.x_mean_) / self.x_std_
        return np.where(mask[..., None], x, 0.0).astype(np.float32)

    def _tensors(self, ds, mask: np.ndarray, R: np.ndarray, device) -> dict:
        import torch

        dS = np.asarray(ds.dS, dtype=float)
        g = to_target(np.where(mask[..., None], R, 1.0), self.target)
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


def _distances(ds, mask: np.ndarray, role: str) -> np.ndarray:
    """A dataset's true distances (M, T, n_pairs), checked finite and positive on valid frames."""
    R = np.asarray(ds.distances, dtype=float)
    if not np.all(np.isfinite(R[mask])) or np.any(R[mask] <= 0):
        raise InputError(f"the {role} positions give NaN, inf or zero distances within a trajectory's length")
    return R


class _EarlyStopping(Patience):
    """:class:`~molmovie.inversion.losses.Patience` that also keeps the best epoch's weights."""

    def __init__(self, net, patience: int, start: int):
        super().__init__(patience, start)
        self.net = net
        self.best_state = copy.deepcopy(net.state_dict())

    def update(self, epoch: int, loss: float) -> bool:
        """Record an epoch's monitored loss; True when training should stop."""
        stop = super().update(epoch, loss)
        if self.since_best == 0:
            self.best_state = copy.deepcopy(self.net.state_dict())
        return stop
