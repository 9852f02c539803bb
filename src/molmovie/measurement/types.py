"""What a measurement is: ΔS(q, t) on the experiment's q and delay grids, with σ and provenance.

:class:`Measurement` (and, for simulated experiments, the :class:`Truth`
behind it) are plain, validated, frozen containers, like
:class:`molmovie.datasets.Dataset` for trajectories. Their file format lives in
:mod:`molmovie.io.measurement`; the measurement model that makes them from
trajectories beside them in :mod:`molmovie.measurement`; the methods that
explain them in :mod:`molmovie.fitting`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .._errors import InputError
from .._typing import Symbols
from ..molecules import formula, normalise_symbols
from ..scattering.electrons import check_probe

__all__ = ["Truth", "Measurement", "LegendreComponent", "check_molecule"]


def _array(value: ArrayLike, name: str, ndim: int, *, dtype: DTypeLike = float) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be numbers") from None
    if arr.ndim != ndim:
        raise InputError(f"{name} must have {ndim} dimension(s); got shape {arr.shape}")
    return arr


def _finite(arr: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise InputError(f"{name} holds a non-finite value (NaN or inf) at index {tuple(int(i) for i in bad)}")


#: Largest |ΔS| and σ a measurement may hold, as a fraction of the ground-state signal (10^5 %):
#: beyond it the file's units are wrong (counts read as a fraction), and the fits' squares overflow.
MAX_SIGNAL = 1e3
#: Smallest σ > 0 a measurement may hold, as a fraction (10^-10 %): no detector counts the 10^24
#: photons per bin a smaller one means, and 1/σ² beyond it overflows the fits.
SIGMA_FLOOR = 1e-12


def _bounded(arr: np.ndarray, name: str, high: float) -> None:
    if arr.size and float(np.max(np.abs(arr))) > high:
        raise InputError(
            f"{name} reaches {float(np.max(np.abs(arr))):.3g}, beyond the bound of {high:g} (a fraction of the ground-state "
            "signal); check the file's units (--signal-units, counts are not a fraction)"
        )


def _increasing(arr: np.ndarray, name: str) -> None:
    if arr.size and np.any(np.diff(arr) <= 0):
        i = int(np.flatnonzero(np.diff(arr) <= 0)[0])
        raise InputError(f"{name} must be strictly increasing; got {arr[i]:g} then {arr[i + 1]:g} at index {i + 1}")


@dataclass(frozen=True)
class Truth:
    """What a simulated experiment was made from (stored only by ``simulate-experiment``).

    Attributes
    ----------
    weights : ndarray, shape (M,)
        Non-negative weights over the basis trajectories used; they sum to 1.
    trajectories : ndarray of int, shape (M,)
        Indices of those trajectories in the source dataset.
    gamma : float
        Excitation fraction, 0 < gamma <= 1.
    t0 : float
        Time zero, fs.
    irf_fs : float
        FWHM of the Gaussian instrument response, fs (0: none).
    photons : float or None
        Expected photons per q bin of the laser-off pattern; None: no noise.
    pair_labels : tuple of str, length P
        Atom pairs in ``numpy.triu_indices(n, 1)`` order, e.g. ``("I1-I2",)``.
    quantile_levels : ndarray, shape (K,)
        Levels of ``distance_quantiles``, strictly increasing in [0, 1].
    distance_mean, distance_std : ndarray, shape (T, P), Angstrom
        Weighted mean and standard deviation over the excited ensemble of each
        distance at ``delays - t0`` (clipped to the basis time span; the first
        frame before time zero); the IRF is not applied.
    distance_quantiles : ndarray, shape (T, P, K), Angstrom
    dissociated_fraction : ndarray, shape (T,)
        Weighted fraction of trajectories dissociated by each delay, in [0, 1].
    dS_clean : ndarray, shape (T, Q), fraction
        The noise-free ΔS of the model.
    """

    weights: np.ndarray
    trajectories: np.ndarray
    gamma: float
    t0: float
    irf_fs: float
    photons: float | None
    pair_labels: tuple[str, ...]
    quantile_levels: np.ndarray
    distance_mean: np.ndarray
    distance_std: np.ndarray
    distance_quantiles: np.ndarray
    dissociated_fraction: np.ndarray
    dS_clean: np.ndarray

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        w = _array(self.weights, "truth weights", 1)
        _finite(w, "truth weights")
        if w.size == 0 or np.any(w < 0) or abs(w.sum() - 1.0) > 1e-6:
            raise InputError(f"truth weights must be non-negative and sum to 1; got sum {w.sum():g} over {w.size}")
        tr = _array(self.trajectories, "truth trajectories", 1, dtype=np.float64)
        if tr.shape != w.shape or np.any(tr != np.round(tr)) or np.any(tr < 0):
            raise InputError(f"truth trajectories must be {w.size} non-negative whole indices; got {tr!r}")
        set_(self, "weights", w)
        set_(self, "trajectories", tr.astype(np.int64))
        for name in ("gamma", "t0", "irf_fs"):
            try:
                v = float(getattr(self, name))
            except (TypeError, ValueError):
                raise InputError(f"truth {name} must be a number; got {getattr(self, name)!r}") from None
            if not np.isfinite(v):
                raise InputError(f"truth {name} must be finite; got {v}")
            set_(self, name, v)
        if not 0 < self.gamma <= 1:
            raise InputError(f"truth gamma must be in (0, 1]; got {self.gamma:g}")
        if self.irf_fs < 0:
            raise InputError(f"truth irf_fs must be >= 0; got {self.irf_fs:g}")
        if self.photons is not None:
            p = float(self.photons)
            if not (np.isfinite(p) and p > 0):
                raise InputError(f"truth photons must be > 0 or None; got {self.photons!r}")
            set_(self, "photons", p)
        set_(self, "pair_labels", tuple(str(s) for s in self.pair_labels))
        levels = _array(self.quantile_levels, "truth quantile_levels", 1)
        _finite(levels, "truth quantile_levels")
        _increasing(levels, "truth quantile_levels")
        if np.any((levels < 0) | (levels > 1)):
            raise InputError("truth quantile_levels must lie in [0, 1]")
        set_(self, "quantile_levels", levels)
        P, K = len(self.pair_labels), levels.size
        mean = _array(self.distance_mean, "truth distance_mean", 2)
        T = mean.shape[0]
        for name, shape in (("distance_mean", (T, P)), ("distance_std", (T, P)), ("distance_quantiles", (T, P, K))):
            arr = _array(getattr(self, name), f"truth {name}", len(shape))
            if arr.shape != shape:
                raise InputError(
                    f"truth {name} must have shape {shape} (delays, pairs{', levels' if K and len(shape) == 3 else ''}); got {arr.shape}"
                )
            _finite(arr, f"truth {name}")
            set_(self, name, arr)
        if np.any(self.distance_std < 0):
            raise InputError("truth distance_std must be >= 0")
        frac = _array(self.dissociated_fraction, "truth dissociated_fraction", 1)
        if frac.shape != (T,) or not np.all((frac >= 0) & (frac <= 1)):
            raise InputError(f"truth dissociated_fraction must be {T} values in [0, 1]")
        set_(self, "dissociated_fraction", frac)
        clean = _array(self.dS_clean, "truth dS_clean", 2)
        if clean.shape[0] != T:
            raise InputError(f"truth dS_clean must have {T} rows (one per delay); got shape {clean.shape}")
        _finite(clean, "truth dS_clean")
        set_(self, "dS_clean", clean)


@dataclass(frozen=True)
class LegendreComponent:
    r"""One anisotropic Legendre order of a measurement: ΔS_l(q, t) with its σ.

    ΔS_l = (S_l(t) − S̄_l) / S̄_0, the change of the l-th component against the
    reference, normalised by the reference's isotropic component (so it is on
    the scale of ΔS = ΔS_0). What "the l-th component" means (the
    polynomials and the angle they were projected on) is the beamline file's;
    :mod:`molmovie.scattering.anisotropy` says what the LCLS I2 file used.

    Attributes
    ----------
    order : int
        l, even and > 0.
    dS : ndarray, shape (T, Q), fraction
    sigma : ndarray, shape (T, Q), fraction, or None
    """

    order: int
    dS: np.ndarray
    sigma: np.ndarray | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        try:
            order = int(self.order)
        except (TypeError, ValueError):
            raise InputError(f"a Legendre component's order must be a whole number; got {self.order!r}") from None
        if order != self.order or order <= 0 or order % 2:
            raise InputError(f"a Legendre component's order must be even and > 0 (order 0 is dS itself); got {self.order!r}")
        set_(self, "order", order)
        dS = _array(self.dS, f"dS of order {order}", 2)
        _finite(dS, f"dS of order {order}")
        _bounded(dS, f"dS of order {order}", MAX_SIGNAL)
        set_(self, "dS", dS)
        if self.sigma is not None:
            sigma = _array(self.sigma, f"sigma of order {order}", 2)
            if sigma.shape != dS.shape:
                raise InputError(f"sigma of order {order} must have the shape of its dS {dS.shape}; got {sigma.shape}")
            _finite(sigma, f"sigma of order {order}")
            if np.any(sigma < 0):
                raise InputError(f"sigma of order {order} must be >= 0; got {sigma.min():g}")
            _bounded(sigma, f"sigma of order {order}", MAX_SIGNAL)
            set_(self, "sigma", sigma)


@dataclass(frozen=True)
class Measurement:
    """A time-resolved difference signal ΔS(q, t), measured or simulated.

    The constructor validates and converts its arguments (an
    :class:`InputError` says what is wrong).

    Attributes
    ----------
    q : ndarray, shape (Q,), 1/Angstrom
        Strictly increasing, non-negative.
    delays : ndarray, shape (T,), fs
        Pump-probe delays relative to time zero, strictly increasing.
    dS : ndarray, shape (T, Q), fraction
        ΔS = (I - I_ref) / I_ref; finite.
    sigma : ndarray, shape (T, Q), fraction, or None
        One standard deviation of ``dS``; finite and non-negative.
    symbols : tuple of str or None
        Element symbols of the molecule (canonical case), e.g. ``("I", "I")``.
    molecule : str or None
        Its name, e.g. ``"I2"``.
    provenance : dict
        JSON-able: ``source``, ``reference`` ("pre-t0 mean of N delays",
        "laser-off file X", "given"), ``q_range``, ``units_read``,
        ``t0_shift_fs``, ``legendre``, ``made_by`` ("ingest",
        "simulate-experiment"), ...
    truth : Truth or None
        Only for simulated experiments; its arrays are on ``delays`` (and
        ``dS_clean`` on ``q``).
    probe : {"xray", "electron"}, default "xray"
        What scattered; for electrons ``q`` is s (same definition) and ``dS``
        is ΔI/I (ΔsM = s ΔI/I_at; :mod:`molmovie.scattering.electrons`).
    energy_kev : float or None
        The electron beam's kinetic energy, keV (3700 by default for
        electrons); None for X-rays.
    components : tuple of LegendreComponent, default ()
        Anisotropic Legendre orders l > 0 on the same grids (``dS`` is order
        0, or the angle average); none for an isotropic measurement.
    """

    q: np.ndarray
    delays: np.ndarray
    dS: np.ndarray
    sigma: np.ndarray | None
    symbols: tuple[str, ...] | None
    molecule: str | None
    provenance: dict
    truth: Truth | None = None
    probe: str = "xray"
    energy_kev: float | None = None
    components: tuple[LegendreComponent, ...] = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        probe, energy_kev = check_probe(self.probe, self.energy_kev)
        set_(self, "probe", probe)
        set_(self, "energy_kev", energy_kev)
        q = _array(self.q, "q", 1)
        if q.size == 0:
            raise InputError("q is empty")
        _finite(q, "q")
        _increasing(q, "q")
        if q[0] < 0:
            raise InputError(f"q must be >= 0 1/Angstrom; got {q[0]:g}")
        delays = _array(self.delays, "delays", 1)
        if delays.size == 0:
            raise InputError("delays is empty")
        _finite(delays, "delays")
        _increasing(delays, "delays")
        shape = (delays.size, q.size)
        dS = _array(self.dS, "dS", 2)
        if dS.shape != shape:
            raise InputError(f"dS must have shape (delays, q) = {shape}; got {dS.shape}")
        _finite(dS, "dS")
        _bounded(dS, "dS", MAX_SIGNAL)
        set_(self, "q", q)
        set_(self, "delays", delays)
        set_(self, "dS", dS)
        if self.sigma is not None:
            sigma = _array(self.sigma, "sigma", 2)
            if sigma.shape != shape:
                raise InputError(f"sigma must have shape (delays, q) = {shape}; got {sigma.shape}")
            _finite(sigma, "sigma")
            if np.any(sigma < 0):
                raise InputError(f"sigma must be >= 0; got {sigma.min():g}")
            _bounded(sigma, "sigma", MAX_SIGNAL)
            tiny = (sigma > 0) & (sigma < SIGMA_FLOOR)
            if np.any(tiny):
                raise InputError(
                    f"sigma holds {int(tiny.sum())} value(s) > 0 below the floor of {SIGMA_FLOOR:g} (fraction of the "
                    f"ground-state signal; smallest {float(sigma[tiny].min()):.3g}); check the file's units"
                )
            set_(self, "sigma", sigma)
        if self.symbols is not None:
            set_(self, "symbols", normalise_symbols(self.symbols))
        if self.molecule is not None:
            set_(self, "molecule", str(self.molecule))
        if not isinstance(self.provenance, dict):
            raise InputError(f"provenance must be a dict; got {type(self.provenance).__name__}")
        if self.truth is not None:
            if not isinstance(self.truth, Truth):
                raise InputError(f"truth must be a Truth or None; got {type(self.truth).__name__}")
            if self.truth.distance_mean.shape[0] != delays.size or self.truth.dS_clean.shape != shape:
                raise InputError(
                    f"truth arrays must be on the measurement's {delays.size} delays and {q.size} q points; "
                    f"got distance_mean {self.truth.distance_mean.shape}, dS_clean {self.truth.dS_clean.shape}"
                )

        comps = tuple(self.components)
        for c in comps:
            if not isinstance(c, LegendreComponent):
                raise InputError(f"components must be LegendreComponent objects; got {type(c).__name__}")
            if c.dS.shape != shape:
                raise InputError(f"dS of Legendre order {c.order} must have shape (delays, q) = {shape}; got {c.dS.shape}")
        orders = [c.order for c in comps]
        if len(set(orders)) != len(orders) or orders != sorted(orders):
            raise InputError(f"the Legendre components must have distinct orders in increasing order; got {orders}")
        set_(self, "components", comps)

    def component(self, order: int) -> LegendreComponent:
        """The anisotropic component of Legendre order ``order`` (an :class:`InputError` if absent)."""
        for c in self.components:
            if c.order == order:
                return c
        held = ", ".join(str(c.order) for c in self.components) or "none"
        raise InputError(
            f"the measurement has no Legendre order {order} (orders held beside 0: {held}); ingest with --anisotropy"
        )

    def forward(self) -> dict:
        """The probe's forward-model keywords (``probe``, ``energy_kev``) for
        :func:`molmovie.scattering.intensity_from_distances` and the measurement model."""
        return {"probe": self.probe, "energy_kev": self.energy_kev}

    @property
    def n_delays(self) -> int:
        return int(self.delays.size)

    @property
    def n_q(self) -> int:
        return int(self.q.size)


# --------------------------------------------------------------------------- writing


def check_molecule(meas: Measurement, symbols: Symbols, *, what: str = "the dataset") -> None:
    """Refuse a dataset (or model) of another molecule than the measurement's.

    The composition is compared (atom order does not change ΔS). A
    measurement without symbols cannot be checked and passes.

    Parameters
    ----------
    meas : Measurement
    symbols : sequence of str
        Element symbols of the dataset's molecule.
    what : str
        How the message names the other side, e.g. ``"dataset cs2.h5"``.

    Raises
    ------
    InputError
        If the compositions differ.
    """
    if meas.symbols is None:
        return
    theirs = normalise_symbols(symbols)
    if Counter(theirs) != Counter(meas.symbols):
        ours = formula(meas.symbols)
        name = f"{meas.molecule} ({ours})" if meas.molecule and meas.molecule != ours else ours
        raise InputError(
            f"the measurement is of {name} but {what} holds {formula(theirs)}; use a dataset of the measured molecule"
        )
