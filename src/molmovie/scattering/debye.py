r"""Eq. (1): the orientation-averaged X-ray scattering intensity of a molecule (IAM).

In the independent atom model (IAM) the intensity of a randomly oriented
gas-phase molecule is the Debye formula plus the inelastic (Compton) part,

.. math::

    I(q) = \sum_A f_A(q)^2
         + \sum_A \sum_{B \ne A} f_A(q) f_B(q) \frac{\sin(q R_{AB})}{q R_{AB}}
         + \sum_A S_A(q),

Eq. (1) of Asenov, Zotev, Ramamoorthy and Kirrander, "Inversion of Ultrafast
X-ray Scattering with Dynamics Constraints" (after Debye, *Ann. Phys.* 351,
809 (1915)); f_A are the elastic form factors and S_A the incoherent
functions of :mod:`molmovie.scattering.tables`. Units: q in 1/Å
(q = 4π sin(θ)/λ), R in Å, I in electron units (per molecule, in units of
the Thomson cross-section of one electron).

The double sum runs over ordered pairs, i.e. twice over each pair i < j; it is
evaluated by compiled kernels (:mod:`molmovie.scattering._kernels`) that
group pairs by element-pair type and, on a uniform q grid, replace the sine
by an exact-to-rounding recurrence. :func:`intensity_reference` is the plain
NumPy broadcast of the same formula, kept for testing and benchmarking.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .._numba import parallel_lock
from .._typing import Symbols
from ..geometry import distances
from .electrons import DEFAULT_ENERGY_KEV, check_probe, electron_amplitudes, electron_inelastic
from .tables import atomic_numbers_for_scattering, check_q, form_factors, incoherent

__all__ = [
    "intensity",
    "intensity_from_distances",
    "intensity_reference",
    "atomic_intensity",
    "scattering_factors",
    "default_inelastic",
    "difference_signal",
    "MAX_COORDINATE",
    "check_coordinates",
]

#: Largest coordinate accepted, Angstrom (0.1 mm): beyond it squared distances overflow long before
#: anything physical happens, and sin(qR)/(qR) is zero to double precision anyway.
MAX_COORDINATE = 1e6


def check_coordinates(pos: np.ndarray, name: str = "positions") -> None:
    """Refuse infinite coordinates and any beyond ±:data:`MAX_COORDINATE` Å (NaN marks missing frames and passes)."""
    with np.errstate(invalid="ignore"):
        bad = np.isinf(pos) | (np.abs(pos) > MAX_COORDINATE)
    if np.any(bad):
        raise InputError(f"The '{name}' parameter must hold coordinates within ±{MAX_COORDINATE:g} Å; got {pos[bad].flat[0]:g}")


#: The same as :func:`molmovie.geometry.distances` (kept for old callers).
pair_distances = distances

# Above this |q r| the sine's argument reduction in the kernels loses accuracy
# (see _kernels._sincos); such distances (> 1e7 Å) go to the NumPy evaluation.
_MAX_QR = 1e8


class _Plan(NamedTuple):
    """Everything about (symbols, q, inelastic) the kernels need, computed once."""

    order: np.ndarray  # (P,) pair indices (row-major i < j) grouped by element-pair type
    type_start: np.ndarray  # (T + 1,) start of each type in `order`
    weight: np.ndarray  # (T, Q) 2 f_A f_B / q  (2 f_A f_B where q == 0)
    const: np.ndarray  # (Q,) Σ f² (+ Σ S)
    zero_q: np.ndarray  # (Q,) bool, q == 0
    uniform: bool  # q_k == q0 + k dq to rounding, dq > 0
    q0: float
    dq: float
    pair_weight: np.ndarray  # (P, Q) 2 f_i f_j, for the reference evaluation


def _uniform_step(q: np.ndarray) -> tuple[bool, float, float]:
    """(is uniform, q0, dq): q_k = q0 + k dq within 4 ulp of max(q), with dq > 0."""
    n = q.size
    if n < 2:
        return False, float(q[0]), 0.0
    q0 = float(q[0])
    dq = (float(q[-1]) - q0) / (n - 1)
    if not dq > 0:
        return False, q0, dq
    dev = np.max(np.abs(q - (q0 + np.arange(n) * dq)))
    return bool(dev <= 4 * np.finfo(float).eps * float(q[-1])), q0, dq


@lru_cache(maxsize=64)
def _plan_cached(
    z: tuple[int, ...], q_bytes: bytes, inelastic: bool, probe: str = "xray", energy_kev: float | None = None
) -> _Plan:
    from ase.data import chemical_symbols

    q = np.frombuffer(q_bytes, dtype=np.float64)
    symbols = [chemical_symbols[v] for v in z]
    n = len(z)
    i, j = np.triu_indices(n, 1)
    if probe == "xray":
        f = form_factors(symbols, q)
        const = np.sum(f * f, axis=0)
        if inelastic:
            const = const + np.sum(incoherent(symbols, q), axis=0)
        # f_A f_B per pair type
        pair_product = f[i] * f[j]
    else:
        # electrons: |f_A|² and |f_A||f_B| cos(η_A - η_B) = Re(f_A conj(f_B))
        energy = DEFAULT_ENERGY_KEV if energy_kev is None else energy_kev
        fc = electron_amplitudes(symbols, q, energy)
        fr, fi = fc.real, fc.imag
        const = np.sum(fr * fr + fi * fi, axis=0)
        if inelastic:
            const = const + np.sum(electron_inelastic(symbols, q, energy), axis=0)
        pair_product = fr[i] * fr[j] + fi[i] * fi[j]
    za, zb = np.asarray(z)[i], np.asarray(z)[j]
    key = np.minimum(za, zb) * 1000 + np.maximum(za, zb)
    types, tid = np.unique(key, return_inverse=True)
    order = np.argsort(tid, kind="stable").astype(np.int64)
    type_start = np.searchsorted(tid[order], np.arange(types.size + 1)).astype(np.int64)
    zero_q = q == 0.0
    uniform, q0, dq = _uniform_step(q)
    # The kernels divide sin(q r)/r by the q they used: q0 + k dq on a uniform grid.
    q_used = q0 + np.arange(q.size) * dq if uniform else q
    inv_q = np.where(zero_q, 1.0, 1.0 / np.where(zero_q, 1.0, q_used))
    weight = np.empty((types.size, q.size))
    for t in range(types.size):
        p = order[type_start[t]]
        weight[t] = 2.0 * pair_product[p] * inv_q
    plan = _Plan(order, type_start, weight, np.ascontiguousarray(const), zero_q, uniform, q0, dq, 2.0 * pair_product)
    for a in plan:
        if isinstance(a, np.ndarray):
            a.setflags(write=False)
    return plan


def _plan(symbols: Symbols, q: np.ndarray, inelastic: bool | None, probe: str = "xray", energy_kev: float | None = None) -> _Plan:
    z = tuple(int(v) for v in atomic_numbers_for_scattering(symbols))
    probe, energy = check_probe(probe, energy_kev)
    return _plan_cached(z, q.tobytes(), default_inelastic(probe) if inelastic is None else bool(inelastic), probe, energy)


def default_inelastic(probe: str) -> bool:
    """Whether the inelastic term is in I by default: yes for X-rays (Compton), no for electrons (as IAM-XED)."""
    return probe == "xray"


def _check_distances(symbols: Symbols, distances: ArrayLike) -> np.ndarray:
    d = np.asarray(distances, dtype=float)
    n = len([symbols] if isinstance(symbols, str) else symbols)
    n_pair = n * (n - 1) // 2
    if d.ndim == 0 or d.shape[-1] != n_pair:
        raise InputError(
            f"The 'distances' parameter must have shape (..., {n_pair}) for {n} atoms "
            f"(pairs i < j, numpy.triu_indices({n}, 1)); got shape {d.shape}"
        )
    return d


def intensity_from_distances(
    symbols: Symbols,
    distances: ArrayLike,
    q: ArrayLike,
    *,
    inelastic: bool | None = None,
    probe: str = "xray",
    energy_kev: float | None = None,
) -> np.ndarray:
    r"""Eq. (1) (X-rays) or its electron counterpart, from the atom-atom distances.

    .. math::

        I(q) = \sum_A f_A^2 + 2 \sum_{A < B} f_A f_B \frac{\sin(q R_{AB})}{q R_{AB}}
               \; \Big[ + \sum_A S_A \Big]

    (Asenov et al., Eq. (1); Debye, *Ann. Phys.* 351, 809 (1915)); for
    electrons (``probe="electron"``), with complex amplitudes f_A = |f_A| e^{iη_A}
    at the beam energy (:func:`molmovie.scattering.electron_amplitudes`) and s for q,

    .. math::

        I(s) = \sum_A |f_A|^2 + 2 \sum_{A < B} |f_A| |f_B| \cos(\eta_A - \eta_B)
               \frac{\sin(s R_{AB})}{s R_{AB}} \; \Big[ + \sum_A I^\mathrm{inel}_A \Big]

    the same sum with other weights, so both run through the same kernels. With
    sin(x)/x = 1 at x = 0. Compiled (numba) and parallel over geometries
    (``numba.set_num_threads``); float64 throughout, within a few 1e-15
    relative of the direct evaluation (:func:`intensity_reference`; tested at
    1e-12).

    Parameters
    ----------
    symbols : sequence of str, length n_atoms
        Element symbols.
    distances : array_like, shape (..., n_pairs), Angstrom
        R_ij for i < j in row-major order (``numpy.triu_indices(n_atoms, 1)``),
        n_pairs = n_atoms (n_atoms - 1) / 2. Any NaN in a geometry makes its
        whole output row NaN.
    q : array_like, shape (n_q,), 1/Angstrom
        Momentum transfer (s for electrons), >= 0. A uniform grid
        (``numpy.linspace``) takes the fast path; any other grid works too.
    inelastic : bool, optional
        Add the incoherent part: Compton Σ_A S_A(q) for X-rays (default on),
        Morse's background for electrons (default off).
    probe : {"xray", "electron"}, default "xray"
    energy_kev : float, optional
        Electrons only: the beam's kinetic energy, keV (default 3700).

    Returns
    -------
    ndarray, shape (..., n_q), electron units (X-rays) or Angstrom² (electrons)

    Raises
    ------
    InputError
        For a q grid with negative or non-finite values, an unknown element, or
        distances whose last axis is not n_pairs.
    """
    from . import _kernels

    qa = check_q(q)
    d = _check_distances(symbols, distances)
    plan = _plan(symbols, qa, inelastic, probe, energy_kev)
    lead = d.shape[:-1]
    flat = np.ascontiguousarray(d.reshape(int(np.prod(lead)), d.shape[-1]))
    out = np.empty((flat.shape[0], qa.size))
    if flat.shape[0] == 0:
        return out.reshape(lead + (qa.size,))
    if flat.size:
        # fmax/fmin skip NaN without a copy; an all-NaN input gives NaN, which compares False.
        r_max = max(abs(np.fmax.reduce(flat, axis=None)), abs(np.fmin.reduce(flat, axis=None)))
        if r_max * qa.max() > _MAX_QR:
            return intensity_reference(symbols, d, qa, inelastic=inelastic, probe=probe, energy_kev=energy_kev)
    args = (flat, plan.order, plan.type_start, plan.weight, plan.const, plan.zero_q)
    with parallel_lock:
        if plan.uniform:
            _kernels.debye_uniform(*args, plan.q0, plan.dq, out)
        else:
            _kernels.debye_direct(*args, qa, out)
    return out.reshape(lead + (qa.size,))


def intensity(
    symbols: Symbols,
    positions: ArrayLike,
    q: ArrayLike,
    *,
    inelastic: bool | None = None,
    probe: str = "xray",
    energy_kev: float | None = None,
) -> np.ndarray:
    r"""Eq. (1) from Cartesian coordinates.

    .. math::

        I(q) = \sum_A f_A(q)^2
             + \sum_A \sum_{B \ne A} f_A(q) f_B(q) \frac{\sin(q R_{AB})}{q R_{AB}}
             \; \Big[ + \sum_A S_A(q) \Big]

    Asenov, Zotev, Ramamoorthy and Kirrander, Eq. (1) (independent atom
    model, orientation-averaged; Debye, *Ann. Phys.* 351, 809 (1915)).

    Parameters
    ----------
    symbols : sequence of str, length n_atoms
    positions : array_like, shape (..., n_atoms, 3), Angstrom
        NaN coordinates give a NaN output row; infinite ones, or beyond
        ±:data:`MAX_COORDINATE`, are an :class:`InputError`.
    q : array_like, shape (n_q,), 1/Angstrom, >= 0
    inelastic, probe, energy_kev
        As :func:`intensity_from_distances` (X-rays, Compton term on, by default).

    Returns
    -------
    ndarray, shape (..., n_q), electron units (X-rays) or Angstrom² (electrons)

    Examples
    --------
    >>> import numpy as np
    >>> from molmovie.scattering import intensity, form_factors
    >>> q = np.linspace(0.5, 6.8, 100)
    >>> I = intensity(["C"], np.zeros((1, 3)), q, inelastic=False)
    >>> bool(np.allclose(I, form_factors(["C"], q)[0] ** 2))
    True
    """
    pos = np.asarray(positions, dtype=float)
    n = len([symbols] if isinstance(symbols, str) else symbols)
    if pos.ndim < 2 or pos.shape[-2:] != (n, 3):
        raise InputError(f"The 'positions' parameter must have shape (..., {n}, 3) for {n} atoms; got shape {pos.shape}")
    check_coordinates(pos)
    return intensity_from_distances(symbols, distances(pos), q, inelastic=inelastic, probe=probe, energy_kev=energy_kev)


def intensity_reference(
    symbols: Symbols,
    distances: ArrayLike,
    q: ArrayLike,
    *,
    inelastic: bool | None = None,
    probe: str = "xray",
    energy_kev: float | None = None,
    chunk: int = 512,
) -> np.ndarray:
    """Eq. (1) by the plain NumPy broadcast over (geometry, pair, q), in chunks of geometries.

    The straightforward evaluation, one ``numpy.sin`` per pair and q point; the
    compiled path is tested and benchmarked against it. Same arguments and
    result as :func:`intensity_from_distances`; ``chunk`` geometries at a time
    bound the temporary (chunk × n_pairs × n_q doubles).
    """
    qa = check_q(q)
    d = _check_distances(symbols, distances)
    plan = _plan(symbols, qa, inelastic, probe, energy_kev)
    flat = d.reshape(int(np.prod(d.shape[:-1])), d.shape[-1])
    out = np.empty((flat.shape[0], qa.size))
    for a in range(0, flat.shape[0], chunk):
        x = flat[a : a + chunk, :, None] * qa
        with np.errstate(invalid="ignore", divide="ignore"):
            sinc = np.sin(x)
            sinc /= x
        zero = x == 0.0
        if zero.any():
            sinc[zero] = 1.0
        out[a : a + chunk] = plan.const + np.einsum("gpq,pq->gq", sinc, plan.pair_weight)
    return out.reshape(d.shape[:-1] + (qa.size,))


def scattering_factors(symbols: Symbols, q: ArrayLike, *, probe: str = "xray", energy_kev: float | None = None) -> np.ndarray:
    """Each atom's scattering factor on the grid, by probe: X-ray form factors f_A(q) (real, electron units), or the
    complex electron amplitudes f_A(s) at the beam energy (Å; :func:`molmovie.scattering.electron_amplitudes`).

    The pair weight of the Debye sum is 2 Re(f_A conj(f_B)) for both.

    Returns
    -------
    ndarray, shape (n_atoms, n_q), float64 (X-rays) or complex128 (electrons)
    """
    qa = check_q(q)
    probe, energy = check_probe(probe, energy_kev)
    if probe == "xray":
        return form_factors(symbols, qa)
    return electron_amplitudes(symbols, qa, DEFAULT_ENERGY_KEV if energy is None else energy)


def atomic_intensity(
    symbols: Symbols, q: ArrayLike, *, inelastic: bool | None = None, probe: str = "xray", energy_kev: float | None = None
) -> np.ndarray:
    r"""The atomic part of I: Σ_A f_A² (X-rays) or Σ_A |f_A|² (electrons), plus the inelastic term when it is on.

    The intensity of the separated atoms, I_at in sM(s) = s (I − I_at)/I_at
    (:func:`molmovie.scattering.modified_intensity`); same arguments as
    :func:`intensity_from_distances`.

    Returns
    -------
    ndarray, shape (n_q,), electron units (X-rays) or Angstrom² (electrons)
    """
    qa = check_q(q)
    return np.array(_plan(symbols, qa, inelastic, probe, energy_kev).const)


def difference_signal(I: ArrayLike, I_ref: ArrayLike) -> np.ndarray:
    r"""The relative difference signal ΔS = (I − I_ref) / I_ref.

    .. math::

        \Delta S(q, t) = \frac{I(q, t) - I_\mathrm{ref}(q)}{I_\mathrm{ref}(q)}

    a fraction (plots show percent), as in Asenov et al.

    Parameters
    ----------
    I : array_like, shape (..., n_q)
        Intensities, electron units; NaN frames stay NaN.
    I_ref : array_like, shape broadcastable to I, e.g. (n_q,) or (..., 1, n_q)
        Reference intensity, > 0.

    Returns
    -------
    ndarray, shape of the broadcast

    Raises
    ------
    InputError
        If I_ref has a value <= 0, or the shapes do not broadcast.
    """
    I = np.asarray(I, dtype=float)
    ref = np.asarray(I_ref, dtype=float)
    with np.errstate(invalid="ignore"):
        if np.any(ref <= 0):
            raise InputError(f"The 'I_ref' parameter must be > 0 everywhere; got {np.nanmin(ref):g}")
    try:
        shape = np.broadcast_shapes(I.shape, ref.shape)
    except ValueError:
        raise InputError(f"The 'I_ref' parameter must broadcast against I of shape {I.shape}; got shape {ref.shape}") from None
    out = np.empty(shape)
    np.subtract(I, ref, out=out)
    out /= ref
    return out
