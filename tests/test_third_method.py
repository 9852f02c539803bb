"""Adding a method is one new file plus one registry line.

The file is played here by :class:`TrainingMean` (every frame answered with the
training set's mean distances, the reference the study already reports);
the registry line by ``monkeypatch.setitem(METHODS, "mean", TrainingMean)``.
Nothing else is told about it, yet it goes through ``molmovie train``,
``invert`` and ``evaluate``, and through a study beside the two built-in
methods, with its own column in every table and its own bars and lines in
every figure.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from molmovie import InputError
from molmovie.evaluation.study import SCORES, Experiment, Preset, presets as study_module, run_study
from molmovie.inversion import METHODS, InversionMethod, Prediction, load_method
from molmovie.io import write_dataset

from _fixtures import run_cli
from test_inversion import make_dataset
from test_study import COUNTS, SEED, build_dataset

# ----------------------------------------------------------------------------- the new file


class TrainingMean(InversionMethod):
    """Every frame answered with the training frames' mean distances (times ``scale``), without uncertainty."""

    name = "mean"
    label = "training mean"
    _fitted_attr = "mean_"

    def __init__(self, *, scale: float = 1.0):
        self.scale = scale

    def check_settings(self) -> list[str]:
        if not isinstance(self.scale, (int, float)) or not self.scale > 0:
            raise InputError(f"The 'scale' setting must be > 0; got {self.scale!r}")
        return []

    def fit(self, train, val=None, *, progress=None) -> TrainingMean:
        mask, val = self._start_fit(train, val)  # settings, data, and the training frames' mask
        self._record_dataset(train)
        self.mean_ = self.scale * np.nanmean(train.distances[mask], axis=0)
        if progress is not None:
            progress(1, {"total": 1, "unit": "steps"})
        return self

    def predict(self, dS, *, q, lengths=None) -> Prediction:
        _, _, mask = self._signals(dS, q, lengths)  # checked against the training q grid; valid frames
        out = np.full(mask.shape + (self.n_pairs_,), np.nan)
        out[mask] = self.mean_
        return Prediction(distances=out)

    def _arrays(self) -> dict:
        return {"mean": self.mean_}

    def _restore(self, config, arrays, path) -> None:
        self.mean_ = np.asarray(arrays["mean"], dtype=float)


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(METHODS, "mean", TrainingMean)  # the one registry line


# ----------------------------------------------------------------------------- the CLI


def test_the_new_method_trains_inverts_and_evaluates_through_the_cli(registered, tmp_path, capsys):
    ds = make_dataset(M=20, T=10, Q=12, dissociate=0.4, seed=2)
    data = write_dataset(ds, tmp_path / "cs2.h5")
    model = tmp_path / "mean.safetensors"
    train = ds.split("train")
    code, out, err = run_cli(["train", data, "--method", "mean", "-o", model, "--set", "scale=2.0", "--epochs", "3"], capsys)
    assert code == 0, err
    assert f"mean model of cs2 trained on {train.n_trajectories} trajectories" in out
    assert "--epochs does not apply to the mean method; ignored" in err
    mean_R = train.distances[train.mask].mean(axis=0)
    fitted = load_method(model)
    assert isinstance(fitted, TrainingMean) and fitted.scale == 2.0
    np.testing.assert_allclose(fitted.mean_, 2.0 * mean_R, rtol=1e-12)

    code, out, err = run_cli(["train", data, "--method", "mean", "-o", model, "--force", "--set", "scale=-1"], capsys)
    assert code == 2 and "'scale' setting must be > 0" in err
    assert load_method(model).scale == 2.0  # the old model is kept
    code, _, err = run_cli(["train", data, "--method", "mean", "-o", model, "--force"], capsys)
    assert code == 0, err

    result = tmp_path / "result.h5"
    code, out, err = run_cli(["invert", model, data, "-o", result], capsys)
    assert code == 0, err
    assert "(mean, without uncertainties)" in out
    with h5py.File(result, "r") as f:
        got = f["distances"][()]
        assert f.attrs["method"] == "mean" and "std" not in f
    np.testing.assert_allclose(got[ds.mask], np.broadcast_to(mean_R, got[ds.mask].shape), rtol=1e-12)
    assert np.isnan(got[~ds.mask]).all()

    folder = tmp_path / "eval"
    code, out, err = run_cli(["evaluate", model, data, "-o", folder], capsys)
    assert code == 0, err
    metrics = json.loads((folder / "metrics.json").read_text())
    test = ds.split("test")
    assert metrics["frames"] == int(test.length.sum())
    assert metrics["abs_error_mean"] == pytest.approx(np.abs(test.distances[test.mask] - mean_R).mean(), rel=1e-12)
    assert "within_2sigma" not in metrics
    assert (folder / "per_time_step.png").read_bytes()[:4] == b"\x89PNG"


def test_unknown_methods_are_one_line_errors_listing_the_registry(registered, tmp_path, capsys):
    ds = make_dataset(M=6, T=6, Q=8)
    data = write_dataset(ds, tmp_path / "cs2.h5")
    code, _, err = run_cli(["train", data, "--method", "knn", "-o", tmp_path / "m.safetensors"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert f"unknown inversion method 'knn'; choose one of {', '.join(METHODS)}" in err and err.rstrip().endswith(", mean")


# ----------------------------------------------------------------------------- the study


def test_the_new_method_runs_in_a_study_beside_the_others(registered, tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for mol in COUNTS:
        write_dataset(build_dataset(mol), data_dir / f"{mol}.h5")
    # one experiment runs only two of the three methods
    experiments = tuple(
        Experiment(e.key, e.label, e.molecule, e.bound_only, ("nearest", "mean"), e.pair) if e.key == "cs2-bound" else e
        for e in study_module.EXPERIMENTS
    )
    monkeypatch.setattr(study_module, "EXPERIMENTS", experiments)
    tiny = dict(hidden=8, features=6, latent_free=2, epochs=2, batch_size=4, physics=0.0, device="cpu")
    preset = Preset("three", COUNTS, methods={"nearest": {}, "vrnn": tiny, "mean": {}})
    out = tmp_path / "out"
    results = run_study(preset, out, seed=SEED, data_dir=data_dir, log=lambda line: None)

    for e in experiments:
        entry = results["experiments"][e.key]
        want = ["nearest", "mean"] if e.key == "cs2-bound" else ["nearest", "vrnn", "mean"]
        assert list(entry["methods"]) == want
        assert isinstance(load_method(out / "models" / f"{e.key}-mean.safetensors"), TrainingMean)
        # the new method scores exactly the reference the study computes on its own
        assert entry["methods"]["mean"]["abs_error_mean"] == pytest.approx(entry["mean_predictor_abs_error"], rel=1e-12)
        for k in SCORES:
            values = sorted((entry["methods"][m][k], i) for i, m in enumerate(want))
            assert entry["winner"][k] == want[values[0][1]] and entry["runner_up"][k] == want[values[1][1]]
            assert entry["margin"][k] == pytest.approx(values[1][0] - values[0][0], rel=1e-12, abs=1e-300)

    md = (out / "results.md").read_text()
    assert "RMSD sum (Å), labelled: baseline / VRNN / training mean" in md.splitlines()[0]
    row = next(line for line in md.splitlines() if line.startswith("| CS2 bound | "))
    assert all(len(cell.split(" / ")) == 3 and "-" in cell.split(" / ")[1] for cell in row.split("|")[3:-1])
    assert "training mean wins: labelled RMSD" in md
    assert sum(line.startswith("| NMM |") for line in md.splitlines()) == 3  # the scores, the margins, the mean errors
    for name in ("fig2a.png", "fig2b.png", "fig2c.png", "signals.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_ranking_of_any_number_of_methods():
    from molmovie.evaluation.study import rank_methods

    scores = dict.fromkeys(SCORES, 2.0)
    one = rank_methods({"a": scores})
    assert one["winner"] == dict.fromkeys(SCORES, "a")
    assert one["runner_up"] == one["margin"] == dict.fromkeys(SCORES, None)
    three = rank_methods({"a": dict(scores, ssr_sum=5.0), "b": dict(scores, ssr_sum=1.0), "c": dict(scores, ssr_sum=4.0)})
    assert three["winner"]["ssr_sum"] == "b" and three["runner_up"]["ssr_sum"] == "c" and three["margin"]["ssr_sum"] == 3.0
    assert three["winner"]["rmsd_sum"] == "a" and three["runner_up"]["rmsd_sum"] == "b"  # ties: the method listed first
    assert three["margin"]["rmsd_sum"] == 0.0
