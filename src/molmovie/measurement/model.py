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

Conventions (stated once, used by every function here):

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

Noise (:func:`simulate_measurement`): photon counting at ``photons`` expected
counts per q bin of the laser-off pattern, N ~ Poisson(photons (1 + ΔS)),
ΔS_noisy = N / photons − 1, σ = √((1 + ΔS) / photons); the laser-off
reference is taken noise-free, as it is averaged over far more shots than
any one delay.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .._errors import InputError
from ..geometry import distances as pair_distances
from ..geometry import pair_labels as _pair_labels
from ..molecules import BOND_SCALE, covalent_radii
from ..trajectories import BREAK_SCALE
from ..scattering.debye import intensity_from_distances
from ..scattering.detector import simulate_signals
from ..scattering.tables import check_q
from .types import Measurement, Truth

__all__ = [
    "DEFAULT_LEVELS",
    "MAX_ELEMENTS",
    "irf_operator",
    "irf_operator_torch",
    "hold_last_frame",
    "ensemble_signal",
    "ensemble_signal_torch",
    "convolve_basis",
    "laser_off_reference",
    "basis_signals",
    "ground_start_flags",
    "DistanceDistribution",
    "distance_distribution",
    "parting_frames",
    "weighted_quantiles",
    "simulate_measurement",
]

#: Quantile levels of the stored distance distributions.
DEFAULT_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)

#: Largest number of elements of any one array the model allocates (2**27
#: float64 values, 1 GiB): delays × frames (the IRF operator), delays × q,
#: trajectories × frames × q (a basis), trajectories × delays × pairs.
MAX_ELEMENTS = 2**27

# (1/2) erfc(z / sqrt 2) is the upper tail of the standard normal distribution.
_SQRT2 = math.sqrt(2.0)
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


# --------------------------------------------------------------------------- validation


def _check_size(count: int, what: str) -> None:
    if count > MAX_ELEMENTS:
        raise InputError(
            f"{what} would need {count:,} values, more than the limit of {MAX_ELEMENTS:,} (1 GiB of float64); "
            "use fewer delays, q points or trajectories"
        )


def _number(name: str, value, *, low: float | None = None, low_open: bool = False, high: float | None = None) -> float:
    """A finite float within the bounds, or an InputError naming the parameter."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"The '{name}' parameter must be a number; got {value!r}") from None
    if not math.isfinite(x):
        raise InputError(f"The '{name}' parameter must be finite; got {value!r}")
    if low is not None and (x < low or (low_open and x == low)):
        raise InputError(f"The '{name}' parameter must be {'>' if low_open else '>='} {low:g}; got {x:g}")
    if high is not None and x > high:
        raise InputError(f"The '{name}' parameter must be <= {high:g}; got {x:g}")
    return x


def _vector(name: str, value, *, increasing: bool) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"The '{name}' parameter must be numbers") from None
    if a.ndim != 1 or a.size == 0:
        raise InputError(f"The '{name}' parameter must be a non-empty 1-D array; got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"The '{name}' parameter must be finite")
    if increasing and a.size > 1 and np.any(np.diff(a) <= 0):
        i = int(np.flatnonzero(np.diff(a) <= 0)[0])
        raise InputError(f"The '{name}' parameter must be strictly increasing; got {a[i]:g} then {a[i + 1]:g} at index {i + 1}")
    return a


def _cell_edges(time: np.ndarray) -> np.ndarray:
    """Lower edge of each frame's cell, shape (T,), fs after excitation: 0, then the midpoints."""
    tau = time - time[0]
    return np.concatenate([[0.0], 0.5 * (tau[1:] + tau[:-1])])


def _times_after_excitation(time, delays, t0: float, allow_beyond_end: bool) -> tuple[np.ndarray, np.ndarray]:
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


def _check_weights(weights, m: int, *, normalise: bool) -> np.ndarray:
    if weights is None:
        return np.full(m, 1.0 / m)
    try:
        w = np.asarray(weights, dtype=float)
    except (TypeError, ValueError):
        raise InputError("The 'weights' parameter must be numbers, one per trajectory") from None
    if w.shape != (m,):
        raise InputError(f"The 'weights' parameter must hold one number per trajectory ({m}); got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise InputError("The 'weights' parameter must be finite")
    if normalise:
        if np.any(w < 0) or not w.sum() > 0:
            raise InputError(f"The 'weights' parameter must be >= 0 with a positive sum; got min {w.min():g}, sum {w.sum():g}")
        w = w / w.sum()
    return w


# --------------------------------------------------------------------------- the IRF operator


def irf_operator(time, delays, *, t0: float, irf_fs: float, allow_beyond_end: bool = False) -> np.ndarray:
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


def irf_operator_torch(time, delays, *, t0, irf_fs, allow_beyond_end: bool = False, dtype=None, device=None):
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
    x = torch.as_tensor(np.asarray(delays, dtype=float), dtype=dtype, device=device) - torch.as_tensor(t0, dtype=dtype, device=device)
    irf = torch.as_tensor(irf_fs, dtype=dtype, device=device)
    z = (edges[None, :] - x[:, None]) * (_FWHM_PER_SIGMA / _SQRT2) / irf
    upper = 0.5 * torch.special.erfc(z)
    lower = 0.5 * torch.special.erfc(-z)
    inner = torch.where(z[:, :-1] >= 0.0, upper[:, :-1] - upper[:, 1:], lower[:, 1:] - lower[:, :-1])
    return torch.cat([inner, upper[:, -1:]], dim=1)


# --------------------------------------------------------------------------- the ensemble signal


def hold_last_frame(dS_basis) -> tuple[np.ndarray, np.ndarray]:
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
        raise InputError(f"ΔS of trajectory {i} is partly non-finite at frame {k}; only whole frames past a trajectory's end may be NaN")
    length = valid.sum(axis=1)
    prefix = np.arange(t)[None, :] < length[:, None]
    if np.any(valid != prefix) or np.any(length == 0):
        i = int(np.flatnonzero(np.any(valid != prefix, axis=1) | (length == 0))[0])
        raise InputError(f"ΔS of trajectory {i} must be finite from its first frame to its length and NaN only after it")
    return length.astype(np.int64)


def ensemble_signal(dS_basis, time, delays, *, weights=None, gamma: float, t0: float, irf_fs: float,
                    allow_beyond_end: bool = False) -> np.ndarray:
    r"""The ΔS an experiment records from basis signals: γ Σ_i w_i [ΔS_i ⊗ G](q, t − t0).

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


def convolve_basis(dS_basis, time, delays, *, t0: float, irf_fs: float, allow_beyond_end: bool = False) -> np.ndarray:
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


def ensemble_signal_torch(dS_basis, time, delays, *, weights=None, gamma, t0, irf_fs, allow_beyond_end: bool = False):
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
            raise InputError(f"The 'dS_basis' parameter must have shape (trajectories, frames, q), none empty; got {tuple(dS_basis.shape)}")
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


# --------------------------------------------------------------------------- basis signals


def _ensemble_of(dataset):
    """The Ensemble of a Dataset (or the Ensemble itself), refusing one without trajectories."""
    ens = getattr(dataset, "ensemble", dataset)
    if not all(hasattr(ens, a) for a in ("symbols", "positions", "length", "time", "dissociated")):
        raise InputError(f"expected a molmovie Dataset or Ensemble; got {type(dataset).__name__}")
    if ens.n_trajectories == 0:
        raise InputError("the dataset has no trajectories")
    return ens


def laser_off_reference(dataset, q, *, inelastic: bool = True) -> np.ndarray:
    r"""The laser-off pattern of the ground-state ensemble: the mean first-frame intensity.

    .. math::

        I_\mathrm{gs}(q) = \frac{1}{M} \sum_{i=1}^{M} I_i(q, \tau = 0)

    with I from Eq. (1) of Asenov et al.; the initial conditions of the
    trajectories sample the ground state (e.g. Wigner sampling), so their
    unweighted mean is what the unpumped molecules scatter.

    Parameters
    ----------
    dataset : molmovie.datasets.Dataset or molmovie.trajectories.Ensemble
    q : array_like, shape (Q,), 1/Angstrom
    inelastic : bool, default True
        Include the Compton term.

    Returns
    -------
    ndarray, shape (Q,), electron units
    """
    ens = _ensemble_of(dataset)
    qa = check_q(q)
    first = intensity_from_distances(ens.symbols, pair_distances(ens.positions[:, 0]), qa, inelastic=inelastic)
    return first.mean(axis=0)


def ground_start_flags(dataset) -> np.ndarray | None:
    """Which trajectories start from a ground-state sample, from the generator's records.

    The generator records, per trajectory, ``provenance["trajectories"][i]["initial"]["ground_start"]``:
    true when the first frame is a sample of the ground-state distribution (a Wigner sample,
    or a dissociation started from one), false for a displaced start (a coherent vibration
    set off by hand is not the laser-off ensemble).

    Parameters
    ----------
    dataset : molmovie.datasets.Dataset or molmovie.trajectories.Ensemble

    Returns
    -------
    ndarray of bool, shape (M,), or None
        None when the dataset does not record it for every trajectory (imported trajectories,
        a subset); callers then take every first frame as a ground-state sample.
    """
    ens = _ensemble_of(dataset)
    records = (ens.provenance or {}).get("trajectories") if isinstance(getattr(ens, "provenance", None), dict) else None
    if not isinstance(records, list) or len(records) != ens.n_trajectories:
        return None
    flags = []
    for rec in records:
        init = rec.get("initial") if isinstance(rec, dict) else None
        if not isinstance(init, dict) or not isinstance(init.get("ground_start"), bool):
            return None
        flags.append(init["ground_start"])
    return np.array(flags, dtype=bool)


def basis_signals(dataset, q, *, inelastic: bool = True, reference=None, progress=None) -> tuple[np.ndarray, np.ndarray]:
    r"""Every trajectory's ΔS_i against the laser-off reference, the basis of the measurement model.

    .. math::

        \Delta S_i(q, \tau) = \frac{I_i(q, \tau) - I_\mathrm{gs}(q)}{I_\mathrm{gs}(q)},
        \qquad I_\mathrm{gs}(q) = \frac{1}{|G|} \sum_{j \in G} I_j(q, \tau = 0),

    with I from Eq. (1) (:func:`molmovie.scattering.simulate_signals`) and G the
    trajectories whose first frame samples the ground state: ``reference``, or
    by default those :func:`ground_start_flags` marks (all of them when the
    dataset does not record it). A displaced start is left out of G: its bond
    is off by its amplitude, so it is not what the unpumped molecules scatter.

    Parameters
    ----------
    dataset : molmovie.datasets.Dataset or molmovie.trajectories.Ensemble
    q : array_like, shape (Q,), 1/Angstrom
    inelastic : bool, default True
    reference : array_like of int, optional
        Indices of the trajectories whose mean first frame is I_gs.
    progress : callable, optional
        ``progress(done, info)`` after each chunk of trajectories (``info["total"]``: M).

    Returns
    -------
    dS_basis : ndarray, shape (M, T, Q), fraction; NaN past each length
    I_gs : ndarray, shape (Q,), electron units

    Raises
    ------
    InputError
        When no trajectory is a ground-state sample, or ``reference`` holds an index out of range.
    """
    ens = _ensemble_of(dataset)
    qa = check_q(q)
    m, t = ens.n_trajectories, ens.n_frames
    _check_size(m * t * qa.size, "the basis signals (trajectories × frames × q)")
    if reference is None:
        flags = ground_start_flags(ens)
        ref = np.arange(m) if flags is None else np.flatnonzero(flags)
        if ref.size == 0:
            raise InputError("no trajectory of the basis starts from a ground-state sample (ground_start), so there is no "
                             "laser-off reference; add Wigner-sampled trajectories (generate --initial wigner:1,...)")
    else:
        ref = np.asarray(reference, dtype=np.int64).ravel()
        if ref.size == 0 or np.any((ref < 0) | (ref >= m)):
            raise InputError(f"the laser-off reference must be indices of the {m} trajectories; got {reference!r}")
    dS, I_ref = simulate_signals(ens.symbols, ens.positions, ens.length, ens.time, qa,
                                 inelastic=inelastic, reference="ground", progress=progress)
    I_all = I_ref[0]
    if ref.size == m:
        return dS, I_all.copy()
    I_gs = (dS[ref, 0] + 1.0).mean(axis=0) * I_all  # first frames, as intensities
    return (dS + 1.0) * (I_all / I_gs) - 1.0, I_gs


def _weighted_mean_signal(ens, q: np.ndarray, w: np.ndarray, inelastic: bool, progress=None) -> np.ndarray:
    """Σ_i w_i ΔS_i (held past each length) on the basis frames, shape (T, Q), without the (M, T, Q) basis."""
    I_gs = laser_off_reference(ens, q, inelastic=inelastic)
    t = ens.n_frames
    _check_size(t * q.size, "one trajectory's signal (frames × q)")
    out = np.zeros((t, q.size))
    use = np.flatnonzero(w != 0.0)
    per_chunk = max(1, (1 << 22) // (t * q.size))
    for a in range(0, use.size, per_chunk):
        idx = use[a:a + per_chunk]
        pos, length = ens.positions[idx], ens.length[idx]
        frame = np.minimum(np.arange(t)[None, :], length[:, None] - 1)  # the held frame of each time
        I = intensity_from_distances(ens.symbols, pair_distances(np.take_along_axis(pos, frame[:, :, None, None], axis=1)), q,
                                     inelastic=inelastic)
        out += np.tensordot(w[idx], (I - I_gs) / I_gs, axes=(0, 0))
        if progress is not None:
            progress(min(a + per_chunk, use.size), {"total": int(use.size)})
    return out


# --------------------------------------------------------------------------- distance distributions


def weighted_quantiles(values, weights, levels, axis: int = 0) -> np.ndarray:
    r"""Weighted quantiles by linear interpolation between the weights' midpoints.

    Sorted values x_(k) with normalised weights w_(k) sit at the cumulative
    probabilities p_k = Σ_{l<k} w_(l) + w_(k)/2; a level p is interpolated
    linearly between them and clamped to the smallest and largest value
    outside [p_1, p_M]. With equal weights this is NumPy's ``method="hazen"``
    (Hyndman and Fan, *Am. Stat.* 50, 361 (1996), definition 5); it is
    continuous in the weights, which a fit of weights needs. Values of zero
    weight are left out.

    Parameters
    ----------
    values : array_like, shape (..., M, ...)
    weights : array_like, shape (M,)
        Non-negative, positive sum.
    levels : array_like, shape (K,), in [0, 1]
    axis : int, default 0
        The axis of ``values`` that the weights run along.

    Returns
    -------
    ndarray, shape of ``values`` without ``axis``, plus (K,) last
    """
    x = np.moveaxis(np.asarray(values, dtype=float), axis, 0)
    w = _check_weights(weights, x.shape[0], normalise=True)
    p = np.asarray(levels, dtype=float)
    if p.ndim != 1 or np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise InputError(f"The 'levels' parameter must be numbers in [0, 1]; got {levels!r}")
    keep = w > 0
    x, w = x[keep], w[keep]
    order = np.argsort(x, axis=0, kind="stable")
    xs = np.take_along_axis(x, order, axis=0)
    ws = w[order]
    mid = np.cumsum(ws, axis=0) - 0.5 * ws  # (M, ...) strictly increasing along axis 0
    out = np.empty(x.shape[1:] + (p.size,))
    m = x.shape[0]
    for k, level in enumerate(p):
        above = np.sum(mid <= level, axis=0)  # points at or below the level
        hi = np.clip(above, 1, m - 1) if m > 1 else np.zeros_like(above)
        lo = np.maximum(hi - 1, 0)
        x_lo = np.take_along_axis(xs, lo[None], axis=0)[0]
        x_hi = np.take_along_axis(xs, hi[None], axis=0)[0]
        p_lo = np.take_along_axis(mid, lo[None], axis=0)[0]
        p_hi = np.take_along_axis(mid, hi[None], axis=0)[0]
        if m > 1:
            frac = np.clip((level - p_lo) / (p_hi - p_lo), 0.0, 1.0)
        else:
            frac = np.zeros_like(p_lo)
        out[..., k] = x_lo + frac * (x_hi - x_lo)
    return out


def _fragment_counts(symbols, positions: np.ndarray, scale: float) -> np.ndarray:
    """Number of covalent fragments of each geometry, shape (F,), for positions (F, N, 3)."""
    r = covalent_radii(symbols)
    d = np.linalg.norm(positions[:, :, None, :] - positions[:, None, :, :], axis=-1)
    adj = d < scale * (r[:, None] + r[None, :])  # the diagonal is bonded to itself: fine for labels
    n = len(symbols)
    labels = np.broadcast_to(np.arange(n), positions.shape[:1] + (n,)).copy()
    for _ in range(n):  # min-label propagation: converges within n steps
        new = np.where(adj, labels[:, None, :], n).min(axis=2)
        if np.array_equal(new, labels):
            break
        labels = new
    return (labels == np.arange(n)).sum(axis=1)


def parting_frames(dataset) -> np.ndarray:
    """The frame from which each dissociating trajectory's fragments stay apart.

    The dataset flags dissociation per trajectory
    (:func:`molmovie.trajectories.is_dissociated`: more covalent fragments at
    the last frame, at 2 × the covalent radii, than in the first, at 1.3 ×).
    For a flagged trajectory the parting frame is the first frame from which,
    through its last valid frame, it has more fragments at 2 × the radii than
    its first frame has at 1.3 ×, the same test the flag applies to the last
    frame; if its last frame does not pass that test (a flag made some other
    way), the parting frame is its last frame. Trajectories not flagged never
    part.

    Parameters
    ----------
    dataset : molmovie.datasets.Dataset or molmovie.trajectories.Ensemble

    Returns
    -------
    ndarray of int, shape (M,)
        The parting frame, or -1 for a trajectory that does not dissociate.
    """

    ens = _ensemble_of(dataset)
    out = np.full(ens.n_trajectories, -1, dtype=np.int64)
    for i in np.flatnonzero(ens.dissociated):
        L = int(ens.length[i])
        pos = ens.positions[i, :L]
        start = _fragment_counts(ens.symbols, pos[:1], BOND_SCALE)[0]
        apart = _fragment_counts(ens.symbols, pos, BREAK_SCALE) > start
        if not apart[-1]:
            out[i] = L - 1
        else:
            together = np.flatnonzero(~apart)
            out[i] = together[-1] + 1 if together.size else 0
    return out


class DistanceDistribution(NamedTuple):
    """The weighted ensemble distribution of every distance at given times.

    Attributes
    ----------
    times : ndarray, shape (T_d,), fs after excitation (before clipping)
    frames : ndarray of int, shape (T_d,)
        The basis frame used for each time (before holding past a trajectory's end).
    pair_labels : tuple of str, length P
    levels : ndarray, shape (K,)
    mean, std : ndarray, shape (T_d, P), Angstrom
    quantiles : ndarray, shape (T_d, P, K), Angstrom
    dissociated_fraction : ndarray, shape (T_d,)
    """

    times: np.ndarray
    frames: np.ndarray
    pair_labels: tuple
    levels: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    quantiles: np.ndarray
    dissociated_fraction: np.ndarray


def distance_distribution(dataset, times, *, weights=None, levels=DEFAULT_LEVELS, parting=None) -> DistanceDistribution:
    r"""The weighted distribution over the ensemble of every atom-atom distance at times after excitation.

    At each time τ (for a measurement, τ = delay − t0) the time is clipped to
    the basis span [0, τ_end] (before excitation: the first frame), the
    nearest frame is taken (the cells of :func:`irf_operator`) and each
    trajectory past its length holds its last valid frame. The IRF is not
    applied: this is the ensemble's distribution at that instant. Then

    .. math::

        \bar R_p = \sum_i w_i R_{ip}, \qquad
        s_p = \Big(\sum_i w_i (R_{ip} - \bar R_p)^2\Big)^{1/2},

    quantiles by :func:`weighted_quantiles`, and the dissociated fraction
    Σ_i w_i [frame ≥ parting frame of i] (:func:`parting_frames`).

    Parameters
    ----------
    dataset : molmovie.datasets.Dataset or molmovie.trajectories.Ensemble
    times : array_like, shape (T_d,), fs after excitation
    weights : array_like, shape (M,), optional
        Non-negative; normalised to sum 1. Default uniform.
    levels : array_like, shape (K,), default :data:`DEFAULT_LEVELS`
    parting : ndarray of int, shape (M,), optional
        :func:`parting_frames` of the dataset, when already computed (e.g. in
        a bootstrap loop over weights); computed here otherwise.

    Returns
    -------
    DistanceDistribution
    """
    ens = _ensemble_of(dataset)
    tau = _vector("times", times, increasing=False)
    w = _check_weights(weights, ens.n_trajectories, normalise=True)
    lv = np.asarray(levels, dtype=float)
    n_pairs = len(ens.symbols) * (len(ens.symbols) - 1) // 2
    _check_size(ens.n_trajectories * tau.size * max(n_pairs, 1), "the distance distribution (trajectories × delays × pairs)")
    edges = _cell_edges(ens.time)
    frames = np.searchsorted(edges, np.clip(tau, 0.0, None), side="right") - 1
    held = np.minimum(frames[None, :], ens.length[:, None] - 1)  # (M, T_d)
    pos = np.take_along_axis(ens.positions, held[:, :, None, None], axis=1)
    r = pair_distances(pos)  # (M, T_d, P)
    mean = np.tensordot(w, r, axes=(0, 0))
    var = np.tensordot(w, (r - mean) ** 2, axes=(0, 0))
    quant = weighted_quantiles(r, w, lv, axis=0)
    part = parting_frames(ens) if parting is None else np.asarray(parting, dtype=np.int64)
    if part.shape != (ens.n_trajectories,):
        raise InputError(f"The 'parting' parameter must hold one frame per trajectory ({ens.n_trajectories}); got shape {part.shape}")
    apart = (part[:, None] >= 0) & (held >= part[:, None])
    return DistanceDistribution(
        times=tau, frames=frames, pair_labels=tuple(_pair_labels(ens.symbols)), levels=lv,
        mean=mean, std=np.sqrt(var), quantiles=quant, dissociated_fraction=np.clip(w @ apart, 0.0, 1.0),
    )


# --------------------------------------------------------------------------- a simulated experiment


def simulate_measurement(
    dataset,
    *,
    q,
    delays,
    weights=None,
    gamma: float,
    t0: float,
    irf_fs: float,
    photons: float | None = None,
    seed=None,
    trajectories=None,
    inelastic: bool = True,
    levels=DEFAULT_LEVELS,
    source: str = "",
    progress=None,
):
    r"""A synthetic pump-probe measurement of a dataset's trajectories, with its truth.

    The noise-free signal is the measurement model of this module,

    .. math::

        \Delta S(q, t) = \gamma \sum_i w_i [\Delta S_i \otimes G](q, t - t_0),

    with I_gs the mean first-frame intensity of the selected trajectories
    (unweighted; the weights describe the excited ensemble). With
    ``photons``, each (delay, q) bin is counted: the laser-off pattern gives
    ``photons`` expected counts in every q bin, the laser-on one
    photons (1 + ΔS),

    .. math::

        N \sim \mathrm{Poisson}\big(n (1 + \Delta S)\big), \qquad
        \Delta S_\mathrm{noisy} = N / n - 1, \qquad
        \sigma = \sqrt{(1 + \Delta S) / n},

    n = ``photons``; the reference is noise-free (a laser-off pattern is
    averaged over far more shots than one delay), so σ is the whole
    uncertainty and (ΔS_noisy − ΔS)/σ has mean 0 and variance 1.

    Parameters
    ----------
    dataset : molmovie.datasets.Dataset or molmovie.trajectories.Ensemble
        The trajectories; the first frame of its time axis is the excitation.
    q : array_like, shape (Q,), 1/Angstrom
        Strictly increasing, >= 0.
    delays : array_like, shape (T_d,), fs
        Strictly increasing; negative allowed; t − t0 at most the basis's end.
    weights : array_like, shape (M_sel,), optional
        Non-negative weights over the selected trajectories (normalised to
        sum 1); default uniform.
    gamma : float
        Excitation fraction, 0 < γ <= 1.
    t0 : float
        Time zero, fs.
    irf_fs : float
        FWHM of the Gaussian IRF, fs, >= 0 (0: perfect time resolution).
    photons : float, optional
        Expected photons per q bin of the laser-off pattern (> 0, at most
        1e15); None: no noise and no σ.
    seed : int, numpy.random.Generator or None
        Seed of the photon noise.
    trajectories : array_like of int, optional
        Indices of the dataset's trajectories that make up the ensemble
        (distinct); default all.
    inelastic : bool, default True
        Include the Compton term in Eq. (1).
    levels : array_like, shape (K,), default :data:`DEFAULT_LEVELS`
        Quantile levels of the stored distance distributions.
    source : str
        Where the dataset came from (recorded in the provenance).
    progress : callable, optional
        ``progress(done, {"total": n})`` as trajectories are scattered.

    Returns
    -------
    molmovie.io.measurement.Measurement
        With ``sigma`` (None without noise) and ``truth``: weights,
        trajectory indices, γ, t0, IRF, photons, the weighted ensemble
        distribution of every distance at each delay − t0
        (:func:`distance_distribution`), the dissociated fraction and the
        noise-free ΔS.

    Raises
    ------
    InputError
        For a dataset without trajectories, indices out of range or repeated,
        weights of the wrong length or negative, γ outside (0, 1], a negative
        IRF, photons <= 0, delays not increasing or past the end of the basis,
        a bad q grid, or sizes over :data:`MAX_ELEMENTS`.
    """

    ens = _ensemble_of(dataset)
    m_all = ens.n_trajectories
    if trajectories is None:
        idx = np.arange(m_all)
    else:
        raw = np.asarray(trajectories)
        if raw.ndim != 1 or raw.size == 0 or (raw.dtype.kind not in "iu" and not (raw.dtype.kind == "f" and np.all(np.mod(raw, 1) == 0))):
            raise InputError(f"The 'trajectories' parameter must be a non-empty list of trajectory indices; got {trajectories!r}")
        idx = raw.astype(np.int64)
        if np.any((idx < 0) | (idx >= m_all)):
            bad = int(idx[(idx < 0) | (idx >= m_all)][0])
            raise InputError(f"trajectory index {bad} is out of range: the dataset has {m_all} trajectories (0 to {m_all - 1})")
        if np.unique(idx).size != idx.size:
            raise InputError("The 'trajectories' parameter lists a trajectory twice; give each once and weight it with 'weights'")
    w = _check_weights(weights, idx.size, normalise=True)
    gamma = _number("gamma", gamma)
    if not 0.0 < gamma <= 1.0:
        raise InputError(f"The 'gamma' parameter (the excitation fraction) must be in (0, 1]; got {gamma:g}")
    t0 = _number("t0", t0)
    irf_fs = _number("irf_fs", irf_fs, low=0.0)
    if photons is not None:
        photons = _number("photons", photons, low=0.0, low_open=True, high=1e15)
    qa = check_q(q)
    if qa.size > 1 and np.any(np.diff(qa) <= 0):
        raise InputError("The 'q' parameter must be strictly increasing")
    d = _vector("delays", delays, increasing=True)
    lv = np.asarray(levels, dtype=float)
    if lv.ndim != 1 or np.any(~np.isfinite(lv)) or np.any((lv < 0) | (lv > 1)) or np.any(np.diff(lv) <= 0):
        raise InputError(f"The 'levels' parameter must be strictly increasing numbers in [0, 1]; got {levels!r}")
    _check_size(d.size * qa.size, "the measurement (delays × q)")

    sub = ens.subset(idx)
    K = irf_operator(sub.time, d, t0=t0, irf_fs=irf_fs)  # refuses delays past the basis first: before any work
    dist = distance_distribution(sub, d - t0, weights=w, levels=lv)
    mean_dS = _weighted_mean_signal(sub, qa, w, inelastic, progress)
    with np.errstate(under="ignore"):  # products with the IRF's far tails
        dS_clean = gamma * (K @ mean_dS)
    if photons is None:
        dS, sigma = dS_clean, None
    else:
        rng = np.random.default_rng(seed)
        expected = photons * (1.0 + dS_clean)  # > 0: 1 + ΔS = (1 - γ) + γ I/I_gs
        dS = rng.poisson(expected) / photons - 1.0
        sigma = np.sqrt(expected) / photons
    truth = Truth(
        weights=w, trajectories=idx, gamma=gamma, t0=t0, irf_fs=irf_fs, photons=photons,
        pair_labels=dist.pair_labels, quantile_levels=lv,
        distance_mean=dist.mean, distance_std=dist.std, distance_quantiles=dist.quantiles,
        dissociated_fraction=dist.dissociated_fraction, dS_clean=dS_clean,
    )
    seed_record = seed if seed is None or isinstance(seed, (int, np.integer)) else "generator"
    provenance = {
        "made_by": "simulate-experiment",
        "source": str(source),
        "reference": f"laser-off ground state: mean first-frame intensity of the {idx.size} trajectories used, noise-free",
        "q_range": [float(qa[0]), float(qa[-1])],
        "units_read": {},
        "t0_shift_fs": 0.0,
        "inelastic": bool(inelastic),
        "model": "gamma * sum_i w_i [dS_i (x) Gaussian IRF](q, t - t0); nearest frame held, 0 before excitation, "
                 "last valid frame held past each trajectory's end",
        "noise": None if photons is None else f"Poisson, {photons:g} expected photons per q bin of the laser-off pattern",
        "seed": seed_record,
    }
    return Measurement(q=qa, delays=d, dS=dS, sigma=sigma, symbols=tuple(ens.symbols), molecule=ens.molecule,
                       provenance=provenance, truth=truth)
