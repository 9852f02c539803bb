"""The study's test conditions (noise ladder, forward-model mismatches) and the shared signal fit for every method.

Signals under each condition are checked against independent recomputations
(Eq. (1) written out here); a tiny study with conditions is run once and its
condition files, tables and reuse are checked against what they must hold.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import xraylib

from molmovie import InputError
from molmovie.evaluation import score_prediction
from molmovie.evaluation.study import EXPERIMENTS, Preset, presets, run_study
from molmovie.evaluation.study.conditions import (
    CONDITIONS,
    NOISE_LEVELS,
    Q_SCALE,
    condition_signals,
    photons_for,
    waasmaier_form_factors,
)
from molmovie.evaluation.study.conditions_report import head_to_head
from molmovie.evaluation.study.shared_fit import RELATIVE_WIDTH, condition_path, read_condition, shared_fit
from molmovie.evaluation.study.stages import Stage
from molmovie.inversion import load_method
from molmovie.io import write_dataset
from molmovie.scattering import SignalSpec, q_grid, simulate

from test_study import COUNTS, PRESET, SEED, build_dataset


@pytest.fixture(scope="module")
def cs2():
    return build_dataset("cs2").split("test")


def _eq1(symbols, R, q, f, S=None):
    """Eq. (1) written out pair by pair: Σ f² + 2 Σ_{A<B} f_A f_B sin(qR)/(qR) (+ Σ S)."""
    n = len(symbols)
    I = np.sum(f**2, axis=0) * np.ones(R.shape[:-1] + (q.size,))
    k = 0
    for a in range(n):
        for b in range(a + 1, n):
            x = q * R[..., k, None]
            I = I + 2 * f[a] * f[b] * np.sin(x) / x
            k += 1
    return I if S is None else I + S.sum(axis=0)


def test_noise_free_signals_are_the_datasets_and_noise_has_its_sigma_and_is_drawn_once(cs2):
    clean = condition_signals(cs2, CONDITIONS["clean"], seed=0, experiment="cs2")
    np.testing.assert_array_equal(clean[cs2.mask], cs2.dS[cs2.mask])
    for s in NOISE_LEVELS:
        cond = CONDITIONS[f"noise-{s:g}"]
        a = condition_signals(cs2, cond, seed=0, experiment="cs2")
        diff = (a - cs2.dS)[cs2.mask]
        assert abs(diff.std() / s - 1) < 0.05  # 2 test series x 8 frames x 100 q: ~1600 draws
        assert abs(diff.mean()) < 4 * s / np.sqrt(diff.size)
        np.testing.assert_array_equal(a, condition_signals(cs2, cond, seed=0, experiment="cs2"))  # the same for every method
        assert not np.allclose(a, condition_signals(cs2, cond, seed=1, experiment="cs2"))  # another seed, another draw
        assert not np.allclose(a, condition_signals(cs2, cond, seed=0, experiment="cs2-bound"))
        assert np.all(np.isnan(a[~cs2.mask]))


def test_mismatched_signals_follow_eq1_with_the_one_change(cs2):
    R, q, sym = cs2.distances[cs2.mask], cs2.q, cs2.symbols
    z = {"C": 6, "S": 16}
    first = np.flatnonzero(cs2.mask.reshape(-1))  # frames in order; each series' first frame is its reference

    def relative(I):
        I_full = np.full(cs2.mask.shape + (q.size,), np.nan)
        I_full[cs2.mask] = I
        return (I_full / I_full[:, :1] - 1)[cs2.mask]

    def f_xraylib(qq):
        return np.array([[xraylib.FF_Rayl(z[s], x / (4 * np.pi)) for x in qq] for s in sym])

    def S_xraylib(qq):
        return np.array([[xraylib.SF_Compt(z[s], x / (4 * np.pi)) for x in qq] for s in sym])

    assert first.size
    expected = {
        "q-scale": relative(_eq1(sym, R, q * (1 + Q_SCALE), f_xraylib(q * (1 + Q_SCALE)), S_xraylib(q * (1 + Q_SCALE)))),
        "no-inelastic": relative(_eq1(sym, R, q, f_xraylib(q))),
        "form-factors": relative(_eq1(sym, R, q, waasmaier_form_factors(sym, q), S_xraylib(q))),
    }
    for key, want in expected.items():
        got = condition_signals(cs2, CONDITIONS[key], seed=0, experiment="cs2")[cs2.mask]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
        assert np.abs(got - cs2.dS[cs2.mask]).max() > 1e-5  # the change reaches the signal
    bg = condition_signals(cs2, CONDITIONS["background"], seed=0, experiment="cs2") - cs2.dS
    b = bg[cs2.mask]
    np.testing.assert_allclose(b, np.broadcast_to(b[0], b.shape), atol=1e-15)  # constant in time
    np.testing.assert_allclose(np.diff(b[0], 2), 0, atol=1e-15)  # a straight line in q, to 0 at q_max
    assert b[0, -1] == pytest.approx(0, abs=1e-15)
    assert b[0, 0] == pytest.approx(0.1 * np.sqrt(np.mean(cs2.dS[cs2.mask] ** 2)))


def test_the_other_tables_form_factors_are_waasmaier_kirfel_and_hydrogen_1s():
    q = np.array([0.0, 2.0, 6.0])
    f = waasmaier_form_factors(["H", "C"], q)
    a0 = 0.529177210903
    np.testing.assert_allclose(f[0], 1 / (1 + (q * a0 / 2) ** 2) ** 2)
    assert f[1, 0] == pytest.approx(6.0, abs=0.01)  # f(0) = Z
    # within a per cent of xraylib's (Hubbell's) table: another table, not another physics
    np.testing.assert_allclose(f[1], [xraylib.FF_Rayl(6, x / (4 * np.pi)) for x in q], rtol=0.01)
    with pytest.raises(InputError, match="Waasmaier"):
        waasmaier_form_factors(["Fe"], q)


def test_photon_counts_give_the_stated_sigma_under_the_counting_noise_model():
    q = q_grid()
    R = np.array([[1.55, 1.55, 3.1]])
    pos = np.array([[[0, 0, 0], [1.55, 0, 0], [-1.55, 0, 0]]] * 2, dtype=float)[None]  # one series of 2 identical frames
    I = _eq1(["C", "S", "S"], R, q, np.array([[xraylib.FF_Rayl(z, x / (4 * np.pi)) for x in q] for z in (6, 16, 16)]))
    N = photons_for(0.01, I)
    many = np.concatenate(
        [
            simulate(
                ["C", "S", "S"],
                pos,
                np.array([2]),
                np.array([0.0, 1.0]),
                SignalSpec(q, inelastic=False, reference="ground", photons=N, seed=k),
            )[0]
            for k in range(400)
        ]
    )
    # the Poisson standard deviation of ΔS at the median q bin is the σ asked for
    assert many[..., q.size // 2].std() == pytest.approx(0.01, rel=0.1)


def test_without_a_sigma_the_prior_width_is_the_stated_relative_one(cs2):
    R = cs2.distances * 1.02
    R[~cs2.mask] = np.nan
    cond = CONDITIONS["clean"]
    got = shared_fit(R, None, cs2.dS, cs2, cond)
    from molmovie.inversion import refine_distances

    want = refine_distances(
        R, RELATIVE_WIDTH * R, cs2.dS, symbols=cs2.symbols, spec=cs2.spec, lengths=cs2.length, space="geometry", sweeps=1
    )
    np.testing.assert_array_equal(got[0], want[0])
    # the fit moves the answer towards the truth of noise-free signals made by its own forward model
    before = score_prediction(R, None, cs2)["summary"]["rmsd_sym_sum"]
    after = score_prediction(got[0], got[1], cs2)["summary"]["rmsd_sym_sum"]
    assert after < 0.5 * before


def test_with_a_sigma_the_prior_is_the_methods_and_the_sigma_after_the_fit_its_calibration(cs2):
    from molmovie.inversion import refine_distances

    R = cs2.distances * 1.02
    R[~cs2.mask] = np.nan
    std = 0.05 * R
    cond = CONDITIONS["noise-0.01"]
    dS = condition_signals(cs2, cond, seed=0, experiment="cs2")
    kw = dict(symbols=cs2.symbols, spec=cs2.spec, lengths=cs2.length, noise=0.01, space="geometry", sweeps=1)
    fitted, laplace = refine_distances(R, std, dS, **kw)
    # without a calibration: the fit's own σ (Laplace, the noise being known)
    got = shared_fit(R, std, dS, cs2, cond)
    np.testing.assert_array_equal(got[0], fitted)
    np.testing.assert_array_equal(got[1], laplace)
    # with one: the same answer, and σ = scale × the prior's relative width at the fitted distances
    R2, sd = shared_fit(R, std, dS, cs2, cond, 0.43)
    np.testing.assert_allclose(R2, fitted, rtol=1e-12)
    np.testing.assert_allclose(sd[cs2.mask], (0.43 * 0.05 * fitted)[cs2.mask], rtol=1e-12)
    # a method without a σ has no calibration to apply
    np.testing.assert_array_equal(shared_fit(R, None, dS, cs2, cond, 0.43)[1], shared_fit(R, None, dS, cs2, cond)[1])


# ----------------------------------------------------------------------------- a study with conditions

CONDITION_KEYS = ("clean", "noise-0.01", "no-inelastic")
STUDIED = tuple(e for e in EXPERIMENTS if e.molecule == "cs2" and e.probe == "xray")  # the two X-ray CS2 experiments


@pytest.fixture(scope="module")
def conditioned(tmp_path_factory):
    root = tmp_path_factory.mktemp("conditions")
    data_dir = root / "data"
    data_dir.mkdir()
    write_dataset(build_dataset("cs2"), data_dir / "cs2.h5")
    preset = dataclasses.replace(PRESET, conditions=CONDITION_KEYS)
    out = root / "out"
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:  # two experiments keep it quick; the rest is the same for any
        mp.setattr(presets, "EXPERIMENTS", STUDIED)
        results = run_study(preset, out, seed=SEED, seeds=2, data_dir=data_dir, log=lines.append)
    return out, preset, data_dir, results, lines


def _again(preset, out, data_dir, log):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(presets, "EXPERIMENTS", STUDIED)
        return run_study(preset, out, seed=SEED, seeds=2, data_dir=data_dir, log=log)


def test_every_method_answers_every_condition_as_itself_and_with_the_fit(conditioned):
    out, preset, data_dir, results, lines = conditioned
    for e in results["experiments"].values():
        assert list(e["conditions"]) == list(CONDITION_KEYS)
        for c in e["conditions"].values():
            assert set(c["methods"]) == {"nearest", "nearest+fit", "vrnn", "vrnn+fit"}
            assert set(c["spread"]) == set(c["methods"])
    # the unseeded baseline answers one draw per seed (a spread from the noise), one file for noise-free signals
    files = sorted(p.name for p in (out / "eval" / "conditions").iterdir())
    assert "cs2-nearest-noise-0.01-draw3.npz" in files and "cs2-nearest-noise-0.01-draw4.npz" in files
    assert "cs2-nearest-clean.npz" in files and "cs2-bound-vrnn-seed4-noise-0.01-draw4.npz" in files
    # per experiment: nearest 1 clean + 2 draws + 1 mismatch; the VRNN's 2 seeds x (clean, its own draw, mismatch)
    assert len(files) == 2 * (4 + 2 * 3)
    # the VRNN as itself has no fit of its own: its answer is the network's, as load_method + refine=False gives
    exp = results["experiments"]["cs2"]
    stage = Stage(next(e for e in EXPERIMENTS if e.key == "cs2"), "vrnn", SEED, SEED, True)
    model = load_method(stage.paths(out)[0]).set_params(refine=False)
    test = build_dataset("cs2").split("test")
    pred = model.predict(test.dS, q=test.q, lengths=test.length)
    with np.load(condition_path(stage, out, CONDITIONS["clean"], None)) as z:
        np.testing.assert_allclose(z["distances"][test.mask], pred.distances[test.mask], rtol=1e-6)
    assert read_condition(stage, out, CONDITIONS["clean"], None)["plain"]["rmsd_sym_sum"] == pytest.approx(
        score_prediction(pred.distances, pred.std, test)["summary"]["rmsd_sym_sum"], rel=1e-5
    )
    assert exp["conditions"]["clean"]["per_seed"]["vrnn"]["rmsd_sym_sum"][0] == pytest.approx(
        read_condition(stage, out, CONDITIONS["clean"], None)["plain"]["rmsd_sym_sum"]
    )


def test_a_rerun_reuses_every_condition_file_and_a_changed_one_is_made_again(conditioned):
    out, preset, data_dir, results, lines = conditioned
    folder = out / "eval" / "conditions"
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again: list[str] = []
    _again(preset, out, data_dir, again.append)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert not any("under" in line for line in again)
    victim = folder / "cs2-nearest-clean.npz"
    with np.load(victim) as z:
        arrays = {k: z[k] for k in z.files}
    key = json.loads(str(arrays["fingerprint_json"]))
    key["fit"]["relative_width"] = 0.5  # made with other settings: not reused
    arrays["fingerprint_json"] = np.array(json.dumps(key))
    np.savez_compressed(victim, **arrays)
    _again(preset, out, data_dir, again.append)
    changed = [n for n, t in before.items() if (folder / n).stat().st_mtime_ns != t]
    assert changed == ["cs2-nearest-clean.npz"]


def test_the_report_has_a_table_per_score_and_the_head_to_head_counts(conditioned):
    out, *_ = conditioned
    md = (out / "results.md").read_text()
    assert "Every method with the same tools" in md
    assert md.count("| experiment | condition |") == 4 + 1  # one table per score, and the ±2σ coverage
    assert "True distances inside ±2σ" in md
    assert "baseline + signal fit" in md and "VRNN + signal fit" in md
    assert "| σ = 0.01 |" in md  # a head-to-head row
    assert (out / "noise.png").exists()


@pytest.mark.parametrize(
    ("means", "spreads", "verdict"),
    [
        ({"a": 1.0, "a+fit": 0.5, "b": 2.0, "b+fit": 0.9}, None, "win"),  # a's better variant (0.5) beats b's (0.9)
        ({"a": 1.0, "a+fit": 0.5, "b": 2.0, "b+fit": 0.9}, {"a+fit": 0.2, "b+fit": 0.2}, "tie"),  # 0.4 is within 0.4
        ({"a": 1.0, "a+fit": 1.5, "b": 0.2, "b+fit": 0.9}, None, "loss"),
    ],
)
def test_head_to_head_compares_each_methods_better_variant_beyond_the_spread(means, spreads, verdict):
    c = {"methods": {k: {"rmsd_sym_sum": v} for k, v in means.items()}}
    if spreads is not None:
        c["spread"] = {k: {"rmsd_sym_sum": spreads.get(k, 0.0)} for k in means}
    assert head_to_head(c, "a") == verdict


def test_a_preset_with_an_unknown_condition_or_experiment_is_refused_when_made():
    with pytest.raises(InputError, match="unknown test conditions 'fog'"):
        Preset("bad", COUNTS, methods={"nearest": {}}, conditions=("clean", "fog"))
    with pytest.raises(InputError, match="unknown experiments 'h2o'"):
        Preset("bad", COUNTS, methods={"nearest": {}}, conditions=("clean",), condition_experiments=("cs2", "h2o"))
