"""Per-frame metrics of an inversion: geometry (RMSD) and signal (SSR).

Both are taken on valid frames only (padded frames are NaN and never count):

* RMSD: the predicted distances become coordinates by classical MDS, which
  are aligned to the true geometry by mass-weighted Kabsch, minimised over the
  mirror image. The *labelled* RMSD (the paper's) keeps atom labels; the
  *symmetry-aware* RMSD also minimises over the automorphisms of the bond
  graph, since scattering cannot tell identical atoms apart. It does so frame
  by frame, which lets an answer swap equivalent atoms from one frame to the
  next (say, which S of CS2 has left) at no cost. The *per-trajectory*
  symmetry-aware RMSD allows one relabelling per trajectory, the one with the
  smallest RMSD sum over its frames, as atoms keep their identity in time.
* SSR: the sum over q of the squared difference between the true ΔS and the
  ΔS that Eq. (1) gives from the predicted distances, with the data's own
  q grid, inelastic setting and reference intensity I_ref (what an
  experimentalist has measured).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .._typing import Symbols
from ..geometry import automorphisms, best_relabellings, coordinates_from_distances, heavy_pairs, rmsd
from ..scattering import difference_signal, intensity_from_distances

if TYPE_CHECKING:
    from ..datasets import Dataset

__all__ = ["Evaluation", "evaluate", "reconstruct_signal", "heavy_pairs"]


def reconstruct_signal(
    distances: np.ndarray,
    symbols: Symbols,
    q: np.ndarray,
    I_ref: np.ndarray,
    *,
    inelastic: bool = True,
    probe: str = "xray",
    energy_kev: float | None = None,
) -> np.ndarray:
    """ΔS that Eq. (1) (or, for ``probe="electron"``, the electron I(s)) gives from distances, against a given reference.

    Parameters
    ----------
    distances : ndarray, shape (M, T, n_pairs), Angstrom (NaN frames stay NaN)
    symbols : sequence of str
    q : ndarray, shape (Q,), 1/Angstrom
    I_ref : ndarray, shape (M, Q), electron units
    inelastic : bool
    probe, energy_kev
        The forward model's probe and electron beam energy, keV (:class:`molmovie.scattering.SignalSpec`).

    Returns
    -------
    ndarray, shape (M, T, Q), a fraction
    """
    I = intensity_from_distances(symbols, distances, q, inelastic=inelastic, probe=probe, energy_kev=energy_kev)
    return difference_signal(I, np.asarray(I_ref)[:, None, :])


@dataclass
class Evaluation:
    """Metrics of one prediction on one dataset split.

    Attributes
    ----------
    rmsd : ndarray, shape (M, T), Angstrom
        Labelled RMSD (the paper's), NaN past each length.
    rmsd_sym : ndarray, shape (M, T), Angstrom
        Symmetry-aware RMSD, relabelled frame by frame.
    rmsd_sym_traj : ndarray, shape (M, T), Angstrom
        Symmetry-aware RMSD with one relabelling per trajectory.
    ssr : ndarray, shape (M, T)
        Sum over q of squared ΔS residuals (ΔS as a fraction).
    abs_error : ndarray, shape (M, T, n_pairs), Angstrom
        |R_pred - R_true| per pair.
    dS_pred : ndarray, shape (M, T, Q)
        The reconstructed signal.
    heavy : ndarray of int
        Heavy-atom pair indices.
    """

    rmsd: np.ndarray
    rmsd_sym: np.ndarray
    rmsd_sym_traj: np.ndarray
    ssr: np.ndarray
    abs_error: np.ndarray
    dS_pred: np.ndarray
    heavy: np.ndarray
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Sums over all valid frames (the paper's Figure 2a) and means."""
        valid = np.isfinite(self.rmsd)
        heavy_err = self.abs_error[..., self.heavy][valid]
        return {
            "frames": int(valid.sum()),
            "rmsd_sum": float(np.nansum(self.rmsd)),
            "rmsd_sym_sum": float(np.nansum(self.rmsd_sym)),
            "rmsd_sym_traj_sum": float(np.nansum(self.rmsd_sym_traj)),
            "ssr_sum": float(np.nansum(self.ssr)),
            "rmsd_mean": float(np.nanmean(self.rmsd)) if valid.any() else float("nan"),
            "rmsd_sym_mean": float(np.nanmean(self.rmsd_sym)) if valid.any() else float("nan"),
            "rmsd_sym_traj_mean": float(np.nanmean(self.rmsd_sym_traj)) if valid.any() else float("nan"),
            "ssr_mean": float(np.nanmean(self.ssr)) if valid.any() else float("nan"),
            "heavy_abs_error_mean": float(np.mean(heavy_err)) if heavy_err.size else float("nan"),
            "abs_error_mean": float(np.mean(self.abs_error[valid])) if valid.any() else float("nan"),
        }

    def per_time_step(self) -> dict:
        """Means over trajectories at each time step (the paper's Figure 2c); NaN where no trajectory is valid."""
        out = {}
        for name in ("rmsd", "rmsd_sym", "rmsd_sym_traj", "ssr"):
            a = getattr(self, name)
            n = np.isfinite(a).sum(axis=0)
            s = np.nansum(a, axis=0)
            out[name] = np.divide(s, n, out=np.full(s.shape, np.nan), where=n > 0)
        return out


def evaluate(distances: ArrayLike, dataset: Dataset, *, permutations: np.ndarray | None = None) -> Evaluation:
    """Score predicted distances against a dataset with signals.

    Parameters
    ----------
    distances : ndarray, shape (M, T, n_pairs), Angstrom
        Predictions for the dataset's trajectories (frames past each length are ignored).
    dataset : molmovie.datasets.Dataset
        With positions, lengths and signals.
    permutations : ndarray of int, shape (K, N), optional
        Atom permutations for the symmetry-aware RMSD; default: the
        automorphisms of the bond graph of the dataset's first frame.
    """
    spec, I_ref, dS = dataset.spec, dataset.I_ref, dataset.dS  # a dataset has all three or none
    if spec is None or I_ref is None or dS is None:
        raise InputError("the dataset has no signals; run `molmovie scatter` first")
    if dataset.n_trajectories == 0:
        raise InputError("no trajectories to score: the dataset, or the split chosen, is empty")
    pred = np.array(distances, dtype=float)
    truth = dataset.distances
    if pred.shape != truth.shape:
        raise InputError(f"predicted distances of shape {pred.shape} do not match the dataset's {truth.shape}")
    mask = dataset.mask
    pred[~mask] = np.nan
    positions = dataset.positions
    if permutations is None:
        permutations = automorphisms(dataset.symbols, positions[0, 0])
    masses = dataset.masses
    coords = coordinates_from_distances(pred)
    labelled = rmsd(coords, positions, masses)
    # one pass of QCP residuals chooses both relabellings: each frame's, and each whole trajectory's
    perms, per_frame, per_trajectory = best_relabellings(coords, positions, masses, permutations)
    rmsd_sym = rmsd(_relabel(coords, perms[per_frame]), positions, masses)
    rmsd_sym_traj = rmsd(_relabel(coords, perms[per_trajectory][:, None]), positions, masses)
    dS_pred = reconstruct_signal(pred, dataset.symbols, spec.q, I_ref, **spec.forward())
    resid = dS_pred - dS
    ssr = np.where(mask, np.sum(np.where(mask[..., None], resid, 0.0) ** 2, axis=-1), np.nan)
    abs_error = np.abs(pred - truth)
    return Evaluation(labelled, rmsd_sym, rmsd_sym_traj, ssr, abs_error, dS_pred, heavy_pairs(dataset.symbols))


def _relabel(coords: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """``coords`` (M, T, N, 3) with frame (m, t)'s atoms relabelled by ``perms[m, t]`` (shape (M, T or 1, N))."""
    return np.take_along_axis(coords, perms[..., None], axis=2)
