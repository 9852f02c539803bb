r"""The detector model: q grid, reference intensity, photon noise and time resolution.

From an ensemble of trajectories to the difference signals an experiment
records,

.. math::

    \Delta S(q, t) = \frac{\tilde I(q, t) - I_\mathrm{ref}(q)}{I_\mathrm{ref}(q)},

where I(q, t) is Eq. (1) of Asenov et al. (:mod:`molmovie.scattering.debye`)
at every frame, Ĩ is I after the optional instrument response (a Gaussian in
time) and photon-counting (Poisson) noise, and I_ref is the noise-free
reference pattern.

Defaults follow the gas-phase ultrafast scattering experiments the paper
models (N-methylmorpholine at LCLS: hard X-rays at about 9.5 keV, a detector
out to about 2θ = 90°) and its 100 q points; see :func:`q_grid`.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .._guards import check_allocation
from .._typing import Progress, Symbols
from ..geometry import distances
from .debye import check_coordinates, intensity_from_distances
from .spec import MAX_PHOTONS, SignalSpec

__all__ = ["q_grid", "DEFAULT_Q", "PHOTON_ENERGY_KEV", "WAVELENGTH", "MAX_PHOTONS", "Signals", "simulate", "simulate_signals"]

#: hc in keV·Å (CODATA 2018).
_HC_KEV_ANGSTROM = 12.398419843320026
#: Photon energy the defaults assume, keV (hard X-ray XFEL, e.g. LCLS XPP/CXI).
PHOTON_ENERGY_KEV = 9.5
#: Wavelength at :data:`PHOTON_ENERGY_KEV`, Å (≈ 1.305).
WAVELENGTH = _HC_KEV_ANGSTROM / PHOTON_ENERGY_KEV

#: Default q grid (1/Å): 2θ from 6° to 90° at 9.5 keV, 100 points; ``q_grid(**DEFAULT_Q)``.
DEFAULT_Q: MappingProxyType[str, Any] = MappingProxyType({"q_min": 0.5, "q_max": 6.8, "n_q": 100})


def q_grid(q_min: float = DEFAULT_Q["q_min"], q_max: float = DEFAULT_Q["q_max"], n_q: int = DEFAULT_Q["n_q"]) -> np.ndarray:
    r"""A uniform grid of momentum transfers, q = 4π sin(θ)/λ.

    .. math::

        q_k = q_\mathrm{min} + k \frac{q_\mathrm{max} - q_\mathrm{min}}{n_q - 1},
        \qquad k = 0, \dots, n_q - 1

    Why the defaults (0.5 to 6.8 1/Å, 100 points): at a hard X-ray
    free-electron laser photon energy of 9.5 keV (λ = 1.305 Å, the energy
    of the N-methylmorpholine experiments the paper models), a detector that
    collects scattering angles 2θ from 6° (inside that, the beam stop and the
    direct beam's tail) to 90° spans q = 4π sin(θ)/λ from 0.504 to 6.81 1/Å.
    100 points is the paper's q sampling (Asenov et al.), and a uniform grid
    lets Eq. (1) be evaluated without a sine per point
    (:mod:`molmovie.scattering._kernels`).

    Parameters
    ----------
    q_min : float, default 0.5
        Smallest q, 1/Å, >= 0.
    q_max : float, default 6.8
        Largest q, 1/Å, > q_min.
    n_q : int, default 100
        Number of points, >= 2.

    Returns
    -------
    ndarray, shape (n_q,), 1/Angstrom

    Raises
    ------
    InputError
        "The 'q_max' parameter must be > q_min; got ..." and the like.
    """
    for name, value in (("q_min", q_min), ("q_max", q_max)):
        if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
            raise InputError(f"The '{name}' parameter must be a finite number in 1/Angstrom; got {value!r}")
    if q_min < 0:
        raise InputError(f"The 'q_min' parameter must be >= 0; got {q_min}")
    if q_max <= q_min:
        raise InputError(f"The 'q_max' parameter must be > q_min = {q_min}; got {q_max}")
    if isinstance(n_q, bool) or (not isinstance(n_q, (int, np.integer)) and not (isinstance(n_q, float) and n_q.is_integer())):
        raise InputError(f"The 'n_q' parameter must be an integer; got {n_q!r}")
    if n_q < 2:
        raise InputError(f"The 'n_q' parameter must be >= 2; got {n_q}")
    check_allocation((int(n_q),), f"The 'n_q' parameter ({int(n_q)} q points)")
    return np.linspace(float(q_min), float(q_max), int(n_q))


def _check_inputs(
    symbols: Symbols, positions: ArrayLike, length: ArrayLike, time: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    pos = np.asarray(positions, dtype=float)
    n_atoms = len(symbols)
    if pos.ndim != 4 or pos.shape[2:] != (n_atoms, 3):
        raise InputError(
            f"The 'positions' parameter must have shape (n_trajectories, n_frames, {n_atoms}, 3); got shape {pos.shape}"
        )
    n_traj, n_frames = pos.shape[:2]
    if n_traj == 0 or n_frames == 0:
        raise InputError(f"The 'positions' parameter must hold at least one trajectory and one frame; got shape {pos.shape}")
    t = np.asarray(time, dtype=float)
    if t.shape != (n_frames,):
        raise InputError(f"The 'time' parameter must have shape ({n_frames},), one time per frame; got shape {t.shape}")
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise InputError("The 'time' parameter must be finite and strictly increasing (fs)")
    raw = np.asarray(length)
    if raw.shape != (n_traj,):
        raise InputError(f"The 'length' parameter must have shape ({n_traj},), one per trajectory; got shape {raw.shape}")
    if raw.dtype.kind not in "iu" and not (raw.dtype.kind == "f" and np.all(np.isfinite(raw)) and np.all(np.mod(raw, 1) == 0)):
        raise InputError(f"The 'length' parameter must hold integers (frames); got dtype {raw.dtype}")
    if raw.dtype.kind == "f" and np.any(np.abs(raw) > n_frames):  # before the cast, which 1e300 overflows
        raise InputError(f"The 'length' parameter must be between 1 and {n_frames}; got {raw[np.abs(raw) > n_frames][0]:g}")
    lengths = raw.astype(np.int64)
    if np.any(lengths < 1) or np.any(lengths > n_frames):
        bad = int(np.flatnonzero((lengths < 1) | (lengths > n_frames))[0])
        raise InputError(f"The 'length' parameter must be between 1 and {n_frames}; got {lengths[bad]} for trajectory {bad}")
    valid = np.arange(n_frames)[None, :] < lengths[:, None]
    check_coordinates(pos)
    finite = np.all(np.isfinite(pos), axis=(2, 3))
    if np.any(valid & ~finite):
        m, f = np.argwhere(valid & ~finite)[0]
        raise InputError(
            f"positions of trajectory {m} are not finite at frame {f}, inside its length {lengths[m]}; "
            "only frames past the length may be NaN"
        )
    return pos, lengths, t, valid


def _gaussian_smooth(I: np.ndarray, valid: np.ndarray, dt: float, fwhm: float) -> np.ndarray:
    """Normalised Gaussian convolution along axis 1 over valid frames only.

    I (M, T, Q) with anything in invalid frames; valid (M, T) bool. Each output
    frame is Σ_j w(t_i - t_j) I_j / Σ_j w(t_i - t_j) over the valid frames j of
    its trajectory, so the edges are not pulled toward zero; invalid frames
    come out NaN.
    """
    sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    n_frames = I.shape[1]
    half = int(min(n_frames - 1, math.ceil(6.0 * sigma / dt)))
    offsets = np.arange(-half, half + 1) * dt
    with np.errstate(
        under="ignore", over="ignore"
    ):  # far tails underflow to 0 (an IRF far narrower than a frame: inf**2, then 0)
        w = np.exp(-0.5 * (offsets / sigma) ** 2)
    mask = valid.astype(float)
    filled = np.where(valid[:, :, None], I, 0.0)
    if half == 0:
        num, den = filled * w[0], mask * w[0]
    elif (2 * half + 1) <= 32:
        num = np.zeros_like(filled)
        den = np.zeros_like(mask)
        for o, wo in zip(range(-half, half + 1), w, strict=True):
            lo, hi = max(0, -o), min(n_frames, n_frames - o)  # output frames i with i + o in range
            num[:, lo:hi] += wo * filled[:, lo + o : hi + o]
            den[:, lo:hi] += wo * mask[:, lo + o : hi + o]
    else:  # FFT convolution along time (numpy.fft), 'same' alignment: output i <- Σ_o w_o x[i + o]
        size = 1 << int(np.ceil(np.log2(n_frames + 2 * half)))
        kernel = np.fft.rfft(w, size)
        num = np.fft.irfft(np.fft.rfft(filled, size, axis=1) * kernel[None, :, None], size, axis=1)[:, half : half + n_frames]
        den = np.fft.irfft(np.fft.rfft(mask, size, axis=1) * kernel[None, :], size, axis=1)[:, half : half + n_frames]
    out = np.full_like(I, np.nan)
    out[valid] = num[valid] / den[valid][:, None]
    return out


class Signals(NamedTuple):
    """Simulated difference signals and the spec that says what they are.

    Attributes
    ----------
    dS : ndarray, shape (n_trajectories, n_frames, n_q)
        Fraction (not percent); NaN past each length.
    I_ref : ndarray, shape (n_trajectories, n_q), electron units
    spec : SignalSpec
    """

    dS: np.ndarray
    I_ref: np.ndarray
    spec: SignalSpec


def simulate(
    symbols: Symbols,
    positions: ArrayLike,
    length: ArrayLike,
    time: ArrayLike,
    spec: SignalSpec,
    *,
    progress: Progress | None = None,
) -> Signals:
    r"""Difference scattering signals ΔS(q, t) of an ensemble of trajectories, as ``spec`` says.

    .. math::

        \Delta S_m(q, t) = \frac{\tilde I_m(q, t) - I_{\mathrm{ref}, m}(q)}{I_{\mathrm{ref}, m}(q)}

    with I_m(q, t) from Eq. (1) of Asenov et al. (IAM Debye formula plus the
    Compton term when ``spec.inelastic``, :func:`molmovie.scattering.intensity`),
    or for ``spec.probe == "electron"`` the electron I(s) at ``spec.energy_kev``
    (ΔS is then ΔI/I, as IAM-XED reports it; ΔsM = s ΔS I_ref / I_at), then,
    in this order:

    1. time resolution (``spec.irf_fs``): each trajectory's I(q, t) is convolved
       along time with a Gaussian instrument response of that FWHM, over its
       valid frames only and normalised by the weights that fall on valid
       frames, so the first and last frames are not biased toward zero;
    2. counting noise (``spec.photons``, photons or electrons): each pattern is counted,
       N(q) ~ Poisson(photons · I(q) / Σ_q I(q)), and rescaled,
       Ĩ(q) = N(q) Σ_q I(q) / photons, which is unbiased (E Ĩ = I); the noise
       is drawn from ``numpy.random.default_rng(spec.seed)``.

    The reference is noise-free and not convolved: a laser-off pattern is
    averaged over far more shots than any pump-probe delay, so its noise is
    negligible in comparison. Its choice (``spec.reference``):

    - ``"first"``: each trajectory's own first frame, I_ref,m = I_m(q, t_0),
      the paper's convention; then ΔS_m(q, t_0) = 0 exactly without noise and IRF;
    - ``"ground"``: the laser-off signal, the mean over all trajectories of
      their first-frame intensity, i.e. over the vibrational ground-state
      ensemble that the Wigner initial conditions sample; the same row for
      every trajectory.

    Parameters
    ----------
    symbols : sequence of str, length n_atoms
    positions : array_like, shape (n_trajectories, n_frames, n_atoms, 3), Angstrom
        NaN past each trajectory's length; finite within.
    length : array_like of int, shape (n_trajectories,)
        Valid frames per trajectory, 1 <= length <= n_frames.
    time : array_like, shape (n_frames,), fs
        Frame times, strictly increasing; uniformly spaced when ``spec.irf_fs`` is given.
    spec : SignalSpec
        The q grid (1/Angstrom) and the detector model.
    progress : callable(done, info), optional
        Called as ``progress(done, {"total": M, "unit": "trajectories"})`` with
        the number of trajectories finished so far (for a progress bar in the CLI).

    Returns
    -------
    Signals
        ``(dS, I_ref, spec)``: dS (n_trajectories, n_frames, n_q), a fraction,
        NaN past each length; I_ref (n_trajectories, n_q), electron units
        (X-rays) or Å² (electrons).

    Raises
    ------
    InputError
        For inconsistent shapes, lengths out of range, non-finite positions
        inside a length, or non-uniform times with ``spec.irf_fs``.
    """
    return _simulate(symbols, positions, length, time, spec, np.random.default_rng(spec.seed), progress)


def simulate_signals(
    symbols: Symbols,
    positions: ArrayLike,
    length: ArrayLike,
    time: ArrayLike,
    q: ArrayLike,
    *,
    inelastic: bool | None = None,
    reference: str = "first",
    photons: float | None = None,
    irf_fs: float | None = None,
    seed: int | np.random.Generator | None = None,
    progress: Progress | None = None,
    probe: str = "xray",
    energy_kev: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Difference signals ΔS(q, t) from the detector model's settings: :func:`simulate` without a spec.

    Parameters
    ----------
    symbols, positions, length, time, progress
        As in :func:`simulate`.
    q : array_like, shape (n_q,), 1/Angstrom
    inelastic, reference, photons, irf_fs, probe, energy_kev
        As in :class:`SignalSpec` (X-rays with the Compton term by default).
    seed : int, numpy.random.Generator or None
        Seed of the photon noise; the same seed gives the same signals.

    Returns
    -------
    dS : ndarray, shape (n_trajectories, n_frames, n_q)
        Fraction (not percent); NaN past each length.
    I_ref : ndarray, shape (n_trajectories, n_q), electron units

    Raises
    ------
    InputError
        As :func:`simulate` and :class:`SignalSpec` (an unknown ``reference``,
        ``photons`` or ``irf_fs`` <= 0, a bad q grid).
    """
    spec = SignalSpec(
        np.asarray(q),
        inelastic,  # type: ignore[arg-type]  # None: the probe's default
        reference,
        photons,
        irf_fs,
        seed=None if isinstance(seed, np.random.Generator) else seed,
        probe=probe,
        energy_kev=energy_kev,
    )
    dS, I_ref, _ = _simulate(symbols, positions, length, time, spec, np.random.default_rng(seed), progress)
    return dS, I_ref


def _simulate(
    symbols: Symbols,
    positions: ArrayLike,
    length: ArrayLike,
    time: ArrayLike,
    spec: SignalSpec,
    rng: np.random.Generator,
    progress: Progress | None,
) -> Signals:
    if isinstance(symbols, str):
        raise InputError("The 'symbols' parameter must be a sequence of element symbols, e.g. ['C', 'S', 'S']")
    if not isinstance(spec, SignalSpec):
        raise InputError(f"The 'spec' parameter must be a molmovie.scattering.SignalSpec; got {type(spec).__name__}")
    symbols = list(symbols)
    qa, photons, irf_fs = spec.q, spec.photons, spec.irf_fs
    pos, _, t, valid = _check_inputs(symbols, positions, length, time)
    n_traj, n_frames = pos.shape[:2]
    per_chunk = max(1, 4096 // n_frames)
    # dS, plus a chunk's intensities, reference rows and noise (about 4 arrays of its frames x q)
    check_allocation(
        8 * qa.size * (n_traj * n_frames + 4 * min(per_chunk, n_traj) * n_frames),
        f"ΔS of {n_traj} trajectories x {n_frames} frames x {qa.size} q points",
    )
    dt = float(t[1] - t[0]) if n_frames > 1 else 1.0
    if irf_fs is not None and n_frames > 2 and np.max(np.abs(np.diff(t) - dt)) > 1e-6 * dt:
        raise InputError("The 'time' parameter must be uniformly spaced to apply a time resolution (irf_fs)")

    # The reference first: "ground" needs every trajectory's first frame.
    model = spec.forward()  # the probe's forward model: Eq. (1), or electrons at the beam energy
    first = intensity_from_distances(symbols, distances(pos[:, 0]), qa, **model)
    if spec.reference == "first":
        I_ref = first
    else:
        I_ref = np.repeat(first.mean(axis=0, keepdims=True), n_traj, axis=0)

    dS = np.full((n_traj, n_frames, qa.size), np.nan)
    # Trajectories in chunks of about 4096 frames (per_chunk): big enough for the kernel, small enough for memory.
    for a in range(0, n_traj, per_chunk):
        b = min(n_traj, a + per_chunk)
        v = valid[a:b]
        row_traj = a + np.nonzero(v)[0]  # trajectory of each valid frame, in (m, t) order
        I = intensity_from_distances(symbols, distances(pos[a:b][v]), qa, **model)
        if irf_fs is not None and n_frames > 1:
            full = np.full((b - a, n_frames, qa.size), np.nan)
            full[v] = I
            I = _gaussian_smooth(full, v, dt, irf_fs)[v]
        if photons is not None:
            total = I.sum(axis=1, keepdims=True)
            I = rng.poisson(photons * I / total) * (total / photons)
        ref = I_ref[row_traj]
        dS[a:b][v] = (I - ref) / ref
        if progress is not None:
            progress(b, {"total": n_traj, "unit": "trajectories"})
    return Signals(dS, I_ref, spec)
