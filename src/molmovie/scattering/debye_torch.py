r"""Eq. (1) in PyTorch: a differentiable forward model from distances to intensities.

.. math::

    I(q) = \sum_A f_A(q)^2 + 2 \sum_{A < B} f_A(q) f_B(q)\,
           \mathrm{sinc}(q R_{AB}) \; \Big[ + \sum_A S_A(q) \Big],
    \qquad \mathrm{sinc}(x) = \frac{\sin x}{x},\ \mathrm{sinc}(0) = 1,

Eq. (1) of Asenov, Zotev, Ramamoorthy and Kirrander (IAM Debye formula;
Debye, *Ann. Phys.* 351, 809 (1915)); for electrons (``probe="electron"``)
the weights are 2|f_A||f_B| cos(η_A − η_B) and the constant Σ_A |f_A|², with
the complex amplitudes of :mod:`molmovie.scattering.electrons`. The same form factors and
incoherent functions (xraylib) as the NumPy version,
:func:`molmovie.scattering.intensity_from_distances`, which it matches to
1e-10 relative in float64. Importing this module imports torch;
``import molmovie.scattering`` does not, and loads it on first use of
:class:`DebyeTorch` or :func:`intensity_torch`.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike

from .._errors import InputError
from .._typing import Symbols
from .debye import _plan, default_inelastic
from .electrons import check_probe
from .tables import check_q

__all__ = ["DebyeTorch", "intensity_torch", "sinc"]


class _Sinc(torch.autograd.Function):
    """sin(x)/x with exact value 1 at 0 and an accurate, finite derivative everywhere.

    Forward: sin(x)/x is accurate to rounding for every x != 0 (sin(x) = x
    exactly for tiny x), and 0 is filled with 1. Backward: the derivative
    (cos x - sinc x)/x cancels as x -> 0, so below ``_SERIES_BELOW`` (per
    dtype) it is the series -x/3 + x³/30 - x⁵/840 + x⁷/45360 instead.
    """

    @staticmethod
    def forward(ctx, x):
        s = _sinc_value(x)
        ctx.save_for_backward(x, s)
        return s

    @staticmethod
    def backward(ctx, grad):
        x, s = ctx.saved_tensors
        return grad * _sinc_derivative(x, s)


def _sinc_value(x: torch.Tensor) -> torch.Tensor:
    """sin(x)/x, 1 at 0 (``_Sinc``)."""
    return (torch.sin(x) / x).masked_fill(x == 0, 1.0)


def _sinc_derivative(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """d sinc(x)/dx, given s = sinc(x): (cos x - s)/x, or its series where that cancels (``_Sinc``)."""
    small = x.abs() < _SERIES_BELOW.get(x.dtype, 0.3)
    safe = x.masked_fill(small, 1.0)
    deriv = (torch.cos(safe) - s) / safe
    if small.any():
        xs = x[small]
        x2 = xs * xs
        deriv[small] = xs * (-1.0 / 3.0 + x2 * (1.0 / 30.0 + x2 * (-1.0 / 840.0 + x2 / 45360.0)))
    return deriv


# Switch-over from (cos x - sinc x)/x to the series: the formula's cancellation
# error, about eps/x², and the series' truncation, about x⁸/1.3e6 relative, are
# both below ~1e-13 (float64, 0.05) or ~1e-6 (float32 and narrower, 0.3) there.
_SERIES_BELOW = {torch.float64: 0.05}


def sinc(x: torch.Tensor) -> torch.Tensor:
    """sin(x)/x with sinc(0) = 1, finite values and gradients everywhere (NaN stays NaN)."""
    return _Sinc.apply(x)


class DebyeTorch(torch.nn.Module):
    r"""Eq. (1) as a module: distances (..., n_pairs) -> intensities (..., n_q).

    .. math::

        I(q) = c(q) + \sum_{p} w_p(q)\, \mathrm{sinc}(q R_p),
        \quad w_p = 2 f_{i_p} f_{j_p},
        \quad c = \sum_A f_A^2 \Big[ + \sum_A S_A \Big]

    (Asenov et al., Eq. (1)). The buffers ``q`` (n_q,), ``pair_weight``
    (n_pairs, n_q) and ``const`` (n_q,) move with ``.to(device)``. Gradients
    with respect to the distances are finite for every distance, including
    R -> 0 and q = 0.

    Parameters
    ----------
    symbols : sequence of str, length n_atoms
    q : array_like or torch.Tensor, shape (n_q,), 1/Angstrom, >= 0
    inelastic : bool, optional
        Add the inelastic term: Compton for X-rays (default on), Morse's for
        electrons (default off).
    probe : {"xray", "electron"}, default "xray"
    energy_kev : float, optional
        Electrons only: the beam's kinetic energy, keV (default 3700).
    dtype : torch.dtype, default torch.float64
    device : torch.device or str, optional

    Notes
    -----
    ``forward`` holds a (..., n_pairs, n_q) temporary (and autograd keeps it):
    a batch of B geometries costs about B · n_pairs · n_q · 8 bytes in float64.

    Examples
    --------
    >>> import torch
    >>> from molmovie.scattering import DebyeTorch
    >>> model = DebyeTorch(["C", "S", "S"], [0.5, 1.0, 2.0])
    >>> r = torch.tensor([1.55, 1.55, 3.10], dtype=torch.float64, requires_grad=True)
    >>> I = model(r)
    >>> I.shape
    torch.Size([3])
    """

    # buffers (register_buffer), so that .to() moves them
    q: torch.Tensor
    pair_weight: torch.Tensor
    const: torch.Tensor

    def __init__(
        self,
        symbols: Symbols,
        q: ArrayLike | torch.Tensor,
        *,
        inelastic: bool | None = None,
        probe: str = "xray",
        energy_kev: float | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(symbols, str):
            raise InputError("The 'symbols' parameter must be a sequence of element symbols, e.g. ['C', 'S', 'S']")
        if not dtype.is_floating_point:
            raise InputError(f"The 'dtype' parameter must be a floating-point torch dtype; got {dtype}")
        q_np = check_q(q.detach().cpu().numpy() if isinstance(q, torch.Tensor) else q)
        probe, energy_kev = check_probe(probe, energy_kev)
        inelastic = default_inelastic(probe) if inelastic is None else bool(inelastic)
        plan = _plan(symbols, q_np, inelastic, probe, energy_kev)
        self.symbols = tuple(symbols)
        self.inelastic = inelastic
        self.probe = probe
        self.energy_kev = energy_kev
        self.n_pairs = plan.pair_weight.shape[0]
        self.register_buffer("q", torch.as_tensor(np.array(q_np), dtype=dtype, device=device))
        self.register_buffer("pair_weight", torch.as_tensor(np.array(plan.pair_weight), dtype=dtype, device=device))
        self.register_buffer("const", torch.as_tensor(np.array(plan.const), dtype=dtype, device=device))

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        """Intensities (..., n_q), electron units, from distances (..., n_pairs) in Angstrom."""
        self._check_shape(distances)
        x = distances.to(self.q.dtype).unsqueeze(-1) * self.q
        return self.const + (sinc(x) * self.pair_weight).sum(dim=-2)

    def value_and_jacobian(self, distances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Intensities (..., n_q) and their derivatives by the distances, dI/dR (..., n_q, n_pairs), 1/Angstrom.

        The Jacobian in closed form, :math:`\partial I(q)/\partial R_p = w_p(q)\, q\, \mathrm{sinc}'(q R_p)`,
        for many small fits at once, where Q backward passes of autograd would
        cost more than the forward model; no graph is kept.
        """
        self._check_shape(distances)
        with torch.no_grad():
            x = distances.to(self.q.dtype).unsqueeze(-1) * self.q
            s = _sinc_value(x)
            intensity = self.const + (s * self.pair_weight).sum(dim=-2)
            jacobian = (_sinc_derivative(x, s) * (self.pair_weight * self.q)).transpose(-1, -2)
        return intensity, jacobian

    def _check_shape(self, distances: torch.Tensor) -> None:
        if distances.shape[-1:] != (self.n_pairs,):
            raise InputError(f"The 'distances' tensor must have shape (..., {self.n_pairs}); got shape {tuple(distances.shape)}")

    def extra_repr(self) -> str:
        energy = "" if self.energy_kev is None else f", energy_kev={self.energy_kev:g}"
        return f"symbols={''.join(self.symbols)}, n_q={self.q.numel()}, inelastic={self.inelastic}, probe={self.probe}{energy}"


def intensity_torch(
    symbols: Symbols,
    distances: torch.Tensor,
    q: ArrayLike | torch.Tensor,
    inelastic: bool | None = None,
    *,
    probe: str = "xray",
    energy_kev: float | None = None,
) -> torch.Tensor:
    """Eq. (1) for a distances tensor, in its dtype (float64 if not floating) and on its device.

    Convenience wrapper of :class:`DebyeTorch`; build the module once instead
    when calling it repeatedly (e.g. in a training loop).

    Parameters
    ----------
    symbols : sequence of str, length n_atoms
    distances : torch.Tensor, shape (..., n_pairs), Angstrom
    q : array_like or torch.Tensor, shape (n_q,), 1/Angstrom
    inelastic : bool, optional
        Default on for X-rays, off for electrons.
    probe : {"xray", "electron"}, default "xray"
    energy_kev : float, optional
        Electrons only, keV (default 3700).

    Returns
    -------
    torch.Tensor, shape (..., n_q)
    """
    distances = torch.as_tensor(distances)
    dtype = distances.dtype if distances.dtype.is_floating_point else torch.float64
    module = DebyeTorch(symbols, q, inelastic=inelastic, probe=probe, energy_kev=energy_kev, dtype=dtype, device=distances.device)
    return module(distances)
