r"""The least-squares system of the ensemble fit (:class:`~molmovie.fitting.EnsembleFit`), and its solves.

- :class:`_Reduced`: the basis reduced by its singular value decomposition
  to r components, ΔS_i ≈ Σ_k C_ik Z_k, weighted per q by 1/σ̃_q;
- :class:`_System`: the NNLS (or, with the hole's bounds, BVLS) system at one
  (t0, IRF), its N = T_d·Q rows turned into r by a Gram factorisation, plus
  the Franck-Condon rows (:func:`_ground_rows`) and the equality and profile
  pseudo-rows (the weighting method; Lawson and Hanson, *Solving Least Squares
  Problems*, ch. 22);
- :func:`_regularised_solve`, :func:`_discrepancy_mu`: the pull toward uniform
  weights and its μ by the discrepancy principle;
- :func:`_local_model`, :func:`_gradient`: the Hessian of the profile χ²(t0,
  IRF) and its gradient by the envelope theorem, for the bootstrap's Newton
  steps.

The model, and why each piece is there, is the docstring of
:mod:`molmovie.fitting._ensemble`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Weight of the equality pseudo-row Σ c − Σ h = 0, relative to the largest column norm of the system.
EQUALITY_WEIGHT = 1e4
#: Weight of the profile's pseudo-row Σ c = γ_k, relative to the largest column norm of the system. A penalty,
#: not an exact equality: each point is recorded at the Σ c it reached, where it is the exact constrained
#: optimum (the minimiser of χ² + ω²(Σc − γ_k)² minimises χ² among all c of its own sum). Heavier rows
#: stall scipy's BVLS short of the optimum (by Δχ² 5-70 on the I2 run).
PROFILE_WEIGHT = 1.0


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
        self.Z = Y.reshape(-1, T, Q) / wq
        self.Zt = np.ascontiguousarray(self.Z.transpose(1, 0, 2).reshape(T, -1))  # (T, r * Q)
        self.rank = int(self.Z.shape[0])


class _System:
    """The NNLS system at one (t0, IRF): χ²(c) = ‖Φ c − z‖² + (‖d̃‖² − ‖z‖²), plus the ground-state rows G c ≈ 0."""

    def __init__(
        self,
        red: _Reduced,
        K: np.ndarray,
        inv_sigma: np.ndarray,
        ground: np.ndarray | None = None,
        equality: np.ndarray | None = None,
        upper: np.ndarray | None = None,
    ):
        self.upper = upper  # (M,) upper bounds of the weights (inf: none), or None: NNLS
        r, _T, Q = red.Z.shape
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

    def solve(
        self, d: np.ndarray, dd: float, columns: np.ndarray | None = None, total: tuple[np.ndarray, float] | None = None
    ) -> tuple[np.ndarray, float]:
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
    _U, s, Vt = np.linalg.svd(F, full_matrices=False)
    keep = s > rank_tol * max(s[0] if s.size else 0.0, 1e-300)
    return np.sqrt(weight) * (s[keep, None] * Vt[keep])


def _regularised_solve(sys_: _System, d: np.ndarray, dd: float, mu: float) -> tuple[np.ndarray, float]:
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


def _local_model(
    system: Callable[[float, float], _System],
    chi2_at: Callable[[tuple[float, float]], float],
    t0: float,
    irf: float,
    c: np.ndarray,
    red: _Reduced,
    bounds: list[tuple[float, float]],
) -> tuple[np.ndarray, list[np.ndarray]] | tuple[None, None]:
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


def _gradient(parts: list[np.ndarray], sys_: _System, red: _Reduced, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """∂χ²/∂θ at the NNLS optimum (envelope theorem): 2 (model − d)ᵀ ∂model/∂θ."""
    u = red.C.T @ c  # (r,)
    res = sys_.D.T @ u - d
    return np.array([2.0 * (Dk @ res) @ u for Dk in parts])
