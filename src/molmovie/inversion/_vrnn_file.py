"""The VRNN's model file contents: its learned state as a config record and plain arrays, and back.

:class:`_VRNNFile` is a part (a base class) of :class:`molmovie.inversion.VRNN`; the file
format itself (safetensors, ``molmovie-model``) is :mod:`molmovie.io.model`'s,
and :meth:`~molmovie.inversion.InversionMethod.save` and ``load`` call these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import InputError, shorten
from .._typing import PathLike
from ._base import InversionMethod, need_array

if TYPE_CHECKING:
    from ._vrnn_net import VRNNNet


class _VRNNFile(InversionMethod):
    """What :meth:`~molmovie.inversion.InversionMethod.save` stores of a VRNN, how ``load`` restores it, and the network's weight shapes."""

    # the settings that shape the network (set by VRNN.__init__; see VRNN's Parameters)
    hidden: int
    features: int
    latent_free: int
    decoder: bool
    encoder: str

    # the learned state this file stores (set by fit or by _restore; see VRNN's Attributes)
    net_: VRNNNet
    x_mean_: np.ndarray
    x_std_: np.ndarray
    y_mean_: np.ndarray
    y_std_: np.ndarray
    pair_perms_: np.ndarray
    I_ref_ground_: np.ndarray | None
    reference_: str
    inelastic_: bool
    g_floor_: float
    symmetry_: bool
    best_epoch_: int
    history_: list[dict[str, Any]]

    def _config_state(self) -> dict[str, Any]:
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

    def _restore(self, config: dict, arrays: dict, path: PathLike) -> None:
        import torch

        from ._vrnn_net import VRNNNet

        # files written before a setting existed were trained as it was then: a causal filter
        # at a constant learning rate
        stored_settings = config.get("settings", {})
        for name, before in _SETTINGS_BEFORE.items():
            if name not in stored_settings:
                setattr(self, name, before)
        try:
            self.check_settings()
        except InputError as exc:
            raise InputError(f"{path}: damaged molmovie model file ({exc})") from None
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
        shapes: dict[str, tuple[int, ...]] = {"x_mean": (Q,), "x_std": (Q,), "y_mean": (P,), "y_std": (P,)}
        for name, shape in shapes.items():
            a = np.asarray(need_array(arrays, name, path, kinds="f"), dtype=float)
            if a.shape != shape or not np.all(np.isfinite(a)):
                raise InputError(f"{path}: damaged molmovie model file (array {name!r})")
            setattr(self, f"{name}_", a)
        perms = np.asarray(need_array(arrays, "pair_perms", path, kinds="iu"))
        if perms.ndim != 2 or perms.shape[1] != P or perms.shape[0] == 0 or perms.min() < 0 or perms.max() >= P:
            raise InputError(f"{path}: damaged molmovie model file (array 'pair_perms')")
        self.pair_perms_ = perms.astype(np.int64)
        self.I_ref_ground_ = np.asarray(arrays["I_ref_ground"], dtype=float) if "I_ref_ground" in arrays else None
        # the settings must build exactly the stored network: compared on PyTorch's meta device
        # (which allocates nothing) before the real network is made
        stored = {k[4:]: v for k, v in arrays.items() if k.startswith("net.")}
        shapes = self._net_shapes(Q, P)
        if set(stored) != set(shapes):
            extra, missing = sorted(set(stored) - set(shapes)), sorted(set(shapes) - set(stored))
            raise InputError(
                f"{path}: damaged molmovie model file (network weights do not fit the settings: "
                f"missing {shorten(missing, 120)}, unexpected {shorten(extra, 120)})"
            )
        for name, shape in shapes.items():
            array = stored[name]
            if array.dtype.kind != "f":
                raise InputError(
                    f"{path}: damaged molmovie model file (array 'net.{name}' is {array.dtype}; a model stores floats)"
                )
            if tuple(array.shape) != shape:
                raise InputError(
                    f"{path}: damaged molmovie model file (network weights do not fit: 'net.{name}' has shape {tuple(array.shape)}; "
                    f"the settings hidden={self.hidden}, features={self.features}, latent_free={self.latent_free} "
                    f"make {shape})"
                )
            if not np.all(np.isfinite(array)):
                raise InputError(f"{path}: damaged molmovie model file (array 'net.{name}' has NaN or inf)")
        with torch.device("meta"):  # no weights drawn (torch's global random state is the user's), no memory
            net = VRNNNet(Q, P + self.latent_free, self.hidden, self.features, bool(self.decoder), self.encoder == "smoother")
        net.load_state_dict(
            {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in stored.items()}, strict=True, assign=True
        )
        self.net_ = net.eval()

    def _net_shapes(self, n_q: int, n_pairs: int) -> dict[str, tuple[int, ...]]:
        """The shapes of the network's weights for these settings, from a network on the meta device (no memory)."""
        import torch

        from ._vrnn_net import VRNNNet

        with torch.device("meta"):
            net = VRNNNet(
                n_q, n_pairs + self.latent_free, self.hidden, self.features, bool(self.decoder), self.encoder == "smoother"
            )
        return {k: tuple(v.shape) for k, v in net.state_dict().items()}


#: Settings added after model files were first written, and what a file without them was trained with.
_SETTINGS_BEFORE = {"encoder": "filter", "schedule": "constant"}
