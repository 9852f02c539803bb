r"""Trajectory-basis fit of a measurement: weights, excitation fraction, time zero and IRF.

The model is the measurement model of :mod:`molmovie.measurement`
(Acheson and Kirrander, *J. Chem. Theory Comput.* (2023), arXiv:2211.04766;
Ware et al., *Phil. Trans. R. Soc. A* 377, 20170477 (2019)):

.. math::

    \Delta S_\mathrm{model}(q, t_d) = \sum_i c_i \,[\Delta S_i \otimes G_\mathrm{IRF}](q, t_d - t_0),
    \qquad c_i = \gamma w_i \ge 0, \quad \gamma = \sum_i c_i ,

with ΔS_i each basis trajectory's signal against the laser-off reference
(recomputed on the measurement's q from the trajectories' positions by the
measurement's probe: Eq. (1) with the inelastic term for X-rays, the electron
I(s) at its beam energy for electrons, whose ΔS is ΔI/I; a fit of ΔsM =
s ΔI/I · I_gs/I_at with its σ scaled alike has the same χ²), G a Gaussian of FWHM ``irf_fs``. For fixed t0 and
IRF the problem is linear in c and is solved exactly by non-negative least
squares (scipy.optimize.nnls) of

.. math::

    \chi^2(c; t_0, \mathrm{IRF}) = \sum_{d,q} \left(\frac{\Delta S_{dq} - \Delta S^\mathrm{model}_{dq}}{\sigma_{dq}}\right)^2 .

What the basis must cover. Its trajectories' signals are recomputed on the
measurement's q from their positions (stored signals, on whatever grid, are
not used), so any q range works and a basis without signals is fine; its
atoms must be the measurement's (composition; an InputError otherwise). What
it must cover is time: every delay − t0, for the earliest t0 searched, must
lie within the trajectories' time span (an InputError says how long they
are). A trajectory shorter than the span holds its last valid frame.

How it is made fast. The basis (M trajectories × T frames × Q) is first
weighted per q by 1/σ̃_q (σ̃ the median σ over delays) and reduced by its
singular value decomposition to the r components whose singular values exceed
``rank_tol`` times the largest: ΔS_i ≈ Σ_k C_ik Z_k. The IRF acts on time only,
so for each (t0, IRF) only the r components are convolved and weighted, and a
Gram factorisation turns the N = T_d·Q rows into r: each NNLS is r × M. The
final model and χ² are computed from the full basis, not the reduction.

The Franck-Condon condition. A vertical excitation leaves the geometry as it
was, so the excited ensemble starts from the ground-state distribution and
its IAM signal at the moment of excitation is zero: Σ_i c_i ΔS_i(q, τ=0) = 0.
Nothing in the data before time zero says so (the model is 0 there whatever
the weights), so without it the fit may pick trajectories for their initial
geometries. It is added as pseudo-data (rows of weight ``ground_state``, in
units of one delay at the median σ; compressed by an SVD); χ² reports the
data alone.

Time zero and the IRF width are searched outside the NNLS: a grid over the
given ranges (t0 uniform, IRF log-uniform), then a bounded Nelder-Mead
minimisation of χ²(t0, IRF) from the best grid point. An optimum at the edge of
a range, a failed minimisation, γ = 0 or γ > 1 (an excitation fraction is at most 1) is reported as not converged.

Optional regularisation toward uniform weights adds μ² ‖(I − 11ᵀ/M) c‖² (it
pulls the weights together without changing γ); μ is chosen by the
discrepancy principle (χ² = number of data, Morozov; or, when the basis
cannot reach that, χ² one standard deviation √(2N) above the best fit) or given.

The ground-state hole (``hole=True``). A strong pump removes molecules from
the ground state with a probability that depends on their bond lengths, so
the molecules left behind no longer have the laser-off distribution: the
difference carries a depletion "hole" that vibrates at the ground state's
frequency (Glownia et al., *Phys. Rev. Lett.* 117, 153003 (2016); Ware et
al. 2019). With ground-state (laser-off) trajectories j of intensity
I^gs_j(q, τ) and excited ones i,

.. math::

    \Delta S(q, t_d) = \Big[\frac{\sum_i c_i I_i - \sum_j h_j I^\mathrm{gs}_j}{I_\mathrm{gs}}
        \otimes G_\mathrm{IRF}\Big](q, t_d - t_0)
      = \sum_i c_i [\Delta S_i \otimes G] - \sum_j h_j [\Delta S^\mathrm{gs}_j \otimes G],
    \qquad c_i \ge 0, \; h_j \ge 0, \; \sum_j h_j = \sum_i c_i = \gamma ,

where the second form uses the equality (the excited molecules are exactly
those that left the ground state: the I_gs terms cancel). h_j / γ is the
distribution of the removed molecules over the ground-state samples, so
M_g h_j / γ against R_j(τ=0) is the excitation's R-dependence (uniform h: no
hole, and the hole term vanishes on average); M_g h_j is the probability that
sample j was removed, so 0 <= h_j <= 1/M_g (imposed: the NNLS becomes a
bounded-variable least squares, scipy.optimize.lsq_linear "bvls"). The
ground-state sub-basis is the basis's own trajectories that start from a
ground-state sample (``ground_start`` in the generator's records), stay bound
and run on a model without an excited surface (the generator's ``wigner``
family on a ground-state calculator); they leave the excited basis (a
trajectory in both would cancel itself and make γ free). For the same reason
a basis on a ground-state model may not hold displaced starts with the hole:
a displaced X-state vibration minus a ground-state sample is a redistribution
within the ground state (impulsive Raman), the same signal as a hole at any
γ; the hole and the displaced family are two descriptions of the X-state
vibration, and the fit takes one of them. The equality is
imposed as a pseudo-row ω (Σ c − Σ h) = 0 of weight ω = 10⁴ × the largest
column norm of the system (Lawson and Hanson, *Solving Least Squares
Problems*, ch. 22: the weighting method); it then holds to ~1e-8 relative.
The Franck-Condon rows apply to the whole model at τ = 0, excited minus hole.

Honest bands when the basis cannot express the data (``birge=True``): when
the reduced χ² of the fit exceeds 1, the bootstrap noise is σ √χ²_red
instead of σ (the Birge ratio R_B = √χ²_red; Birge, *Phys. Rev.* 40, 207
(1932)), so every spread grows by about R_B; R_B is reported (1 when χ²_red
<= 1: the noise is then not shrunk).

Uncertainties: a parametric bootstrap. Each replicate is the fitted model plus
Gaussian noise of the measurement's σ; it is refitted with the NNLS at the
fitted (t0, IRF) (the reduced system is reused), then t0 and the IRF are moved
by Newton steps on the profile χ² (gradient from the replicate's residual, by
the envelope theorem; Hessian of the main fit, by finite differences), with a
fresh NNLS after each step. By default each replicate also resamples the basis
trajectories with replacement (a bootstrap over the basis members: the
columns of the reduced system are resampled, so nothing is recomputed), so the
spread includes the dependence on which trajectories the basis happens to
hold, not only the noise.

The bootstrap alone understates the spread along the fit's near-degenerate
direction: a smaller excitation fraction with larger amplitudes (or more
dissociation) gives nearly the same ΔS, and an NNLS solution sits on the
boundary of c >= 0 (weights at exactly zero), where replicates of the data
return to the same corner: the bootstrap of a parameter on a boundary is not
consistent (Andrews, *Econometrica* 68, 399 (2000)). So the fit also traces
the profile likelihood of γ (``profile`` points): the NNLS with Σ c = γ_k
imposed (a pseudo-row, as the hole's equality), χ²_k(γ_k) at the fitted (t0,
IRF), over a range that reaches Δχ² = 9 R_B² on both sides. With the profile
likelihood as the distribution of γ, p_k ∝ exp(−Δχ²_k / 2R_B²) Δγ_k, the
variance of every quantity x is the law of total variance,

.. math::

    \operatorname{Var} x = \operatorname{Var}_\mathrm{bootstrap} x
        + \sum_k p_k \big(x(\gamma_k) - \bar x\big)^2 ,

the first term the bootstrap's (noise and basis, at the fitted γ), the second
the spread of the profile solutions. The spread reported (standard deviation)
is the square root, for γ, the weights and every derived quantity; t0 and the
IRF keep the bootstrap's (their profile is not traced). On the synthetic
experiments of ``benchmarks/coverage_ensemble.py`` the bootstrap alone gave
±2σ bands holding the truth at >= 90 % of delays in 5/8 noise seeds for the
ensemble's mean distance; with the profile term, 8/8.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .._ranges import parse_range
from .._typing import Progress
from ..datasets import Dataset
from ..geometry import distances, pair_labels as _pair_labels
from ..inversion._base import check_number
from ..io.fit import EnsemblePart, FitResult
from ..measurement import (
    DEFAULT_LEVELS,
    Measurement,
    basis_signals,
    check_molecule,
    ground_start_flags,
    hold_last_frame,
    irf_operator,
)
from ..trajectories import Ensemble
from ._base import MeasurementMethod, measurement_sigma
from ._ensemble_stats import _Stats, _with_ground
from ._ensemble_system import _discrepancy_mu, _gradient, _ground_rows, _local_model, _Reduced, _regularised_solve, _System
from ._ensemble_uncertainty import _profile_gamma, _profile_weights, _spreads, _weighted_var

__all__ = ["EnsembleFit"]

CHANNELS = ("bound", "dissociated")
#: Channels with the ground-state hole: fractions of all molecules (γ f_bound, γ f_dissociated, 1 − γ).
HOLE_CHANNELS = ("bound", "dissociated", "ground")


def _pair(name: str, value: Any) -> tuple[float, float]:
    lo, hi = parse_range(value, f"The {name!r} setting", "fs")
    return lo, hi


class EnsembleFit(MeasurementMethod):
    """Fit a measurement with a weighted ensemble of basis trajectories (c = γ w ≥ 0, t0, IRF).

    Parameters
    ----------
    t0_range : (float, float), fs
        Range searched for time zero.
    irf_range : (float, float), fs
        Range searched for the IRF's FWHM (> 0).
    grid : (int, int)
        Points of the coarse grid over t0 and the IRF.
    bootstrap : int
        Parametric bootstrap replicates (0: none).
    bootstrap_steps : int
        Newton steps on (t0, IRF) per replicate (0: t0 and IRF fixed).
    seed : int
        Seed of the bootstrap noise.
    resample_basis : bool
        Also resample the basis trajectories (with replacement) in each bootstrap replicate, so the
        spreads include how much the answer depends on which trajectories the basis happens to hold.
    ground_state : float
        Weight of the Franck-Condon condition Σ_i c_i ΔS_i(τ = 0) ≈ 0 (the excited molecules start from
        the ground-state geometries), in units of one delay's data at the median σ; 0: off.
    regularize : "none", "discrepancy" or float
        Pull toward uniform weights: off, μ by the discrepancy principle, or μ itself (not with ``hole``).
    hole : bool
        Model the ground-state hole: signed ground-state trajectories of the basis (see the module
        docstring), with Σ h = Σ c = γ.
    birge : bool
        Scale the bootstrap noise by the Birge ratio √χ²_red when χ²_red > 1.
    profile : int
        Points on the profile likelihood of γ, whose spread is added to the bootstrap's (see the module
        docstring); 0: the bootstrap's spreads only. Not with a ``regularize`` pull.
    rank_tol : float
        Relative singular value below which basis components are dropped.
    levels : sequence of float
        Quantile levels of the distance distributions.
    sigma : {"measured", "pre-t0"}
        The measurement's σ, or σ estimated from the scatter before time zero.
    """

    name = "ensemble"
    needs_basis = True

    def __init__(
        self,
        *,
        t0_range: tuple[float, float] = (-150.0, 150.0),
        irf_range: tuple[float, float] = (10.0, 300.0),
        grid: tuple[int, int] = (9, 5),
        bootstrap: int = 100,
        bootstrap_steps: int = 2,
        seed: int = 0,
        resample_basis: bool = True,
        ground_state: float = 1.0,
        regularize: str | float = "none",
        hole: bool = False,
        birge: bool = True,
        profile: int = 21,
        rank_tol: float = 1e-6,
        levels: Sequence[float] = DEFAULT_LEVELS,
        sigma: str = "measured",
    ) -> None:
        self.t0_range = t0_range
        self.irf_range = irf_range
        self.grid = grid
        self.bootstrap = bootstrap
        self.bootstrap_steps = bootstrap_steps
        self.seed = seed
        self.resample_basis = resample_basis
        self.ground_state = ground_state
        self.regularize = regularize
        self.hole = hole
        self.birge = birge
        self.profile = profile
        self.rank_tol = rank_tol
        self.levels = levels
        self.sigma = sigma

    def check_settings(self) -> list[str]:
        """Validate the settings (see :meth:`MeasurementMethod.check_settings`); no warnings."""
        _pair("t0_range", self.t0_range)
        lo, _hi = _pair("irf_range", self.irf_range)
        if lo <= 0:
            raise InputError(f"The 'irf_range' setting must be > 0 fs (the FWHM of a Gaussian); got {self.irf_range!r}")
        try:
            n_t0, n_irf = (int(v) for v in self.grid)
        except (TypeError, ValueError):
            raise InputError(f"The 'grid' setting must be two whole numbers; got {self.grid!r}") from None
        if n_t0 < 1 or n_irf < 1 or n_t0 * n_irf > 10000:
            raise InputError(f"The 'grid' setting must be two numbers >= 1 with a product <= 10000; got {self.grid!r}")
        check_number("bootstrap", self.bootstrap, low=0, high=100000, integer=True)
        check_number("bootstrap_steps", self.bootstrap_steps, low=0, high=20, integer=True)
        check_number("seed", self.seed, low=0, integer=True)
        if not isinstance(self.resample_basis, bool):
            raise InputError(f"The 'resample_basis' setting must be true or false; got {self.resample_basis!r}")
        check_number("ground_state", self.ground_state, low=0)
        check_number("profile", self.profile, low=0, high=1000, integer=True)
        for name in ("hole", "birge"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"The {name!r} setting must be true or false; got {getattr(self, name)!r}")
        if self.hole and self.regularize != "none":
            raise InputError(
                f"The 'regularize' setting pulls the weights toward uniform, which the hole's signed sub-basis does not "
                f"share; use regularize='none' with hole=true (got {self.regularize!r})"
            )
        check_number("rank_tol", self.rank_tol, low=0, high=1, low_open=True)
        if isinstance(self.regularize, str):
            if self.regularize not in ("none", "discrepancy"):
                raise InputError(
                    f"The 'regularize' setting must be 'none', 'discrepancy' or a number >= 0; got {self.regularize!r}"
                )
        else:
            check_number("regularize", self.regularize, low=0)
        try:
            lv = np.asarray(self.levels, dtype=float)
        except (TypeError, ValueError):
            raise InputError(f"The 'levels' setting must be increasing numbers in [0, 1]; got {self.levels!r}") from None
        if lv.ndim != 1 or lv.size == 0 or np.any(~np.isfinite(lv)) or np.any((lv < 0) | (lv > 1)) or np.any(np.diff(lv) <= 0):
            raise InputError(f"The 'levels' setting must be increasing numbers in [0, 1]; got {self.levels!r}")
        return []

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _check_basis(meas: Measurement, basis: Dataset | None) -> Dataset:
        """The basis, checked: trajectories with motion, of the measured molecule."""
        if basis is None:
            raise InputError("the ensemble method needs a basis: a dataset of trajectories of the measured molecule (--basis)")
        if not all(hasattr(basis, a) for a in ("positions", "time", "length", "symbols")):
            raise InputError(f"the basis must be a molmovie Dataset; got {type(basis).__name__}")
        if basis.n_trajectories == 0:
            raise InputError("the basis has no trajectories")
        if basis.n_frames < 2:
            raise InputError("the basis trajectories have a single frame; an ensemble fit needs their motion")
        check_molecule(meas, basis.symbols, what="the basis")
        return basis

    # ------------------------------------------------------------------ fit
    def fit(self, measurement: Measurement, basis: Dataset | None = None, progress: Progress | None = None) -> EnsembleFit:
        """Fit ``measurement`` with the trajectories of ``basis``.

        Parameters
        ----------
        measurement : molmovie.io.measurement.Measurement
        basis : molmovie.datasets.Dataset
            Trajectories of the measured molecule (positions are used; stored
            signals are not: ΔS_i is recomputed on the measurement's q).
        progress : callable(done, info), optional
            ``info = {"stage": "basis signals" | "reduce" | "search" | "refine" | "bootstrap", "total": n or None}``.

        Returns
        -------
        self, with ``result_`` (a :class:`molmovie.io.fit.FitResult`),
        ``gamma_``, ``t0_``, ``irf_fs_``, ``weights_``, ``converged_``.
        """
        with np.errstate(under="ignore"):  # products with the IRF's and the Gaussians' far tails
            return self._fit(measurement, basis, progress)

    def _fit(self, measurement: Measurement, basis: Dataset | None, progress: Progress | None) -> EnsembleFit:
        from scipy.optimize import minimize

        meas = self._start_fit(measurement)
        basis = self._check_basis(meas, basis)
        sigma, sigma_source = measurement_sigma(meas, self.sigma)
        t0_lo, t0_hi = _pair("t0_range", self.t0_range)
        irf_lo, irf_hi = _pair("irf_range", self.irf_range)
        time = np.asarray(basis.time, dtype=float)
        span = float(time[-1] - time[0])
        delays, q, dS = meas.delays, meas.q, meas.dS
        if delays[-1] - t0_lo > span + 1e-9:
            raise InputError(
                f"the basis trajectories last {span:g} fs, but the latest delay is {delays[-1] - t0_lo:g} fs after the earliest "
                f"time zero searched ({t0_lo:g} fs); give longer trajectories, a later --t0-range, or drop the late delays"
            )
        T_d, Q = dS.shape
        N = T_d * Q
        report = (lambda done, info: progress(done, info)) if progress is not None else (lambda done, info: None)

        ens = cast(Ensemble, getattr(basis, "ensemble", basis))  # a Dataset's trajectories (or an Ensemble given as the basis)
        if self.hole:
            g_idx, e_idx = _hole_split(ens)
        else:
            g_idx, e_idx = np.zeros(0, dtype=np.int64), np.arange(ens.n_trajectories)
        # the measurement's probe picks the forward model (X-rays, Eq. (1); or electrons at its beam energy)
        dS_basis, _I_gs = basis_signals(
            basis, q, progress=lambda done, info: report(done, {"stage": "basis signals", **info}), **meas.forward()
        )
        B, _ = hold_last_frame(dS_basis)
        if self.hole:  # columns: the excited trajectories, then the ground-state ones with the sign of a hole
            B = np.concatenate([B[e_idx], -B[g_idx]])
        M_e, M_g = e_idx.size, g_idx.size
        M: int = B.shape[0]
        equality = np.concatenate([np.ones(M_e), -np.ones(M_g)]) if self.hole else None
        # a ground-state sample stands for 1/M_g of the molecules: the pump removes at most all of it (h_j <= 1/M_g)
        upper = np.concatenate([np.full(M_e, np.inf), np.full(M_g, 1.0 / M_g)]) if self.hole else None
        inv_sigma = 1.0 / sigma
        d_w = dS * inv_sigma
        wq = 1.0 / np.median(sigma, axis=0)
        red = _Reduced(B, wq, float(self.rank_tol))
        report(1, {"stage": "reduce", "total": 1, "rank": red.rank})
        mu = 0.0 if self.regularize in ("none", "discrepancy") else float(self.regularize)

        ground = _ground_rows(B, wq, float(self.ground_state), float(self.rank_tol))

        def system(t0: float, irf: float) -> _System:
            return _System(red, irf_operator(time, delays, t0=t0, irf_fs=irf), inv_sigma, ground, equality, upper)

        def solve(sys_: _System, d: np.ndarray, mu_: float = mu, columns: np.ndarray | None = None) -> tuple[np.ndarray, float]:
            dd = float(d.ravel() @ d.ravel())
            if mu_ == 0.0:
                return sys_.solve(d.ravel(), dd, columns)
            return _regularised_solve(sys_, d.ravel(), dd, mu_)

        cache: dict[tuple[float, float], float] = {}

        def chi2_at(theta: np.ndarray | tuple[float, float]) -> float:
            key = (round(float(theta[0]), 9), round(float(theta[1]), 9))
            if key not in cache:
                cache[key] = solve(system(*key), d_w)[1]
            return cache[key]

        n_t0, n_irf = (int(v) for v in self.grid)
        t0s = np.linspace(t0_lo, t0_hi, n_t0)
        irfs = np.geomspace(irf_lo, irf_hi, n_irf)
        grid = [(a, b) for a in t0s for b in irfs]
        values = []
        for k, point in enumerate(grid):
            values.append(chi2_at(point))
            report(k + 1, {"stage": "search", "total": len(grid)})
        start = np.array(grid[int(np.argmin(values))])
        bounds = [(t0_lo, t0_hi), (irf_lo, irf_hi)]
        scale = np.array([max(t0_hi - t0_lo, 1e-9), max(irf_hi - irf_lo, 1e-9)])
        step = scale / np.array([max(n_t0 - 1, 1), max(n_irf - 1, 1)])
        simplex = np.array([start, start + [step[0] / 2, 0], start + [0, step[1] / 2]])
        simplex = np.clip(simplex, [b[0] for b in bounds], [b[1] for b in bounds])
        if np.linalg.matrix_rank(simplex[1:] - simplex[0]) < 2:
            simplex = np.array([start, start - [step[0] / 2, 0], start - [0, step[1] / 2]])
            simplex = np.clip(simplex, [b[0] for b in bounds], [b[1] for b in bounds])
        n_refine = [0]

        def refine(theta: np.ndarray) -> float:
            n_refine[0] += 1
            report(n_refine[0], {"stage": "refine", "total": None})
            return chi2_at(theta)

        opt = minimize(
            refine,
            start,
            method="Nelder-Mead",
            bounds=bounds,
            options=dict(initial_simplex=simplex, xatol=1e-2, fatol=1e-6 * max(min(values), 1.0), maxiter=400),
        )
        t0, irf = (float(v) for v in opt.x)
        problems = []
        if not opt.success:
            problems.append(f"the search of t0 and the IRF did not converge ({opt.message})")
        tol = 1e-3 * scale
        if t0_hi > t0_lo and (t0 - t0_lo < tol[0] or t0_hi - t0 < tol[0]):
            problems.append(f"t0 = {t0:.1f} fs lies at the edge of its range [{t0_lo:g}, {t0_hi:g}] fs; widen --t0-range")
        if irf_hi > irf_lo and (irf - irf_lo < tol[1] or irf_hi - irf < tol[1]):
            problems.append(
                f"the IRF = {irf:.1f} fs lies at the edge of its range [{irf_lo:g}, {irf_hi:g}] fs; widen --irf-range"
            )
        sys0 = system(t0, irf)
        rule = "none" if self.regularize == "none" else ("discrepancy" if self.regularize == "discrepancy" else "given")
        if self.regularize == "discrepancy":
            mu = _discrepancy_mu(sys0, d_w.ravel(), N)
        c, _ = solve(sys0, d_w, mu)
        gamma = float(c[:M_e].sum())
        if not gamma > 0:
            problems.append("no excitation found: every weight is zero (γ = 0)")
        elif gamma > 1:  # an excitation fraction: 0 < γ <= 1
            problems.append(
                f"γ = {gamma:.4g} > 1, but an excitation fraction is at most 1: the measured ΔS is larger than any mix of the "
                "basis explains (check the signal's units, fraction or percent, and that the basis is of the measured molecule)"
            )
        K0 = irf_operator(time, delays, t0=t0, irf_fs=irf)
        dS_fit = K0 @ np.tensordot(c, B, axes=(0, 0))
        chi2 = float(np.sum(((dS - dS_fit) * inv_sigma) ** 2))
        n_params = float(np.count_nonzero(c) + 2 - (1 if self.hole else 0))  # the equality takes one freedom
        reduced_chi2 = chi2 / max(N - n_params, 1.0)
        birge = float(np.sqrt(max(reduced_chi2, 1.0))) if self.birge else 1.0

        # ---------------------------------------------------------- bootstrap
        levels = np.asarray(self.levels, dtype=float)
        stats = _Stats(ens.subset(e_idx) if self.hole else basis, delays, levels)
        ground_stats = _Stats(ens.subset(g_idx), delays, levels) if self.hole else None

        def all_stats(cb: np.ndarray, th0: float) -> dict:
            st = stats(cb[:M_e] / cb[:M_e].sum(), th0)
            return st if ground_stats is None else _with_ground(st, ground_stats, cb[M_e:], float(cb[:M_e].sum()), th0)

        n_boot = int(self.bootstrap) if gamma > 0 else 0
        boot: dict[str, list] = {"gamma": [], "t0": [], "irf": [], "c": [], "stats": []}
        if n_boot:
            rng = np.random.default_rng(int(self.seed))
            steps = int(self.bootstrap_steps)
            H = grad_parts = None
            if steps:
                H, grad_parts = _local_model(system, chi2_at, t0, irf, c, red, bounds)
            model_w = dS_fit * inv_sigma
            for b in range(n_boot):
                d_b = model_w + birge * rng.standard_normal(model_w.shape)
                if not self.resample_basis:
                    cols = None
                elif self.hole:  # each block resampled within itself
                    cols = np.concatenate([rng.integers(0, M_e, M_e), M_e + rng.integers(0, M_g, M_g)])
                else:
                    cols = rng.integers(0, M, M)
                th = np.array([t0, irf])
                cb, _ = solve(sys0, d_b, mu, cols)
                sys_b = sys0
                if H is not None and grad_parts is not None:  # set together
                    for _ in range(steps):
                        g = _gradient(grad_parts, sys_b, red, cb, d_b.ravel())
                        free = np.array([hi > lo for lo, hi in bounds])
                        step = np.zeros(2)
                        step[free] = np.linalg.solve(H[np.ix_(free, free)], g[free])  # Newton on the free parameters only
                        new = np.clip(th - step, [lo for lo, _ in bounds], [hi for _, hi in bounds])
                        if np.allclose(new, th, atol=1e-6):
                            break
                        th = new
                        sys_b = system(*th)
                        cb, _ = solve(sys_b, d_b, mu, cols)
                boot["gamma"].append(cb[:M_e].sum())
                boot["t0"].append(th[0])
                boot["irf"].append(th[1])
                boot["c"].append(cb)
                if cb[:M_e].sum() > 0:
                    boot["stats"].append(all_stats(cb, th[0]))
                report(b + 1, {"stage": "bootstrap", "total": n_boot})

        # ---------------------------------------------------------- profile likelihood of γ
        prof_g, prof_chi2, prof_c = _profile_gamma(
            sys0, d_w, gamma, M_e, int(self.profile) if mu == 0.0 and gamma > 0 else 0, birge, report
        )
        c_safe = c if gamma > 0 else np.concatenate([np.full(M_e, 1.0 / M_e), np.full(M_g, 1.0 / max(M_g, 1))])
        w = c_safe[:M_e] / c_safe[:M_e].sum()
        main = all_stats(c_safe, t0)
        p = _profile_weights(prof_g, prof_chi2, birge)
        prof_stats = [all_stats(ck, t0) for ck in prof_c]
        spread = _spreads(boot["stats"], main, prof_stats, p)
        bc = np.array(boot["c"]) if boot["c"] else np.zeros((0, M))
        bw = bc[:, :M_e] / np.maximum(bc[:, :M_e].sum(axis=1, keepdims=True), 1e-300)  # (0, M_e) without replicates
        hole_part = {}
        if self.hole:
            r0 = distances(ens.positions[g_idx, 0])  # (M_g, P): each ground-state sample's distances at excitation
            removal = float(c[M_e:].max() * M_g) if gamma > 0 else 0.0
            hole_part = dict(hole_trajectories=g_idx, hole_weights=c[M_e:].copy(), hole_r0=r0)
            problems_soft = f"; largest removal probability {removal:.2f}"
            balance = abs(float(c[M_e:].sum()) - gamma) / max(gamma, 1e-300)
            if gamma > 0 and balance > 1e-6:
                problems.append(f"the hole's weights sum to {c[M_e:].sum():.6g}, not γ = {gamma:.6g}")
        else:
            problems_soft = ""

        def sd(boot_values: ArrayLike, profile_values: ArrayLike | None = None) -> np.ndarray:
            """The bootstrap's variance plus, where given, the profile's (over axis 0), as a standard deviation."""
            boot_values = np.asarray(boot_values, dtype=float)
            var = np.var(boot_values, axis=0, ddof=1) if len(boot_values) > 1 else np.zeros(boot_values.shape[1:])
            if profile_values is not None and p.size:
                var = var + _weighted_var(np.asarray(profile_values, dtype=float), p)
            return np.sqrt(var)

        pc = np.array(prof_c) if prof_c else np.zeros((0, M))
        pw = pc[:, :M_e] / np.maximum(pc[:, :M_e].sum(axis=1, keepdims=True), 1e-300)  # (0, M_e) without replicates
        if self.hole:
            hole_part["hole_weights_std"] = sd(bc[:, M_e:], pc[:, M_e:])

        part = EnsemblePart(
            gamma=gamma,
            gamma_std=float(sd(boot["gamma"], prof_g)),
            t0=t0,
            t0_std=float(sd(boot["t0"])),
            irf_fs=irf,
            irf_fs_std=float(sd(boot["irf"])),
            trajectories=e_idx,
            weights=w,
            weights_std=sd(bw, pw),
            dissociated=np.asarray(ens.dissociated, dtype=bool)[e_idx],
            pair_labels=tuple(_pair_labels(basis.symbols)),
            quantile_levels=levels,
            channels=HOLE_CHANNELS if self.hole else CHANNELS,
            bootstrap_gamma=np.asarray(boot["gamma"], dtype=float),
            bootstrap_t0=np.asarray(boot["t0"], dtype=float),
            bootstrap_irf_fs=np.asarray(boot["irf"], dtype=float),
            regularization=float(mu),
            rule=rule,
            rank=red.rank,
            birge_ratio=birge,
            profile_gamma=prof_g,
            profile_chi2=prof_chi2,
            **hole_part,
            **main,
            **spread,
        )
        converged = not problems
        message = (
            "; ".join(problems)
            if problems
            else (
                f"γ = {gamma:.4g}, t0 = {t0:.1f} fs, IRF = {irf:.1f} fs; {np.count_nonzero(c[:M_e])} of {M_e} trajectories weighted"
                + (
                    f"; hole on {np.count_nonzero(c[M_e:])} of {M_g} ground-state trajectories{problems_soft}"
                    if self.hole
                    else ""
                )
                + (f"; spreads scaled by the Birge ratio {birge:.3g}" if birge > 1 else "")
            )
        )
        self.gamma_, self.t0_, self.irf_fs_, self.weights_ = gamma, t0, irf, w
        self.hole_weights_ = c[M_e:].copy() if self.hole else None
        self.converged_ = converged
        self.result_ = FitResult(
            method=self.name,
            molecule=meas.molecule,
            symbols=tuple(basis.symbols),
            delays=delays,
            q=q,
            dS=dS,
            sigma=sigma,
            dS_fit=dS_fit,
            chi2=chi2,
            n_data=N,
            n_params=n_params,
            reduced_chi2=reduced_chi2,
            converged=converged,
            message=message,
            sigma_source=sigma_source,
            settings=self.settings_json(),
            provenance={
                "measurement": dict(meas.provenance),
                "basis_molecule": str(basis.molecule),
                "basis_trajectories": M,
                "basis_rank": red.rank,
                "I_gs": "mean first-frame intensity of the basis trajectories that start from a ground-state sample "
                "(ground_start; all of them where the basis does not record it)",
                "hole": None
                if not self.hole
                else "ground-state sub-basis: the basis trajectories with ground_start that stay "
                "bound, on a model without an excited surface; Σ h = Σ c = γ",
            },
            ensemble=part,
        )
        return self


# --------------------------------------------------------------------------- the basis of the hole


def _hole_split(ens: Ensemble) -> tuple[np.ndarray, np.ndarray]:
    """(ground, excited) indices: the ground-state sub-basis of the hole and the rest.

    Ground-state (laser-off) dynamics are the trajectories that start from a ground-state sample
    (``ground_start`` in the generator's records), stay bound, on a model without an excited surface.
    """
    flags = ground_start_flags(ens)
    if flags is None:
        raise InputError(
            "hole: the basis does not record which trajectories start from a ground-state sample (ground_start); "
            "make it with `molmovie generate --initial wigner:1,...` on a ground-state model"
        )
    model = (ens.provenance or {}).get("model")
    if isinstance(model, dict) and model.get("excited"):
        raise InputError(
            f"hole: the basis runs on the excited model {model.get('name')!r}, so its Wigner-started trajectories are not "
            "laser-off dynamics; the hole needs a basis on a ground-state model (e.g. --calculator morse-i2-x)"
        )
    bound = ~np.asarray(ens.dissociated, dtype=bool)
    ground = flags & bound
    displaced = ~flags & bound
    if isinstance(model, dict) and displaced.any():
        raise InputError(
            f"hole: {int(displaced.sum())} bound trajectories of the basis run on the ground-state model from displaced starts; "
            "with the hole they are degenerate with it (a displaced vibration minus a ground-state sample is a "
            "redistribution within the ground state, which leaves γ free); make the basis without the displaced family "
            "(e.g. --initial wigner:1,dissociation:2)"
        )
    if ground.sum() < 2:
        raise InputError(
            f"hole: the basis has {int(ground.sum())} bound trajectories that start from a ground-state sample; "
            "the hole needs several (generate --initial wigner:1,...)"
        )
    if ground.all():
        raise InputError("hole: every trajectory of the basis is a ground-state one; there is no excited basis left")
    return np.flatnonzero(ground), np.flatnonzero(~ground)
