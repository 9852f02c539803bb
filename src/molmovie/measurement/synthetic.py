r"""A synthetic experiment: the measurement model applied to a dataset's trajectories, with noise, and its truth.

:func:`simulate_measurement` returns a :class:`~molmovie.measurement.Measurement`
of known answer (``molmovie simulate-experiment``): the ΔS of
:mod:`molmovie.measurement.model` from the trajectories' basis signals
(:mod:`molmovie.measurement.basis`), with photon-counting noise and σ, and a
:class:`~molmovie.measurement.Truth` holding the weights, γ, t0, the IRF and
the ensemble's distance distributions at the delays
(:mod:`molmovie.measurement.distributions`), to score a fit against.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .._guards import check_seed
from .._typing import Progress
from ..datasets import Dataset
from ..geometry import distances as pair_distances
from ..scattering.debye import default_inelastic, intensity_from_distances
from ..scattering.electrons import check_probe
from ..scattering.tables import check_q
from ..trajectories import Ensemble
from ._checks import _check_size, _check_weights, _ensemble_of, _number, _vector
from .basis import laser_off_reference
from .distributions import DEFAULT_LEVELS, distance_distribution
from .model import irf_operator
from .types import Measurement, Truth

__all__ = [
    "simulate_measurement",
]


def simulate_measurement(
    dataset: Dataset | Ensemble,
    *,
    q: ArrayLike,
    delays: ArrayLike,
    weights: ArrayLike | None = None,
    gamma: float,
    t0: float,
    irf_fs: float,
    photons: float | None = None,
    seed: int | np.random.Generator | None = None,
    trajectories: ArrayLike | None = None,
    inelastic: bool | None = None,
    levels: ArrayLike = DEFAULT_LEVELS,
    source: str = "",
    progress: Progress | None = None,
    probe: str = "xray",
    energy_kev: float | None = None,
) -> Measurement:
    r"""A synthetic pump-probe measurement of a dataset's trajectories, with its truth.

    The noise-free signal is the measurement model (:mod:`molmovie.measurement.model`),

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
    inelastic : bool, optional
        Include the inelastic term: Compton for X-rays (default on), Morse's
        background for electrons (default off).
    levels : array_like, shape (K,), default :data:`DEFAULT_LEVELS`
        Quantile levels of the stored distance distributions.
    source : str
        Where the dataset came from (recorded in the provenance).
    progress : callable, optional
        ``progress(done, {"total": n})`` as trajectories are scattered.
    probe : {"xray", "electron"}, default "xray"
        What scatters: X-rays (Eq. (1)), or electrons at ``energy_kev``, whose
        ΔS is ΔI/I and whose noise counts electrons per s bin (a MeV-UED
        machine's IRF is about 150 fs: ``irf_fs=150``).
    energy_kev : float, optional
        Electrons only: the beam's kinetic energy, keV (default 3700).

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
    check_seed(seed, generator=True)  # before any work: a seed NumPy would refuse deep inside the noise
    probe, energy_kev = check_probe(probe, energy_kev)
    inelastic = default_inelastic(probe) if inelastic is None else bool(inelastic)
    model = {"inelastic": inelastic, "probe": probe, "energy_kev": energy_kev}
    ens = _ensemble_of(dataset)
    m_all = ens.n_trajectories
    if trajectories is None:
        idx = np.arange(m_all)
    else:
        raw = np.asarray(trajectories)
        if (
            raw.ndim != 1
            or raw.size == 0
            or (raw.dtype.kind not in "iu" and not (raw.dtype.kind == "f" and np.all(np.mod(raw, 1) == 0)))
        ):
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
    mean_dS = _weighted_mean_signal(sub, qa, w, model, progress)
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
        weights=w,
        trajectories=idx,
        gamma=gamma,
        t0=t0,
        irf_fs=irf_fs,
        photons=photons,
        pair_labels=dist.pair_labels,
        quantile_levels=lv,
        distance_mean=dist.mean,
        distance_std=dist.std,
        distance_quantiles=dist.quantiles,
        dissociated_fraction=dist.dissociated_fraction,
        dS_clean=dS_clean,
    )
    seed_record = seed if seed is None or isinstance(seed, (int, np.integer)) else "generator"
    provenance: dict[str, object] = {
        "made_by": "simulate-experiment",
        "source": str(source),
        "reference": f"laser-off ground state: mean first-frame intensity of the {idx.size} trajectories used, noise-free",
        "q_range": [float(qa[0]), float(qa[-1])],
        "units_read": {},
        "t0_shift_fs": 0.0,
        "inelastic": bool(inelastic),
        **({} if probe == "xray" else {"probe": probe, "energy_kev": energy_kev}),
        "model": "gamma * sum_i w_i [dS_i (x) Gaussian IRF](q, t - t0); nearest frame held, 0 before excitation, "
        "last valid frame held past each trajectory's end",
        "noise": None
        if photons is None
        else f"Poisson, {photons:g} expected {'photons' if probe == 'xray' else 'electrons'} per q bin of the laser-off pattern",
        "seed": seed_record,
    }
    return Measurement(
        q=qa,
        delays=d,
        dS=dS,
        sigma=sigma,
        symbols=tuple(ens.symbols),
        molecule=ens.molecule,
        provenance=provenance,
        truth=truth,
        probe=probe,
        energy_kev=energy_kev,
    )


def _weighted_mean_signal(
    ens: Ensemble, q: np.ndarray, w: np.ndarray, model: dict, progress: Progress | None = None
) -> np.ndarray:
    """Σ_i w_i ΔS_i (held past each length) on the basis frames, shape (T, Q), without the (M, T, Q) basis.

    ``model``: the forward model's keywords (inelastic, probe, energy_kev)."""
    I_gs = laser_off_reference(ens, q, **model)
    t = ens.n_frames
    _check_size(t * q.size, "one trajectory's signal (frames × q)")
    out = np.zeros((t, q.size))
    use = np.flatnonzero(w != 0.0)
    per_chunk = max(1, (1 << 22) // (t * q.size))
    for a in range(0, use.size, per_chunk):
        idx = use[a : a + per_chunk]
        pos, length = ens.positions[idx], ens.length[idx]
        frame = np.minimum(np.arange(t)[None, :], length[:, None] - 1)  # the held frame of each time
        I = intensity_from_distances(
            ens.symbols, pair_distances(np.take_along_axis(pos, frame[:, :, None, None], axis=1)), q, **model
        )
        out += np.tensordot(w[idx], (I - I_gs) / I_gs, axes=(0, 0))
        if progress is not None:
            progress(min(a + per_chunk, use.size), {"total": int(use.size)})
    return out
