r"""The measurement model: the ΔS(q, t) a pump-probe experiment records from an ensemble of trajectories.

A real experiment does not see one trajectory against its own first frame (the
paper's idealisation, :func:`molmovie.scattering.simulate_signals`). It
records, at each pump-probe delay t,

.. math::

    \Delta S(q, t) = \gamma \sum_i w_i \,
        \big[\Delta S_i \otimes G_\mathrm{IRF}\big](q, t - t_0),
    \qquad
    \Delta S_i(q, \tau) = \frac{I_i(q, \tau) - I_\mathrm{gs}(q)}{I_\mathrm{gs}(q)},

the excited ensemble's average (weights w_i over the trajectories, uniform by
default) against the laser-off ground state I_gs, scaled by the excitation
fraction γ (only γ of the molecules absorb a pump photon; the others cancel in
the difference), smeared by the instrument response G_IRF (a normalised
Gaussian of full width at half maximum ``irf_fs``, σ = FWHM / (2 √(2 ln 2)))
and shifted by the time zero t0 (Ware et al., *Phil. Trans. R. Soc. A* 377
(2019); Acheson and Kirrander, *J. Chem. Theory Comput.* (2023),
arXiv:2211.04766). I_i(q, τ) is Eq. (1) of Asenov et al. (IAM with the
inelastic term, :func:`molmovie.scattering.intensity_from_distances`) at the
trajectory's frame nearest to the time τ after excitation; I_gs is the mean
first-frame intensity of the trajectories used (their initial conditions
sample the ground-state ensemble, e.g. by Wigner sampling).

Conventions (stated once, used by every module of :mod:`molmovie.measurement`):

- The first frame of the basis time grid ``time`` is the moment of
  excitation, τ = ``time`` − ``time[0]``. Before it (τ < 0) a molecule is not
  yet excited, so ΔS_i = 0; the delays may be negative.
- Between frames a trajectory is held at its nearest frame: frame j stands for
  the cell from the midpoint with frame j − 1 to the midpoint with frame j + 1
  (the first cell starts at τ = 0). Past a trajectory's last valid frame (a
  run that stopped early, NaN in the basis) that frame is held, and past the
  end of ``time`` the last frame is held.
- The convolution with the Gaussian is exact for this piecewise-constant
  signal: the weight of cell [a, b) at the time x = t − t0 is
  Φ((b − x)/σ) − Φ((a − x)/σ) (Φ the normal distribution function, through
  ``scipy.special.erfc`` or ``torch.special.erfc``), so a step in ΔS gives an
  error function to rounding.
- Delays later than the end of the basis, t − t0 > τ_end, are refused unless
  asked for (``allow_beyond_end``).

Everything is linear in the weights and in γ: for a fixed t0 and IRF width,
:func:`irf_operator` returns the (T_d, T) matrix K with
ΔS = γ Σ_i w_i K ΔS_i, so a fit can precompute K ΔS_i once
(:func:`convolve_basis`) and solve for c_i = γ w_i by non-negative least
squares. :func:`ensemble_signal_torch` is the same model in PyTorch,
differentiable in γ, t0, the IRF width and the weights.

Noise (:func:`molmovie.measurement.simulate_measurement`): photon counting at ``photons`` expected
counts per q bin of the laser-off pattern, N ~ Poisson(photons (1 + ΔS)),
ΔS_noisy = N / photons − 1, σ = √((1 + ΔS) / photons); the laser-off
reference is taken noise-free, as it is averaged over far more shots than
any one delay.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from ._checks import _check_size, _check_weights, _number, _vector

if TYPE_CHECKING:
    import torch

__all__ = [
    "irf_operator",
    "irf_operator_torch",
    "hold_last_frame",
    "ensemble_signal",
    "ensemble_signal_torch",
    "convolve_basis",
]

# (1/2) erfc(z / sqrt 2) is the upper tail of the standard normal distribution.
_SQRT2 = math.sqrt(2.0)
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


# --------------------------------------------------------------------------- time after excitation


def _cell_edges(time: np.ndarray) -> np.ndarray:
    """Lower edge of each frame's cell, shape (T,), fs after excitation: 0, then the midpoints."""
    tau = time - time[0]
    return np.concatenate([[0.0], 0.5 * (tau[1:] + tau[:-1])])


def _times_after_excitation(
    time: ArrayLike, delays: ArrayLike, t0: float, allow_beyond_end: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(cell edges (T,), x = delays - t0 (T_d,)), with the coverage check."""
    t = _vector("time", time, increasing=True)
    d = _vector("delays", delays, increasing=False)
    _check_size(d.size * t.size, "the IRF operator (delays × frames)")
    x = d - t0
    end = float(t[-1] - t[0])
    if not allow_beyond_end and x.max() > end + 1e-9 * max(1.0, abs(end)):
        raise InputError(
            f"the latest delay minus t0 is {x.max():g} fs after excitation, past the end of the basis "
            f"({end:g} fs); use delays up to {end + t0:g} fs, a later t0, or longer trajectories"
        )
    return _cell_edges(t), x


# --------------------------------------------------------------------------- the IRF operator


def irf_operator(time: ArrayLike, delays: ArrayLike, *, t0: float, irf_fs: float, allow_beyond_end: bool = False) -> np.ndarray:
    r"""The linear map from a signal on the basis time grid to its IRF-convolved samples at the delays.

    For f given at the frames of ``time`` (held at its nearest frame, 0 before
    the first frame, the last frame held after the end; see the module
    docstring),

    .. math::

        [f \otimes G](t_d - t_0) = \sum_j K_{dj} f_j, \qquad
        K_{dj} = \Phi\!\Big(\frac{b_j - x_d}{\sigma}\Big) - \Phi\!\Big(\frac{a_j - x_d}{\sigma}\Big),
        \quad x_d = t_d - t_0,

    with [a_j, b_j) frame j's cell (a_0 = 0, b_{T-1} = ∞), G a normalised
    Gaussian of FWHM ``irf_fs`` (σ = FWHM / (2 √(2 ln 2))) and Φ the standard
    normal distribution function, evaluated as ½ erfc(∓z/√2) on whichever side
    keeps the difference free of cancellation. Row d sums to
    Φ(x_d / σ): the fraction of the IRF after excitation. With ``irf_fs = 0``
    K samples the nearest frame (0 before excitation).

    Parameters
    ----------
    time : array_like, shape (T,), fs
        Frame times of the basis, strictly increasing; the first is the moment
        of excitation.
    delays : array_like, shape (T_d,), fs
        Pump-probe delays (any order, negative allowed).
    t0 : float
        Time zero, fs: the delay at which excitation happens.
    irf_fs : float
        FWHM of the Gaussian instrument response, fs, >= 0.
    allow_beyond_end : bool, default False
        Accept delays with t − t0 past the end of ``time`` (the last frame is
        then held); otherwise that is an :class:`InputError`.

    Returns
    -------
    ndarray, shape (T_d, T)

    Raises
    ------
    InputError
        Non-finite or non-increasing ``time``, non-finite delays or t0, a
        negative IRF width, delays past the basis, or an operator over
        :data:`MAX_ELEMENTS`.
    """
    from scipy.special import erfc

    t0 = _number("t0", t0)
    irf = _number("irf_fs", irf_fs, low=0.0)
    edges, x = _times_after_excitation(time, delays, t0, allow_beyond_end)
    if irf == 0.0:
        K = np.zeros((x.size, edges.size))
        cell = np.searchsorted(edges, x, side="right") - 1
        inside = cell >= 0
        K[np.flatnonzero(inside), cell[inside]] = 1.0
        return K
    z = (edges[None, :] - x[:, None]) * (_FWHM_PER_SIGMA / (irf * _SQRT2))
    with np.errstate(under="ignore"):  # far tails of the Gaussian underflow to 0
        upper = 0.5 * erfc(z)  # mass of the Gaussian above each edge
        lower = 0.5 * erfc(-z)  # and below it
        K = np.empty_like(z)
        K[:, :-1] = np.where(z[:, :-1] >= 0.0, upper[:, :-1] - upper[:, 1:], lower[:, 1:] - lower[:, :-1])
        K[:, -1] = upper[:, -1]
    return K


def irf_operator_torch(
    time: ArrayLike,
    delays: ArrayLike,
    *,
    t0: float | torch.Tensor,
    irf_fs: float | torch.Tensor,
    allow_beyond_end: bool = False,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """:func:`irf_operator` in PyTorch, differentiable in ``t0`` and ``irf_fs``.

    Parameters
    ----------
    time : array_like, shape (T,), fs
    delays : array_like, shape (T_d,), fs
    t0, irf_fs : float or 0-d torch.Tensor, fs
        Tensors keep their autograd graph; ``irf_fs`` must be > 0 for a
        gradient (0 samples the nearest frame, as in NumPy).
    allow_beyond_end : bool, default False
    dtype : torch.dtype, optional
        Default: that of a tensor ``t0`` or ``irf_fs``, else float64.
    device : torch.device or str, optional

    Returns
    -------
    torch.Tensor, shape (T_d, T)
    """
    import torch

    params = [v for v in (t0, irf_fs) if isinstance(v, torch.Tensor)]
    if dtype is None:
        dtype = next((p.dtype for p in params if p.dtype.is_floating_point), torch.float64)
    if device is None and params:
        device = params[0].device
    t0_value = _number("t0", t0.detach().cpu().item() if isinstance(t0, torch.Tensor) else t0)
    irf_value = _number("irf_fs", irf_fs.detach().cpu().item() if isinstance(irf_fs, torch.Tensor) else irf_fs, low=0.0)
    edges_np, _ = _times_after_excitation(time, delays, t0_value, allow_beyond_end)
    if irf_value == 0.0:
        K = irf_operator(time, delays, t0=t0_value, irf_fs=0.0, allow_beyond_end=allow_beyond_end)
        return torch.as_tensor(K, dtype=dtype, device=device)
    edges = torch.as_tensor(edges_np, dtype=dtype, device=device)
    x = torch.as_tensor(np.asarray(delays, dtype=float), dtype=dtype, device=device) - torch.as_tensor(
        t0, dtype=dtype, device=device
    )
    irf = torch.as_tensor(irf_fs, dtype=dtype, device=device)
    z = (edges[None, :] - x[:, None]) * (_FWHM_PER_SIGMA / _SQRT2) / irf
    upper = 0.5 * torch.special.erfc(z)
    lower = 0.5 * torch.special.erfc(-z)
    inner = torch.where(z[:, :-1] >= 0.0, upper[:, :-1] - upper[:, 1:], lower[:, 1:] - lower[:, :-1])
    return torch.cat([inner, upper[:, -1:]], dim=1)


# --------------------------------------------------------------------------- the ensemble signal


def hold_last_frame(dS_basis: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Each trajectory's ΔS with its last valid frame held past its length.

    Parameters
    ----------
    dS_basis : array_like, shape (M, T, Q)
        Finite up to each trajectory's length, all-NaN frames after it.

    Returns
    -------
    filled : ndarray, shape (M, T, Q)
        The input itself when no frame is NaN, else a filled copy.
    length : ndarray of int, shape (M,)
        Valid frames per trajectory.

    Raises
    ------
    InputError
        For a wrong rank, a trajectory without a valid first frame, a
        partly NaN frame, or a valid frame after a NaN one.
    """
    a = np.asarray(dS_basis, dtype=float)
    if a.ndim != 3 or 0 in a.shape:
        raise InputError(f"The 'dS_basis' parameter must have shape (trajectories, frames, q), none empty; got {a.shape}")
    m, t, _ = a.shape
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, or a sum that overflows: looked at below
        suspect = ~np.isfinite(a.sum(axis=2))  # a frame's sum is finite when all its values are (or rarely overflows)
    if not suspect.any():
        return a, np.full(m, t, dtype=np.int64)
    valid, partly = ~suspect, ~suspect
    rows = np.isfinite(a[suspect])
    valid[suspect], partly[suspect] = rows.all(axis=1), rows.any(axis=1)
    length = _valid_lengths(valid, partly)
    index = np.minimum(np.arange(t)[None, :], length[:, None] - 1)
    return np.take_along_axis(a, index[:, :, None], axis=1), length


def _valid_lengths(valid: np.ndarray, partly: np.ndarray) -> np.ndarray:
    """Valid frames per trajectory from (M, T) masks of all-finite and any-finite frames, checked."""
    t = valid.shape[1]
    if np.any(partly & ~valid):
        i, k = np.argwhere(partly & ~valid)[0]
        raise InputError(
            f"ΔS of trajectory {i} is partly non-finite at frame {k}; only whole frames past a trajectory's end may be NaN"
        )
    length = valid.sum(axis=1)
    prefix = np.arange(t)[None, :] < length[:, None]
    if np.any(valid != prefix) or np.any(length == 0):
        i = int(np.flatnonzero(np.any(valid != prefix, axis=1) | (length == 0))[0])
        raise InputError(f"ΔS of trajectory {i} must be finite from its first frame to its length and NaN only after it")
    return length.astype(np.int64)


def ensemble_signal(
    dS_basis: ArrayLike,
    time: ArrayLike,
    delays: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    gamma: float,
    t0: float,
    irf_fs: float,
    allow_beyond_end: bool = False,
) -> np.ndarray:
    r"""The ΔS an experiment records from basis signals: γ Σ_i w_i (ΔS_i ⊗ G)(q, t − t0).

    .. math::

        \Delta S(q, t_d) = \gamma \sum_j K_{dj} \sum_i w_i \, \Delta S_i(q, \tau_j)

    with K = :func:`irf_operator` (Ware et al. 2019; Acheson and Kirrander
    2023). Linear in ``weights`` and ``gamma``; the weights are used as
    given (not normalised), so a fit may pass c_i = γ w_i with ``gamma=1``.

    Parameters
    ----------
    dS_basis : array_like, shape (M, T, Q), fraction
        Each trajectory's ΔS_i = (I_i − I_gs)/I_gs against the laser-off
        reference (:func:`basis_signals`); NaN past a trajectory's length, where
        its last valid frame is held.
    time : array_like, shape (T,), fs
        Frame times; the first is the moment of excitation.
    delays : array_like, shape (T_d,), fs
    weights : array_like, shape (M,), optional
        Default uniform, 1/M each.
    gamma : float
        Excitation fraction (any finite number here; (0, 1] in an experiment).
    t0 : float
        Time zero, fs.
    irf_fs : float
        FWHM of the Gaussian instrument response, fs, >= 0.
    allow_beyond_end : bool, default False
        See :func:`irf_operator`.

    Returns
    -------
    ndarray, shape (T_d, Q), fraction
    """
    basis, _ = hold_last_frame(dS_basis)
    m, t, q = basis.shape
    if np.shape(time) != (t,):
        raise InputError(f"The 'time' parameter must have one value per frame of dS_basis ({t}); got shape {np.shape(time)}")
    w = _check_weights(weights, m, normalise=False)
    gamma = _number("gamma", gamma)
    K = irf_operator(time, delays, t0=t0, irf_fs=irf_fs, allow_beyond_end=allow_beyond_end)
    _check_size(K.shape[0] * q, "the signal (delays × q)")
    with np.errstate(under="ignore"):  # products with the IRF's far tails
        return gamma * (K @ np.tensordot(w, basis, axes=(0, 0)))


def convolve_basis(
    dS_basis: ArrayLike, time: ArrayLike, delays: ArrayLike, *, t0: float, irf_fs: float, allow_beyond_end: bool = False
) -> np.ndarray:
    """Every basis trajectory's IRF-convolved ΔS at the delays, K ΔS_i: the columns of an NNLS fit.

    ``ensemble_signal(dS_basis, ..., weights=w, gamma=g)`` equals
    ``g * numpy.tensordot(w, convolve_basis(dS_basis, ...), axes=1)``.

    Parameters
    ----------
    dS_basis : array_like, shape (M, T, Q), fraction; NaN past each length (held)
    time : array_like, shape (T,), fs
    delays : array_like, shape (T_d,), fs
    t0, irf_fs : float, fs
    allow_beyond_end : bool, default False

    Returns
    -------
    ndarray, shape (M, T_d, Q), fraction
    """
    basis, _ = hold_last_frame(dS_basis)
    m, t, q = basis.shape
    if np.shape(time) != (t,):
        raise InputError(f"The 'time' parameter must have one value per frame of dS_basis ({t}); got shape {np.shape(time)}")
    K = irf_operator(time, delays, t0=t0, irf_fs=irf_fs, allow_beyond_end=allow_beyond_end)
    _check_size(m * K.shape[0] * q, "the convolved basis (trajectories × delays × q)")
    d = K.shape[0]
    with np.errstate(under="ignore"):  # products with the IRF's far tails
        # one matrix product (T_d, T) @ (T, M Q): several times faster than a batched einsum
        out = K @ np.ascontiguousarray(basis.transpose(1, 0, 2)).reshape(t, m * q)
    return np.ascontiguousarray(out.reshape(d, m, q).transpose(1, 0, 2))


def ensemble_signal_torch(
    dS_basis: torch.Tensor | ArrayLike,
    time: ArrayLike,
    delays: ArrayLike,
    *,
    weights: torch.Tensor | ArrayLike | None = None,
    gamma: float | torch.Tensor,
    t0: float | torch.Tensor,
    irf_fs: float | torch.Tensor,
    allow_beyond_end: bool = False,
) -> torch.Tensor:
    """:func:`ensemble_signal` in PyTorch, differentiable in ``gamma``, ``t0``, ``irf_fs`` and ``weights``.

    Agrees with the NumPy version to 1e-10 relative in float64 (tested), and
    runs on the device of ``dS_basis``.

    Parameters
    ----------
    dS_basis : torch.Tensor or array_like, shape (M, T, Q), fraction
        NaN past each length (the last valid frame is held). Its dtype
        (float64 for an array) is the dtype of the result.
    time : array_like, shape (T,), fs
    delays : array_like, shape (T_d,), fs
    weights : torch.Tensor or array_like, shape (M,), optional
        Default uniform, 1/M each; used as given.
    gamma, t0, irf_fs : float or 0-d torch.Tensor
        Excitation fraction; time zero (fs); IRF FWHM (fs, > 0 for a gradient).
    allow_beyond_end : bool, default False

    Returns
    -------
    torch.Tensor, shape (T_d, Q)
    """
    import torch

    if isinstance(dS_basis, torch.Tensor):
        dtype = dS_basis.dtype if dS_basis.dtype.is_floating_point else torch.float64
        device = dS_basis.device
        if dS_basis.ndim != 3 or 0 in dS_basis.shape:
            raise InputError(
                f"The 'dS_basis' parameter must have shape (trajectories, frames, q), none empty; got {tuple(dS_basis.shape)}"
            )
        m, t, _ = dS_basis.shape
        basis = dS_basis.to(dtype)
        suspect = ~torch.isfinite(basis.detach().sum(dim=2))  # as in hold_last_frame
        if bool(suspect.any()):
            rows = torch.isfinite(basis.detach()[suspect]).cpu().numpy()
            flagged = suspect.cpu().numpy()
            valid, partly = ~flagged, ~flagged
            valid[flagged], partly[flagged] = rows.all(axis=1), rows.any(axis=1)
            length = _valid_lengths(valid, partly)
            index = torch.as_tensor(np.minimum(np.arange(t)[None, :], length[:, None] - 1), device=device)
            basis = torch.gather(basis, 1, index[:, :, None].expand(-1, -1, basis.shape[2]))
    else:
        filled, _ = hold_last_frame(dS_basis)
        dtype, device = torch.float64, None
        basis = torch.as_tensor(filled, dtype=dtype)
        m, t, _ = basis.shape
    if np.shape(time) != (t,):
        raise InputError(f"The 'time' parameter must have one value per frame of dS_basis ({t}); got shape {np.shape(time)}")
    if weights is None:
        w = torch.full((m,), 1.0 / m, dtype=dtype, device=device)
    else:
        w = torch.as_tensor(weights, dtype=dtype, device=device)
        if w.shape != (m,):
            raise InputError(f"The 'weights' parameter must hold one number per trajectory ({m}); got shape {tuple(w.shape)}")
    if not isinstance(gamma, torch.Tensor):
        gamma = _number("gamma", gamma)
    K = irf_operator_torch(time, delays, t0=t0, irf_fs=irf_fs, allow_beyond_end=allow_beyond_end, dtype=dtype, device=device)
    _check_size(K.shape[0] * basis.shape[2], "the signal (delays × q)")
    return gamma * (K @ torch.tensordot(w, basis, dims=([0], [0])))
