r"""Model-free inversion of a measurement into the change of the pair-distribution function ΔP(R, t).

The forward equation. In the independent atom model a molecule scatters
:math:`I(q) = \sum_A f_A^2 + \sum_A S_A + 2\sum_{A<B} f_A f_B \sin(qR_{AB})/(qR_{AB})`
(Debye, *Ann. Phys.* 351, 809 (1915); molmovie's Eq. (1)). Only the pair term
changes when the molecule moves, so a measured difference signal
:math:`\Delta S = \gamma(\langle I(t)\rangle - I_{gs})/I_{gs}` is

.. math::

    \Delta S(q, t) = \frac{1}{I_{gs}(q)} \sum_{ab} 2 f_a(q) f_b(q)
        \int_0^\infty \Delta P_{ab}(R, t)\, \frac{\sin(qR)}{qR}\, dR ,
    \qquad
    \Delta P_{ab}(R, t) = \gamma\left(\langle P_{ab}(R, t)\rangle - P^{gs}_{ab}(R)\right),

where the sum runs over element-pair types ab (I-I; C-S and S-S) (for an
electron measurement, ``probe="electron"``, ΔS is ΔI/I, f the complex
amplitudes at the beam energy and 2 f_a f_b reads 2 Re(f_a conj(f_b)); the
same kernel then maps ΔP to ΔI/I, and the sine transform below is the ΔPDF
of ultrafast electron diffraction), and
:math:`P_{ab}(R)` is the density of ab pairs at distance R per molecule
(1/Å; it integrates to the number of ab pairs). For a homonuclear diatomic
(I2) there is one type and ΔP is γ times the change of the I-I distance
distribution. ΔP is represented on bins of width ``dr`` (piecewise constant),
so the kernel is integrated exactly over each bin with the sine integral:
:math:`\int_{R_-}^{R_+} \sin(qR)/(qR)\,dR = [\mathrm{Si}(qR_+) - \mathrm{Si}(qR_-)]/q`.

Two estimates are made:

1. **Damped sine transform** (the ΔPDF of electron diffraction; Ware et al.,
   *Phil. Trans. R. Soc. A* 377, 20170477 (2019)). With the modified
   scattering :math:`s(q) = q\,\Delta S(q) I_{gs}(q) / \sum_A f_A^2(q)`,

   .. math::

       \Delta P_\mathrm{sine}(R) = \frac{2R}{\pi} \int_{q_\min}^{q_\max}
           s(q) \sin(qR)\, e^{-\alpha q^2}\, dq

   (trapezoid rule on the measured q). For a homonuclear diatomic and a full
   q range without damping this is ΔP itself (the sine transform inverts
   :math:`\int \Delta P(R') \sin(qR')/R'\,dR'`); otherwise it is ΔP blurred
   by the damping (a Gaussian of standard deviation √(2α) in R) and by the
   q window, with the form-factor weights :math:`2 f_a f_b/\sum f^2` of each
   type. α defaults to ln(10)/q_max², so the damping is 0.1 at q_max.
   Its band is σ propagated through the (linear) transform.

2. **Regularised least squares** of the Debye kernel, per delay,

   .. math::

       \hat x = \arg\min_{x \ge -P_{gs}}
           \sum_q \left(\frac{\Delta S_q - (Kx)_q}{\sigma_q}\right)^2 + \lambda^2 \|Lx\|^2 ,

   with L the identity ("ridge", the default: what the data cannot see, e.g.
   a broad change that only low q would show, shrinks to zero) or the second
   difference of x along R within each pair type ("curvature", plus a 1e-6
   ridge that makes it invertible; it leaves constant and linear ΔP free,
   which a q range without its low end cannot fix). One λ for all delays,
   chosen by the **discrepancy principle** (the default; Morozov: the total
   χ² of the unconstrained solution equals the number of data, T·Q), by
   generalised cross-validation ("gcv", Golub, Heath and Wahba,
   *Technometrics* 21, 215 (1979); it needs no σ scale but assumes white
   noise, and undersmooths noise correlated across q), or given. The bound
   ΔP ≥ −P_gs (γ ≤ 1 makes it valid) applies where the ground-state pair
   density is known (from a basis of trajectories; scipy.optimize.lsq_linear
   solves the delays where the unconstrained solution crosses it). The band
   is the posterior standard deviation of the Gaussian model whose prior is
   the penalty, :math:`\mathrm{diag}(K^T W K + \lambda^2 L^T L)^{-1}` with
   W = diag(1/σ²) (Tikhonov as a Bayesian estimate), which accounts for the
   regularisation's bias as well as the noise; it is computed for the
   unconstrained problem.

I_gs, the ground-state intensity that turns ΔS into ΔI, comes from the basis
(mean first-frame intensity of its trajectories that start from a ground-state
sample, ``ground_start`` where the generator records it; the laser-off reference of
the measurement model) when one is given, else from ``ground_distances``, else
from the molecule's built-in geometry, else from the atoms alone
(:math:`\sum f^2 + \sum S`, which neglects the ground state's own pair term;
``reference`` in the result says which).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .._guards import check_allocation
from .._typing import Progress, Symbols
from ..datasets import Dataset
from ..geometry import distances
from ..inversion._base import check_choice, check_number
from ..io.fit import FitResult, PdfPart
from ..measurement import Measurement, check_molecule, ground_start_flags
from ..molecules import BUILTIN, builtin
from ..scattering import atomic_intensity, intensity, intensity_from_distances, scattering_factors
from ._base import MeasurementMethod, measurement_sigma

__all__ = ["PairDistributionFit", "pair_types", "debye_kernel", "sine_transform"]

PENALTIES = ("curvature", "ridge")
RULES = ("discrepancy", "gcv")
_RIDGE = 1e-6


def pair_types(symbols: Symbols) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:
    """Element-pair types of a molecule, in the order they first occur among pairs i < j.

    Returns
    -------
    labels : list of str, e.g. ``["C-S", "S-S"]``
    type_of_pair : ndarray of int, shape (n_pairs,)
    elements : list of (str, str)
    """
    sym = [str(s) for s in symbols]
    i, j = np.triu_indices(len(sym), 1)
    keys = [(sym[a], sym[b]) if sym[a] <= sym[b] else (sym[b], sym[a]) for a, b in zip(i, j, strict=True)]  # sorted
    order: list[tuple[str, str]] = []
    for k in keys:
        if k not in order:
            order.append(k)
    return [f"{a}-{b}" for a, b in order], np.array([order.index(k) for k in keys], dtype=np.int64), order


def r_bins(r_min: float, r_max: float, dr: float) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres (R,) and edges (R + 1,) from r_min to r_max (the last bin ends at or below r_max)."""
    n = int(np.floor((r_max - r_min) / dr + 1e-9))
    edges = r_min + dr * np.arange(n + 1)
    return 0.5 * (edges[1:] + edges[:-1]), edges


def debye_kernel(
    symbols: Symbols, q: ArrayLike, edges: np.ndarray, I_gs: np.ndarray, *, probe: str = "xray", energy_kev: float | None = None
) -> np.ndarray:
    r"""The matrix that maps binned ΔP_ab to ΔS (see the module docstring).

    .. math::

        K_{q,(ab,j)} = \frac{2 f_a(q) f_b(q)}{I_{gs}(q)} \int_{R_j^-}^{R_j^+} \frac{\sin(qR)}{qR}\, dR

    with 2 |f_a||f_b| cos(η_a − η_b) = 2 Re(f_a conj(f_b)) for electrons.

    Parameters
    ----------
    symbols : sequence of str
    q : ndarray, shape (Q,), 1/Angstrom, > 0
    edges : ndarray, shape (R + 1,), Angstrom
    I_gs : ndarray, shape (Q,), electron units (Å² for electrons)
    probe, energy_kev
        The forward model's probe, and the electron beam energy in keV.

    Returns
    -------
    ndarray, shape (Q, P * R), ΔS per (1/Angstrom of ΔP); column ``p * R + j`` is type p, bin j.
    """
    from scipy.special import sici

    q = np.asarray(q, dtype=float)
    if np.any(q <= 0):
        raise InputError("the pdf method needs q > 0 (sin(qR)/(qR) is integrated over R with 1/q)")
    _, _, elements = pair_types(symbols)
    uniq = sorted({e for pair in elements for e in pair})
    f = dict(zip(uniq, scattering_factors(uniq, q, probe=probe, energy_kev=energy_kev), strict=True))
    si = sici(np.outer(q, edges))[0]  # (Q, R + 1)
    bin_int = (si[:, 1:] - si[:, :-1]) / q[:, None]  # ∫ sin(qR)/(qR) dR over each bin
    cols = [(2.0 * np.real(f[a] * np.conj(f[b])) / I_gs)[:, None] * bin_int for a, b in elements]
    return np.concatenate(cols, axis=1)


def sine_transform(
    q: ArrayLike, dS: np.ndarray, sigma: np.ndarray, r: np.ndarray, *, I_gs: np.ndarray, sum_f2: np.ndarray, damping: float
) -> tuple[np.ndarray, np.ndarray]:
    r"""The damped sine transform of the modified scattering and its propagated σ.

    .. math::

        \Delta P_\mathrm{sine}(R) = \frac{2R}{\pi} \int s(q) \sin(qR) e^{-\alpha q^2} dq,
        \qquad s(q) = \frac{q\, \Delta S(q)\, I_{gs}(q)}{\sum_A f_A^2(q)}

    Parameters
    ----------
    q : ndarray, shape (Q,), 1/Angstrom
    dS, sigma : ndarray, shape (T, Q), fraction
    r : ndarray, shape (R,), Angstrom
    I_gs, sum_f2 : ndarray, shape (Q,), electron units
    damping : float, Angstrom^2

    Returns
    -------
    value, std : ndarray, shape (T, R), 1/Angstrom
    """
    q = np.asarray(q, dtype=float)
    w = np.zeros_like(q)  # trapezoid weights
    if q.size > 1:
        d = np.diff(q)
        w[:-1] += d / 2
        w[1:] += d / 2
    coef = (2.0 / np.pi) * r[None, :] * np.sin(np.outer(q, r)) * (w * q * I_gs / sum_f2 * np.exp(-damping * q * q))[:, None]
    return dS @ coef, np.sqrt((sigma * sigma) @ (coef * coef))


def _second_difference(n_types: int, n_r: int) -> np.ndarray:
    rows = []
    for p in range(n_types):
        D = np.zeros((max(n_r - 2, 0), n_types * n_r))
        for k in range(n_r - 2):
            D[k, p * n_r + k : p * n_r + k + 3] = (1.0, -2.0, 1.0)
        rows.append(D)
    return np.concatenate(rows, axis=0)


def _ground_density(distances: np.ndarray, type_of_pair: np.ndarray, n_types: int, edges: np.ndarray) -> np.ndarray:
    """Kernel density (Gaussian, Scott's bandwidth, at least one bin) of ground-state distances, bin-averaged.

    distances : (M, n_pairs) first-frame distances. Returns (n_types, R), 1/Angstrom,
    each type integrating to its number of pairs (over all R).
    """
    from scipy.special import erf

    dr = edges[1] - edges[0]
    out = np.zeros((n_types, edges.size - 1))
    for p in range(n_types):
        d = distances[:, type_of_pair == p].ravel()
        n_pairs = int(np.sum(type_of_pair == p))
        h = max(1.06 * np.std(d) * d.size ** (-0.2), dr)
        cdf = 0.5 * (1 + erf((edges[None, :] - d[:, None]) / (np.sqrt(2) * h)))  # (n, R + 1)
        out[p] = n_pairs * np.mean(np.diff(cdf, axis=1), axis=0) / dr
    return out


class PairDistributionFit(MeasurementMethod):
    """ΔP(R, t) of a measurement, model-free: a damped sine transform and a regularised inversion.

    Parameters
    ----------
    r_min, r_max, dr : float, Angstrom
        The distance grid (bins of width ``dr``); defaults 0.5 to 10 Å in 0.05 Å.
    damping : float or None, Angstrom^2
        α of the sine transform; None: ln(10)/q_max².
    penalty : {"ridge", "curvature"}
        The Tikhonov operator L (identity, or second difference along R).
    regularize : {"discrepancy", "gcv"} or float
        How λ is chosen (χ² = number of data, or generalised cross-validation), or λ itself.
    bound : bool
        Apply ΔP >= -P_ground where the ground-state pair density is known (a basis is given).
    ground_distances : sequence of float or None, Angstrom
        Ground-state distances (pairs i < j) for I_gs when no basis is given.
    sigma : {"measured", "pre-t0"}
        Use the measurement's σ, or estimate it from the scatter before time zero.
    """

    name = "pdf"

    def __init__(
        self,
        *,
        r_min: float = 0.5,
        r_max: float = 10.0,
        dr: float = 0.05,
        damping: float | None = None,
        penalty: str = "ridge",
        regularize: str | float = "discrepancy",
        bound: bool = True,
        ground_distances: Sequence[float] | None = None,
        sigma: str = "measured",
    ) -> None:
        self.r_min = r_min
        self.r_max = r_max
        self.dr = dr
        self.damping = damping
        self.penalty = penalty
        self.regularize = regularize
        self.bound = bound
        self.ground_distances = ground_distances
        self.sigma = sigma

    def check_settings(self) -> list[str]:
        """Validate the settings (see :meth:`MeasurementMethod.check_settings`); no warnings."""
        check_number("r_min", self.r_min, low=0)
        check_number("dr", self.dr, low=0, low_open=True)
        check_number("r_max", self.r_max, low=self.r_min + self.dr)
        if (self.r_max - self.r_min) / self.dr > 5000:
            raise InputError(
                f"the R grid would have {(self.r_max - self.r_min) / self.dr:.0f} bins; use at most 5000 (a larger dr)"
            )
        if self.damping is not None:
            check_number("damping", self.damping, low=0)
        check_choice("penalty", self.penalty, PENALTIES)
        if isinstance(self.regularize, str):
            check_choice("regularize", self.regularize, RULES)
        else:
            check_number("regularize", self.regularize, low=0)
        if not isinstance(self.bound, bool):
            raise InputError(f"The 'bound' setting must be true or false; got {self.bound!r}")
        return []

    # ------------------------------------------------------------------ the reference
    def _reference(
        self,
        meas: Measurement,
        basis: Dataset | None,
        symbols: Symbols,
        q: np.ndarray,
        type_of_pair: np.ndarray,
        n_types: int,
        edges: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray | None, str]:
        """(I_gs, ground_P or None, description)."""

        if basis is not None:
            first = np.asarray(basis.positions)[:, 0]
            flags = ground_start_flags(basis)  # displaced starts are not ground-state samples
            if flags is not None and flags.any():
                first = first[flags]
            I_gs = intensity(symbols, first, q, **meas.forward()).mean(axis=0)
            d0 = distances(first)
            return (
                I_gs,
                _ground_density(d0, type_of_pair, n_types, edges),
                (
                    f"basis: I_gs = mean first-frame intensity of {len(first)} trajectories that start from a ground-state sample; "
                    f"P_ground = their first-frame distances (Gaussian KDE)"
                ),
            )
        if self.ground_distances is not None:
            d = np.asarray(self.ground_distances, dtype=float).ravel()
            n_pairs = len(symbols) * (len(symbols) - 1) // 2
            if d.size != n_pairs or np.any(~np.isfinite(d)) or np.any(d <= 0):
                raise InputError(f"ground_distances must be {n_pairs} positive distances (pairs i < j), Å; got {list(d)}")
            I_gs = intensity_from_distances(symbols, d, q, **meas.forward())
            return I_gs, None, f"ground_distances {list(map(float, d))} Å (rigid molecule)"
        name = (meas.molecule or "").lower()
        if name in BUILTIN and Counter(builtin(name).symbols) == Counter(symbols):
            mol = builtin(name)
            return (
                intensity(mol.symbols, mol.positions, q, **meas.forward()),
                None,
                f"built-in geometry of {name} (rigid molecule)",
            )
        I_atoms = atomic_intensity(symbols, q, **meas.forward())
        return I_atoms, None, "atoms only: I_gs = Σ f² + Σ S (the ground state's pair term neglected)"

    # ------------------------------------------------------------------ fit
    def fit(
        self, measurement: Measurement, basis: Dataset | None = None, progress: Progress | None = None
    ) -> PairDistributionFit:
        """Invert ``measurement`` into ΔP(R, t).

        Parameters
        ----------
        measurement : molmovie.io.measurement.Measurement
            Must carry the molecule's symbols.
        basis : molmovie.datasets.Dataset, optional
            Trajectories of the same molecule; their first frames give I_gs and P_ground.
        progress : callable(done, info), optional
            Called after each delay's eigen-decomposition, ``info = {"total": T, "stage": ...}``.

        Returns
        -------
        self, with ``result_`` (a :class:`molmovie.io.fit.FitResult`), ``r_``,
        ``dP_``, ``dP_std_``, ``lambda_``.
        """
        with np.errstate(under="ignore"):  # products with the IRF's and the Gaussians' far tails
            return self._fit(measurement, basis, progress)

    def _fit(self, measurement: Measurement, basis: Dataset | None, progress: Progress | None) -> PairDistributionFit:
        from scipy.linalg import eigh
        from scipy.optimize import lsq_linear

        meas = self._start_fit(measurement)
        if meas.symbols is None:
            raise InputError(
                "the measurement names no atoms (symbols); the pdf method needs the molecule's elements for the form factors"
            )
        symbols = tuple(meas.symbols)
        if len(symbols) < 2:
            raise InputError("the pdf method needs a molecule of at least two atoms")
        if basis is not None:
            check_molecule(meas, basis.symbols, what="the basis")
            symbols = tuple(basis.symbols)  # the basis's atom order (same composition)
        sigma, sigma_source = measurement_sigma(meas, self.sigma)
        q, dS = meas.q, meas.dS
        if np.any(q <= 0):
            raise InputError(f"the pdf method needs q > 0; the measurement starts at q = {q[0]:g} 1/Å (mask it with --qmin)")
        T, Q = dS.shape
        labels, type_of_pair, _ = pair_types(symbols)
        n_types = len(labels)
        r, edges = r_bins(float(self.r_min), float(self.r_max), float(self.dr))
        n_r = r.size
        I_gs, ground_P, reference = self._reference(meas, basis, symbols, q, type_of_pair, n_types, edges)
        n = n_types * n_r
        check_allocation(  # the per-delay eigenvectors (T, n, n) and the eigensolver's n x n work arrays, before any is made
            8 * (T + 6) * n * n + 8 * Q * n,
            f"the pdf method's grid ({n_types} pair type(s) x {n_r} R bins from r_min {self.r_min:g} to r_max {self.r_max:g} Å "
            f"at dr {self.dr:g} Å, {T} delays)",
        )
        K = debye_kernel(symbols, q, edges, I_gs, **meas.forward())  # (Q, n); the measurement's probe
        n = K.shape[1]
        if self.penalty == "curvature":
            Lm = _second_difference(n_types, n_r)
            B = Lm.T @ Lm
            B += _RIDGE * np.max(np.diag(B)) * np.eye(n)
        else:
            B = np.eye(n)

        # per-delay generalised eigenproblems  (Kᵀ W K) v = μ B v,  Vᵀ B V = I
        W = 1.0 / sigma**2
        mus = np.empty((T, n))
        Vs = np.empty((T, n, n))
        betas = np.empty((T, n))
        dWd = np.einsum("tq,tq->t", dS * W, dS)
        for t in range(T):
            A = K.T @ (K * W[t][:, None])
            mu, V = eigh(A, B)
            mus[t] = np.clip(mu, 0.0, None)
            Vs[t] = V
            betas[t] = V.T @ (K.T @ (W[t] * dS[t]))
            if progress is not None:
                progress(t + 1, {"total": T, "stage": "decomposing"})
        N = T * Q

        def chi2_and_dof(lam2: float) -> tuple[float, float]:
            den = mus + lam2
            chi = dWd - np.sum(betas**2 * (mus + 2 * lam2) / den**2, axis=1)
            return float(np.sum(np.clip(chi, 0, None))), float(np.sum(mus / den))

        scale = float(np.median(mus[:, -1])) or 1.0
        lo, hi = -14.0, 6.0  # log10(λ² / scale)
        rule = self.regularize if isinstance(self.regularize, str) else "given"
        note = ""
        if rule == "given":
            lam2 = float(self.regularize) ** 2
        elif rule == "discrepancy":
            from scipy.optimize import brentq

            f = lambda s: chi2_and_dof(scale * 10**s)[0] - N  # noqa: E731 - increasing in s
            if f(lo) >= 0:
                lam2, note = (
                    scale * 10**lo,
                    "discrepancy principle not met: χ² > number of data even at the weakest regularisation (the model misfits or σ is too small)",
                )
            elif f(hi) <= 0:
                lam2, note = (
                    scale * 10**hi,
                    "discrepancy principle met only at the strongest regularisation: ΔS is within σ of zero",
                )
            else:
                lam2 = scale * 10 ** brentq(f, lo, hi, xtol=1e-6)
        else:  # gcv
            from scipy.optimize import minimize_scalar

            def gcv(s: float) -> float:
                chi, dof = chi2_and_dof(scale * 10**s)
                return chi / max(N - dof, 1e-12) ** 2

            grid = np.linspace(lo, hi, 81)
            k = int(np.argmin([gcv(s) for s in grid]))
            a, b = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
            lam2 = scale * 10 ** minimize_scalar(gcv, bounds=(a, b), method="bounded").x
        _, dof = chi2_and_dof(lam2)

        den = mus + lam2
        x = np.einsum("tij,tj->ti", Vs, betas / den)
        var = np.einsum("tij,tj->ti", Vs**2, 1.0 / den)
        lb = None
        if self.bound and ground_P is not None:
            lb = -ground_P.ravel()
            crossing = np.flatnonzero(np.any(x < lb - 1e-12, axis=1))
            if crossing.size:
                Lchol = np.linalg.cholesky(B).T * np.sqrt(lam2)
                for t in crossing.tolist():
                    sw = np.sqrt(W[t])
                    Amat = np.vstack([K * sw[:, None], Lchol])
                    bvec = np.concatenate([sw * dS[t], np.zeros(n)])
                    x[t] = lsq_linear(Amat, bvec, bounds=(lb, np.inf), method="bvls").x
        dS_fit = x @ K.T
        chi2 = float(np.sum((dS - dS_fit) ** 2 * W))
        damping = float(self.damping) if self.damping is not None else float(np.log(10.0) / q[-1] ** 2)
        sum_f2 = atomic_intensity(symbols, q, inelastic=False, **meas.forward())  # Σ f² (Σ |f|² for electrons)
        sine, sine_std = sine_transform(q, dS, sigma, r, I_gs=I_gs, sum_f2=sum_f2, damping=damping)

        self.r_ = r
        self.dP_ = x.reshape(T, n_types, n_r)
        self.dP_std_ = np.sqrt(var).reshape(T, n_types, n_r)
        self.lambda_ = float(np.sqrt(lam2))
        part = PdfPart(
            r=r,
            pair_types=tuple(labels),
            dP=self.dP_,
            dP_std=self.dP_std_,
            dP_sine=sine,
            dP_sine_std=sine_std,
            ground_P=ground_P,
            I_gs=I_gs,
            damping=damping,
            regularization=self.lambda_,
            rule=rule,
            penalty=self.penalty,
            reference=reference,
        )
        message = note or f"λ = {self.lambda_:.4g} by the {rule} rule"
        self.result_ = FitResult(
            method=self.name,
            molecule=meas.molecule,
            symbols=symbols,
            delays=meas.delays,
            q=q,
            dS=dS,
            sigma=sigma,
            dS_fit=dS_fit,
            chi2=chi2,
            n_data=N,
            n_params=dof,
            reduced_chi2=chi2 / max(N - dof, 1.0),
            converged=True,
            message=message,
            sigma_source=sigma_source,
            settings=self.settings_json(),
            provenance={"measurement": dict(meas.provenance), "basis": None if basis is None else str(basis.molecule)},
            pdf=part,
        )
        return self
