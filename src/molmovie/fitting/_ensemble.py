r"""Trajectory-basis fit of a measurement: weights, excitation fraction, time zero and IRF.

The model is the measurement model of :mod:`molmovie.measurement`
(Acheson and Kirrander, *J. Chem. Theory Comput.* (2023), arXiv:2211.04766;
Ware et al., *Phil. Trans. R. Soc. A* 377, 20170477 (2019)):

.. math::

    \Delta S_\mathrm{model}(q, t_d) = \sum_i c_i \,[\Delta S_i \otimes G_\mathrm{IRF}](q, t_d - t_0),
    \qquad c_i = \gamma w_i \ge 0, \quad \gamma = \sum_i c_i ,

with ΔS_i each basis trajectory's signal against the laser-off reference
(recomputed on the measurement's q from the trajectories' positions, Eq. (1)
with the inelastic term), G a Gaussian of FWHM ``irf_fs``. For fixed t0 and
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
a range, a failed minimisation, or γ = 0 is reported as not converged.

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

from typing import Callable

import numpy as np

from .._errors import InputError
from ..geometry import distances
from ..geometry import pair_labels as _pair_labels
from ..inversion._base import check_number
from ..io.fit import EnsemblePart, FitResult
from ..measurement import (
    DEFAULT_LEVELS,
    basis_signals,
    check_molecule,
    ground_start_flags,
    hold_last_frame,
    irf_operator,
    parting_frames,
    weighted_quantiles,
)
from ._base import MeasurementMethod, measurement_sigma

__all__ = ["EnsembleFit"]

CHANNELS = ("bound", "dissociated")
#: Channels with the ground-state hole: fractions of all molecules (γ f_bound, γ f_dissociated, 1 − γ).
HOLE_CHANNELS = ("bound", "dissociated", "ground")
#: Weight of the equality pseudo-row Σ c − Σ h = 0, relative to the largest column norm of the system.
EQUALITY_WEIGHT = 1e4
#: Weight of the profile's pseudo-row Σ c = γ_k, relative to the largest column norm of the system. A penalty,
#: not an exact equality: each point is recorded at the Σ c it reached, where it is the exact constrained
#: optimum (the minimiser of χ² + ω²(Σc − γ_k)² minimises χ² among all c of its own sum). Heavier rows
#: stall scipy's BVLS short of the optimum (by Δχ² 5-70 on the I2 run).
PROFILE_WEIGHT = 1.0


def _pair(name: str, value) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"The {name!r} setting must be two numbers (low, high); got {value!r}") from None
    if not (np.isfinite(a) and np.isfinite(b) and a <= b):
        raise InputError(f"The {name!r} setting must be two finite numbers low <= high; got {value!r}")
    return a, b


class _Reduced:
    """The basis reduced to r components: ΔS_i(t, q) ≈ Σ_k C[i, k] Z[k, t, q]."""

    def __init__(self, basis: np.ndarray, wq: np.ndarray, rank_tol: float):
        M, T, Q = basis.shape
        X = (basis * wq).reshape(M, T * Q)
        if M <= T * Q:
            s2, V = np.linalg.eigh(X @ X.T)  # X = V S Yᵀ
            s2, V = s2[::-1], V[:, ::-1]
            keep = s2 > (rank_tol**2) * max(s2[0], 1e-300)
            s = np.sqrt(s2[keep])
            Y = (V[:, keep].T @ X) / s[:, None]
            self.C = V[:, keep] * s
        else:
            s2, Vr = np.linalg.eigh(X.T @ X)
            s2, Vr = s2[::-1], Vr[:, ::-1]
            keep = s2 > (rank_tol**2) * max(s2[0], 1e-300)
            Y = Vr[:, keep].T
            self.C = X @ Vr[:, keep]
        self.Z = (Y.reshape(-1, T, Q) / wq)
        self.Zt = np.ascontiguousarray(self.Z.transpose(1, 0, 2).reshape(T, -1))  # (T, r * Q)
        self.rank = int(self.Z.shape[0])


class _System:
    """The NNLS system at one (t0, IRF): χ²(c) = ‖Φ c − z‖² + (‖d̃‖² − ‖z‖²), plus the ground-state rows G c ≈ 0."""

    def __init__(self, red: _Reduced, K: np.ndarray, inv_sigma: np.ndarray, ground: np.ndarray | None = None,
                 equality: np.ndarray | None = None, upper: np.ndarray | None = None):
        self.upper = upper  # (M,) upper bounds of the weights (inf: none), or None: NNLS
        r, T, Q = red.Z.shape
        KZ = K @ red.Zt  # (T_d, r * Q): one product for all components
        D = KZ.reshape(K.shape[0], r, Q).transpose(1, 0, 2) * inv_sigma  # (r, T_d, Q)
        self.D = D.reshape(r, -1)
        lam, E = np.linalg.eigh(self.D @ self.D.T)
        ok = lam > 1e-13 * max(lam.max(initial=0.0), 1e-300)
        self.Pr = (E[:, ok] / np.sqrt(lam[ok])).T  # (r', r): P = Pr D has orthonormal rows spanning the model space
        self.Phi = (np.sqrt(lam[ok])[:, None] * E[:, ok].T) @ red.C.T  # (r', M)
        self.n_core = self.Phi.shape[0]
        if ground is not None and ground.shape[0]:
            self.Phi = np.vstack([self.Phi, ground])
        if equality is not None:  # ω (Σ c − Σ h) = 0: the weighting method for an equality (Lawson and Hanson, ch. 22)
            omega = EQUALITY_WEIGHT * max(float(np.max(np.linalg.norm(self.Phi, axis=0))), 1e-300)
            self.Phi = np.vstack([self.Phi, omega * equality[None, :]])

    def solve(self, d: np.ndarray, dd: float, columns: np.ndarray | None = None, total: tuple | None = None):
        """NNLS for c (M,) and the data χ²; with ``columns`` (a resampled basis, repeats allowed) only those
        trajectories are offered and the weights of repeats are added up; with ``total = (row, γ)`` the
        weights also satisfy row · c = γ (a pseudo-row of the equality's weight)."""
        from scipy.optimize import nnls

        z = self.Pr @ (self.D @ d)
        Phi = self.Phi if columns is None else self.Phi[:, columns]
        zz = np.concatenate([z, np.zeros(Phi.shape[0] - z.size)])
        if total is not None:
            row, value = total
            omega = PROFILE_WEIGHT * max(float(np.max(np.linalg.norm(Phi, axis=0))), 1e-300)
            Phi = np.vstack([Phi, omega * (row if columns is None else row[columns])[None, :]])
            zz = np.concatenate([zz, [omega * float(value)]])
        if self.upper is None:
            c, _ = nnls(Phi, zz, maxiter=50 * Phi.shape[1])
        else:  # bounded-variable least squares (Stark and Parker 1995), 0 <= c <= upper
            from scipy.optimize import lsq_linear

            up = self.upper if columns is None else self.upper[columns]
            c = lsq_linear(Phi, zz, bounds=(np.zeros(Phi.shape[1]), up), method="bvls", tol=1e-12, max_iter=50 * Phi.shape[1]).x
            c = np.clip(c, 0.0, up)
        if columns is not None:
            c = np.bincount(columns, weights=c, minlength=self.Phi.shape[1])
        r = self.Phi[: self.n_core] @ c - z
        return c, float(r @ r + dd - z @ z)


def _ground_rows(B: np.ndarray, wq: np.ndarray, weight: float, rank_tol: float) -> np.ndarray | None:
    """Rows G with ‖G c‖² = weight · Σ_q (Σ_i c_i ΔS_i(τ=0, q) / σ̃_q)², compressed by an SVD."""
    if weight == 0:
        return None
    F = (B[:, 0, :] * wq).T  # (Q, M): each trajectory's ΔS at excitation, in units of σ̃
    U, s, Vt = np.linalg.svd(F, full_matrices=False)
    keep = s > rank_tol * max(s[0] if s.size else 0.0, 1e-300)
    return np.sqrt(weight) * (s[keep, None] * Vt[keep])


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

    def __init__(
        self,
        *,
        t0_range=(-150.0, 150.0),
        irf_range=(10.0, 300.0),
        grid=(9, 5),
        bootstrap: int = 100,
        bootstrap_steps: int = 2,
        seed: int = 0,
        resample_basis: bool = True,
        ground_state: float = 1.0,
        regularize="none",
        hole: bool = False,
        birge: bool = True,
        profile: int = 21,
        rank_tol: float = 1e-6,
        levels=DEFAULT_LEVELS,
        sigma: str = "measured",
    ):
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
        lo, hi = _pair("irf_range", self.irf_range)
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
            raise InputError(f"The 'regularize' setting pulls the weights toward uniform, which the hole's signed sub-basis does not "
                             f"share; use regularize='none' with hole=true (got {self.regularize!r})")
        check_number("rank_tol", self.rank_tol, low=0, high=1, low_open=True)
        if isinstance(self.regularize, str):
            if self.regularize not in ("none", "discrepancy"):
                raise InputError(f"The 'regularize' setting must be 'none', 'discrepancy' or a number >= 0; got {self.regularize!r}")
        else:
            check_number("regularize", self.regularize, low=0)
        lv = np.asarray(self.levels, dtype=float)
        if lv.ndim != 1 or lv.size == 0 or np.any(~np.isfinite(lv)) or np.any((lv < 0) | (lv > 1)) or np.any(np.diff(lv) <= 0):
            raise InputError(f"The 'levels' setting must be increasing numbers in [0, 1]; got {self.levels!r}")
        return []

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _check_basis(meas, basis) -> None:

        if basis is None:
            raise InputError("the ensemble method needs a basis: a dataset of trajectories of the measured molecule (--basis)")
        if not all(hasattr(basis, a) for a in ("positions", "time", "length", "symbols")):
            raise InputError(f"the basis must be a molmovie Dataset; got {type(basis).__name__}")
        if basis.n_trajectories == 0:
            raise InputError("the basis has no trajectories")
        if basis.n_frames < 2:
            raise InputError("the basis trajectories have a single frame; an ensemble fit needs their motion")
        check_molecule(meas, basis.symbols, what="the basis")

    # ------------------------------------------------------------------ fit
    def fit(self, measurement, basis=None, progress: Callable[[int, dict], None] | None = None) -> "EnsembleFit":
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

    def _fit(self, measurement, basis, progress) -> "EnsembleFit":
        from scipy.optimize import minimize

        meas = self._start_fit(measurement)
        self._check_basis(meas, basis)
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

        ens = basis.ensemble if hasattr(basis, "ensemble") else basis
        if self.hole:
            g_idx, e_idx = _hole_split(ens)
        else:
            g_idx, e_idx = np.zeros(0, dtype=np.int64), np.arange(ens.n_trajectories)
        dS_basis, I_gs = basis_signals(basis, q, progress=lambda done, info: report(done, {"stage": "basis signals", **info}))
        B, _ = hold_last_frame(dS_basis)
        if self.hole:  # columns: the excited trajectories, then the ground-state ones with the sign of a hole
            B = np.concatenate([B[e_idx], -B[g_idx]])
        M_e, M_g = e_idx.size, g_idx.size
        M = B.shape[0]
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

        def system(t0, irf):
            return _System(red, irf_operator(time, delays, t0=t0, irf_fs=irf), inv_sigma, ground, equality, upper)

        def solve(sys_, d, mu_=mu, columns=None):
            dd = float(d.ravel() @ d.ravel())
            if mu_ == 0.0:
                return sys_.solve(d.ravel(), dd, columns)
            return _regularised_solve(sys_, d.ravel(), dd, mu_)

        cache: dict = {}

        def chi2_at(theta):
            key = (round(float(theta[0]), 9), round(float(theta[1]), 9))
            if key not in cache:
                cache[key] = solve(system(*key), d_w)[1]
            return cache[key]

        n_t0, n_irf = (int(v) for v in self.grid)
        t0s = np.linspace(t0_lo, t0_hi, n_t0)
        irfs = np.geomspace(irf_lo, irf_hi, n_irf)
        grid = [(a, b) for a in t0s for b in irfs]
        values = []
        for k, th in enumerate(grid):
            values.append(chi2_at(th))
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

        def refine(theta):
            n_refine[0] += 1
            report(n_refine[0], {"stage": "refine", "total": None})
            return chi2_at(theta)

        opt = minimize(refine, start, method="Nelder-Mead", bounds=bounds,
                       options=dict(initial_simplex=simplex, xatol=1e-2, fatol=1e-6 * max(min(values), 1.0), maxiter=400))
        t0, irf = (float(v) for v in opt.x)
        problems = []
        if not opt.success:
            problems.append(f"the search of t0 and the IRF did not converge ({opt.message})")
        tol = 1e-3 * scale
        if t0_hi > t0_lo and (t0 - t0_lo < tol[0] or t0_hi - t0 < tol[0]):
            problems.append(f"t0 = {t0:.1f} fs lies at the edge of its range [{t0_lo:g}, {t0_hi:g}] fs; widen --t0-range")
        if irf_hi > irf_lo and (irf - irf_lo < tol[1] or irf_hi - irf < tol[1]):
            problems.append(f"the IRF = {irf:.1f} fs lies at the edge of its range [{irf_lo:g}, {irf_hi:g}] fs; widen --irf-range")
        sys0 = system(t0, irf)
        rule = "none" if self.regularize == "none" else ("discrepancy" if self.regularize == "discrepancy" else "given")
        if self.regularize == "discrepancy":
            mu = _discrepancy_mu(sys0, d_w.ravel(), N)
        c, _ = solve(sys0, d_w, mu)
        gamma = float(c[:M_e].sum())
        if not gamma > 0:
            problems.append("no excitation found: every weight is zero (γ = 0)")
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

        def all_stats(cb, th0):
            st = stats(cb[:M_e] / cb[:M_e].sum(), th0)
            return st if ground_stats is None else _with_ground(st, ground_stats, cb[M_e:], float(cb[:M_e].sum()), th0)

        n_boot = int(self.bootstrap) if gamma > 0 else 0
        boot = {"gamma": [], "t0": [], "irf": [], "c": [], "stats": []}
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
                for _ in range(steps if H is not None else 0):
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
        prof_g, prof_chi2, prof_c = _profile_gamma(sys0, d_w, gamma, M_e, int(self.profile) if mu == 0.0 and gamma > 0 else 0,
                                                   birge, report)
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

        def sd(boot_values, profile_values=None):
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
            gamma=gamma, gamma_std=float(sd(boot["gamma"], prof_g)), t0=t0, t0_std=float(sd(boot["t0"])), irf_fs=irf,
            irf_fs_std=float(sd(boot["irf"])), trajectories=e_idx, weights=w, weights_std=sd(bw, pw),
            dissociated=np.asarray(ens.dissociated, dtype=bool)[e_idx], pair_labels=tuple(_pair_labels(basis.symbols)),
            quantile_levels=levels, channels=HOLE_CHANNELS if self.hole else CHANNELS,
            bootstrap_gamma=np.asarray(boot["gamma"], dtype=float), bootstrap_t0=np.asarray(boot["t0"], dtype=float),
            bootstrap_irf_fs=np.asarray(boot["irf"], dtype=float), regularization=float(mu), rule=rule, rank=red.rank,
            birge_ratio=birge, profile_gamma=prof_g, profile_chi2=prof_chi2, **hole_part, **main, **spread,
        )
        converged = not problems
        message = "; ".join(problems) if problems else (
            f"γ = {gamma:.4g}, t0 = {t0:.1f} fs, IRF = {irf:.1f} fs; {np.count_nonzero(c[:M_e])} of {M_e} trajectories weighted"
            + (f"; hole on {np.count_nonzero(c[M_e:])} of {M_g} ground-state trajectories{problems_soft}" if self.hole else "")
            + (f"; spreads scaled by the Birge ratio {birge:.3g}" if birge > 1 else "")
        )
        self.gamma_, self.t0_, self.irf_fs_, self.weights_ = gamma, t0, irf, w
        self.hole_weights_ = c[M_e:].copy() if self.hole else None
        self.converged_ = converged
        self.result_ = FitResult(
            method=self.name, molecule=meas.molecule, symbols=tuple(basis.symbols), delays=delays, q=q, dS=dS, sigma=sigma,
            dS_fit=dS_fit, chi2=chi2, n_data=N, n_params=n_params, reduced_chi2=reduced_chi2,
            converged=converged, message=message, sigma_source=sigma_source, settings=self.settings_json(),
            provenance={"measurement": dict(meas.provenance), "basis_molecule": str(basis.molecule), "basis_trajectories": M,
                        "basis_rank": red.rank,
                        "I_gs": "mean first-frame intensity of the basis trajectories that start from a ground-state sample "
                                "(ground_start; all of them where the basis does not record it)",
                        "hole": None if not self.hole else "ground-state sub-basis: the basis trajectories with ground_start that stay "
                                                           "bound, on a model without an excited surface; Σ h = Σ c = γ"},
            ensemble=part,
        )
        return self


# --------------------------------------------------------------------------- pieces of the fit


def _regularised_solve(sys_: _System, d: np.ndarray, dd: float, mu: float):
    """NNLS with μ² ‖(I − 11ᵀ/M) c‖² added; returns (c, data χ²)."""
    from scipy.optimize import nnls

    z = sys_.Pr @ (sys_.D @ d)
    M = sys_.Phi.shape[1]
    Pm = np.eye(M) - 1.0 / M
    A = np.vstack([sys_.Phi, mu * Pm])
    c, _ = nnls(A, np.concatenate([z, np.zeros(A.shape[0] - z.size)]), maxiter=50 * M)
    r = sys_.Phi[: sys_.n_core] @ c - z
    return c, float(r @ r + dd - z @ z)


def _discrepancy_mu(sys_: _System, d: np.ndarray, n_data: int) -> float:
    """μ by the discrepancy principle: data χ² = max(N, χ²_min + √(2N)).

    χ² = N is Morozov's rule; when the basis cannot reach it (χ²_min > N) the
    target is one standard deviation of the χ² distribution (√(2N)) above the
    best fit, so the pull toward uniform weights costs no more misfit than
    noise would.
    """
    from scipy.optimize import brentq

    dd = float(d @ d)
    base = sys_.solve(d, dd)[1]
    target = max(float(n_data), base + np.sqrt(2.0 * n_data))
    scale = float(np.linalg.norm(sys_.Phi, 2))
    f = lambda s: _regularised_solve(sys_, d, dd, scale * 10**s)[1] - target  # noqa: E731
    lo, hi = -8.0, 4.0
    if f(hi) <= 0:
        return scale * 10**hi
    if f(lo) >= 0:
        return 0.0
    return scale * 10 ** brentq(f, lo, hi, xtol=1e-3)


def _local_model(system, chi2_at, t0, irf, c, red, bounds):
    """Hessian of the profile χ² at (t0, IRF) by central differences, and the derivative systems."""
    h = np.array([max(0.5, 0.01 * irf), max(0.5, 0.02 * irf)])
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    free = hi > lo  # a range of one value fixes its parameter: no step along it
    x0 = np.array([t0, irf])
    x0 = np.where(free, np.clip(x0, lo + h, hi - h), x0)
    f = lambda a, b: chi2_at((x0[0] + a * h[0], x0[1] + b * h[1]))  # noqa: E731
    f0 = f(0, 0)
    H = np.empty((2, 2))
    H[0, 0] = (f(1, 0) - 2 * f0 + f(-1, 0)) / h[0] ** 2
    H[1, 1] = (f(0, 1) - 2 * f0 + f(0, -1)) / h[1] ** 2
    H[0, 1] = H[1, 0] = (f(1, 1) - f(1, -1) - f(-1, 1) + f(-1, -1)) / (4 * h[0] * h[1])
    Hf = H[np.ix_(free, free)]
    if not free.any() or not (np.all(np.isfinite(Hf)) and np.all(np.linalg.eigvalsh(Hf) > 0)):
        return None, None
    parts = []
    for k in range(2):
        e = np.zeros(2)
        e[k] = h[k]
        plus, minus = system(*(x0 + e)), system(*(x0 - e))
        parts.append((plus.D - minus.D) / (2 * h[k]))  # ∂D/∂θ_k, (r, N)
    return H, parts


def _gradient(parts, sys_: _System, red: _Reduced, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """∂χ²/∂θ at the NNLS optimum (envelope theorem): 2 (model − d)ᵀ ∂model/∂θ."""
    u = red.C.T @ c  # (r,)
    res = sys_.D.T @ u - d
    return np.array([2.0 * (Dk @ res) @ u for Dk in parts])


def _hole_split(ens) -> tuple[np.ndarray, np.ndarray]:
    """(ground, excited) indices: the ground-state sub-basis of the hole and the rest.

    Ground-state (laser-off) dynamics are the trajectories that start from a ground-state sample
    (``ground_start`` in the generator's records), stay bound, on a model without an excited surface.
    """
    flags = ground_start_flags(ens)
    if flags is None:
        raise InputError("hole: the basis does not record which trajectories start from a ground-state sample (ground_start); "
                         "make it with `molmovie generate --initial wigner:1,...` on a ground-state model")
    model = (ens.provenance or {}).get("model")
    if isinstance(model, dict) and model.get("excited"):
        raise InputError(f"hole: the basis runs on the excited model {model.get('name')!r}, so its Wigner-started trajectories are not "
                         "laser-off dynamics; the hole needs a basis on a ground-state model (e.g. --calculator morse-i2-x)")
    bound = ~np.asarray(ens.dissociated, dtype=bool)
    ground = flags & bound
    displaced = ~flags & bound
    if isinstance(model, dict) and displaced.any():
        raise InputError(f"hole: {int(displaced.sum())} bound trajectories of the basis run on the ground-state model from displaced starts; "
                         "with the hole they are degenerate with it (a displaced vibration minus a ground-state sample is a "
                         "redistribution within the ground state, which leaves γ free); make the basis without the displaced family "
                         "(e.g. --initial wigner:1,dissociation:2)")
    if ground.sum() < 2:
        raise InputError(f"hole: the basis has {int(ground.sum())} bound trajectories that start from a ground-state sample; "
                         "the hole needs several (generate --initial wigner:1,...)")
    if ground.all():
        raise InputError("hole: every trajectory of the basis is a ground-state one; there is no excited basis left")
    return np.flatnonzero(ground), np.flatnonzero(~ground)


def _with_ground(st: dict, gs: "_Stats", h: np.ndarray, gamma: float, t0: float) -> dict:
    """Add the remaining ground state as a third channel; channel fractions become fractions of all molecules.

    The molecules left in the ground state are its samples with weights 1/M_g − h_j (clipped at 0 where
    the hole removes more than a sample holds), normalised.
    """
    Mg = h.size
    left = np.clip(1.0 / Mg - h, 0.0, None)
    g = gs(left / left.sum() if left.sum() > 0 else np.full(Mg, 1.0 / Mg), t0)
    out = dict(st)
    frac = np.concatenate([gamma * st["channel_fraction"], [max(1.0 - gamma, 0.0)]])
    out["channel_fraction"] = frac
    for key, src in (("channel_distance_mean", "distance_mean"), ("channel_distance_std", "distance_std"),
                     ("channel_distance_quantiles", "distance_quantiles")):
        out[key] = np.concatenate([st[key], g[src][None]])
    return out


class _Stats:
    """Weighted distance statistics of the basis at delays − t0 (the Truth's convention)."""

    def __init__(self, basis, delays, levels):

        ens = basis.ensemble if hasattr(basis, "ensemble") else basis
        self.time = np.asarray(ens.time, dtype=float) - float(ens.time[0])
        self.edges = np.concatenate([[0.0], 0.5 * (self.time[1:] + self.time[:-1])])
        T = ens.n_frames
        held = np.minimum(np.arange(T)[None, :], ens.length[:, None] - 1)
        pos = np.take_along_axis(ens.positions, held[:, :, None, None], axis=1)
        self.r = distances(pos)  # (M, T, P), each trajectory's last valid frame held
        self.part = parting_frames(ens)
        self.length = ens.length
        self.flag = np.asarray(ens.dissociated, dtype=bool)
        self.delays = np.asarray(delays, dtype=float)
        self.levels = levels

    def __call__(self, w: np.ndarray, t0: float) -> dict:
        frames = np.searchsorted(self.edges, np.clip(self.delays - t0, 0.0, None), side="right") - 1
        use = np.flatnonzero(w > 0)
        ww = w[use]
        r = self.r[use][:, frames]  # (m, T_d, P)
        held = np.minimum(frames[None, :], self.length[use, None] - 1)
        apart = (self.part[use, None] >= 0) & (held >= self.part[use, None])
        mean, std, quant = _moments(r, ww, self.levels)
        T_d, P = mean.shape
        K = self.levels.size
        ch_mean = np.full((2, T_d, P), np.nan)
        ch_std = np.full((2, T_d, P), np.nan)
        ch_quant = np.full((2, T_d, P, K), np.nan)
        ch_frac = np.zeros(2)
        for k, sel in enumerate((~self.flag[use], self.flag[use])):
            ch_frac[k] = ww[sel].sum()
            if ch_frac[k] > 0:
                ch_mean[k], ch_std[k], ch_quant[k] = _moments(r[sel], ww[sel] / ch_frac[k], self.levels)
        return dict(
            distance_mean=mean, distance_std=std, distance_quantiles=quant, dissociated_fraction=np.clip(ww @ apart, 0, 1),
            channel_fraction=ch_frac, channel_distance_mean=ch_mean, channel_distance_std=ch_std,
            channel_distance_quantiles=ch_quant,
        )


def _moments(r: np.ndarray, w: np.ndarray, levels: np.ndarray):
    mean = np.tensordot(w, r, axes=(0, 0))
    var = np.tensordot(w, (r - mean) ** 2, axes=(0, 0))
    return mean, np.sqrt(var), weighted_quantiles(r, w, levels, axis=0)


def _profile_gamma(sys_: _System, d_w: np.ndarray, gamma: float, M_e: int, n: int, birge: float, report):
    """The profile likelihood of γ at the fitted (t0, IRF): NNLS with Σ_excited c = γ_k imposed.

    On each side the range starts at 5 % of γ and is halved or doubled until it just reaches Δχ² = 9 R_B²
    (between one and two times as far as needed; or γ_k = 0, or 4 γ above); ``n`` points in all over it,
    γ itself among them.

    Returns
    -------
    gammas : ndarray, shape (K,)
        The sums Σ c the constrained solutions reached (within ~1e-4 of the requested γ_k), increasing.
    chi2 : ndarray, shape (K,)
        Data χ² of the constrained NNLS at each γ_k.
    weights : list of ndarray, shape (M,)
        The constrained solutions.
    """
    if n < 3:
        return np.zeros(0), np.zeros(0), []
    d = d_w.ravel()
    dd = float(d @ d)
    row = np.zeros(sys_.Phi.shape[1])
    row[:M_e] = 1.0
    solved: dict = {}  # the range search's solutions are points of the grid too (its ends and γ itself)

    def at(g):
        if g not in solved:
            solved[g] = sys_.solve(d, dd, total=(row, g))
            report(len(solved), {"stage": "profile", "total": None})
        return solved[g]

    _, chi2_0 = at(gamma)
    target = 9.0 * birge**2

    def rise(sign, h):
        g = gamma + sign * h
        return np.inf if g <= 0 else at(g)[1] - chi2_0

    half = []
    for sign in (-1.0, 1.0):
        h = 0.05 * gamma
        if rise(sign, h) >= target:  # too far already: halve while half as far still reaches the target
            for _ in range(40):
                if rise(sign, h / 2) < target:
                    break
                h /= 2
        else:  # not far enough: double until it reaches the target (or γ_k = 0, or 4 γ above)
            while h < 4 * gamma and rise(sign, h) < target:
                if sign < 0 and h >= gamma:
                    break
                h *= 2.0
            if sign < 0:
                h = min(h, gamma)
        half.append(h)
    n_lo = max((n - 1) // 2, 1)
    gammas = np.concatenate([np.linspace(gamma - half[0], gamma, n_lo + 1), np.linspace(gamma, gamma + half[1], n - n_lo)[1:]])
    gammas = gammas[gammas > 0]
    sols = [at(g) for g in gammas]
    reached = np.array([s[0][:M_e].sum() for s in sols])  # the exact profile point (see PROFILE_WEIGHT)
    order = np.argsort(reached, kind="stable")
    return reached[order], np.array([sols[k][1] for k in order]), [sols[k][0] for k in order]


def _profile_weights(gammas: np.ndarray, chi2: np.ndarray, birge: float) -> np.ndarray:
    """p_k ∝ exp(−Δχ²_k / 2 R_B²) Δγ_k (trapezoid widths), summing to 1; empty without a profile."""
    if gammas.size < 2:
        return np.zeros(0)
    width = np.gradient(gammas)
    logp = -(chi2 - chi2.min()) / (2.0 * birge**2)
    with np.errstate(under="ignore"):
        p = np.exp(logp - logp.max()) * np.abs(width)
    return p / p.sum()


def _weighted_var(values: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Σ_k p_k (x_k − x̄)² over axis 0, ignoring NaN entries (a channel without weight at some γ_k)."""
    ok = np.isfinite(values)
    pk = p.reshape((-1,) + (1,) * (values.ndim - 1)) * ok
    norm = pk.sum(axis=0)
    x = np.where(ok, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (pk * x).sum(axis=0) / norm
        var = (pk * (x - mean) ** 2).sum(axis=0) / norm
    return np.where(norm > 0, var, 0.0)


def _spreads(replicates: list[dict], main: dict, profile: list[dict] | None = None, p: np.ndarray | None = None) -> dict:
    """Spreads of the derived quantities: the bootstrap's variance plus the profile's (law of total variance)."""
    out = {}
    names = {"distance_mean": "distance_mean_std", "distance_std": "distance_std_std", "distance_quantiles": "distance_quantiles_std",
             "dissociated_fraction": "dissociated_fraction_std", "channel_fraction": "channel_fraction_std",
             "channel_distance_mean": "channel_distance_mean_std"}
    for key, name in names.items():
        if len(replicates) > 1:
            with np.errstate(invalid="ignore"):
                stack = np.array([rep[key] for rep in replicates])
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    out[name] = np.nanstd(stack, axis=0, ddof=1)
        else:
            out[name] = np.zeros_like(main[key])
        if profile and p is not None and p.size:
            var = _weighted_var(np.array([st[key] for st in profile], dtype=float), p)
            out[name] = np.sqrt(np.where(np.isfinite(out[name]), out[name] ** 2, 0.0) + var)
            out[name] = np.where(np.isnan(main[key]), np.nan, out[name]) if np.ndim(main[key]) else out[name]
    return out
