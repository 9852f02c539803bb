r"""Eq. (1) and its gradient by the compiled kernels, as a PyTorch module: :class:`DebyeCompiled`.

The same model, form factors and interface as :class:`~molmovie.scattering.DebyeTorch`
(distances (..., n_pairs) in, intensities (..., n_q) out, differentiable with
respect to the distances), for float64 tensors on the CPU, evaluated by numba
instead of PyTorch's broadcast over (geometry, pair, q):

.. math::

    I(q) = c(q) + \sum_p w_p(q)\, \mathrm{sinc}(q R_p), \qquad
    \frac{\partial I(q)}{\partial R_p} = w_p(q)\, q\, \mathrm{sinc}'(q R_p)

(Asenov et al., Eq. (1)). The forward pass is the kernel of
:func:`~molmovie.scattering.intensity_from_distances` (the same plan: pairs
grouped by element-pair type, the recurrence on a uniform q grid); the
backward pass is the vector-Jacobian product of :mod:`._kernels_grad`, one
sine and cosine per pair and q point, computed again rather than stored, so
autograd keeps only the distances. Both are parallel over geometries
(``numba.set_num_threads``). The signal fit
(:func:`molmovie.inversion.refine_distances`) uses it on the CPU; the
PyTorch version stays the reference (tested to agree to 1e-10) and the one
that runs on a GPU.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike

from .._errors import InputError
from .._numba import parallel_lock
from .._typing import Symbols
from .debye import _plan
from .debye_torch import DebyeTorch

__all__ = ["DebyeCompiled"]


class DebyeCompiled(DebyeTorch):
    r"""Eq. (1) as a module computed by the compiled kernels: distances (..., n_pairs) -> intensities (..., n_q).

    A :class:`~molmovie.scattering.DebyeTorch` (same parameters, buffers and
    methods) whose ``forward`` and ``value_and_jacobian`` run the numba
    kernels, for float64 on the CPU only. Its gradient is first order
    (``once_differentiable``): enough for fits and ``gradcheck``, not for a
    Hessian by double backward.

    Examples
    --------
    >>> import torch
    >>> from molmovie.scattering import DebyeCompiled
    >>> model = DebyeCompiled(["C", "S", "S"], [0.5, 1.0, 2.0])
    >>> r = torch.tensor([1.55, 1.55, 3.10], dtype=torch.float64, requires_grad=True)
    >>> model(r).sum().backward()
    >>> r.grad.shape
    torch.Size([3])
    """

    #: value_and_jacobian is the cheap way to dI/dR here (the signal fit's Hessians ask)
    closed_form_jacobian = True

    def __init__(
        self,
        symbols: Symbols,
        q: ArrayLike | torch.Tensor,
        *,
        inelastic: bool = True,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        if dtype != torch.float64:
            raise InputError(f"The 'dtype' parameter of DebyeCompiled must be torch.float64; got {dtype}")
        if device is not None and torch.device(device).type != "cpu":
            raise InputError(f"DebyeCompiled runs on the CPU only; got device {device!r} (use DebyeTorch there)")
        super().__init__(symbols, q, inelastic=inelastic, dtype=dtype, device=device)
        self._plan = _plan(self.symbols, self.q.numpy(), self.inelastic)
        self._q = np.ascontiguousarray(self.q.numpy())
        self._pair_weight = np.ascontiguousarray(self.pair_weight.numpy())

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        """Intensities (..., n_q), electron units, from distances (..., n_pairs) in Angstrom (float64, CPU)."""
        self._check_tensor(distances)
        return _Debye.apply(distances, self)

    def value_and_jacobian(self, distances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Intensities (..., n_q) and dI/dR (..., n_q, n_pairs), 1/Angstrom, by the kernels; no graph is kept."""
        self._check_tensor(distances)
        return _value_and_jacobian(self, distances)

    def pairs(self, index: ArrayLike) -> _PairSum:
        """The sum over some pairs only, Σ_p w_p(q) sinc(q R_p) for p in ``index`` (no constant term), as a module.

        Distances (..., len(index)) in, (..., n_q) out, differentiable like this
        module: for a fit in which the other pairs are held, whose part of Eq. (1)
        is then computed once.
        """
        return _PairSum(self, np.asarray(index, dtype=np.int64))

    def intensity_numpy(self, R: np.ndarray) -> np.ndarray:
        """Eq. (1) of distance rows (G, n_pairs), a C-contiguous float64 array: (G, n_q) by the forward kernel."""
        from . import _kernels

        plan = self._plan
        out = np.empty((R.shape[0], self._q.size))
        if R.shape[0]:
            args = (R, plan.order, plan.type_start, plan.weight, plan.const, plan.zero_q)
            with parallel_lock:
                if plan.uniform:
                    _kernels.debye_uniform(*args, plan.q0, plan.dq, out)
                else:
                    _kernels.debye_direct(*args, self._q, out)
        return out

    def vjp_numpy(self, R: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Σ_q grad(q) ∂I(q)/∂R of distance rows (G, n_pairs) and gradient rows (G, n_q): (G, n_pairs)."""
        return _vjp(self, R, grad)

    def _rows(self, distances: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(distances.detach().reshape(-1, self.n_pairs).numpy())

    def _check_tensor(self, distances: torch.Tensor) -> None:
        self._check_shape(distances)
        if distances.dtype != torch.float64 or distances.device.type != "cpu":
            raise InputError(
                f"DebyeCompiled takes float64 distances on the CPU; got {distances.dtype} on {distances.device.type}"
            )

    def extra_repr(self) -> str:
        return super().extra_repr() + ", compiled"


class _PairSum(torch.nn.Module):
    """Σ_p w_p(q) sinc(q R_p) over a subset of a :class:`DebyeCompiled`'s pairs (:meth:`DebyeCompiled.pairs`)."""

    closed_form_jacobian = True

    def __init__(self, model: DebyeCompiled, index: np.ndarray) -> None:
        super().__init__()
        if index.ndim != 1 or np.any(index < 0) or np.any(index >= model.n_pairs):
            raise InputError(f"The 'index' parameter must list pairs between 0 and {model.n_pairs - 1}")
        self.n_pairs = len(index)
        self._plan = model._plan
        self._q = model._q
        self._pair_weight = np.ascontiguousarray(model._pair_weight[index])
        self.q = model.q

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        """The pairs' sum (..., n_q) from their distances (..., n_pairs), float64 on the CPU."""
        self._check_tensor(distances)
        return _Debye.apply(distances, self)

    def value_and_jacobian(self, distances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pairs' sum (..., n_q) and its derivatives by their distances (..., n_q, n_pairs); no graph is kept."""
        self._check_tensor(distances)
        return _value_and_jacobian(self, distances)

    def intensity_numpy(self, R: np.ndarray) -> np.ndarray:
        from . import _kernels_grad

        plan = self._plan
        out = np.zeros((R.shape[0], self._q.size))
        if R.shape[0] and self.n_pairs:
            with parallel_lock:
                _kernels_grad.pairs_value(R, self._q, self._pair_weight, plan.uniform, plan.q0, plan.dq, out)
        return out

    def vjp_numpy(self, R: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return _vjp(self, R, grad)

    def _rows(self, distances: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(distances.detach().reshape(-1, self.n_pairs).numpy())

    def _check_tensor(self, distances: torch.Tensor) -> None:
        if distances.shape[-1:] != (self.n_pairs,):
            raise InputError(f"The 'distances' tensor must have shape (..., {self.n_pairs}); got shape {tuple(distances.shape)}")
        if distances.dtype != torch.float64 or distances.device.type != "cpu":
            raise InputError(
                f"DebyeCompiled takes float64 distances on the CPU; got {distances.dtype} on {distances.device.type}"
            )


def _vjp(model: DebyeCompiled | _PairSum, R: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Σ_q grad(q) ∂I(q)/∂R for distance rows (G, P) and gradient rows (G, Q), by the kernel."""
    from . import _kernels_grad

    plan = model._plan
    out = np.empty_like(R)
    if R.shape[0] and R.shape[1]:
        with parallel_lock:
            _kernels_grad.debye_vjp(R, grad, model._q, model._pair_weight, plan.uniform, plan.q0, plan.dq, out)
    return out


def _value_and_jacobian(model: DebyeCompiled | _PairSum, distances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from . import _kernels_grad

    lead = distances.shape[:-1]
    R = model._rows(distances)
    jacobian = np.empty((R.shape[0], model._q.size, model.n_pairs))
    if R.shape[0] and R.shape[1]:
        with parallel_lock:
            _kernels_grad.debye_jacobian(R, model._q, model._pair_weight, jacobian)
    intensity = torch.from_numpy(model.intensity_numpy(R)).reshape(*lead, model._q.size)
    return intensity, torch.from_numpy(jacobian).reshape(*lead, model._q.size, model.n_pairs)


class _Debye(torch.autograd.Function):
    """Eq. (1) forward and its vector-Jacobian product by the kernels (first order)."""

    @staticmethod
    def forward(ctx, distances: torch.Tensor, model: DebyeCompiled | _PairSum) -> torch.Tensor:
        ctx.save_for_backward(distances)
        ctx.model = model
        R = model._rows(distances)
        return torch.from_numpy(model.intensity_numpy(R)).reshape(*distances.shape[:-1], model._q.size)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (distances,) = ctx.saved_tensors
        model: DebyeCompiled | _PairSum = ctx.model
        R = model._rows(distances)
        g = np.ascontiguousarray(grad.reshape(-1, model._q.size).numpy(), dtype=np.float64)
        return torch.from_numpy(model.vjp_numpy(R, g)).reshape(distances.shape), None
