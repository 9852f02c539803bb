"""One evaluation stage, shared by ``molmovie evaluate`` and the study: predict a split, score it, save the scores.

An evaluation file is one compressed NumPy ``.npz`` (plain arrays, read
with ``allow_pickle=False``): the predictions, the per-frame metrics, their
per-time-step means, and the summary as a JSON string.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from .._errors import InputError
from .._typing import PathLike, Progress
from ..io import atomic_path
from .metrics import evaluate

if TYPE_CHECKING:
    from ..datasets import Dataset
    from ..inversion import InversionMethod

__all__ = ["score_method", "score_prediction", "write_scores", "read_scores"]


def score_method(method: InversionMethod, dataset: Dataset, *, progress: Progress | None = None) -> dict:
    """Predict a dataset split with a fitted inversion method and score it.

    Parameters
    ----------
    method : molmovie.inversion.InversionMethod
        Fitted.
    dataset : molmovie.datasets.Dataset
        With positions and signals.
    progress : callable, optional
        ``progress(done, info)``: 0 of 1 before the prediction, 1 of 1 after
        (a method predicts all series in one call, so that its answer does not
        depend on how they are grouped).

    Raises
    ------
    InputError
        The model is of another molecule than the data ("model of C2H4, data of CS2").

    Returns
    -------
    dict
        ``distances`` and ``std`` (M, T, n_pairs) Angstrom (``std`` of shape
        (0,) for a method without uncertainties); ``rmsd``, ``rmsd_sym``,
        ``rmsd_sym_traj`` (M, T) Angstrom and ``ssr`` (M, T) per frame;
        ``dS_pred`` (M, T, Q); their means per time step ``rmsd_t``,
        ``rmsd_sym_t``, ``rmsd_sym_traj_t``, ``ssr_t`` (T,); and ``summary``
        (:meth:`~molmovie.evaluation.Evaluation.summary`, plus
        ``within_2sigma``, the fraction of true distances inside ±2σ, for
        methods with an uncertainty).
    """
    method.check_molecule(dataset.symbols, dataset.molecule)
    if dataset.dS is None or dataset.q is None:
        raise InputError("the dataset has no scattering signals to invert; run `molmovie scatter` on it first")
    if progress is not None:
        progress(0, {"total": 1, "unit": "predictions", "stage": "predicting"})
    pred = method.predict(dataset.dS, q=dataset.q, lengths=dataset.length)
    if progress is not None:
        progress(1, {"total": 1, "unit": "predictions", "stage": "predicting"})
    return score_prediction(pred.distances, pred.std, dataset)


def score_prediction(distances: np.ndarray, std: np.ndarray | None, dataset: Dataset) -> dict:
    """Score predicted distances (and their std, or None) against a dataset split: :func:`score_method`'s answer.

    The prediction may have been made from other signals than the dataset's
    (noisy ones, say); the scores are against the dataset's true distances
    and, for the SSR, its signals.
    """
    ev = evaluate(distances, dataset)
    summary = ev.summary()
    if std is not None:
        inside = np.abs(distances - dataset.distances) <= 2 * std
        summary["within_2sigma"] = float(inside[dataset.mask].mean())
    per_t = ev.per_time_step()
    return dict(
        distances=distances,
        std=std if std is not None else np.zeros((0,)),
        rmsd=ev.rmsd,
        rmsd_sym=ev.rmsd_sym,
        rmsd_sym_traj=ev.rmsd_sym_traj,
        ssr=ev.ssr,
        dS_pred=ev.dS_pred,
        rmsd_t=per_t["rmsd"],
        rmsd_sym_t=per_t["rmsd_sym"],
        rmsd_sym_traj_t=per_t["rmsd_sym_traj"],
        ssr_t=per_t["ssr"],
        summary=summary,
    )


def write_scores(path: PathLike, scores: dict) -> None:
    """Write :func:`score_method`'s answer to an ``.npz`` file atomically (the summary as JSON)."""
    arrays = {k: v for k, v in scores.items() if k != "summary"}
    arrays["summary_json"] = np.array(json.dumps(scores["summary"]))
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def read_scores(path: PathLike) -> dict:
    """Read an evaluation file written by :func:`write_scores`: its arrays and ``summary`` (a dict)."""
    with np.load(path, allow_pickle=False) as z:
        scores = {k: z[k] for k in z.files}
    scores["summary"] = json.loads(str(scores.pop("summary_json")))
    return scores
