"""Transfer in the study: the training frame interval in model files, and the CS2 models scored on foreign runs.

The study's CS2 experiments score each trained model on foreign trajectories
(SHARC runs; here tiny SHARC-like folders written by the test) with
:func:`molmovie.evaluation.transfer.transfer`. The numbers in results.json
must be exactly those of calling ``transfer`` on the stored model; a study
without foreign runs reads as before.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from molmovie import InputError
from molmovie.datasets import Dataset
from molmovie.inversion import get_method, load_method
from molmovie.io.model import read_model_file, write_model_file
from molmovie.scattering import SignalSpec, q_grid, simulate
from molmovie.trajectories import Ensemble

from _fixtures import CS2_SYMBOLS, cs2_positions

# ----------------------------------------------------------------------------- the frame interval in model files


def _cs2_dataset(time: np.ndarray) -> Dataset:
    pos = np.stack([cs2_positions(len(time), seed=k) for k in range(3)])
    ens = Ensemble("cs2", CS2_SYMBOLS, time, pos, np.full(3, len(time)), np.zeros(3, bool), [f"run{k}" for k in range(3)])
    return Dataset(ens).with_signals(*simulate(ens.symbols, ens.positions, ens.length, ens.time, SignalSpec(q_grid(n_q=12))))


@pytest.mark.parametrize("name", ["nearest", "vrnn"])
def test_a_model_records_the_median_frame_interval_and_keeps_it_through_its_file(name, tmp_path):
    # frames every 2.5 fs but one gap of 5 fs: the median spacing is 2.5 fs, the mean would not be
    time = np.array([0.0, 2.5, 5.0, 7.5, 12.5, 15.0, 17.5])
    settings = (
        dict(hidden=4, features=3, latent_free=1, epochs=1, batch_size=3, physics=0.0, device="cpu") if name == "vrnn" else {}
    )
    method = get_method(name, **settings).fit(_cs2_dataset(time))
    assert method.dt_ == 2.5
    back = load_method(method.save(tmp_path / "m.safetensors"))
    assert back.dt_ == 2.5 and isinstance(back.dt_, float)


def test_a_model_file_from_before_the_frame_interval_loads_without_one(tmp_path):
    path = get_method("nearest").fit(_cs2_dataset(np.arange(6) * 5.0)).save(tmp_path / "m.safetensors")
    name, config, arrays = read_model_file(path)
    assert config["dt_fs"] == 5.0
    del config["dt_fs"]
    old = load_method(write_model_file(tmp_path / "old.safetensors", name, config, arrays))
    assert old.dt_ is None
    np.testing.assert_array_equal(old.q_, load_method(path).q_)
    config["dt_fs"] = -1.0
    with pytest.raises(InputError, match=r"bad\.safetensors: damaged molmovie model file \(frame interval dt_fs -1\.0"):
        load_method(write_model_file(tmp_path / "bad.safetensors", name, config, arrays))


# ----------------------------------------------------------------------------- the study's transfer score

from molmovie.evaluation.study import (  # noqa: E402
    EXPERIMENTS,
    TRANSFER_TITLE,
    method_label,
    presets as study_module,
    rank_methods,
    results_markdown,
    run_study,
)
from molmovie.evaluation.transfer import read_foreign, transfer  # noqa: E402
from molmovie.io import write_dataset  # noqa: E402

from _fixtures import assert_one_line_error, run_cli, write_sharc  # noqa: E402
from test_study import DT, PRESET, SEED, VOLATILE, build_dataset, load_npz, snapshot  # noqa: E402

STUDIED = tuple(e for e in EXPERIMENTS if e.molecule == "cs2")  # CS2, CS2 bound, and CS2 UED (electron ΔS of the runs)
KEYS = [e.key for e in STUDIED]
METHOD_NAMES = tuple(PRESET.methods)


@pytest.fixture(scope="module", autouse=True)
def cs2_only():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(study_module, "EXPERIMENTS", STUDIED)
        yield


def quiet(line: str) -> None:
    pass


def common(results: dict) -> dict:
    return {k: v for k, v in results.items() if k not in VOLATILE}


def without_transfer(results: dict) -> dict:
    out = common(results)
    out["experiments"] = {k: {n: v for n, v in e.items() if n != "transfer"} for k, e in out["experiments"].items()}
    return out


def transfer_files(out) -> dict:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted((out / "eval").glob("*-transfer-sharc.npz"))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three SHARC-like CS2 runs of 20 fs in 0.5 fs steps: two bound, one that loses an S atom."""
    folder = tmp_path_factory.mktemp("sharc") / "sharc-cs2"
    for k, gone in enumerate((False, True, False)):
        write_sharc(folder / f"TRAJ_{k + 1:05d}", cs2_positions(41, dissociate=gone, seed=20 + k))
    return folder


@pytest.fixture(scope="module")
def study(runs, tmp_path_factory):
    """A study without foreign runs, then the same folder with them (twice), then with two seeds."""
    root = tmp_path_factory.mktemp("transfer-study")
    data_dir = root / "data"
    data_dir.mkdir()
    write_dataset(build_dataset("cs2"), data_dir / "cs2.h5")
    out = root / "out"
    plain = run_study(PRESET, out, seed=SEED, data_dir=data_dir, log=quiet)
    plain_md = (out / "results.md").read_text()
    stages = snapshot(out)
    log: list[str] = []
    scored = run_study(PRESET, out, seed=SEED, data_dir=data_dir, sharc_dir=runs, log=log.append)
    scored_md = (out / "results.md").read_text()
    after = snapshot(out)
    files = transfer_files(out)
    again_log: list[str] = []
    again = run_study(PRESET, out, seed=SEED, data_dir=data_dir, sharc_dir=runs, log=again_log.append)
    files_again = transfer_files(out)
    two = run_study(PRESET, out, seed=SEED, seeds=2, data_dir=data_dir, sharc_dir=runs, log=quiet)
    two_md = (out / "results.md").read_text()
    return SimpleNamespace(
        out=out,
        data_dir=data_dir,
        plain=plain,
        plain_md=plain_md,
        stages=stages,
        scored=scored,
        scored_md=scored_md,
        after=after,
        files=files,
        log=log,
        again=again,
        again_log=again_log,
        files_again=files_again,
        two=two,
        two_md=two_md,
    )


def direct(out, key: str, stem: str, runs_dir) -> dict:
    """``transfer()`` called here on a stored model: on every run, or those that stay bound for a bound-only experiment."""
    foreign = read_foreign(runs_dir)
    if key.endswith("-bound"):
        foreign = foreign.subset(np.flatnonzero(~foreign.dissociated))
    return transfer(load_method(out / "models" / f"{key}-{stem}.safetensors"), foreign).summary()


RUN_KEYS = ("runs", "sources", "dissociated")


def test_results_hold_the_transfer_of_every_stored_model_as_transfer_itself_scores_it(study, runs):
    # the folder's transfer files as these runs leave them (a test before this one, in any order, may have scored others)
    run_study(PRESET, study.out, seed=SEED, data_dir=study.data_dir, sharc_dir=runs, log=quiet)
    for key in KEYS:
        t = study.scored["experiments"][key]["transfer"]["sharc"]
        bound = key.endswith("-bound")
        assert t["runs"] == (2 if bound else 3) and t["bound_only"] == bound and t["dt_fs"] == DT
        assert t["dissociated"] == ([False, False] if bound else [False, True, False])
        assert t["sources"] == (["TRAJ_00001", "TRAJ_00003"] if bound else ["TRAJ_00001", "TRAJ_00002", "TRAJ_00003"])
        for m in METHOD_NAMES:
            want = direct(study.out, key, m, runs)
            assert t["methods"][m] == {k: v for k, v in want.items() if k not in RUN_KEYS}, (key, m)
            stored = load_npz(study.out / "eval" / f"{key}-{m}-transfer-sharc.npz")
            assert json.loads(str(stored["summary_json"]))["transfer_error"] == want["transfer_error"]
            np.testing.assert_array_equal(stored["run_error"], want["transfer_error_runs"])
        errors = {m: t["methods"][m]["transfer_error"] for m in METHOD_NAMES}
        assert t["winner"]["transfer_error"] == min(errors, key=errors.get)
        assert t["margin"]["transfer_error"] == pytest.approx(abs(errors["vrnn"] - errors["nearest"]), rel=1e-12)
        assert (
            f"{study.scored['experiments'][key]['label']}: transfer to {t['runs']} SHARC runs, mean distance error: "
            in " ".join(study.log)
        )


def test_without_foreign_runs_the_results_read_as_before_and_adding_them_retrains_nothing(study):
    assert all("transfer" not in e for e in study.plain["experiments"].values())
    assert TRANSFER_TITLE not in study.plain_md
    assert without_transfer(study.scored) == common(study.plain)
    assert {k: v for k, v in study.after.items() if "transfer" not in k} == study.stages  # models and evaluations untouched
    assert not [line for line in study.log if ": training " in line]
    assert sorted(study.files) == sorted(f"{k}-{m}-transfer-sharc.npz" for k in KEYS for m in METHOD_NAMES)
    # the Markdown is the old one with the transfer table inserted before the closing sentence
    strip = lambda text: re.sub(r"this run took .*", "", text)  # noqa: E731
    assert TRANSFER_TITLE in study.scored_md
    table = study.scored_md[study.scored_md.index("\n" + TRANSFER_TITLE) - 1 : study.scored_md.rindex("|") + 2]
    assert strip(study.scored_md.replace(table, "\n")) == strip(study.plain_md)


def test_a_rerun_reuses_the_transfer_files(study):
    assert study.files_again == study.files
    assert not [line for line in study.again_log if "scored on" in line]
    assert common(study.again) == common(study.scored)


def test_the_transfer_table_has_a_row_per_cs2_experiment_and_a_column_per_method_winner_in_bold(study):
    md = study.scored_md.splitlines()
    header = md.index(
        f"| experiment | SHARC runs | {method_label('nearest')} | {method_label('vrnn')} | winner, margin over the runner-up |"
    )
    for key, runs_text in (("cs2", "3 (2 bound, 1 dissociating)"), ("cs2-bound", "2 (2 bound)")):
        e = study.scored["experiments"][key]
        t = e["transfer"]["sharc"]
        row = next(line for line in md[header:] if line.startswith(f"| {e['label']} | "))
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[1] == runs_text
        for m, cell in zip(METHOD_NAMES, cells[2:4]):
            assert cell.strip("*") == f"{t['methods'][m]['transfer_error']:.3f}"
            assert cell.startswith("**") == (t["winner"]["transfer_error"] == m)


def test_with_two_seeds_the_transfer_is_mean_and_spread_over_seeds_with_the_same_winning_rule(study, runs):
    for key in KEYS:
        t = study.two["experiments"][key]["transfer"]["sharc"]
        values = {
            "nearest": [direct(study.out, key, "nearest", runs)["transfer_error"]] * 2,
            "vrnn": [direct(study.out, key, stem, runs)["transfer_error"] for stem in ("vrnn", f"vrnn-seed{SEED + 1}")],
        }
        for m, v in values.items():
            assert t["per_seed"][m]["transfer_error"] == v
            assert t["methods"][m]["transfer_error"] == pytest.approx(np.mean(v), rel=1e-12)
            assert t["spread"][m]["transfer_error"] == pytest.approx(np.std(v, ddof=1), rel=1e-12, abs=0)
        ranked = rank_methods(t["methods"], t["spread"], scores=("transfer_error",))
        assert {k: t[k] for k in ranked} == ranked
        row = next(
            line
            for line in study.two_md.splitlines()
            if line.startswith(f"| {study.two['experiments'][key]['label']} | ") and "bound" in line.split("|")[2]
        )
        assert f"{t['methods']['vrnn']['transfer_error']:.3f} ± {t['spread']['vrnn']['transfer_error']:.3f}" in row
    assert results_markdown(study.two) == study.two_md


def test_a_lost_transfer_file_or_one_of_other_runs_is_scored_again_identically(study, runs):
    # the folder as the study left it with these runs (a test before this one, in any order, may have scored others)
    run_study(PRESET, study.out, seed=SEED, data_dir=study.data_dir, sharc_dir=runs, log=quiet)
    lost = study.out / "eval" / "cs2-vrnn-transfer-sharc.npz"
    old = load_npz(lost)
    lost.unlink()
    stale = study.out / "eval" / "cs2-bound-nearest-transfer-sharc.npz"
    other = load_npz(stale)
    key = json.loads(str(other["fingerprint_json"]))
    np.savez_compressed(stale, **{**other, "fingerprint_json": np.array(json.dumps({**key, "runs": "of other runs"}))})
    log: list[str] = []
    res = run_study(PRESET, study.out, seed=SEED, data_dir=study.data_dir, sharc_dir=runs, log=log.append)
    assert sorted(line for line in log if "scored on" in line) == [
        "CS2 bound: nearest scored on 2 SHARC runs: "
        f"{study.scored['experiments']['cs2-bound']['transfer']['sharc']['methods']['nearest']['transfer_error']:.4f} Å",
        "CS2: vrnn scored on 3 SHARC runs: "
        f"{study.scored['experiments']['cs2']['transfer']['sharc']['methods']['vrnn']['transfer_error']:.4f} Å",
    ]
    for path, before in ((lost, old), (stale, other)):
        after = load_npz(path)
        assert after.keys() == before.keys()
        for k in before.keys() - {"summary_json"}:
            np.testing.assert_array_equal(after[k], before[k], err_msg=k)
        # the runs are known by their content (the stage's fingerprint); the folder's path is as the caller gave it
        # (the command's test before this one, in any order, gives the same runs as ../shared/data/sharc-cs2)
        summary, was = (json.loads(str(x["summary_json"])) for x in (after, before))
        assert summary.pop("sources") == [str(runs / Path(s).name) for s in was.pop("sources")]
        assert summary == was
    assert common(res) == common(study.scored)


# ----------------------------------------------------------------------------- the command


def test_reproduce_looks_for_shared_sharc_runs_beside_the_current_folder(study, runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(study_module.PRESETS, "tiny", PRESET)
    args = ["reproduce", "--preset", "tiny", "--seed", SEED, "-o", study.out, "--data-dir", study.data_dir]
    here = tmp_path / "work"
    here.mkdir()
    monkeypatch.chdir(here)
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "no SHARC runs at ../shared/data/sharc-cs2: the transfer score on SHARC runs is left out (give --sharc DIR)" in err
    assert (
        TRANSFER_TITLE not in out and "transfer" not in json.loads((study.out / "results.json").read_text())["experiments"]["cs2"]
    )
    shared = tmp_path / "shared" / "data"
    shared.mkdir(parents=True)
    (shared / "sharc-cs2").symlink_to(runs, target_is_directory=True)
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "no SHARC runs" not in err and TRANSFER_TITLE in out
    res = json.loads((study.out / "results.json").read_text())
    assert res["experiments"]["cs2"]["transfer"] == study.scored["experiments"]["cs2"]["transfer"]
    code, out, err = run_cli([*args, "--sharc", tmp_path / "nowhere"], capsys)
    assert_one_line_error(code, err, r"the SHARC folder .*nowhere does not exist")
    write_sharc(tmp_path / "ocs" / "TRAJ_00001", cs2_positions(11), symbols=("C", "O", "S"))
    before = (study.out / "results.json").read_bytes()
    code, out, err = run_cli([*args, "--sharc", tmp_path / "ocs"], capsys)
    assert_one_line_error(code, err, r"the SHARC runs in .*ocs are of COS, not CS2")
    assert (study.out / "results.json").read_bytes() == before


def test_the_shared_sharc_runs_score_the_models_and_a_bound_experiment_takes_the_bound_run(study, sharc_cs2):
    res = run_study(PRESET, study.out, seed=SEED, data_dir=study.data_dir, sharc_dir=sharc_cs2, log=quiet)
    full, bound = (res["experiments"][k]["transfer"]["sharc"] for k in ("cs2", "cs2-bound"))
    assert full["sources"] == ["TRAJ_00001", "TRAJ_00010"] and full["dissociated"] == [False, True]
    assert bound["sources"] == ["TRAJ_00001"] and bound["dissociated"] == [False]
    for m in METHOD_NAMES:
        want = direct(study.out, "cs2-bound", m, sharc_cs2)
        assert bound["methods"][m]["transfer_error"] == want["transfer_error"] > 0
        assert full["methods"][m]["transfer_error"] == direct(study.out, "cs2", m, sharc_cs2)["transfer_error"]
    # a frame-by-frame method scores each run on its own (ΔS against the run's first frame): the all-CS2 model on the
    # bound run alone errs as on that run among both (the VRNN's refinement at inference is fitted over the whole batch)
    alone = transfer(load_method(study.out / "models" / "cs2-nearest.safetensors"), read_foreign(sharc_cs2).subset([0]))
    assert full["methods"]["nearest"]["transfer_error_runs"][0] == alone.summary()["transfer_error"]
