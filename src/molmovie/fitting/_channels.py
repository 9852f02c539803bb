r"""Channels of a measurement from its isotropic and anisotropic Legendre components, with nuisance terms.

The ensemble fit of :mod:`molmovie.fitting._ensemble` explains ΔS = ΔS_0 by a
weighted set of basis trajectories. A linearly polarised pump aligns what it
excites, and the alignment depends on how it excited: after an n-photon
parallel (perpendicular) transition the axes are distributed as cos²ⁿθ
(sin²ⁿθ). So each basis trajectory i is offered once per candidate
alignment k (:class:`Alignment`), and its column carries every Legendre order
the measurement holds:

.. math::

    \Delta S_m(q, t_d) = \sum_{i,k} c_{ik} \Big[\sum_L M_{mL}(q)\, a^{(k)}_L\,
        \Delta S_{L,i} \otimes G_\mathrm{IRF}\Big](q, t_d - t_0)
        - \sum_j h_j [\Delta S^\mathrm{gs}_{0,j} \otimes G]\,\delta_{m0}
        + \text{nuisance}_m(q, t_d),

with c ≥ 0, a^{(k)}_L the Legendre moments of alignment k
(:func:`molmovie.scattering.anisotropy.axis_moments`, a_0 = 1),

.. math::

    \Delta S_{0,i} = \frac{I_i(\tau) - I_\mathrm{gs}}{I_\mathrm{gs}}, \qquad
    \Delta S_{L,i} = (-1)^{L/2} (2L+1) \sum_{A<B} 2 f_A f_B\,
        \frac{j_L(q R_{AB,i}(\tau)) - j_L(q R_{AB,i}(0))}{I_\mathrm{gs}}\quad (L > 0),

(:mod:`molmovie.scattering.anisotropy`; every pair is taken along the
molecular axis, exact for a diatomic or linear molecule). For L > 0 the
molecule's own start is subtracted: the molecules a pump removes from the
ground state carry the same alignment as those it excites, so the aligned
hole cancels the excited ensemble at τ = 0 (the isotropic reference has no
anisotropy); the hole's vibration in L > 0 is not modelled (the hole term
h_j, :mod:`molmovie.fitting._ensemble`, acts on L = 0 only). M(q) maps the
physical components S_L (coefficients of P_L(cos θ_q)) to the file's:
``projection="cos"`` takes the file's order m as S_m itself (M = 1);
``projection="i2-lcls"`` is the least-squares map of the LCLS I2 file's
analysis (:func:`molmovie.scattering.anisotropy.file_projection`: polynomials
of the angle θ_q over the Ewald sphere's θ_q ≥ θ_B), normalised so that the
file's ΔS_m = Σ_L (M_mL / M_00) ΔS_L; ``"i2-lcls-y"`` the same with the pump
polarisation along the detector's other axis.

The photon order of a channel is then what its anisotropy says: in ΔS_0 the
columns of one trajectory under different alignments are identical (a_0 = 1
for all), so ΔS_0 alone cannot tell which alignment (photon order) goes with
which speed; ΔS_2 can.

Nuisance terms (each optional, named, for every file order m fitted; signed
coefficients without bounds):

- ``offset``: a constant ΔS per (m, q) at every delay (a reference mismatch);
- ``step``: a constant ΔS per (m, q) after time zero, convolved with the IRF
  (heating, or a long-lived product the basis lacks);
- ``background``: a smooth function of q after time zero (Legendre
  polynomials of degree 0-3 over the q range, per m), convolved with the IRF;
- ``leak``: the measured ΔS_0 leaking into order m > 0 with a smooth
  q-dependent factor (degree 0-2; a detector anisotropy that multiplies the
  pattern, e.g. absorption or a polarisation correction off by a little);
- ``qscale``: q → s q in the model (a calibration), s on a grid.

Each is judged by an information criterion: BIC = χ² + k ln N or
AIC = χ² + 2k, k the weights and nuisance coefficients that are not zero plus
the nonlinear parameters (t0 and the IRF where searched, s); χ² with the
Gaussian likelihood of the measurement's σ (Schwarz, *Ann. Stat.* 6, 461
(1978); Akaike, *IEEE Trans. Autom. Control* 19, 716 (1974)).
:func:`select_nuisance` adds terms greedily while the criterion falls.

The least-squares system is that of the ensemble fit: the trajectory basis
compressed by its SVD (:class:`~molmovie.fitting._ensemble_system._Reduced`),
the nuisance vectors added to the Gram factorisation and then projected
out (their coefficients are free, so they are solved for exactly after the
bounded part; :class:`~molmovie.fitting._channels_system._Solver`), NNLS (BVLS with the hole's bounds) over the
basis columns, the Franck-Condon rows and the hole's equality as weighted
pseudo-rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from .._errors import InputError
from ..datasets import Dataset
from ..geometry import distances as pair_distances
from ..measurement import Measurement, basis_signals, check_molecule, hold_last_frame, irf_operator
from ..molecules import atomic_masses
from ..scattering.anisotropy import axis_moments, file_projection, legendre_pair_terms, rotational_dephasing
from ..trajectories import Ensemble
from ._channels_system import _best_scale, _nuisance_vectors, _Solver
from ._ensemble import _hole_split
from ._ensemble_system import _ground_rows, _Reduced

__all__ = ["Alignment", "parse_alignments", "NUISANCES", "ChannelFit", "Channel", "fit_channels"]

NUISANCES = ("offset", "step", "background", "leak", "qscale")
PROJECTIONS = ("cos", "i2-lcls", "i2-lcls-y")
#: The family name of the basis's own excited members in :attr:`Channel.family`.
BASIS_FAMILY = "basis"
#: Physical Legendre orders carried by the model (enough for up to 4 photons: a_L = 0 for L > 2n).
MODEL_ORDERS = (0, 2, 4, 6, 8)
#: 1 u Å²/fs² in eV (1 u × (1e5 m/s)², CODATA 2018)
AMU_A2_FS2_EV = 1.66053906660e-27 * 1e10 / 1.602176634e-19


@dataclass(frozen=True)
class Alignment:
    """An n-photon parallel or perpendicular excitation: the axis distribution ∝ cos²ⁿθ or sin²ⁿθ."""

    photons: int
    transition: str = "parallel"

    def __post_init__(self) -> None:
        axis_moments(self.photons, self.transition, (0,))  # validates

    @property
    def name(self) -> str:
        return f"{self.photons}{'par' if self.transition == 'parallel' else 'perp'}"

    def moments(self, orders: Sequence[int] = MODEL_ORDERS) -> np.ndarray:
        return axis_moments(self.photons, self.transition, orders)


def parse_alignments(text: str | Sequence[Alignment]) -> tuple[Alignment, ...]:
    """``"1par,2par,1perp"`` (photons, then ``par`` or ``perp``) as :class:`Alignment` objects."""
    if not isinstance(text, str):
        return tuple(text)
    out = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        digits = "".join(ch for ch in item if ch.isdigit())
        kind = item[len(digits) :]
        names = {"par": "parallel", "perp": "perpendicular", "parallel": "parallel", "perpendicular": "perpendicular"}
        if not digits or kind not in names or not item.startswith(digits):
            raise InputError(f"an alignment is photons then par or perp, e.g. 1par,2perp; got {item!r}")
        out.append(Alignment(int(digits), names[kind]))
    if not out or len(set(out)) != len(out):
        raise InputError(f"the alignments must be distinct and at least one; got {text!r}")
    return tuple(out)


@dataclass
class Channel:
    """One alignment's share of the excited ensemble (fractions of the excited molecules)."""

    name: str
    photons: int
    transition: str
    a2: float
    family: str  # the basis family (the basis's own excited members, or a named family such as an ion's)
    population: float
    population_std: float
    dissociated: float
    speed: float  # weighted mean relative speed of the dissociating members, Å/fs
    speed_std: float  # bootstrap σ of that mean
    speed_spread: float  # weighted spread of the members' speeds, Å/fs
    energy_ev: float  # kinetic energy release at the mean speed, eV (pairs' reduced mass)
    period_fs: float | None  # bound members' vibration period (FFT of the weighted mean distance)
    period_std: float = float("nan")  # bootstrap σ of that period, fs


@dataclass
class ChannelFit:
    """What :func:`fit_channels` found (arrays (F, T_d, Q) over the file orders fitted)."""

    orders: tuple[int, ...]
    alignments: tuple[Alignment, ...]
    families: tuple[str, ...]
    nuisance: tuple[str, ...]
    projection: str
    sigma_source: str
    chi2: float
    chi2_by_order: dict[int, float]
    n_data: int
    n_data_by_order: dict[int, int]
    n_params: int
    reduced_chi2: float
    bic: float
    aic: float
    gamma: float
    t0: float
    irf_fs: float
    qscale: float
    rotation_temperature: float | None
    channels: list[Channel]
    hole_gamma: float
    hole_period_fs: float | None
    hole_period_std: float
    weights: np.ndarray  # (M_e, K) c / γ, the basis's excited members then each family's
    nuisance_coefficients: dict[str, np.ndarray] = field(default_factory=dict)
    q: np.ndarray = field(default_factory=lambda: np.zeros(0))
    delays: np.ndarray = field(default_factory=lambda: np.zeros(0))
    data: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sigma: np.ndarray = field(default_factory=lambda: np.zeros(0))
    model: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def reduced_by_order(self) -> dict[int, float]:
        return {m: self.chi2_by_order[m] / max(self.n_data_by_order[m], 1) for m in self.orders}

    def band_means(self) -> np.ndarray:
        """Mean over delays after time zero of (data − model)/σ, shape (F, Q)."""
        late = self.delays > self.t0 + 2 * self.irf_fs
        return ((self.data - self.model) / self.sigma)[:, late].mean(axis=1)


# --------------------------------------------------------------------------- data


def scatter_sigma(dS: np.ndarray, delays: np.ndarray, after: float = 300.0) -> np.ndarray:
    """σ per q from the data's own scatter: robust σ of second differences along delay after ``after`` fs.

    (d_{t+1} − 2 d_t + d_{t−1})/√6 has the noise's σ for independent noise and removes a signal that
    is linear over three delays; 1.4826 × the median absolute value is σ for Gaussian noise. Returned
    on every delay, shape (T, Q).
    """
    rows = np.flatnonzero(delays > after)
    if rows.size < 5:
        raise InputError(f"sigma='scatter' needs at least 5 delays after {after:g} fs; got {rows.size}")
    x = dS[rows]
    d2 = (x[2:] - 2 * x[1:-1] + x[:-2]) / math.sqrt(6.0)
    s = 1.4826 * np.median(np.abs(d2), axis=0)
    s = np.maximum(s, 1e-12)
    return np.broadcast_to(s, dS.shape).copy()


def _stacked(meas: Measurement, orders: tuple[int, ...], sigma: str) -> tuple[np.ndarray, np.ndarray]:
    """(data, σ), shape (F, T_d, Q), for the orders asked."""
    data, sig = [], []
    for m in orders:
        if m == 0:
            d, s = meas.dS, meas.sigma
        else:
            comp = meas.component(m)
            d, s = comp.dS, comp.sigma
        if sigma == "scatter":
            s = scatter_sigma(d, meas.delays)
        elif s is None:
            raise InputError(f"order {m} of the measurement has no σ; use sigma='scatter'")
        if np.any(s <= 0):
            raise InputError(f"σ of order {m} holds zeros; use sigma='scatter'")
        data.append(d)
        sig.append(s)
    return np.stack(data), np.stack(sig)


# --------------------------------------------------------------------------- the basis


def _physical(
    basis: Dataset | Ensemble,
    q: np.ndarray,
    orders: Sequence[int],
    temperature: float | None = None,
    I_ref: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ΔS_0,i (M, T, Q) against the laser-off reference, ΔS_L,i without a_L for L > 0, (L', M, T, Q), and I_gs (Q,).

    The reference is the basis's own ground-state sample, or ``I_ref`` (Q,): the laser-off scattering of
    another basis, for a family whose trajectories start elsewhere (an ion's, from the neutral's geometry).

    With a rotational ``temperature`` (K) the alignment of bound molecules dephases by G_L(τ)
    (:func:`~molmovie.scattering.anisotropy.rotational_dephasing`, I = μ R² of the first frames): the
    anti-aligned ground state a dissociating molecule left (its own start) and the whole of a bound one;
    the fragments of a dissociation keep their axis (axial recoil).
    """
    ens = cast(Ensemble, getattr(basis, "ensemble", basis))
    if I_ref is None:
        dS0, I_gs = basis_signals(basis, q)
    else:
        dS0, I_own = basis_signals(basis, q, reference=np.arange(ens.n_trajectories))
        I_gs = np.asarray(I_ref, dtype=float)
        dS0 = (dS0 + 1.0) * (I_own / I_gs) - 1.0  # I_i / I_ref − 1
    dS0, length = hold_last_frame(dS0)
    pos = ens.positions
    idx = np.minimum(np.arange(pos.shape[1])[None, :], length[:, None] - 1)
    pos = np.take_along_axis(pos, idx[:, :, None, None], axis=1)
    R = pair_distances(pos)  # (M, T, P)
    higher = [L for L in orders if L > 0]
    out = np.zeros((len(higher), *dS0.shape))
    G = np.ones((len(higher), ens.n_frames))
    if temperature is not None:
        if len(ens.symbols) != 2:
            raise InputError("rotational dephasing is implemented for diatomic molecules (one moment of inertia)")
        m = atomic_masses(ens.symbols)
        inertia = float(m[0] * m[1] / (m[0] + m[1]) * np.mean(R[:, 0, 0] ** 2))
        G = rotational_dephasing(ens.time - ens.time[0], higher, temperature=float(temperature), inertia=inertia)
    diss = np.asarray(ens.dissociated, dtype=bool)[:, None, None]
    for k, L in enumerate(higher):
        pairs = legendre_pair_terms(ens.symbols, R, q, (L,))[..., 0, :, :].sum(axis=-2)  # (M, T, Q)
        g = G[k][None, :, None]
        moved = np.where(diss, pairs - g * pairs[:, :1], g * (pairs - pairs[:, :1]))
        out[k] = (-1.0) ** (L // 2) * (2 * L + 1) * moved / I_gs
    return dS0, out, I_gs


def _projection(q: np.ndarray, orders: tuple[int, ...], projection: str) -> np.ndarray:
    """(Q, F, L) map from the physical ΔS_L (L in MODEL_ORDERS) to the file's ΔS_m."""
    if projection == "cos":
        P = np.zeros((q.size, len(orders), len(MODEL_ORDERS)))
        for f, m in enumerate(orders):
            P[:, f, MODEL_ORDERS.index(m)] = 1.0
        return P
    M = file_projection(
        q, model_orders=MODEL_ORDERS, file_orders=(0, 2, 4, 6), pump_axis="y" if projection.endswith("-y") else "x"
    )
    keep = [(0, 2, 4, 6).index(m) for m in orders]
    return M[:, keep, :] / M[:, :1, :1]


# --------------------------------------------------------------------------- the fit


def _check(
    meas: Measurement,
    basis: Dataset | None,
    orders: Sequence[int],
    alignments: str | Sequence[Alignment],
    nuisance: Sequence[str],
    projection: str,
    sigma: str,
    criterion: str = "bic",
) -> tuple[tuple[int, ...], tuple[Alignment, ...], tuple[str, ...]]:
    if not isinstance(meas, Measurement):
        raise InputError(f"fit_channels needs a Measurement; got {type(meas).__name__}")
    if meas.probe != "xray":
        raise InputError("fit_channels: X-ray measurements only (the anisotropic forward model is the X-ray IAM)")
    if basis is None or getattr(basis, "n_trajectories", 0) == 0:
        raise InputError("fit_channels needs a basis of trajectories of the measured molecule")
    check_molecule(meas, basis.symbols, what="the basis")
    orders = tuple(int(m) for m in orders)
    if not orders or orders[0] != 0 or any(m % 2 or m < 0 for m in orders) or len(set(orders)) != len(orders):
        raise InputError(f"The 'orders' parameter must start with 0 and hold distinct even orders, e.g. (0, 2); got {orders!r}")
    if any(m > 6 for m in orders):
        raise InputError(f"The 'orders' parameter holds orders up to 6; got {orders!r}")
    bad = [n for n in nuisance if n not in NUISANCES]
    if bad:
        raise InputError(f"unknown nuisance term(s) {', '.join(bad)}; choose from {', '.join(NUISANCES)}")
    if projection not in PROJECTIONS:
        raise InputError(f"The 'projection' parameter must be one of {', '.join(PROJECTIONS)}; got {projection!r}")
    if sigma not in ("measured", "scatter"):
        raise InputError(f"The 'sigma' parameter must be 'measured' or 'scatter'; got {sigma!r}")
    if criterion not in ("bic", "aic"):
        raise InputError(f"The 'criterion' parameter must be 'bic' or 'aic'; got {criterion!r}")
    return orders, parse_alignments(alignments), tuple(dict.fromkeys(nuisance))


def _families(families: Mapping[str, Dataset | Ensemble] | None, ens: Ensemble) -> dict[str, Ensemble]:
    """The named excited-state families as ensembles, checked against the basis (atoms, frame times)."""
    if families is None:
        return {}
    if not isinstance(families, Mapping):
        raise InputError(f"The 'families' parameter must map names to datasets; got {type(families).__name__}")
    out: dict[str, Ensemble] = {}
    for name, fam in families.items():
        if not isinstance(name, str) or not name or name == BASIS_FAMILY or ":" in name:
            raise InputError(f"a family name must be a non-empty string without ':', not {BASIS_FAMILY!r}; got {name!r}")
        e = cast(Ensemble, getattr(fam, "ensemble", fam))
        if not isinstance(e, Ensemble) or e.n_trajectories == 0:
            raise InputError(f"family {name!r} must be a dataset of trajectories; got {type(fam).__name__}")
        if tuple(e.symbols) != tuple(ens.symbols):
            raise InputError(f"family {name!r} has atoms {' '.join(e.symbols)}, the basis {' '.join(ens.symbols)}")
        if e.time.shape != ens.time.shape or not np.allclose(e.time, ens.time, rtol=0, atol=1e-6):
            raise InputError(
                f"family {name!r} has frames at other times than the basis ({e.n_frames} frames to {e.time[-1]:g} fs "
                f"against {ens.n_frames} to {ens.time[-1]:g} fs); make both with the same --tmax and --dt"
            )
        out[name] = e
    return out


def _speeds(ens: Ensemble, window: float = 500.0) -> tuple[np.ndarray, np.ndarray]:
    """Each trajectory's relative speed at its end (Å/fs; the pair that grows fastest) and that pair's reduced mass (u)."""
    R = pair_distances(ens.positions)  # (M, T, P), NaN past length
    t = ens.time
    v = np.zeros(ens.n_trajectories)
    mu = np.zeros(ens.n_trajectories)
    masses = np.asarray(atomic_masses(ens.symbols), dtype=float)
    i, j = np.triu_indices(len(ens.symbols), 1)
    for k in range(ens.n_trajectories):
        n = int(ens.length[k])
        last = t[n - 1]
        a = int(np.searchsorted(t[:n], last - window))
        a = min(a, n - 2)
        rate = (R[k, n - 1] - R[k, a]) / max(t[n - 1] - t[a], 1e-9)
        p = int(np.argmax(rate))
        v[k] = max(float(rate[p]), 0.0)
        mu[k] = masses[i[p]] * masses[j[p]] / (masses[i[p]] + masses[j[p]])
    return v, mu


def _period(signal: np.ndarray, time: np.ndarray, lo: float = 50.0, hi: float = 2000.0) -> float | None:
    """Period (fs) of the largest Fourier peak of a detrended signal on a uniform time grid, or None.

    The peak's frequency is refined between bins by the parabola through the log power of the bin and its
    neighbours (exact for a Gaussian peak; the Hann window's main lobe is close to one).
    """
    s = np.asarray(signal, dtype=float)
    if s.size < 16 or not np.all(np.isfinite(s)) or np.ptp(s) == 0:
        return None
    dt = float(np.median(np.diff(time)))
    s = s - np.polyval(np.polyfit(time, s, 2), time)
    n = 8 * s.size
    f = np.fft.rfftfreq(n, dt)
    p = np.abs(np.fft.rfft(s * np.hanning(s.size), n))
    ok = (f > 1 / hi) & (f < 1 / lo)
    if not ok.any() or p[ok].max() == 0:
        return None
    k = int(np.flatnonzero(ok)[np.argmax(p[ok])])
    shift = 0.0
    if 0 < k < p.size - 1 and np.all(p[k - 1 : k + 2] > 0):
        a, b, c = np.log(p[k - 1 : k + 2])
        shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c < 0 else 0.0
    return float(1.0 / (f[k] + shift * (f[1] - f[0])))


def fit_channels(
    meas: Measurement,
    basis: Dataset,
    *,
    orders: Sequence[int] = (0, 2),
    alignments: str | Sequence[Alignment] = "1par",
    hole: bool = False,
    families: Mapping[str, Dataset | Ensemble] | None = None,
    nuisance: Sequence[str] = (),
    projection: str = "cos",
    sigma: str = "measured",
    rotation: float | Sequence[float] | None = None,
    t0_range: tuple[float, float] = (-100.0, 100.0),
    irf_range: tuple[float, float] = (20.0, 200.0),
    grid: tuple[int, int] = (9, 4),
    qscale_grid: Sequence[float] = (0.98, 0.99, 1.0, 1.01, 1.02),
    bootstrap: int = 20,
    seed: int = 0,
    ground_state: float = 1.0,
    rank_tol: float = 1e-7,
    _cache: dict | None = None,
) -> ChannelFit:
    """Fit the measurement's Legendre orders with trajectories × alignments (see the module docstring).

    Parameters
    ----------
    meas : Measurement
        With :attr:`~molmovie.measurement.Measurement.components` for the orders > 0 asked.
    basis : Dataset
        Trajectories of the measured molecule.
    orders : sequence of int
        File orders fitted, starting with 0, e.g. (0,) or (0, 2).
    alignments : str or sequence of Alignment
        Candidate alignments, e.g. ``"1par,2par,1perp"``.
    hole : bool
        The ground-state hole (as ``EnsembleFit(hole=True)``; its basis requirements alike).
    families : mapping of str to Dataset, optional
        Further excited-state families, each a named group of channels beside the basis's own excited
        members (e.g. ``{"I2+": ion}``: bound vibration of the cation, started from the neutral's
        geometry): same atoms and frame times as the basis, signals against the basis's laser-off
        reference, every member offered under every alignment; with ``hole`` they leave the ground
        state too (the hole's equality counts them).
    nuisance : sequence of str
        Nuisance terms from :data:`NUISANCES`.
    projection : {"cos", "i2-lcls"}
    sigma : {"measured", "scatter"}
        The measurement's σ or each order's σ per q from its scatter (:func:`scatter_sigma`).
    rotation : float or sequence of float, optional
        Rotational temperature (K) of the thermal dephasing of bound molecules' alignment (see
        :func:`_physical`); a sequence is a grid, the best by χ² is kept (one parameter). None: axes fixed.
    t0_range, irf_range : (float, float), fs
        Searched (equal ends fix the parameter).
    grid : (int, int)
        Coarse grid over t0 and the IRF before a Nelder-Mead refinement.
    qscale_grid : sequence of float
        The values of s tried first with ``"qscale"``; where the best is at an end of the grid, the grid is
        extended past that end by its spacing while χ² falls (up to :data:`~molmovie.fitting._channels_system.QSCALE_LIMIT` from 1), so that the s
        found is a minimum, not the grid's edge. One value holds s there. Without ``"qscale"``, s = 1.
    bootstrap : int
        Parametric bootstrap replicates (noise σ times the Birge ratio) at the fitted t0 and IRF, for the
        populations' and speeds' σ.
    seed : int
    ground_state : float
        Weight of the Franck-Condon rows (as in the ensemble fit).
    rank_tol : float
        Relative singular value kept in the basis compression.

    Returns
    -------
    ChannelFit
    """
    with np.errstate(under="ignore"):  # products with the IRF's far tails
        return _fit_channels(
            meas,
            basis,
            orders,
            alignments,
            hole,
            families,
            nuisance,
            projection,
            sigma,
            rotation,
            t0_range,
            irf_range,
            grid,
            qscale_grid,
            bootstrap,
            seed,
            ground_state,
            rank_tol,
            _cache,
        )


def _fit_channels(
    meas: Measurement,
    basis: Dataset,
    orders: Sequence[int],
    alignments: str | Sequence[Alignment],
    hole: bool,
    families: Mapping[str, Dataset | Ensemble] | None,
    nuisance: Sequence[str],
    projection: str,
    sigma: str,
    rotation: float | Sequence[float] | None,
    t0_range: tuple[float, float],
    irf_range: tuple[float, float],
    grid: tuple[int, int],
    qscale_grid: Sequence[float],
    bootstrap: int,
    seed: int,
    ground_state: float,
    rank_tol: float,
    _cache: dict | None,
) -> ChannelFit:
    from scipy.optimize import minimize

    orders, aligns, kinds = _check(meas, basis, orders, alignments, nuisance, projection, sigma)
    data, sig = _stacked(meas, orders, sigma)  # (F, T_d, Q)
    F, T_d, Q = data.shape
    q, delays = meas.q, meas.delays
    ens = cast(Ensemble, getattr(basis, "ensemble", basis))
    time = np.asarray(ens.time, dtype=float)
    if delays[-1] - t0_range[0] > time[-1] - time[0] + 1e-9:
        raise InputError(f"the basis lasts {time[-1] - time[0]:g} fs, shorter than the latest delay minus the earliest t0")
    if hole:
        g_idx, e_idx = _hole_split(ens)
    else:
        g_idx, e_idx = np.zeros(0, dtype=np.int64), np.arange(ens.n_trajectories)
    fams = _families(families, ens)
    names = (BASIS_FAMILY, *fams)
    sizes = [e_idx.size, *(f.n_trajectories for f in fams.values())]
    bounds = np.cumsum([0, *sizes])
    M_e, M_g, K_al = int(bounds[-1]), g_idx.size, len(aligns)
    proj = _projection(q, orders, projection)  # (Q, F, L)
    moments = np.stack([a.moments(MODEL_ORDERS) for a in aligns])  # (K, L)
    cache = {} if _cache is None else _cache

    def columns(s: float, temp: float | None) -> np.ndarray:
        key = ("basis", round(float(s), 9), temp, orders, projection, tuple(aligns), bool(hole))
        if cache.get("basis_key") != key:  # one basis held at a time (each is large)
            cache.pop("basis", None)
            cache.pop("red", None)
            cache["red_key"] = None
            dS0, higher, I_gs = _physical(basis, q * s, MODEL_ORDERS, temp)
            phys = np.concatenate([dS0[None], higher])  # (L, M, T, Q)
            del higher
            parts = [phys[:, e_idx]]
            for fam in fams.values():
                f0, fh, _ = _physical(fam, q * s, MODEL_ORDERS, temp, I_ref=I_gs)
                parts.append(np.concatenate([f0[None], fh]))
            excited = np.concatenate(parts, axis=1)
            cols = []
            for k in range(K_al):
                w = proj * moments[k][None, None, :]  # (Q, F, L)
                cols.append(np.einsum("lmtq,qfl->mtfq", excited, w))
            del excited, parts
            if hole:
                cols.append(-np.einsum("mtq,qf->mtfq", dS0[g_idx], proj[:, :, 0]))
            cache["basis"], cache["basis_key"] = np.concatenate(cols).reshape(-1, time.size, F * Q), key
        return cache["basis"]

    inv_sigma = (1.0 / sig).transpose(1, 0, 2).reshape(T_d, F * Q)
    d_flat = data.transpose(1, 0, 2).reshape(T_d, F * Q)
    d_w = (d_flat * inv_sigma).ravel()
    wq = 1.0 / np.median(sig.transpose(1, 0, 2).reshape(T_d, F * Q), axis=0)
    n_c = M_e * K_al + M_g
    equality = np.concatenate([np.ones(M_e * K_al), -np.ones(M_g)]) if hole else None
    upper = np.concatenate([np.full(M_e * K_al, np.inf), np.full(M_g, 1.0 / max(M_g, 1))]) if hole else None
    linear_kinds = [k for k in kinds if k != "qscale"]

    def build(s: float, temp: float | None, t0: float, irf: float) -> tuple[_Solver, np.ndarray, np.ndarray | None, list]:
        B = columns(s, temp)
        key = (cache["basis_key"], tuple(wq[:3]), float(rank_tol), float(ground_state))
        if cache.get("red_key") != key:
            cache["red"], cache["red_key"] = (_Reduced(B, wq, rank_tol), _ground_rows(B, wq, float(ground_state), rank_tol)), key
        red, ground = cache["red"]
        Kop = irf_operator(time, delays, t0=t0, irf_fs=irf)
        nv, labels = _nuisance_vectors(linear_kinds, Kop.sum(axis=1), q, orders, data[0])
        nuis_w = None if nv is None else (nv.reshape(len(nv), T_d, F * Q) * inv_sigma).reshape(len(nv), -1)
        return _Solver(red, Kop, inv_sigma, nuis_w, ground, equality, upper), Kop, nv, labels

    def chi2_at(s: float, temp: float | None, t0: float, irf: float) -> float:
        return build(s, temp, t0, irf)[0].solve(d_w)[1]

    s_values = [float(v) for v in qscale_grid] if "qscale" in kinds else [1.0]
    if rotation is None:
        temps: list[float | None] = [None]
    else:
        temps = [float(v) for v in np.atleast_1d(np.asarray(rotation, dtype=float))]
        if any(not (math.isfinite(v) and v > 0) for v in temps if v is not None):
            raise InputError(f"The 'rotation' parameter must be temperatures > 0 K; got {rotation!r}")
    temp = temps[len(temps) // 2]
    t0_lo, t0_hi = (float(v) for v in t0_range)
    irf_lo, irf_hi = (float(v) for v in irf_range)
    t0s = np.linspace(t0_lo, t0_hi, max(int(grid[0]), 1)) if t0_hi > t0_lo else np.array([t0_lo])
    irfs = np.geomspace(irf_lo, irf_hi, max(int(grid[1]), 1)) if irf_hi > irf_lo else np.array([irf_lo])
    best = min(((chi2_at(1.0, temp, a, b), a, b) for a in t0s for b in irfs), key=lambda x: x[0])
    t0, irf = best[1], best[2]
    free = [t0_hi > t0_lo, irf_hi > irf_lo]
    if any(free):
        lo = np.array([t0_lo, irf_lo])[free]
        hi = np.array([t0_hi, irf_hi])[free]

        def f(x: np.ndarray) -> float:
            th = np.array([t0, irf])
            th[free] = np.clip(x, lo, hi)
            return chi2_at(1.0, temp, th[0], th[1])

        x0 = np.array([t0, irf])[free]
        step = (hi - lo) / np.maximum(np.array(grid)[free] - 1, 1) / 2
        simplex = np.vstack(
            [x0, *[x0 + np.eye(len(x0))[k] * step[k] * (1 if x0[k] + step[k] <= hi[k] else -1) for k in range(len(x0))]]
        )
        opt = minimize(f, x0, method="Nelder-Mead", options=dict(initial_simplex=simplex, xatol=0.5, fatol=1e-3, maxiter=30))
        th = np.array([t0, irf])
        th[free] = np.clip(opt.x, lo, hi)
        t0, irf = float(th[0]), float(th[1])
    if len(temps) > 1:
        temp = min(temps, key=lambda v: chi2_at(1.0, v, t0, irf))
    # q is scaled only with the "qscale" term (s_values = [1.0] without it); a grid of one value holds s there
    s_best = _best_scale(s_values, lambda s: chi2_at(s, temp, t0, irf)) if len(s_values) > 1 else s_values[0]
    solver, Kop, nv, labels = build(s_best, temp, t0, irf)
    x, chi2 = solver.solve(d_w)
    c = x[:n_c]
    u = x[n_c : n_c + solver.n_nu] - x[n_c + solver.n_nu :] if solver.n_nu else np.zeros(0)
    B = columns(s_best, temp)
    model = (Kop @ np.tensordot(c, B, axes=(0, 0))).reshape(T_d, F, Q)
    if nv is not None:
        model = model + np.tensordot(u, nv, axes=(0, 0))
    model = model.transpose(1, 0, 2)
    res = (data - model) / sig
    chi2_by = {m: float(np.sum(res[f] ** 2)) for f, m in enumerate(orders)}
    chi2 = float(sum(chi2_by.values()))
    N = int(data.size)
    tiny = 1e-12 * max(float(np.abs(x).max(initial=0.0)), 1e-300)
    k_par = int(np.count_nonzero(np.abs(c) > tiny)) + int(np.count_nonzero(np.abs(u) > tiny)) + sum(free)
    k_par += int("qscale" in kinds) - int(hole) + int(len(temps) > 1)
    gamma = float(c[: M_e * K_al].sum())
    reduced = chi2 / max(N - k_par, 1)

    # ------------------------------------------------ per channel, with a bootstrap at fixed (t0, IRF, s)
    members = [ens, *fams.values()]
    picks = [e_idx, *(np.arange(f.n_trajectories) for f in fams.values())]
    sv = [_speeds(e) for e in members]
    v_e = np.concatenate([a[0][i] for a, i in zip(sv, picks, strict=True)])
    mu_e = np.concatenate([a[1][i] for a, i in zip(sv, picks, strict=True)])
    diss_e = np.concatenate([np.asarray(e.dissociated, dtype=bool)[i] for e, i in zip(members, picks, strict=True)])
    R = pair_distances(ens.positions)
    R_e = np.concatenate([pair_distances(e.positions)[i] for e, i in zip(members, picks, strict=True)])
    groups = [(k, fi) for fi in range(len(names)) for k in range(K_al)]  # channels: family × alignment

    def periods(cc: np.ndarray) -> np.ndarray:
        """The bound members' period of each channel, then the hole's (NaN where none)."""
        W = cc[: M_e * K_al].reshape(K_al, M_e)
        out = []
        for k, fi in groups:
            sl = slice(bounds[fi], bounds[fi + 1])
            wb = W[k, sl] * ~diss_e[sl]
            p = None
            if wb.sum() > 1e-6 * max(W[k, sl].sum(), 1e-300):
                p = _period(np.nansum(wb[:, None] * R_e[sl, :, 0], axis=0) / wb.sum(), time)
            out.append(np.nan if p is None else p)
        h = cc[M_e * K_al : n_c]
        p = _period((h[:, None] * R[g_idx, :, 0]).sum(axis=0), time) if hole and h.sum() > 0 else None
        return np.array([*out, np.nan if p is None else p])

    def summarise(cc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        W = cc[: M_e * K_al].reshape(K_al, M_e)
        g = max(float(W.sum()), 1e-300)
        pops, speeds = [], []
        for k, fi in groups:
            w = W[k, bounds[fi] : bounds[fi + 1]]
            dd = diss_e[bounds[fi] : bounds[fi + 1]]
            pops.append(float(w.sum()) / g)
            speeds.append(float((w * dd * v_e[bounds[fi] : bounds[fi + 1]]).sum() / max((w * dd).sum(), 1e-300)))
        return np.array(pops), np.array(speeds)

    pops, speeds = summarise(c)
    own = periods(c)  # the fit's own periods (channels, then the hole)
    boot_p, boot_v, boot_T = [], [], []
    if bootstrap and gamma > 0:
        rng = np.random.default_rng(seed)
        birge = math.sqrt(max(reduced, 1.0))
        model_w = (model / sig).transpose(1, 0, 2).ravel()
        for _ in range(int(bootstrap)):
            xb, _ = solver.solve(model_w + birge * rng.standard_normal(model_w.size))
            pb, vb = summarise(xb[:n_c])
            boot_p.append(pb)
            boot_v.append(vb)
            boot_T.append(periods(xb[:n_c]))
    p_std = np.std(boot_p, axis=0, ddof=1) if len(boot_p) > 1 else np.zeros(len(groups))
    v_std = np.std(boot_v, axis=0, ddof=1) if len(boot_v) > 1 else np.zeros(len(groups))
    T_std = np.full(len(groups) + 1, np.nan)
    if len(boot_T) > 1:
        bt = np.array(boot_T)
        enough = np.isfinite(bt).sum(axis=0) > 1  # a σ only from replicates that had the channel bound
        with np.errstate(invalid="ignore"):
            T_std[enough] = np.nanstd(bt[:, enough], axis=0, ddof=1)
    W = c[: M_e * K_al].reshape(K_al, M_e)
    channels = []
    for n, (k, fi) in enumerate(groups):
        al, sl = aligns[k], slice(bounds[fi], bounds[fi + 1])
        wk = W[k, sl]
        wd = wk * diss_e[sl]
        spread = float(np.sqrt((wd * (v_e[sl] - speeds[n]) ** 2).sum() / max(wd.sum(), 1e-300))) if wd.sum() > 0 else float("nan")
        mu_k = float((wd * mu_e[sl]).sum() / max(wd.sum(), 1e-300)) if wd.sum() > 0 else float("nan")
        period = None if np.isnan(own[n]) else float(own[n])
        channels.append(
            Channel(
                name=al.name if not fams else f"{names[fi]}:{al.name}",
                photons=al.photons,
                transition=al.transition,
                a2=float(al.moments((2,))[0]),
                family=names[fi],
                population=float(pops[n]),
                population_std=float(p_std[n]),
                dissociated=float(wd.sum() / max(wk.sum(), 1e-300)),
                speed=float(speeds[n]) if wd.sum() > 0 else float("nan"),
                speed_std=float(v_std[n]),
                speed_spread=spread,
                energy_ev=0.5 * mu_k * float(speeds[n]) ** 2 * AMU_A2_FS2_EV if wd.sum() > 0 else float("nan"),
                period_fs=period,
                period_std=float(T_std[n]) if period is not None else float("nan"),
            )
        )
    hole_gamma = float(c[M_e * K_al :].sum()) if hole else 0.0
    hole_period = None if np.isnan(own[-1]) else float(own[-1])
    coeffs: dict[str, np.ndarray] = {}
    for kind in linear_kinds:
        sel = [i for i, (kk, _) in enumerate(labels) if kk == kind]
        coeffs[kind] = u[sel]
    return ChannelFit(
        orders=orders,
        alignments=aligns,
        families=names,
        nuisance=kinds,
        projection=projection,
        sigma_source=sigma,
        chi2=chi2,
        chi2_by_order=chi2_by,
        n_data=N,
        n_data_by_order={m: int(data[f].size) for f, m in enumerate(orders)},
        n_params=k_par,
        reduced_chi2=reduced,
        bic=chi2 + k_par * math.log(N),
        aic=chi2 + 2 * k_par,
        gamma=gamma,
        t0=t0,
        irf_fs=irf,
        qscale=float(s_best),
        rotation_temperature=temp,
        channels=channels,
        hole_gamma=hole_gamma,
        hole_period_fs=hole_period,
        hole_period_std=float(T_std[-1]) if hole_period is not None else float("nan"),
        weights=(W / max(gamma, 1e-300)).T.copy(),
        nuisance_coefficients=coeffs,
        q=q,
        delays=delays,
        data=data,
        sigma=sig,
        model=model,
    )
