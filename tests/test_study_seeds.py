"""Several training seeds and parallel jobs in the study (``run_study(seeds=K, jobs=N)``, ``reproduce --seeds --jobs``).

On the tiny datasets of test_study, two studies of two seeds are run: one
grown from one seed to two, in this process, one thread (``grown``); one from
scratch in two worker processes of one thread each, interrupted by Ctrl-C
once and then resumed (``parallel``). Training on the CPU is deterministic
for a given number of threads, so both must give the same models, scores and
tables to the last bit. Their means, spreads and winners are recomputed here
from the evaluation files; the winning rule and the tables are also checked
on made-up numbers whose answer is known.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import re
from types import SimpleNamespace

import numpy as np
import pytest

from molmovie import InputError
from molmovie.cli import main
from molmovie.cli._progress import ParallelStageProgress
from molmovie.evaluation.figures import plot_rmsd_sums
from molmovie.evaluation.study import (
    EXPERIMENTS,
    SCORES,
    Preset,
    presets as study_module,
    rank_methods,
    results_markdown,
    run_study,
)
from molmovie.inversion import load_method
from molmovie.io import write_dataset
from molmovie.io.model import read_model_file

from _fixtures import assert_one_line_error, run_cli, users_cluster
from test_study import COUNTS, CS2_BOUND_OVERRIDE, PRESET, SEED, VOLATILE, VRNN_SETTINGS, build_dataset, load_npz, snapshot

SEEDS = (SEED, SEED + 1)
#: two of the five experiments keep this file fast: the first (drawn in detail) and one that early stopping ends
STUDIED = tuple(e for e in EXPERIMENTS if e.key in ("nmm", "cs2-bound"))
KEYS = [e.key for e in STUDIED]
#: the files of a two-seed study: the baseline (no seed) once, the VRNN per seed, the study's seed under today's names
STAGE_FILES = {
    f"{sub}/{k}-{stem}.{ext}"
    for k in KEYS
    for stem in ("nearest", "vrnn", f"vrnn-seed{SEED + 1}")
    for sub, ext in (("models", "safetensors"), ("eval", "npz"))
}
STAGE_NAME = re.compile(r"[a-z0-9-]+-(nearest|vrnn)(-seed\d+)?\.(safetensors|npz)")


def quiet(line: str) -> None:
    pass


@pytest.fixture(scope="module", autouse=True)
def two_experiments():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(study_module, "EXPERIMENTS", STUDIED)
        yield


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seeds-data")
    for mol in dict.fromkeys(e.molecule for e in STUDIED):
        write_dataset(build_dataset(mol), folder / f"{mol}.h5")
    return folder


@pytest.fixture(scope="module")
def grown(data_dir, tmp_path_factory):
    """One seed, then two (with ``molmovie reproduce --seeds 2``), in this process on one thread."""
    out = tmp_path_factory.mktemp("grown") / "out"
    first = run_study(PRESET, out, seed=SEED, threads=1, data_dir=data_dir, log=quiet)
    before = snapshot(out)
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        patch.setitem(study_module.PRESETS, "tiny", PRESET)
        patch.chdir(out.parent)  # no ../shared/data/sharc-cs2 beside it: no transfer score (test_study_transfer has those)
        try:
            main(
                [
                    "reproduce",
                    "--preset",
                    "tiny",
                    "--seed",
                    str(SEED),
                    "--seeds",
                    "2",
                    "--threads",
                    "1",
                    "-o",
                    str(out),
                    "--data-dir",
                    str(data_dir),
                ]
            )
            code = 0
        except SystemExit as exc:
            code = exc.code
    second = json.loads((out / "results.json").read_text())
    return SimpleNamespace(
        out=out,
        first=first,
        second=second,
        second_md=(out / "results.md").read_text(),  # kept: a test after this one, in any order, may rerun one seed here
        before=before,
        code=code,
        stdout=stdout.getvalue(),
        log=stderr.getvalue().splitlines(),
    )


class Interrupt:
    """A progress callback that records every report and presses Ctrl-C just after the first one that closes an
    early-stopped training (done below the epochs asked, total set to done): that stage is whole on disk by then."""

    def __init__(self):
        self.reports = []

    def __call__(self, done, info):
        self.reports.append((done, info))
        if done == info["total"] < epochs_of(info["stage"]):
            raise KeyboardInterrupt


def epochs_of(stage: str) -> int:
    """The epochs the preset asks of a progress stage's training ("cs2-bound vrnn seed 3 epochs")."""
    return CS2_BOUND_OVERRIDE["epochs"] if stage.startswith("cs2-bound ") else VRNN_SETTINGS["epochs"]


@pytest.fixture(scope="module")
def parallel(data_dir, tmp_path_factory):
    """Two seeds in two processes of one thread: Ctrl-C during the first run, then the same command again to finish."""
    out = tmp_path_factory.mktemp("parallel") / "out"
    ctrl_c = Interrupt()
    with pytest.raises(KeyboardInterrupt):
        run_study(PRESET, out, seed=SEED, seeds=2, jobs=2, threads=1, data_dir=data_dir, log=quiet, progress=ctrl_c)
    left = SimpleNamespace(
        children=multiprocessing.active_children(),
        files={p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()},
        snapshot=snapshot(out),
        reports=ctrl_c.reports,
    )
    reports: list = []
    lines: list[str] = []
    results = run_study(
        PRESET,
        out,
        seed=SEED,
        seeds=2,
        jobs=2,
        threads=1,
        data_dir=data_dir,
        log=lines.append,
        progress=lambda done, info: reports.append((done, info)),
    )
    return SimpleNamespace(out=out, results=results, left=left, reports=reports, log=lines)


def without_timings(value):
    """A model's config without the seconds each epoch took."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def same_model(a, b) -> bool:
    """Two model files hold the same method, settings, training history (but its timings) and arrays, to the bit."""
    (ma, ca, xa), (mb, cb, xb) = read_model_file(a), read_model_file(b)
    assert ma == mb and without_timings(ca) == without_timings(cb) and xa.keys() == xb.keys()
    for k in xa:
        np.testing.assert_array_equal(xa[k], xb[k], err_msg=k)
    return True


def common(results: dict) -> dict:
    return {k: v for k, v in results.items() if k not in VOLATILE}


# ----------------------------------------------------------------------------- jobs


def test_two_processes_give_the_same_models_scores_and_tables_as_one(grown, parallel):
    files = {p.relative_to(parallel.out).as_posix() for p in parallel.out.rglob("*") if p.is_file()}
    assert files == {p.relative_to(grown.out).as_posix() for p in grown.out.rglob("*") if p.is_file()}
    assert {f for f in files if f.startswith(("models/", "eval/"))} == STAGE_FILES  # and no temporary file
    assert common(parallel.results) == common(grown.second)
    for name in sorted(STAGE_FILES):
        if name.endswith(".safetensors"):
            assert same_model(parallel.out / name, grown.out / name), name
        else:
            a, b = load_npz(parallel.out / name), load_npz(grown.out / name)
            assert a.keys() == b.keys()
            for k in a:
                np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name} {k}")
    strip = lambda text: re.sub(r"this run took .*", "", text)  # noqa: E731
    assert strip((parallel.out / "results.md").read_text()) == strip(grown.second_md)


def stage_file(stage: str, ext: str) -> str:
    """The file of a progress stage ("cs2-bound vrnn seed 4 epochs") in a study of seeds SEED, SEED + 1."""
    key, method, _, seed, _ = stage.split(" ")
    sub = "models" if ext == "safetensors" else "eval"
    return f"{sub}/{key}-{method}{'' if int(seed) == SEED else f'-seed{seed}'}.{ext}"


def test_ctrl_c_stops_every_worker_and_keeps_only_whole_stages(parallel):
    left = parallel.left
    assert left.children == []
    stages = {f for f in left.files if f.startswith(("models/", "eval/"))}
    assert stages < STAGE_FILES, stages  # not all; nothing half-written
    assert all(STAGE_NAME.fullmatch(f.split("/")[1]) for f in stages)
    assert "results.json" not in left.files
    closed = left.reports[-1][1]["stage"]  # the stage whose end pressed Ctrl-C: finished before it
    assert {stage_file(closed, "safetensors"), stage_file(closed, "npz")} <= stages
    for name in stages:  # every file kept is whole: it loads
        if name.endswith(".safetensors"):
            load_method(parallel.out / name)
        else:
            assert set(SCORES) <= set(json.loads(str(load_npz(parallel.out / name)["summary_json"])))
    # the second run kept what the first finished, untouched, and trained only the rest
    after = snapshot(parallel.out)
    assert {k: after[k] for k in left.snapshot} == left.snapshot
    models_left = {f for f in stages if f.endswith(".safetensors")}
    assert sum(": training " in line for line in parallel.log) == len(STAGE_FILES) // 2 - len(models_left)


def test_the_parent_relays_every_stages_progress_and_each_stage_ends(parallel):
    """Reports of the VRNN trainings, interleaved: per stage 1, 2, ... epochs, and the stage that early
    stopping ends before its last epoch (CS2 bound) closes with one more report, done == total."""
    first = {}
    for done, info in parallel.left.reports:
        first.setdefault(info["stage"], []).append((done, info["total"]))
    closed = parallel.left.reports[-1][1]["stage"]
    seen = first[closed]
    assert closed.startswith("cs2-bound vrnn seed ")
    n = len(seen) - 1  # epochs trained
    assert n < CS2_BOUND_OVERRIDE["epochs"] and seen == [(d, CS2_BOUND_OVERRIDE["epochs"]) for d in range(1, n + 1)] + [(n, n)]

    by_stage: dict = {}
    for done, info in parallel.reports:
        by_stage.setdefault(info["stage"], []).append((done, info["total"]))
    assert set(by_stage) <= {f"{k} vrnn seed {s} epochs" for k in KEYS for s in SEEDS} - {closed}
    trained = [line for line in parallel.log if ": training vrnn" in line]
    assert by_stage and len(by_stage) == len(trained)
    for stage, seen in by_stage.items():
        epochs = epochs_of(stage)
        dones = [d for d, _ in seen]
        totals = [t for _, t in seen]
        assert dones[-1] == totals[-1], stage  # ended
        if dones[-1] < epochs:  # stopped early: the epochs 1..n at their total, then one closing report
            assert dones == list(range(1, dones[-1] + 1)) + [dones[-1]] and set(totals[:-1]) == {epochs}, (stage, seen)
        else:
            assert dones == list(range(1, epochs + 1)) and set(totals) == {epochs}, (stage, seen)
    n_stages = len(STAGE_FILES) // 2 - sum(f.startswith("eval/") for f in parallel.left.files)  # those not scored
    assert [line for line in parallel.log if line.startswith("training and scoring")] == [
        f"training and scoring {n_stages} stages in 2 processes of 1 thread each ..."
    ]


@pytest.fixture(scope="module")
def scheduled(data_dir, tmp_path_factory):
    """Two seeds on the workers of a Dask scheduler started here (as a user starts one by hand, or dask-jobqueue does)."""
    out = tmp_path_factory.mktemp("scheduled") / "out"
    lines: list[str] = []
    with users_cluster(
        n_workers=2, threads_per_worker=1, processes=True, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}
    ) as cluster:
        results = run_study(
            PRESET, out, seed=SEED, seeds=2, threads=1, scheduler=cluster.scheduler_address, data_dir=data_dir, log=lines.append
        )
    return SimpleNamespace(out=out, results=results, log=lines)


def test_a_dask_scheduler_of_the_users_gives_the_same_models_scores_and_tables(grown, scheduled):
    files = {p.relative_to(scheduled.out).as_posix() for p in scheduled.out.rglob("*") if p.is_file()}
    assert files == {p.relative_to(grown.out).as_posix() for p in grown.out.rglob("*") if p.is_file()}
    assert common(scheduled.results) == common(grown.second)
    for name in sorted(STAGE_FILES):
        if name.endswith(".safetensors"):
            assert same_model(scheduled.out / name, grown.out / name), name
        else:
            a, b = load_npz(scheduled.out / name), load_npz(grown.out / name)
            for k in a:
                np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name} {k}")
    said = [line for line in scheduled.log if line.startswith("training and scoring")]
    assert len(said) == 1 and re.fullmatch(
        rf"training and scoring {len(STAGE_FILES) // 2} stages on the Dask scheduler at tcp://127\.0\.0\.1:\d+ of 1 thread each \.\.\.",
        said[0],
    )


def test_a_worker_that_dies_is_named_by_its_stage_and_the_finished_stages_are_kept(data_dir, tmp_path):
    import os
    import signal

    out = tmp_path / "out"
    killed: list[int] = []

    def kill_workers(done, info):  # out of memory, or a node lost, in the middle of a training
        if not killed:  # the local cluster's worker processes (its nannies run in this process)
            killed.extend(p.pid for p in multiprocessing.active_children())
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    with pytest.raises(
        ChildProcessError,
        match=r"a worker process ended abruptly while running (nmm|cs2-bound) vrnn seed \d+ "
        r"\(killed, or out of memory\?\); the finished stages in .* are kept",
    ):
        run_study(PRESET, out, seed=SEED, seeds=2, jobs=2, threads=1, data_dir=data_dir, log=quiet, progress=kill_workers)
    assert killed and multiprocessing.active_children() == []
    names = [p.name for sub in ("models", "eval") for p in (out / sub).iterdir()]
    assert all(STAGE_NAME.fullmatch(n) for n in names), names  # whole stages only: no temporary file left
    assert not (out / "results.json").exists()


def test_an_error_in_a_worker_stops_the_study_with_its_message(data_dir, tmp_path):
    broken = Preset("tiny", COUNTS, methods=PRESET.methods, settings_by_experiment={"cs2-bound": {"vrnn": {"hidden": 0}}})
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"'hidden' setting must be >= 1; got 0"):
        run_study(broken, out, seed=SEED, jobs=2, threads=1, data_dir=data_dir, log=quiet)
    assert multiprocessing.active_children() == []
    names = [p.name for sub in ("models", "eval") for p in (out / sub).iterdir()]
    assert all(STAGE_NAME.fullmatch(n) for n in names) and "cs2-bound-vrnn.safetensors" not in names
    assert not (out / "results.json").exists()


# ----------------------------------------------------------------------------- seeds


def test_more_seeds_train_only_the_seeds_missing_and_keep_the_rest(grown):
    assert snapshot(grown.out).items() >= grown.before.items()
    trained = sorted(line for line in grown.log if ": training " in line)
    assert len(trained) == len(KEYS) and all(f": training vrnn (seed {SEED + 1}) on " in line for line in trained), trained
    assert grown.second["reused_stages"] == len(COUNTS) - 1 + 2 * len(KEYS)  # the datasets (no C2H4), then one-seed stages
    assert {p.relative_to(grown.out).as_posix() for sub in ("models", "eval") for p in (grown.out / sub).iterdir()} == STAGE_FILES
    for key in KEYS:
        for stem, seed in (("vrnn", SEED), (f"vrnn-seed{SEED + 1}", SEED + 1)):
            assert load_method(grown.out / "models" / f"{key}-{stem}.safetensors").seed == seed


def test_one_seed_reads_as_before_whatever_other_seeds_lie_in_the_folder(grown):
    again = run_study(PRESET, grown.out, seed=SEED, data_dir=study_data_dir(grown), log=quiet)
    assert common(again) == common(grown.first)
    assert "seeds" not in again and not re.search(r"\d ± \d", (grown.out / "results.md").read_text())
    for entry in again["experiments"].values():
        assert set(entry) == {"label", "trajectories", "methods", "mean_predictor_abs_error", "winner", "runner_up", "margin"}


def study_data_dir(ns):
    return json.loads((ns.out / "study.json").read_text())["data_dir"]


@pytest.mark.parametrize("key", KEYS)
def test_means_spreads_and_winners_follow_from_each_seeds_scores(grown, key):
    entry = grown.second["experiments"][key]
    assert grown.second["seeds"] == list(SEEDS)
    per_seed = {
        "nearest": [json.loads(str(load_npz(grown.out / "eval" / f"{key}-nearest.npz")["summary_json"]))] * 2,
        "vrnn": [
            json.loads(str(load_npz(grown.out / "eval" / f"{key}-{stem}.npz")["summary_json"]))
            for stem in ("vrnn", f"vrnn-seed{SEED + 1}")
        ],
    }
    assert per_seed["vrnn"][0] == grown.first["experiments"][key]["methods"]["vrnn"]  # the study's seed is the one-seed study
    for m, summaries in per_seed.items():
        for k in SCORES + ("abs_error_mean",):
            values = [s[k] for s in summaries]
            assert entry["per_seed"][m][k] == values
            assert entry["methods"][m][k] == pytest.approx(np.mean(values), rel=1e-12)
            assert entry["spread"][m][k] == pytest.approx(np.std(values, ddof=1), rel=1e-12, abs=0)
        assert entry["methods"][m]["frames"] == summaries[0]["frames"]
    assert all(v == 0.0 for v in entry["spread"]["nearest"].values())  # no seed: one training, no spread
    mean, sd = entry["methods"], entry["spread"]
    for k in SCORES:
        lead, other = sorted(("nearest", "vrnn"), key=lambda m: mean[m][k])
        clear = mean[other][k] - mean[lead][k] > sd[lead][k] + sd[other][k]
        assert entry["leader"][k] == lead and entry["winner"][k] == (lead if clear else None)
        assert entry["threshold"][k] == pytest.approx(sd[lead][k] + sd[other][k])
        assert entry["tied"][k] == ([] if clear else [lead, other])


def test_the_tables_show_mean_and_spread_and_say_when_a_score_is_a_tie(grown):
    md = results_markdown(grown.second)  # as results.md was written (the folder's file may be a later run's)
    caption = md.splitlines()[0]
    assert "mean ± spread over 2 training seeds (3-4)" in caption and "sample standard deviation" in caption
    assert "more than the sum of the two methods' standard deviations" in caption and "tie (within spread)" in caption
    for key, e in grown.second["experiments"].items():
        t = e["trajectories"]
        row = next(line for line in md.splitlines() if line.startswith(f"| {e['label']} | {t['train']}/{t['val']}/{t['test']} |"))
        for k, cell in zip(SCORES, [c.strip() for c in row.split("|")[3:-1]]):
            for m, text in zip(("nearest", "vrnn"), cell.split(" / ")):
                assert (text.startswith("**") and text.endswith("**")) == (e["winner"][k] == m), (key, k, cell)
                mean, spread = (float(x) for x in text.strip("*").split(" ± "))
                assert mean == pytest.approx(e["methods"][m][k], rel=1e-3, abs=0.5)
                # printed as the means are (study._fmt): 4 significant digits below 100, whole numbers from 100
                assert spread == pytest.approx(e["spread"][m][k], rel=1e-3, abs=0.5 if e["spread"][m][k] >= 100 else 1e-12)
        margins = next(
            line for line in md.splitlines() if line.startswith(f"| {e['label']} |") and "margin" not in line and line != row
        )
        for k, cell in zip(SCORES, [c.strip() for c in margins.split("|")[2:-1]]):
            assert cell.startswith("tie (within spread)") == (e["winner"][k] is None), (key, k, cell)


# ----------------------------------------------------------------------------- the rule, on made-up numbers


@pytest.mark.parametrize(
    "means, spreads, winner, tied",
    [
        ({"a": 10.0, "b": 13.0}, {"a": 1.0, "b": 1.5}, "a", []),  # 3 > 1 + 1.5
        ({"a": 10.0, "b": 12.5}, {"a": 1.0, "b": 1.5}, None, ["a", "b"]),  # 2.5 is not > 2.5
        ({"a": 10.0, "b": 12.0}, {"a": 1.0, "b": 1.5}, None, ["a", "b"]),  # beyond the larger spread, not beyond the sum
        ({"b": 10.0, "a": 10.5}, {"b": 0.0, "a": 0.4}, "b", []),  # a method without spread (no seed)
        ({"a": 10.0, "b": 14.0, "c": 15.0}, {"a": 1.0, "b": 1.0, "c": 5.0}, None, ["a", "c"]),  # clear of the runner-up, not of c
        ({"a": 10.0, "b": 10.0}, {"a": 0.0, "b": 0.0}, None, ["a", "b"]),  # equal means never win
    ],
)
def test_a_method_wins_only_by_more_than_the_sum_of_the_two_spreads(means, spreads, winner, tied):
    summaries = {m: dict.fromkeys(SCORES, v) for m, v in means.items()}
    spread = {m: dict.fromkeys(SCORES, v) for m, v in spreads.items()}
    ranked = rank_methods(summaries, spread)
    order = sorted(means, key=means.get)
    for k in SCORES:
        assert ranked["winner"][k] == winner and ranked["tied"][k] == tied and ranked["leader"][k] == order[0]
        assert ranked["runner_up"][k] == order[1]
        assert ranked["margin"][k] == means[order[1]] - means[order[0]]
        assert ranked["threshold"][k] == spreads[order[0]] + spreads[order[1]]
    # without spreads (one seed): the smaller score wins, ties to the method listed first, as always
    plain = rank_methods(summaries)
    assert set(plain) == {"winner", "runner_up", "margin"} and all(w == order[0] for w in plain["winner"].values())


def test_a_table_of_made_up_numbers_reads_as_intended():
    def entry(label, a, b):
        methods = {"nearest": dict.fromkeys(SCORES, a[0]), "vrnn": dict.fromkeys(SCORES, b[0])}
        spread = {"nearest": dict.fromkeys(SCORES, a[1]), "vrnn": dict.fromkeys(SCORES, b[1])}
        for m in methods.values():
            m["abs_error_mean"] = 0.1
        for s in spread.values():
            s["abs_error_mean"] = 0.01
        return {
            "label": label,
            "trajectories": {"train": 1, "val": 1, "test": 1},
            "methods": methods,
            "spread": spread,
            "mean_predictor_abs_error": 0.5,
            **rank_methods(methods, spread),
        }

    results = {
        "preset": "made-up",
        "seed": 7,
        "seeds": [7, 8, 9],
        "experiments": {
            "x": entry("X", (20.0, 0.0), (10.0, 2.0)),  # VRNN by 10 > 2
            "y": entry("Y", (20.0, 0.0), (19.0, 2.0)),  # 1 < 2: a tie
        },
    }
    md = results_markdown(results)
    assert md.startswith("Each score: mean ± spread over 3 training seeds (7-9), on the datasets and splits of seed 7;")
    assert "| X | 1/1/1 | " + " | ".join(["20 ± 0 / **10 ± 2**"] * 4) + " |" in md
    assert "| Y | 1/1/1 | " + " | ".join(["20 ± 0 / 19 ± 2"] * 4) + " |" in md
    assert "| X | " + " | ".join(["VRNN by 10 (50 % of baseline's) > spread 2"] * 4) + " |" in md
    assert "| Y | " + " | ".join(["tie (within spread): VRNN, baseline; VRNN leads by 1, spread 2"] * 4) + " |" in md
    assert "VRNN wins: labelled RMSD 1/2, symmetry-aware RMSD per trajectory 1/2 and per frame 1/2, SSR 1/2" in md
    assert "ties within spread: labelled RMSD 1/2," in md and "(preset `made-up`, seeds 7-9; " in md


# ----------------------------------------------------------------------------- the command


def test_the_command_takes_seeds_and_threads_and_prints_the_table(grown):
    assert grown.code == 0, grown.log
    assert grown.stdout == results_markdown(grown.second) + f"\nresults and figures in {grown.out}\n"
    assert grown.second["seeds"] == list(SEEDS)


@pytest.mark.parametrize("option, value", [("--seeds", 0), ("--jobs", 0), ("--seeds", 1001), ("--threads", 0), ("--jobs", 1.5)])
def test_the_command_refuses_a_bad_count_in_one_line(tmp_path, capsys, option, value):
    code, _, err = run_cli(["reproduce", "--preset", "quick", "-o", tmp_path / "out", option, value], capsys)
    if option == "--jobs" and value == 1.5:
        assert code == 2 and "Traceback" not in err  # typer's own usage error
    else:
        assert_one_line_error(code, err, rf"The '{option[2:]}' parameter must be a whole number from 1 to")
    assert not (tmp_path / "out").exists()


def test_parallel_bars_show_each_running_stage_and_go_when_it_ends():
    class Display:
        def __init__(self):
            self.tasks, self.running, self.next = {}, False, 0

        def start(self):
            self.running = True

        def stop(self):
            self.running = False

        def add_task(self, description, total):
            self.next += 1
            self.tasks[self.next] = [description, total, 0]
            return self.next

        def update(self, task, completed, total):
            self.tasks[task][1:] = [total, completed]

        def remove_task(self, task):
            del self.tasks[task]

    display = Display()
    with ParallelStageProgress(display) as bars:
        bars(1, {"stage": "a epochs", "total": 3})
        bars(1, {"stage": "b epochs", "total": 5})
        assert bars.open_stages == ["a epochs", "b epochs"] and display.running
        assert sorted(display.tasks.values()) == [["a epochs", 3, 1], ["b epochs", 5, 1]]
        bars(2, {"stage": "b epochs", "total": 2})  # b stopped early
        assert bars.open_stages == ["a epochs"]
        bars(3, {"stage": "a epochs", "total": 3})
        assert bars.open_stages == [] and not display.running and display.tasks == {}
        bars(1, {"stage": "c epochs", "total": 4})
    assert display.tasks == {} and not display.running  # closed with the block


def test_fig2a_draws_each_bar_at_its_mean_with_an_error_bar_of_its_spread():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.container import BarContainer

    means = {"baseline": [10.0, 20.0, 30.0], "VRNN": [5.0, 25.0, 12.0]}
    spreads = {"baseline": [0.0, 0.0, 0.0], "VRNN": [1.0, 2.5, 0.5]}
    fig = plot_rmsd_sums(["A", "B", "C"], {"labelled": means}, errors={"labelled": spreads})
    try:
        bars = [c for c in fig.axes[0].containers if isinstance(c, BarContainer)]
        assert len(bars) == 2
        for container, m in zip(bars, means):
            assert [b.get_height() for b in container] == means[m]
            (segments,) = [c.get_segments() for c in container.errorbar.lines[2]]
            lows, highs = zip(*[(seg[:, 1].min(), seg[:, 1].max()) for seg in segments])
            np.testing.assert_allclose(lows, np.subtract(means[m], spreads[m]))
            np.testing.assert_allclose(highs, np.add(means[m], spreads[m]))
        plain = plot_rmsd_sums(["A", "B", "C"], {"labelled": means})  # one seed: no error bars
        assert all(c.errorbar is None for c in plain.axes[0].containers if isinstance(c, BarContainer))
        plt.close(plain)
    finally:
        plt.close(fig)


def test_a_scheduler_that_does_not_answer_is_refused_before_anything_is_written(data_dir, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    with pytest.raises(InputError, match=rf"cannot reach the Dask scheduler at 'tcp://127\.0\.0\.1:{port}'"):
        run_study(PRESET, out, seed=SEED, scheduler=f"tcp://127.0.0.1:{port}", data_dir=data_dir, log=quiet)
    assert not out.exists()
    with pytest.raises(InputError, match=r"jobs=2 and a scheduler were both given"):
        run_study(PRESET, out, seed=SEED, jobs=2, scheduler=f"tcp://127.0.0.1:{port}", data_dir=data_dir, log=quiet)
    assert not out.exists()


def test_parallel_lines_off_a_terminal_are_one_per_stage_and_stop_with_it(monkeypatch, caplog):
    """Off a terminal (a log file) each stage of ``reproduce --jobs N`` is one line writer: its lines count up and
    stop when the stage ends. (Each report used to start another writer that said "0/N" until the process ended.)"""
    import threading
    import time

    from molmovie.cli._progress import LOGGER

    monkeypatch.setenv("MOLMOVIE_PROGRESS_INTERVAL", "0.05")
    caplog.set_level(1, logger=LOGGER.name)
    with ParallelStageProgress() as bars:
        assert bars._lines  # pytest's stderr is no terminal
        for done in range(1, 5):
            bars(done, {"stage": "a epochs", "total": 4})
            time.sleep(0.12)
        assert bars.open_stages == []
    time.sleep(0.2)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("a epochs:")]
    assert said and all(not m.startswith("a epochs: 0/") for m in said)
    assert said[-1].startswith("a epochs: 4/4")
    assert not [t for t in threading.enumerate() if t.name == "molmovie-progress" and t.is_alive()]
