"""The channel fit's least-squares system: the bounded solve with free nuisance coefficients projected out, the
nuisance vectors, and the q-scale search (:mod:`molmovie.fitting._channels` builds and drives them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.polynomial import legendre as npleg

from ._ensemble_system import EQUALITY_WEIGHT, _Reduced

__all__ = ["QSCALE_LIMIT", "_Solver", "_best_scale", "_nuisance_vectors"]


class _Solver:
    """Least squares over c ≥ 0 (trajectories × alignments, then the hole, bounded) and free nuisance u at one (t0, IRF).

    The nuisance coefficients are unbounded, so they are eliminated exactly before the bounded solve: for
    fixed c the best u is the least-squares one, and the misfit left is that of c against the data and
    columns projected onto the complement of the nuisance vectors (the Frisch-Waugh-Lovell theorem;
    e.g. Seber & Lee, *Linear Regression Analysis*, 2nd ed., §3.7). NNLS (BVLS with the hole's bounds)
    then runs over the basis columns only, whatever the number of nuisance vectors; u follows from c.
    """

    def __init__(
        self,
        red: _Reduced,
        K: np.ndarray,
        inv_sigma: np.ndarray,
        nuis_w: np.ndarray | None,
        ground: np.ndarray | None,
        equality: np.ndarray | None,
        upper: np.ndarray | None,
    ) -> None:
        r, _T, FQ = red.Z.shape
        KZ = K @ red.Zt
        D = (KZ.reshape(K.shape[0], r, FQ).transpose(1, 0, 2) * inv_sigma).reshape(r, -1)
        G = D if nuis_w is None else np.vstack([D, nuis_w])
        lam, E = np.linalg.eigh(G @ G.T)
        ok = lam > 1e-13 * max(lam.max(initial=0.0), 1e-300)
        self.G, self.Pr = G, (E[:, ok] / np.sqrt(lam[ok])).T
        n_nu = 0 if nuis_w is None else nuis_w.shape[0]
        Mc = red.C.shape[0]
        lift = np.zeros((r + n_nu, Mc + n_nu))
        lift[:r, :Mc] = red.C.T
        if n_nu:
            lift[r:, Mc:] = np.eye(n_nu)
        core = (np.sqrt(lam[ok])[:, None] * E[:, ok].T) @ lift  # the data's coordinates of every column
        self.n_core, self.Mc, self.n_nu = core.shape[0], Mc, n_nu
        self.Phi_c, self.Phi_n = core[:, :Mc], core[:, Mc:]
        self.Qn = np.zeros((self.n_core, 0))
        if n_nu:
            U, sv, _ = np.linalg.svd(self.Phi_n, full_matrices=False)
            self.Qn = U[:, sv > 1e-10 * max(float(sv.max(initial=0.0)), 1e-300)]  # nuisance vectors' span
        A = self.Phi_c - self.Qn @ (self.Qn.T @ self.Phi_c)
        extra = []
        if ground is not None and ground.shape[0]:
            extra.append(ground)
        if equality is not None:
            omega = EQUALITY_WEIGHT * max(float(np.max(np.linalg.norm(core, axis=0))), 1e-300)
            extra.append(omega * equality[None, :])
        self.A = np.vstack([A, *extra]) if extra else A
        self.upper = upper

    def solve(self, d: np.ndarray) -> tuple[np.ndarray, float]:
        """(x, χ²): x = [c, u⁺, u⁻] (u = u⁺ − u⁻, the parts ≥ 0), χ² of the weighted data ``d``."""
        from scipy.optimize import lsq_linear, nnls

        z = self.Pr @ (self.G @ d)
        zp = z - self.Qn @ (self.Qn.T @ z)
        zz = np.concatenate([zp, np.zeros(self.A.shape[0] - zp.size)])
        if self.upper is None:
            c, _ = nnls(self.A, zz, maxiter=50 * self.A.shape[1])
        else:
            res = lsq_linear(
                self.A,
                zz,
                bounds=(np.zeros(self.A.shape[1]), self.upper),
                method="bvls",
                tol=1e-12,
                max_iter=50 * self.A.shape[1],
            )
            c = np.clip(res.x, 0.0, self.upper)
        left = z - self.Phi_c @ c
        u = np.linalg.lstsq(self.Phi_n, left, rcond=None)[0] if self.n_nu else np.zeros(0)
        r = self.Phi_n @ u - left
        x = np.concatenate([c, np.maximum(u, 0.0), np.maximum(-u, 0.0)])
        return x, float(r @ r + d @ d - z @ z)


def _nuisance_vectors(
    kinds: Sequence[str], step: np.ndarray, q: np.ndarray, orders: tuple[int, ...], dS0: np.ndarray
) -> tuple[np.ndarray | None, list[tuple[str, int]]]:
    """Unweighted nuisance vectors, shape (n, T_d, F, Q), and (kind, index) labels."""
    T, F, Q = step.size, len(orders), q.size
    vecs, labels = [], []
    x = 2 * (q - q[0]) / max(q[-1] - q[0], 1e-12) - 1
    for kind in kinds:
        if kind in ("offset", "step"):
            prof = np.ones(T) if kind == "offset" else step
            for f in range(F):
                for k in range(Q):
                    v = np.zeros((T, F, Q))
                    v[:, f, k] = prof
                    vecs.append(v)
                    labels.append((kind, f * Q + k))
        elif kind == "background":
            for f in range(F):
                for deg in range(4):
                    v = np.zeros((T, F, Q))
                    v[:, f, :] = step[:, None] * npleg.legval(x, np.eye(deg + 1)[deg])[None, :]
                    vecs.append(v)
                    labels.append((kind, f * 4 + deg))
        elif kind == "leak":
            for f, m in enumerate(orders):
                if m == 0:
                    continue
                for deg in range(3):
                    v = np.zeros((T, F, Q))
                    v[:, f, :] = dS0 * npleg.legval(x, np.eye(deg + 1)[deg])[None, :]
                    vecs.append(v)
                    labels.append((kind, f * 3 + deg))
    if not vecs:
        return None, []
    return np.stack(vecs), labels


#: How far from 1 the q-scale search goes (a calibration off by more is not a nuisance term's to absorb).
QSCALE_LIMIT = 0.1


def _best_scale(grid: Sequence[float], chi2: Callable[[float], float]) -> float:
    """The s of least χ² on ``grid``, extended past an end while χ² falls there (spacing of the grid, |s − 1| ≤ QSCALE_LIMIT)."""
    values = sorted({float(v) for v in grid})
    seen = {v: chi2(v) for v in values}
    step = min(np.diff(values)) if len(values) > 1 else 0.01
    while True:
        best = min(seen, key=lambda v: seen[v])
        lo, hi = min(seen), max(seen)
        if best == lo and lo - step >= 1 - QSCALE_LIMIT - 1e-12:
            nxt = lo - step
        elif best == hi and hi + step <= 1 + QSCALE_LIMIT + 1e-12:
            nxt = hi + step
        else:
            return best
        seen[round(nxt, 12)] = chi2(round(nxt, 12))
