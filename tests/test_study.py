"""The study (``run_study``: five X-ray experiments, one of electrons) end to end, on tiny synthetic datasets.

Three small datasets are built here from the real molecules' atoms
(equilibrium geometry, a slow random vibration, and for C2H4 and CS2 some
trajectories that lose one atom) and put where ``run_study`` reuses them, so no
xTB generation runs. The CS2 file is written without signals, so the study
simulates them itself, and the electron signals of the CS2 UED experiment from
the same trajectories. A tiny preset trains tiny VRNNs. One run (module
fixture) is then checked against independent recomputations: the files it
promises, the split sizes, the metric sums (re-scored with
:func:`molmovie.evaluation.evaluate` from the saved predictions), the winners,
the Markdown table; then resuming, and the errors a user can make.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

from molmovie import InputError
from molmovie.cli._progress import StageProgress
from molmovie.datasets import Dataset, make_splits
from molmovie.evaluation import evaluate
from molmovie.evaluation.study import EXPERIMENTS, SCORES, Preset, run_study
from molmovie.inversion import VRNN, NearestReference, load_method
from molmovie.io import read_dataset, write_dataset
from molmovie.molecules import builtin
from molmovie.scattering import SignalSpec, q_grid, simulate, simulate_signals
from molmovie.trajectories import Ensemble, is_dissociated

SEED = 3
T = 8  # frames per trajectory
DT = 2.0  # fs
N_Q = 100  # q points of the signals written here: the study's protocol (q_grid()), so they are reused
COUNTS = {"nmm": (4, 2, 2), "c2h4": (6, 2, 3), "cs2": (6, 2, 3)}
#: dissociating trajectories, as (split, position in that split): one or two in every split
DISSOCIATING = {
    "nmm": (),
    "c2h4": (("train", 0), ("val", 0), ("test", 0)),
    "cs2": (("train", 0), ("train", 1), ("val", 0), ("test", 0)),
}
#: the atoms that leave (taken in turn): an H of C2H4; either S of CS2
LEAVING = {"c2h4": (2, 5), "cs2": (1, 2)}
#: bound-only experiments re-split the bound trajectories in the proportions of the full split
#: (make_splits with sizes that do not add up to n): C2H4, 8 bound of 6/2/3: val round(8*2/11) = 1,
#: test round(8*3/11) = 2, train 5; CS2, 7 bound: val round(7*2/11) = 1, test round(7*3/11) = 2, train 4.
BOUND_COUNTS = {"c2h4": (5, 1, 2), "cs2": (4, 1, 2)}
SPLITS = ("train", "val", "test")
VOLATILE = ("wall_time_s", "reused_stages")  # results entries that describe the run, not the study
METHODS = ("nearest", "vrnn")
KEYS = [e.key for e in EXPERIMENTS]

#: tiny VRNN (the contract suite's FAST settings); CS2-bound gets its own, to check that
#: per-experiment overrides reach the model, and a high learning rate with patience 1 so that
#: early stopping ends its training before the last epoch.
VRNN_SETTINGS = dict(hidden=8, features=6, latent_free=2, epochs=3, batch_size=4, physics=0.0, device="cpu")
CS2_BOUND_OVERRIDE = dict(hidden=5, epochs=30, patience=1, lr=0.05)
PRESET = Preset(
    "tiny",
    COUNTS,
    methods={"nearest": {}, "vrnn": VRNN_SETTINGS},
    settings_by_experiment={"cs2-bound": {"vrnn": CS2_BOUND_OVERRIDE}},
)

EXPECTED_FILES = (
    {"study.json", "results.json", "results.md"}
    | {f"{name}.{fmt}" for name in ("fig2a", "fig2b", "fig2c", "signals") for fmt in ("png", "pdf")}
    | {f"{sub}/{k}-{m}.{ext}" for k in KEYS for m in METHODS for sub, ext in (("models", "safetensors"), ("eval", "npz"))}
)


# ----------------------------------------------------------------------------- data


def build_dataset(mol: str, *, signals: bool = True, n: int | None = None) -> Dataset:
    """``n`` (default: the preset's count) trajectories of a built-in molecule, splits set."""
    rng = np.random.default_rng(SEED + len(mol))
    molecule = builtin(mol)
    eq = molecule.positions
    M = sum(COUNTS[mol]) if n is None else n
    N = len(eq)
    t = np.arange(T) * DT
    splits = make_splits(M, COUNTS[mol], seed=SEED) if n is None else {}
    leaving = {int(splits[s][i]): LEAVING[mol][k % 2] for k, (s, i) in enumerate(DISSOCIATING[mol])} if n is None else {}
    pos = np.full((M, T, N, 3), np.nan)
    length = np.full(M, T)
    for m in range(M):
        mode = rng.normal(size=(N, 3))
        mode *= 0.04 / np.abs(mode).max()  # at most 0.04 A: bonds stay bonds
        phase = rng.uniform(0, 2 * np.pi)
        frames = eq + np.sin(2 * np.pi * t / 40.0 + phase)[:, None, None] * mode + 0.003 * rng.normal(size=(T, N, 3))
        if m in leaving:
            atom = leaving[m]
            away = eq[atom] - eq.mean(axis=0)
            frames[:, atom] += 0.8 * np.arange(T)[:, None] * away / np.linalg.norm(away)
            length[m] = T - 2  # 4 A away at its last frame
        pos[m, : length[m]] = frames[: length[m]]
    diss = np.array([is_dissociated(molecule.symbols, pos[m], length[m]) for m in range(M)])
    assert sorted(np.flatnonzero(diss)) == sorted(leaving)  # the fixture does what it says
    ens = Ensemble(mol, molecule.symbols, t, pos, length, diss, [f"{mol}-{m}" for m in range(M)])
    ds = Dataset(ens, splits=splits)
    if signals:
        q = q_grid(n_q=N_Q)
        ds = ds.with_signals(
            *simulate(
                ens.symbols, ens.positions, ens.length, ens.time, SignalSpec(q, inelastic=True, reference="first", seed=SEED)
            )
        )
    return ds


class ProgressRecorder:
    """A bar factory (for the CLI's :class:`StageProgress`) that records every bar: description, total, updates, whether it was closed."""

    def __init__(self):
        self.bars = []

    def __call__(self, description, total):
        bar = SimpleNamespace(description=description, total=total, updates=[], closed=False)
        self.bars.append(bar)

        @contextlib.contextmanager
        def cm():
            yield lambda completed=None, **kw: bar.updates.append(completed)
            bar.closed = True

        return cm()


def snapshot(folder):
    """{relative path: (mtime_ns, bytes)} of the model and evaluation files."""
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
        for sub in ("models", "eval")
        for p in sorted((folder / sub).iterdir())
    }


def load_npz(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    data_dir = root / "data"
    data_dir.mkdir()
    built = {mol: build_dataset(mol, signals=mol != "cs2") for mol in COUNTS}
    for mol, ds in built.items():
        write_dataset(ds, data_dir / f"{mol}.h5")
    out = root / "out"
    lines: list[str] = []
    bars = ProgressRecorder()
    with np.errstate(all="raise"), StageProgress(bars) as progress:
        results = run_study(PRESET, out, seed=SEED, data_dir=data_dir, log=lines.append, progress=progress)
    # what the first run wrote, kept: later tests run the study again in the same folder, in any order
    first_json = json.loads((out / "results.json").read_text())
    return SimpleNamespace(
        data_dir=data_dir, out=out, built=built, results=results, first_json=first_json, log=lines, bars=bars.bars
    )


def experiment_indices(full: Dataset, key: str) -> dict[str, np.ndarray]:
    """Trajectory indices (into the full dataset) of each split of an experiment, found independently."""
    exp = next(e for e in EXPERIMENTS if e.key == key)
    if not exp.bound_only:
        return {s: np.asarray(full.splits[s]) for s in SPLITS}
    bound = np.flatnonzero(~full.dissociated)
    sizes = [len(full.splits[s]) for s in SPLITS]
    part = make_splits(len(bound), sizes, seed=SEED + 1)
    return {s: bound[part[s]] for s in SPLITS}


# ----------------------------------------------------------------------------- the run


def test_every_promised_file_is_written_and_nothing_else(study):
    written = {p.relative_to(study.out).as_posix() for p in study.out.rglob("*") if p.is_file()}
    assert written == EXPECTED_FILES  # no temporary files left, no data folder under OUTPUT (data_dir given)
    for name in ("fig2a.png", "fig2b.png", "fig2c.png", "signals.png"):
        png = (study.out / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, name
    for key in KEYS:
        assert isinstance(load_method(study.out / "models" / f"{key}-nearest.safetensors"), NearestReference)
        assert isinstance(load_method(study.out / "models" / f"{key}-vrnn.safetensors"), VRNN)


def test_log_reuses_datasets_and_trains_each_model_once(study):
    log = study.log
    assert any(re.match(r"nmm: reusing .*nmm\.h5 \(8 trajectories, 0 dissociated\)$", line) for line in log), log
    assert any(re.match(r"c2h4: reusing .*c2h4\.h5 \(11 trajectories, 3 dissociated\)$", line) for line in log), log
    assert "cs2: 11 trajectories, 4 dissociated; signals on 100 q points" in log
    training = [line for line in log if ": training " in line]
    assert len(training) == 2 * len(KEYS) == 12
    for e in EXPERIMENTS:
        for m in METHODS:
            n_train = len(experiment_indices(study.built[e.molecule], e.key)["train"])
            assert f"{e.label}: training {m} on {n_train} trajectories ..." in training
    assert sum(bool(re.fullmatch(r".+: (nearest|vrnn) trained in \d+ s", line)) for line in log) == 12
    assert "cs2-electron-3700kev: cs2.h5's 11 trajectories with electron signals at 3700 keV on 100 q points" in log


def test_signals_missing_from_a_dataset_are_simulated_and_saved(study):
    """The CS2 file had no signals: the study adds them (default q grid) and keeps trajectories and splits."""
    built = study.built["cs2"]
    ds = read_dataset(study.data_dir / "cs2.h5")
    np.testing.assert_array_equal(ds.q, q_grid())
    dS, I_ref = simulate_signals(
        built.symbols, built.positions, built.length, built.time, q_grid(), inelastic=True, reference="first"
    )
    np.testing.assert_allclose(ds.dS, dS, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ds.I_ref, I_ref, rtol=1e-12)
    assert ds.signal_attrs == dict(
        inelastic=True, reference="first", photons=None, irf_fs=None, seed=SEED, probe="xray", energy_kev=None
    )
    np.testing.assert_array_equal(ds.positions, built.positions)
    np.testing.assert_array_equal(ds.dissociated, built.dissociated)
    assert {k: v.tolist() for k, v in ds.splits.items()} == {k: v.tolist() for k, v in built.splits.items()}
    # the datasets that had signals are reused untouched
    nmm = read_dataset(study.data_dir / "nmm.h5")
    np.testing.assert_array_equal(nmm.dS, study.built["nmm"].dS)


def electron_intensity(symbols, positions, s):
    """The electron I(s) of one geometry written out here: Σ|f_A|² + 2 Σ_{A<B} Re(f_A f_B*) sin(sR)/(sR)."""
    from molmovie.scattering import electron_amplitudes

    f = electron_amplitudes(symbols, s, 3700.0)  # (atoms, s), complex, Å
    I = np.sum(np.abs(f) ** 2, axis=0)
    for a, b in zip(*np.triu_indices(len(symbols), 1)):
        R = np.linalg.norm(positions[a] - positions[b])
        I = I + 2 * np.real(f[a] * np.conj(f[b])) * np.sinc(s * R / np.pi)
    return I


def test_the_ued_experiment_probes_the_cs2_trajectories_with_electrons(study):
    """CS2 UED: cs2.h5's trajectories and splits, with ΔI/I of the 3.7 MeV electron I(s) (no inelastic term) on the
    study's grid, in a dataset of its own; its models learn from, and score against, those signals."""
    exp = next(e for e in EXPERIMENTS if e.key == "cs2-ued")
    assert (exp.molecule, exp.probe, exp.energy_kev, exp.bound_only) == ("cs2", "electron", 3700.0, False)
    xray = read_dataset(study.data_dir / "cs2.h5")
    ued = read_dataset(study.data_dir / "cs2-electron-3700kev.h5")
    np.testing.assert_array_equal(ued.positions, xray.positions)
    np.testing.assert_array_equal(ued.time, xray.time)
    assert {k: v.tolist() for k, v in ued.splits.items()} == {k: v.tolist() for k, v in xray.splits.items()}
    assert ued.signal_attrs == dict(
        inelastic=False, reference="first", photons=None, irf_fs=None, seed=SEED, probe="electron", energy_kev=3700.0
    )
    np.testing.assert_array_equal(ued.q, q_grid())
    for m in range(ued.n_trajectories):
        L = int(ued.length[m])
        I = np.array([electron_intensity(ued.symbols, ued.positions[m, t], ued.q) for t in range(L)])
        np.testing.assert_allclose(ued.I_ref[m], I[0], rtol=1e-9)
        np.testing.assert_allclose(ued.dS[m, :L], I / I[0] - 1, rtol=1e-7, atol=1e-12)
    # another probe: not the X-ray signals (electrons weigh small s more; the ratio varies along q)
    moving = np.abs(xray.dS[xray.mask]).max(axis=-1) > 1e-3
    ratio = ued.dS[ued.mask][moving] / xray.dS[xray.mask][moving]
    assert np.ptp(ratio[np.isfinite(ratio)]) > 0.1
    # the same train/val/test trajectories as the all-CS2 X-ray experiment
    assert study.results["experiments"]["cs2-ued"]["trajectories"] == study.results["experiments"]["cs2"]["trajectories"]
    for m in METHODS:  # each model says what it learned from: its signal spec is the electron one
        spec = load_method(study.out / "models" / f"cs2-ued-{m}.safetensors").spec_
        assert (spec.probe, spec.energy_kev, spec.inelastic) == ("electron", 3700.0, False)
        assert load_method(study.out / "models" / f"cs2-{m}.safetensors").spec_.probe == "xray"


def test_results_hold_the_six_experiments_with_their_split_sizes(study):
    res = study.results
    assert res["preset"] == "tiny" and res["seed"] == SEED
    assert list(res["experiments"]) == KEYS
    on_disk = dict(study.first_json)
    assert on_disk.pop("wall_time_s") >= 0 and on_disk.pop("reused_stages") == 3
    assert on_disk == {k: v for k, v in res.items() if k not in VOLATILE}
    for e in EXPERIMENTS:
        entry = res["experiments"][e.key]
        assert entry["label"] == e.label
        counts = tuple(entry["trajectories"][s] for s in SPLITS)
        if e.bound_only:
            assert counts == BOUND_COUNTS[e.molecule]
        else:
            assert counts == COUNTS[e.molecule]
        full = study.built[e.molecule]
        idx = experiment_indices(full, e.key)
        assert tuple(len(idx[s]) for s in SPLITS) == counts
        if e.bound_only:
            assert not any(full.dissociated[np.concatenate(list(idx.values()))])
        else:
            assert full.dissociated[idx["test"]].any() == (e.molecule != "nmm")


@pytest.mark.parametrize("key", KEYS)
def test_sums_and_winners_agree_with_an_independent_evaluation(study, key):
    exp = next(e for e in EXPERIMENTS if e.key == key)
    full = read_dataset(study.data_dir / f"{exp.dataset}.h5")  # CS2 now with the study's signals; CS2 UED's electrons
    idx = experiment_indices(full, key)
    train, test = full.subset(idx["train"]), full.subset(idx["test"])
    entry = study.results["experiments"][key]
    for m in METHODS:
        ev = load_npz(study.out / "eval" / f"{key}-{m}.npz")
        pred = ev["distances"]
        assert pred.shape == test.distances.shape
        assert np.isfinite(pred[test.mask]).all() and np.isnan(pred[~test.mask]).all()
        again = evaluate(pred, test)
        summary = entry["methods"][m]
        expected = again.summary()
        assert summary["frames"] == expected["frames"] == int(test.length.sum())
        for k, v in expected.items():
            assert summary[k] == pytest.approx(v, rel=1e-9, abs=1e-12), (m, k)
        assert json.loads(str(ev["summary_json"])) == summary
        np.testing.assert_allclose(ev["rmsd"], again.rmsd, rtol=1e-9)
        np.testing.assert_allclose(ev["ssr"], again.ssr, rtol=1e-9, atol=1e-300)
        np.testing.assert_allclose(ev["rmsd_t"], again.per_time_step()["rmsd"], rtol=1e-9)
        if m == "vrnn":
            std = ev["std"]
            assert std.shape == pred.shape and (std[test.mask] > 0).all()
            inside = (np.abs(pred - test.distances) <= 2 * std)[test.mask].mean()
            assert summary["within_2sigma"] == pytest.approx(inside)
        else:
            assert ev["std"].size == 0 and "within_2sigma" not in summary
            # the baseline answers every frame with a frame of this experiment's training split
            library = train.distances[train.mask]
            gaps = np.abs(pred[test.mask][:, None, :] - library[None]).max(axis=-1).min(axis=1)
            assert gaps.max() == 0.0
    m = entry["methods"]
    assert set(entry["winner"]) == set(SCORES) >= {"rmsd_sum", "rmsd_sym_sum", "ssr_sum"}
    for k in SCORES:
        assert entry["winner"][k] == ("vrnn" if m["vrnn"][k] < m["nearest"][k] else "nearest")
    mean_R = train.distances[train.mask].mean(axis=0)
    assert entry["mean_predictor_abs_error"] == pytest.approx(np.abs(test.distances[test.mask] - mean_R).mean(), rel=1e-9)


def test_vrnn_settings_come_from_the_preset_with_per_experiment_overrides(study):
    for key in KEYS:
        model = load_method(study.out / "models" / f"{key}-vrnn.safetensors")
        want = {**VRNN_SETTINGS, **(CS2_BOUND_OVERRIDE if key == "cs2-bound" else {}), "seed": SEED}
        assert {k: getattr(model, k) for k in want} == want, key


def test_markdown_table_shows_the_results(study):
    md = (study.out / "results.md").read_text()
    header = [c.strip() for c in md.splitlines()[0].split("|")[3:-1]]
    names = {
        "rmsd_sum": "labelled",
        "rmsd_sym_traj_sum": "symmetry-aware per trajectory",
        "rmsd_sym_sum": "symmetry-aware per frame",
        "ssr_sum": "SSR",
    }
    assert len(header) == len(SCORES) and all(names[k] in h for k, h in zip(SCORES, header)), header
    wins = dict.fromkeys(SCORES, 0)
    for key, e in study.results["experiments"].items():
        t = e["trajectories"]
        rows = [line for line in md.splitlines() if line.startswith(f"| {e['label']} | {t['train']}/{t['val']}/{t['test']} |")]
        assert len(rows) == 1, (key, md)
        cells = [c.strip() for c in rows[0].split("|")[3:-1]]
        assert len(cells) == len(SCORES), rows[0]
        for k, cell in zip(SCORES, cells):  # "baseline / VRNN", the winner in bold
            nearest, vrnn = cell.split(" / ")
            bold = {m for m, text in (("nearest", nearest), ("vrnn", vrnn)) if text.startswith("**") and text.endswith("**")}
            assert bold == {e["winner"][k]}, (key, k, cell)
            for text, m in ((nearest, "nearest"), (vrnn, "vrnn")):
                assert float(text.strip("*")) == pytest.approx(e["methods"][m][k], rel=1e-3, abs=0.5), (key, k, cell)
            wins[k] += e["winner"][k] == "vrnn"
    assert f"VRNN wins: labelled RMSD {wins['rmsd_sum']}/6, " in md
    assert f"SSR {wins['ssr_sum']}/6 (preset `tiny`, seed {SEED}; this run took " in md


def test_every_progress_bar_opened_is_closed(study):
    """One bar per VRNN training, totalling its epochs, updated epoch by epoch, and closed at the end,
    also when early stopping ends the training before its last epoch (CS2 bound here)."""
    bars = study.bars
    assert [b.description for b in bars] == [f"{k} vrnn epochs" for k in KEYS]
    for b in bars:
        epochs = CS2_BOUND_OVERRIDE["epochs"] if b.description.startswith("cs2-bound") else VRNN_SETTINGS["epochs"]
        assert b.total == epochs
        assert b.updates == list(range(1, len(b.updates) + 1))
    early = [b for b in bars if b.updates[-1] < b.total]
    assert [b.description for b in early] == ["cs2-bound vrnn epochs"]  # the case this test is about happens
    unclosed = [b.description for b in bars if not b.closed]
    assert unclosed == [], f"progress bars left open after early stopping: {unclosed}"


# ----------------------------------------------------------------------------- resuming


def test_a_rerun_retrains_nothing_and_a_lost_evaluation_is_recomputed_identically(study):
    before = snapshot(study.out)
    common = {k: v for k, v in study.results.items() if k not in VOLATILE}

    lines: list[str] = []
    bars = ProgressRecorder()
    again = run_study(PRESET, study.out, seed=SEED, data_dir=study.data_dir, log=lines.append, progress=StageProgress(bars))
    assert snapshot(study.out) == before
    # three datasets, then the electron dataset and twelve models too
    assert study.results["reused_stages"] == 3 and again["reused_stages"] == 16
    assert "reusing 16 stages finished before it)." in (study.out / "results.md").read_text()
    assert not bars.bars and not [line for line in lines if ": training " in line or " trained in " in line], lines
    assert sum(": reusing " in line for line in lines) == 4  # CS2 now has its signals too, and the electron dataset exists
    assert {k: v for k, v in again.items() if k not in VOLATILE} == common

    lost = "eval/cs2-bound-vrnn.npz"
    old = load_npz(study.out / lost)
    (study.out / lost).unlink()
    lines.clear()
    again = run_study(PRESET, study.out, seed=SEED, data_dir=study.data_dir, log=lines.append, progress=StageProgress(bars))
    assert not bars.bars and not [line for line in lines if ": training " in line or " trained in " in line], lines
    after = snapshot(study.out)
    assert {k: v for k, v in after.items() if k != lost} == {k: v for k, v in before.items() if k != lost}
    new = load_npz(study.out / lost)  # written again ...
    assert new.keys() == old.keys()
    for k in old:
        np.testing.assert_array_equal(new[k], old[k], err_msg=k)  # ... identically, from the saved model
    assert {k: v for k, v in again.items() if k not in VOLATILE} == common

    # an evaluation made before the per-trajectory RMSD existed is scored again, from the saved model
    stale = "eval/nmm-nearest.npz"
    old = load_npz(study.out / stale)
    summary = json.loads(str(old["summary_json"]))
    del summary["rmsd_sym_traj_sum"], summary["rmsd_sym_traj_mean"]
    older = {k: v for k, v in old.items() if k not in ("rmsd_sym_traj", "rmsd_sym_traj_t")}
    np.savez_compressed(study.out / stale, **{**older, "summary_json": np.array(json.dumps(summary))})
    lines.clear()
    again = run_study(PRESET, study.out, seed=SEED, data_dir=study.data_dir, log=lines.append, progress=StageProgress(bars))
    assert not bars.bars and not [line for line in lines if ": training " in line or " trained in " in line], lines
    assert [line for line in lines if "predates" in line] == [
        "NMM: nmm-nearest.npz predates the current metrics; scoring nearest again"
    ]
    new = load_npz(study.out / stale)
    for k in old:
        np.testing.assert_array_equal(new[k], old[k], err_msg=k)
    assert {k: v for k, v in again.items() if k not in VOLATILE} == common


def test_a_study_of_an_older_revision_with_valid_models_keeps_them_and_scores_again(study, tmp_path):
    """A study of revision MODELS_VALID_SINCE (inference changed since, training not) is resumed: no model is
    trained, its scores and report are moved aside (kept, not overwritten) and made again, and its manifest says
    today's revision; a run refused on its datasets changes nothing."""
    import shutil

    from molmovie.evaluation.study import MODELS_VALID_SINCE, REPORT, REVISION

    out = tmp_path / "out"
    shutil.copytree(study.out, out)
    manifest = json.loads((out / "study.json").read_text())
    old_manifest = {**manifest, "revision": MODELS_VALID_SINCE}
    (out / "study.json").write_text(json.dumps(old_manifest))
    (out / f"revision{MODELS_VALID_SINCE}").mkdir()  # an earlier move: this one takes the next free name
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    # refused on a dataset split otherwise: the folder is left as it was
    bad = tmp_path / "bad-data"
    shutil.copytree(study.data_dir, bad)
    (bad / "nmm.h5").unlink()
    ds = build_dataset("nmm")
    ds.splits = make_splits(ds.n_trajectories, (5, 1, 2), seed=0)
    write_dataset(ds, bad / "nmm.h5")
    (out / "study.json").write_text(json.dumps({**old_manifest, "data_dir": str(bad.resolve())}))
    with pytest.raises(InputError, match=r"nmm\.h5 is split 5/1/2"):
        run_study(PRESET, out, seed=SEED, data_dir=bad, log=lambda line: None)
    (out / "study.json").write_text(json.dumps(old_manifest))
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == files

    before = snapshot(out)
    lines: list[str] = []
    again = run_study(PRESET, out, seed=SEED, data_dir=study.data_dir, log=lines.append)
    assert not [line for line in lines if ": training " in line or " trained in " in line], lines
    aside = out / f"revision{MODELS_VALID_SINCE}-2"
    assert f"its models are kept; its scores and report, moved to {aside.name}/, are made again" in "\n".join(lines)
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k.startswith("models/")} == {
        k: v for k, v in before.items() if k.startswith("models/")
    }
    for name in (k for k in files if k.startswith("eval/") or k in REPORT):
        assert (aside / name).read_bytes() == files[name]  # the old scores and report, kept as they were
        assert (out / name).exists()  # and made again
    assert all(after[k][0] != before[k][0] for k in before if k.startswith("eval/"))
    assert json.loads((out / "study.json").read_text()) == {**manifest, "revision": REVISION}
    common = {k: v for k, v in study.results.items() if k not in VOLATILE}
    assert {k: v for k, v in again.items() if k not in VOLATILE} == common  # the tiny study's scores did not change


# ----------------------------------------------------------------------------- errors


def test_a_dataset_of_the_wrong_size_is_refused_and_kept(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = write_dataset(build_dataset("nmm", signals=False, n=5), data_dir / "nmm.h5")
    content = path.read_bytes()
    with pytest.raises(
        InputError, match=r"nmm\.h5 holds 5 trajectories but the tiny preset needs 8; remove it or choose another"
    ):
        run_study(PRESET, tmp_path / "out", seed=SEED, data_dir=data_dir, log=lambda line: None)
    assert path.read_bytes() == content


def test_an_output_that_is_a_file_or_an_unknown_preset_is_refused(tmp_path):
    out = tmp_path / "results.txt"
    out.write_text("keep me")
    with pytest.raises(InputError, match=r"results\.txt exists and is not a folder"):
        run_study(PRESET, out, data_dir=tmp_path, log=lambda line: None)
    assert out.read_text() == "keep me"
    with pytest.raises(InputError, match=r"unknown preset 'tiny'; presets are paper, quick"):
        run_study("tiny", tmp_path / "out", log=lambda line: None)
    assert not (tmp_path / "out").exists()


def test_a_data_dir_that_is_a_file_is_refused_with_an_input_error(tmp_path):
    """Not a FileExistsError from mkdir (a traceback from `molmovie reproduce --data-dir FILE`)."""
    data_dir = tmp_path / "data.h5"
    data_dir.write_text("not a folder")
    with pytest.raises(InputError, match=r"data\.h5"):
        run_study(PRESET, tmp_path / "out", data_dir=data_dir, log=lambda line: None)
    assert not (tmp_path / "out").exists()


def test_a_study_with_another_seed_or_split_is_not_mixed_into_an_old_one(study, tmp_path):
    manifest = json.loads((study.out / "study.json").read_text())
    assert manifest["seed"] == SEED and manifest["trajectories"]["cs2"] == list(COUNTS["cs2"])
    before = snapshot(study.out)
    with pytest.raises(InputError, match=r"holds a study defined otherwise \(seed 3 there, 4 here\); .*another --output"):
        run_study(PRESET, study.out, seed=SEED + 1, data_dir=study.data_dir, log=lambda line: None)
    assert snapshot(study.out) == before
    # a dataset split otherwise than the preset asks is refused, not silently re-used
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    ds = build_dataset("nmm")
    ds.splits = make_splits(ds.n_trajectories, (5, 1, 2), seed=0)
    write_dataset(ds, data_dir / "nmm.h5")
    with pytest.raises(InputError, match=r"nmm\.h5 is split 5/1/2 \(train/val/test\) but the tiny preset needs 4/2/2"):
        run_study(PRESET, tmp_path / "out", seed=SEED, data_dir=data_dir, log=lambda line: None)


def test_a_folder_with_models_but_no_manifest_is_not_resumed(tmp_path):
    out = tmp_path / "old-study"
    (out / "models").mkdir(parents=True)
    (out / "models" / "nmm-vrnn.safetensors").write_bytes(b"from an older molmovie")
    with pytest.raises(InputError, match=r"old-study holds models or scores but no study\.json"):
        run_study(PRESET, out, seed=SEED, data_dir=tmp_path / "data", log=lambda line: None)
    assert not (out / "study.json").exists() and not (tmp_path / "data").exists()


def test_an_electron_dataset_of_other_trajectories_or_signals_is_refused_and_kept(study, tmp_path):
    """The CS2 UED dataset is cs2.h5's trajectories with electron signals: one that holds other trajectories (cs2.h5
    made again) or signals made otherwise is refused with one line naming it, and left as it was."""
    import shutil

    data_dir = tmp_path / "data"
    shutil.copytree(study.data_dir, data_dir)
    path = data_dir / "cs2-electron-3700kev.h5"
    ued = read_dataset(path)
    moved = dataclasses.replace(ued, ensemble=dataclasses.replace(ued.ensemble, positions=ued.positions + 0.01))
    write_dataset(moved, path, force=True)
    content = path.read_bytes()
    with pytest.raises(InputError, match=r"cs2-electron-3700kev\.h5 holds other trajectories or splits than .*cs2\.h5"):
        run_study(PRESET, tmp_path / "out", seed=SEED, data_dir=data_dir, log=lambda line: None)
    assert path.read_bytes() == content

    xray = read_dataset(data_dir / "cs2.h5")  # the X-ray signals under the electron dataset's name
    write_dataset(xray, path, force=True)
    content = path.read_bytes()
    with pytest.raises(
        InputError,
        match=r"cs2-electron-3700kev\.h5 holds signals simulated otherwise than the study's: probe xray \(the study uses "
        r"electron\); energy_kev None \(the study uses 3700\.0\); inelastic True \(the study uses False\); choose another",
    ):
        run_study(PRESET, tmp_path / "out2", seed=SEED, data_dir=data_dir, log=lambda line: None)
    assert path.read_bytes() == content


def test_reused_signals_must_follow_the_studys_protocol(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    ds = build_dataset("nmm", signals=False)
    q = q_grid(n_q=12)
    ds = ds.with_signals(
        *simulate(ds.symbols, ds.positions, ds.length, ds.time, SignalSpec(q, inelastic=True, reference="ground", seed=0))
    )
    path = write_dataset(ds, data_dir / "nmm.h5")
    content = path.read_bytes()
    with pytest.raises(
        InputError,
        match=r"nmm\.h5 holds signals simulated otherwise than the study's: q grid 12 points.*reference ground \(the study uses first\); choose another --data-dir",
    ):
        run_study(PRESET, tmp_path / "out", seed=SEED, data_dir=data_dir, log=lambda line: None)
    assert path.read_bytes() == content
