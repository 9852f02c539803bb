"""A study folder written before presets named their methods (``vrnn`` settings beside an implied
baseline in study.json) is read in today's terms: resumed when it is the same study, refused naming what differs."""

from __future__ import annotations

import json

import pytest

from molmovie import InputError
from molmovie.evaluation.study import MODELS_VALID_SINCE, REVISION, run_study

from test_study import COUNTS, CS2_BOUND_OVERRIDE, PRESET, SEED, VRNN_SETTINGS


def old_manifest(data_dir, **change) -> dict:
    """study.json as molmovie wrote it before the methods were named by the preset (the layout of revision 2,
    with today's revision number so that only the layout differs; a lower revision is refused, see below)."""
    return {
        "revision": REVISION,
        "preset": "tiny",
        "seed": SEED,
        "data_dir": str(data_dir.resolve()),
        "trajectories": {k: list(v) for k, v in COUNTS.items()},
        "vrnn": dict(VRNN_SETTINGS),
        "vrnn_by_experiment": {"cs2-bound": dict(CS2_BOUND_OVERRIDE)},
        **change,
    }


@pytest.mark.parametrize(
    "change, seed, difference",
    [
        ({}, SEED + 1, r"\(seed 3 there, 4 here\)"),  # everything else reads as the same study
        ({"vrnn": dict(VRNN_SETTINGS, epochs=5)}, SEED, r"\(methods\.vrnn\.epochs 5 there, 3 here\)"),
        (
            {"vrnn_by_experiment": {}},
            SEED,
            r"\(settings_by_experiment\.cs2-bound\.vrnn\.epochs unset there, 30 here; .*hidden unset there, 5 here; ",
        ),
    ],
)
def test_an_old_manifest_is_compared_in_todays_terms(tmp_path, change, seed, difference):
    out, data_dir = tmp_path / "out", tmp_path / "data"
    out.mkdir()
    (out / "study.json").write_text(json.dumps(old_manifest(data_dir, **change)))
    with pytest.raises(InputError, match=r"holds a study defined otherwise " + difference):
        run_study(PRESET, out, seed=seed, data_dir=data_dir, log=lambda line: None)
    assert sorted(p.name for p in out.iterdir()) == ["study.json"]  # nothing started


def test_a_study_of_a_revision_whose_models_are_invalid_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "study.json").write_text(json.dumps({**old_manifest(tmp_path), "revision": MODELS_VALID_SINCE - 1}))
    with pytest.raises(InputError, match=rf"revision {MODELS_VALID_SINCE - 1} there, {REVISION} here"):
        run_study(PRESET, out, seed=SEED, data_dir=tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["study.json"]
