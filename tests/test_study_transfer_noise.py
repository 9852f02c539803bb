"""Transfer under noise: every CS2 model on the foreign runs' noisy signals, as itself and with the shared signal fit.

Small fixtures made here (a tiny CS2 dataset, SHARC-like run folders, a
nearest-frame model and two tiny VRNNs); the study's transfer entry is called
on them and its files, numbers and table are checked against independent
recomputations: the noise reaches every method (its answer is its answer to
the noisy signals, which differ from the clean ones by the level's σ), every
method answers the same draw, and the files are reused until the runs, the
model or the fit change.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from molmovie.evaluation.study import EXPERIMENTS
from molmovie.evaluation.study.conditions import CONDITIONS, condition_signals
from molmovie.evaluation.study.conditions_report import transfer_conditions_markdown, variant_label
from molmovie.evaluation.study.stages import Stage
from molmovie.evaluation.study.transfer import TRANSFER_SCORE, transfer_entry
from molmovie.evaluation.transfer import foreign_dataset, read_foreign, score_transfer, transfer
from molmovie.inversion import get_method, load_method

from _fixtures import cs2_positions, write_sharc
from test_study import SEED, VRNN_SETTINGS, build_dataset

EXP = next(e for e in EXPERIMENTS if e.key == "cs2")
LEVELS = ("noise-0.001", "noise-0.03")
#: what a study with these test conditions asks: noise levels are scored, the rest is not (transfer is under noise only)
ASKED = ("clean", *LEVELS, "no-inelastic")


def quiet(line: str) -> None:
    pass


def _runs(folder, shift: float = 0.0):
    for k, gone in enumerate((False, True, False)):
        write_sharc(folder / f"TRAJ_{k + 1:05d}", cs2_positions(25, dissociate=gone, seed=20 + k) * (1.0 + shift))
    return read_foreign(folder)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer-noise")
    out = root / "out"
    (out / "models").mkdir(parents=True)
    (out / "eval").mkdir()
    train = build_dataset("cs2").split("train")
    stages = [
        Stage(EXP, "nearest", SEED, SEED, True, draws=(SEED, SEED + 1)),
        Stage(EXP, "vrnn", SEED, SEED, True),
        Stage(EXP, "vrnn", SEED + 1, SEED, True),
    ]
    for st in stages:
        settings = {} if st.method == "nearest" else {**VRNN_SETTINGS, "seed": st.seed}
        get_method(st.method, **settings).fit(train).save(st.paths(out)[0])
    foreign = _runs(root / "sharc")
    lines: list[str] = []
    entry = transfer_entry(EXP, stages, foreign, out, train, 2, lines.append, conditions=ASKED)
    return out, train, stages, foreign, entry, lines, root


def _files(out) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in sorted((out / "eval").glob("*-transfer-sharc-*.npz"))}


def test_every_noise_level_and_variant_is_scored_and_nothing_else(setup):
    out, train, stages, foreign, entry, lines, _ = setup
    assert list(entry["conditions"]) == list(LEVELS)
    for c in entry["conditions"].values():
        assert set(c["methods"]) == {"nearest", "nearest+fit", "vrnn", "vrnn+fit"}
        assert len(c["per_seed"]["nearest"][TRANSFER_SCORE]) == 2  # the unseeded method answers one draw per seed
    names = sorted(_files(out))
    assert names == sorted(
        [f"cs2-nearest-transfer-sharc-{k}-draw{d}.npz" for k in LEVELS for d in (SEED, SEED + 1)]
        + [f"cs2-vrnn-transfer-sharc-{k}-draw{SEED}.npz" for k in LEVELS]
        + [f"cs2-vrnn-seed{SEED + 1}-transfer-sharc-{k}-draw{SEED + 1}.npz" for k in LEVELS]
    )


def _noisy(model, foreign, key: str, draw: int):
    ds = foreign_dataset(model, foreign)
    return ds, condition_signals(ds, CONDITIONS[key], seed=draw, experiment="cs2/sharc")


def test_the_noise_reaches_every_method_and_every_method_answers_the_same_draw(setup):
    out, train, stages, foreign, entry, lines, _ = setup
    models = {st: load_method(st.paths(out)[0]) for st in stages}
    for m in models.values():
        if "refine" in m.get_params():
            m.set_params(refine=False)
    for key in LEVELS:
        sigma = CONDITIONS[key].noise
        signals = {}
        for st, model, draw in ((s, m, d) for s, m in models.items() for d in (s.draws or (s.seed,))):
            ds, dS = _noisy(model, foreign, key, draw)
            # the noisy signals: the clean ones plus noise of the level's σ
            diff = (dS - ds.dS)[ds.mask]
            assert diff.std() == pytest.approx(sigma, rel=0.15) and abs(diff.mean()) < 0.2 * sigma
            signals[(st.method, draw)] = dS
            name = st.paths(out)[1].stem + f"-transfer-sharc-{key}-draw{draw}.npz"
            with np.load(out / "eval" / name) as z:
                stored = z["distances"]
                summary = json.loads(str(z["summary_json"]))
            pred = model.predict(dS, q=ds.q, lengths=ds.length)
            # the stored answer is the method's answer to these noisy signals, not to the clean ones
            np.testing.assert_allclose(stored[ds.mask], pred.distances[ds.mask], rtol=1e-6)
            clean = model.predict(ds.dS, q=ds.q, lengths=ds.length).distances
            assert np.abs(stored[ds.mask] - clean[ds.mask]).max() > 1e-4
            want = score_transfer(ds, pred.distances, pred.std).summary()
            assert summary["plain"][TRANSFER_SCORE] == pytest.approx(want[TRANSFER_SCORE], rel=1e-5)
        # the same draw seed gives every method the very same noisy signals
        np.testing.assert_array_equal(signals[("nearest", SEED)], signals[("vrnn", SEED)])
        np.testing.assert_array_equal(signals[("nearest", SEED + 1)], signals[("vrnn", SEED + 1)])
        assert not np.array_equal(signals[("nearest", SEED)], signals[("nearest", SEED + 1)])


def test_the_errors_leave_the_noise_free_ones_and_the_fitted_ones_grow_with_the_noise(setup):
    out, train, stages, foreign, entry, lines, _ = setup
    clean = transfer(load_method(stages[0].paths(out)[0]), foreign).summary()[TRANSFER_SCORE]
    assert all(entry["conditions"][k]["methods"]["nearest"][TRANSFER_SCORE] != clean for k in LEVELS)
    # the signal fit, which recovers a geometry from its own forward model's noise-free signal, errs more as σ grows
    for v in ("nearest+fit", "vrnn+fit"):
        low, high = (entry["conditions"][k]["methods"][v][TRANSFER_SCORE] for k in LEVELS)
        assert low < high, v


def test_score_transfer_of_the_methods_own_answer_is_transfer(setup):
    out, train, stages, foreign, *_ = setup
    model = load_method(stages[0].paths(out)[0])
    ds = foreign_dataset(model, foreign)
    pred = model.predict(ds.dS, q=ds.q, lengths=ds.length)
    assert score_transfer(ds, pred.distances).summary() == transfer(model, foreign).summary()


def test_the_files_are_reused_and_made_again_when_the_runs_or_a_model_change(setup, tmp_path):
    out, train, stages, foreign, entry, lines, root = setup
    before = _files(out)
    again: list[str] = []
    same = transfer_entry(EXP, stages, foreign, out, train, 2, again.append, conditions=ASKED)
    assert _files(out) == before and not [line for line in again if "under σ" in line]
    assert same["conditions"] == entry["conditions"]
    # other runs: every noise file is made again, with other numbers
    other = _runs(tmp_path / "sharc", shift=0.01)
    again.clear()
    moved = transfer_entry(EXP, stages, other, out, train, 2, again.append, conditions=ASKED)
    assert len([line for line in again if "under σ" in line]) == len(before)
    assert all(t != before[n] for n, t in _files(out).items())
    assert moved["conditions"][LEVELS[1]]["methods"]["nearest"] != entry["conditions"][LEVELS[1]]["methods"]["nearest"]
    # back to the first runs, then one model file changed: only that model's files are made again
    transfer_entry(EXP, stages, foreign, out, train, 2, quiet, conditions=ASKED)
    before = _files(out)
    path = stages[2].paths(out)[0]
    kept = path.read_bytes()
    get_method("vrnn", **{**VRNN_SETTINGS, "seed": SEED + 7}).fit(train).save(path, force=True)
    transfer_entry(EXP, stages, foreign, out, train, 2, quiet, conditions=ASKED)
    changed = sorted(n for n, t in _files(out).items() if t != before[n])
    assert changed == sorted(f"cs2-vrnn-seed{SEED + 1}-transfer-sharc-{k}-draw{SEED + 1}.npz" for k in LEVELS)
    path.write_bytes(kept)  # the fixture's model again, and its files
    assert transfer_entry(EXP, stages, foreign, out, train, 2, quiet, conditions=ASKED)["conditions"] == entry["conditions"]


def test_the_report_has_a_table_per_noise_level_with_mean_spread_and_winner(setup):
    entry = setup[4]
    results = {"seeds": [SEED, SEED + 1], "experiments": {"cs2": {"label": "CS2", "transfer": {"sharc": entry}}}}
    md = transfer_conditions_markdown(results)
    for key in LEVELS:
        c = entry["conditions"][key]
        header = next(i for i, line in enumerate(md) if line.startswith(f"| {CONDITIONS[key].label}: experiment | "))
        row = md[header + 2]
        cells = [x.strip() for x in row.split("|")[1:-1]]
        variants = list(c["methods"])
        assert cells[0] == "CS2"
        for v, cell in zip(variants, cells[1:]):
            text = f"{c['methods'][v][TRANSFER_SCORE]:.3g} ± {c['spread'][v][TRANSFER_SCORE]:.2g}"
            assert cell.strip("*") == text
            assert cell.startswith("**") == (c["winner"][TRANSFER_SCORE] == v)
        win = c["winner"][TRANSFER_SCORE]
        assert cells[-1] == (variant_label(win) if win else "tie: " + ", ".join(map(variant_label, c["tied"][TRANSFER_SCORE])))
    assert transfer_conditions_markdown({"experiments": {"cs2": {"label": "CS2"}}}) == []
