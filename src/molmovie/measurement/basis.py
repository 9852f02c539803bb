r"""Basis signals: every trajectory's ΔS_i against the laser-off ground state, what the measurement model averages.

.. math::

    \Delta S_i(q, \tau) = \frac{I_i(q, \tau) - I_\mathrm{gs}(q)}{I_\mathrm{gs}(q)}

with I_i Eq. (1) of Asenov et al. at trajectory i's frames
(:func:`molmovie.scattering.simulate_signals`) and I_gs the laser-off pattern,
the mean first-frame intensity of the trajectories that sample the ground
state (:func:`laser_off_reference`, :func:`ground_start_flags`,
:func:`basis_signals`). The model that turns them into a measured ΔS is
:mod:`molmovie.measurement.model`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .._typing import Progress
from ..datasets import Dataset
from ..geometry import distances as pair_distances
from ..scattering.debye import intensity_from_distances
from ..scattering.detector import simulate_signals
from ..scattering.tables import check_q
from ..trajectories import Ensemble
from ._checks import _check_size, _ensemble_of

__all__ = [
    "laser_off_reference",
    "ground_start_flags",
    "basis_signals",
]


def laser_off_reference(
    dataset: Dataset | Ensemble,
    q: ArrayLike,
    *,
    inelastic: bool | None = None,
    probe: str = "xray",
    energy_kev: float | None = None,
) -> np.ndarray:
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
    inelastic, probe, energy_kev
        The forward model, as :func:`molmovie.scattering.intensity_from_distances`
        (X-rays with the Compton term by default).

    Returns
    -------
    ndarray, shape (Q,), electron units (Å² for electrons)
    """
    ens = _ensemble_of(dataset)
    qa = check_q(q)
    first = intensity_from_distances(
        ens.symbols, pair_distances(ens.positions[:, 0]), qa, inelastic=inelastic, probe=probe, energy_kev=energy_kev
    )
    return first.mean(axis=0)


def ground_start_flags(dataset: Dataset | Ensemble) -> np.ndarray | None:
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


def basis_signals(
    dataset: Dataset | Ensemble,
    q: ArrayLike,
    *,
    inelastic: bool | None = None,
    reference: ArrayLike | None = None,
    progress: Progress | None = None,
    probe: str = "xray",
    energy_kev: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
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
    inelastic : bool, optional
        Default on for X-rays (Compton), off for electrons.
    reference : array_like of int, optional
        Indices of the trajectories whose mean first frame is I_gs.
    progress : callable, optional
        ``progress(done, info)`` after each chunk of trajectories (``info["total"]``: M).
    probe, energy_kev
        The probe (``"xray"`` or ``"electron"``) and the electron beam's energy, keV.

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
            raise InputError(
                "no trajectory of the basis starts from a ground-state sample (ground_start), so there is no "
                "laser-off reference; add Wigner-sampled trajectories (generate --initial wigner:1,...)"
            )
    else:
        ref = np.asarray(reference, dtype=np.int64).ravel()
        if ref.size == 0 or np.any((ref < 0) | (ref >= m)):
            raise InputError(f"the laser-off reference must be indices of the {m} trajectories; got {reference!r}")
    dS, I_ref = simulate_signals(
        ens.symbols,
        ens.positions,
        ens.length,
        ens.time,
        qa,
        inelastic=inelastic,
        reference="ground",
        progress=progress,
        probe=probe,
        energy_kev=energy_kev,
    )
    I_all = I_ref[0]
    if ref.size == m:
        return dS, I_all.copy()
    I_gs = (dS[ref, 0] + 1.0).mean(axis=0) * I_all  # first frames, as intensities
    return (dS + 1.0) * (I_all / I_gs) - 1.0, I_gs
