"""Transfer to another dynamics model: the CS2 models scored on trajectories of a model they did not train on.

A preset's ``foreign_models`` ({"cs2": ("cs2-triplet", n)}) makes the study score
every CS2 model on ``n`` trajectories of that model (generated in the data folder
as ``cs2-cs2-triplet.h5``; here the test writes that file, so nothing is
generated), beside the SHARC runs, as itself and under every noise level of the
experiment's conditions. Checked against independent recomputations with
:func:`molmovie.evaluation.transfer.transfer`, the noise drawn for that source
(not the SHARC runs' draw), the tables, and a file in that place that holds
another model's runs.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from molmovie import InputError
from molmovie.datasets import Dataset
from molmovie.evaluation.study import EXPERIMENTS, presets as study_module, run_study
from molmovie.evaluation.study.conditions import CONDITIONS, condition_signals
from molmovie.evaluation.study.stages import Stage
from molmovie.evaluation.study.transfer import TRANSFER_SCORE, other_model_seed, transfer_entry
from molmovie.evaluation.transfer import foreign_dataset, read_foreign, transfer
from molmovie.inversion import get_method, load_method
from molmovie.io import write_dataset
from molmovie.trajectories import Ensemble

from _fixtures import CS2_SYMBOLS, cs2_positions, write_sharc
from test_study import PRESET, SEED, VRNN_SETTINGS, build_dataset

OTHER = "cs2-triplet"
STUDIED = tuple(e for e in EXPERIMENTS if e.molecule == "cs2" and e.probe == "xray")  # CS2 and CS2 bound
EXP = STUDIED[0]


def quiet(line: str) -> None:
    pass


def other_runs(n: int = 3, model: str = OTHER, frames: int = 8, seed: int | None = None) -> Ensemble:
    """``n`` CS2 trajectories of 2 fs frames (the study's test data's spacing), the last one dissociating, made by ``model``."""
    pos = np.stack([cs2_positions(frames, dissociate=k == n - 1, dt=2.0, seed=40 + k) for k in range(n)])
    gone = np.arange(n) == n - 1
    return Ensemble(
        "cs2",
        CS2_SYMBOLS,
        np.arange(frames) * 2.0,
        pos,
        np.full(n, frames),
        gone,
        [f"traj{k}" for k in range(n)],
        provenance={"model": {"name": model}, **({} if seed is None else {"seed": seed})},
    )


def test_the_other_models_seed_is_not_the_studys_and_is_fixed():
    assert other_model_seed(0) != 0 and other_model_seed(0) == other_model_seed(0) != other_model_seed(1)


@pytest.fixture(scope="module")
def entry(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer-other")
    out = root / "out"
    (out / "models").mkdir(parents=True)
    (out / "eval").mkdir()
    train = build_dataset("cs2").split("train")
    stages = [Stage(EXP, "nearest", SEED, SEED, False), Stage(EXP, "vrnn", SEED, SEED, False)]
    for st in stages:
        settings = {} if st.method == "nearest" else {**VRNN_SETTINGS, "seed": st.seed}
        get_method(st.method, **settings).fit(train).save(st.paths(out)[0])
    runs = other_runs()
    e = transfer_entry(EXP, stages, runs, out, train, 1, quiet, conditions=("clean", "noise-0.01"), source=OTHER)
    return out, stages, runs, e


def test_each_model_is_scored_on_the_other_models_runs_as_transfer_scores_it(entry):
    out, stages, runs, e = entry
    assert e["source"] == OTHER and e["runs"] == 3 and e["dissociated"] == [False, False, True]
    for st in stages:
        direct = transfer(load_method(st.paths(out)[0]), runs).summary()
        assert e["methods"][st.method][TRANSFER_SCORE] == pytest.approx(direct[TRANSFER_SCORE], rel=1e-12)
        assert (out / "eval" / f"{st.paths(out)[1].stem}-transfer-{OTHER}.npz").exists()
    assert not list((out / "eval").glob("*-transfer-sharc*"))


def test_under_noise_the_other_models_runs_get_their_own_draw(entry):
    out, stages, runs, e = entry
    assert list(e["conditions"]) == ["noise-0.01"]
    st = stages[0]
    model = load_method(st.paths(out)[0])
    ds = foreign_dataset(model, runs)
    cond = CONDITIONS["noise-0.01"]
    mine = condition_signals(ds, cond, seed=SEED, experiment=f"cs2/{OTHER}")
    sharcs = condition_signals(ds, cond, seed=SEED, experiment="cs2/sharc")
    assert not np.allclose(mine[ds.mask], sharcs[ds.mask])  # keyed by the source: not the SHARC runs' noise
    with np.load(out / "eval" / f"{st.paths(out)[1].stem}-transfer-{OTHER}-noise-0.01-draw{SEED}.npz") as z:
        stored = z["distances"]
        summary = json.loads(str(z["summary_json"]))
    pred = model.predict(mine, q=ds.q, lengths=ds.length).distances
    np.testing.assert_allclose(stored[ds.mask], pred[ds.mask], rtol=1e-6)
    assert e["conditions"]["noise-0.01"]["methods"]["nearest"][TRANSFER_SCORE] == summary["plain"][TRANSFER_SCORE]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(study_module, "EXPERIMENTS", STUDIED)
        root = tmp_path_factory.mktemp("transfer-other-study")
        data = root / "data"
        data.mkdir()
        write_dataset(build_dataset("cs2"), data / "cs2.h5")
        runs = other_runs(seed=other_model_seed(SEED))
        write_dataset(Dataset(runs), data / f"cs2-{OTHER}.h5")
        sharc = root / "sharc"
        for k in range(2):  # and SHARC runs beside them: both sources scored, each its own table
            write_sharc(sharc / f"TRAJ_{k + 1:05d}", cs2_positions(41, dissociate=k == 1, seed=20 + k))
        preset = dataclasses.replace(PRESET, foreign_models={"cs2": (OTHER, 3)})
        log: list[str] = []
        res = run_study(preset, root / "out", seed=SEED, data_dir=data, sharc_dir=sharc, log=log.append)
        yield root, data, preset, runs, res, log


def test_the_study_scores_every_cs2_model_on_the_other_models_runs(study):
    root, data, preset, runs, res, log = study
    assert any(f"reusing {data / f'cs2-{OTHER}.h5'}" in line for line in log)
    for exp in STUDIED:
        t = res["experiments"][exp.key]["transfer"][OTHER]
        mine = runs.subset(np.flatnonzero(~runs.dissociated)) if exp.bound_only else runs
        assert t["runs"] == mine.n_trajectories  # the bound experiment: the bound runs only
        for method in preset.methods:
            direct = transfer(load_method(root / "out" / "models" / f"{exp.key}-{method}.safetensors"), mine).summary()
            assert t["methods"][method][TRANSFER_SCORE] == pytest.approx(direct[TRANSFER_SCORE], rel=1e-12)
        assert res["experiments"][exp.key]["transfer"]["sharc"]["source"] == "sharc"  # the SHARC runs' entry beside it
    md = (root / "out" / "results.md").read_text()
    assert f"Transfer to another dynamics model ({OTHER}:" in md and f"| experiment | {OTHER} runs |" in md
    assert "| experiment | SHARC runs |" in md
    assert read_foreign(data / f"cs2-{OTHER}.h5").n_trajectories == 3


@pytest.mark.parametrize(
    "runs, message",
    [
        (dict(model="cs2-isc"), rf"holds 3 cs2 trajectories of the model 'cs2-isc', not the 3 of '{OTHER}'"),
        (dict(n=2), rf"holds 2 cs2 trajectories of the model '{OTHER}', not the 3"),
        (dict(seed=SEED), rf"{OTHER} trajectories generated with seed {SEED}, not the {other_model_seed(SEED)}"),
    ],
)
def test_a_file_of_other_runs_in_its_place_is_refused(study, tmp_path, runs, message):
    root, data, preset, _, res, log = study
    wrong = tmp_path / "data"
    wrong.mkdir()
    (wrong / "cs2.h5").write_bytes((data / "cs2.h5").read_bytes())
    write_dataset(Dataset(other_runs(**runs)), wrong / f"cs2-{OTHER}.h5")
    before = (wrong / f"cs2-{OTHER}.h5").read_bytes()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(study_module, "EXPERIMENTS", STUDIED)
        with pytest.raises(InputError, match=message):
            run_study(preset, tmp_path / "out", seed=SEED, data_dir=wrong, log=quiet)
    assert (wrong / f"cs2-{OTHER}.h5").read_bytes() == before


def test_no_other_runs_are_made_for_a_molecule_the_study_leaves_out(tmp_path):
    """A preset that names other runs of CS2, studying only C2H4: nothing of CS2 is generated or asked for."""
    c2h4 = tuple(e for e in EXPERIMENTS if e.key == "c2h4")
    data = tmp_path / "data"
    data.mkdir()
    write_dataset(build_dataset("c2h4"), data / "c2h4.h5")
    preset = dataclasses.replace(PRESET, methods={"nearest": {}}, foreign_models={"cs2": (OTHER, 3)})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(study_module, "EXPERIMENTS", c2h4)
        res = run_study(preset, tmp_path / "out", seed=SEED, data_dir=data, log=quiet)
    assert sorted(p.name for p in data.iterdir()) == ["c2h4.h5"] and "transfer" not in res["experiments"]["c2h4"]
