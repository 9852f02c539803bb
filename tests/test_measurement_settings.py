"""The measurement methods share the inversion methods' settings protocol (scikit-learn's shape).

``get_params`` / ``set_params`` / ``clone`` / ``check_settings`` behave as for
:data:`molmovie.inversion.METHODS` (tests/test_inversion.py), over every method of
:data:`molmovie.fitting.MEASUREMENT_METHODS`.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from molmovie import InputError
from molmovie.fitting import MEASUREMENT_METHODS, get_measurement_method
from molmovie.inversion import get_method
from molmovie.measurement import simulate_measurement

from _fit_fixtures import diatomic_ensemble

#: Per method: quick settings for a fit, and bad values with the start of their message.
FAST = {
    "ensemble": {"bootstrap": 0, "grid": (3, 2)},
    "pdf": {"r_max": 5.0},
    "vrnn-ensemble": {"hidden": 8, "features": 8, "latent_free": 1, "epochs": 1, "examples": 8, "batch_size": 8},
}
BAD = {
    "ensemble": [
        ({"grid": (0, 5)}, "The 'grid' setting must be two numbers >= 1"),
        ({"bootstrap": -1}, "The 'bootstrap' setting must be >= 0"),
    ],
    "pdf": [({"penalty": "smooth"}, "The 'penalty' setting must be one of"), ({"dr": 0}, "The 'dr' setting must be > 0")],
    "vrnn-ensemble": [
        ({"gamma_range": (0.0, 0.5)}, "The 'gamma_range' setting must lie in (0, 1]"),
        ({"photons_range": (10.0, 1e6)}, "The 'photons_range' setting must lie in [1e3, 1e15] photons"),
        ({"members": (0, 3)}, "The 'members' setting must be two whole numbers 1 <= low <= high"),
        ({"refine": "yes"}, "The 'refine' setting must be true or false"),
        ({"refine_iter": -1}, "The 'refine_iter' setting must be >= 0"),
    ],
}
methods = pytest.mark.parametrize("name", sorted(MEASUREMENT_METHODS))


@pytest.fixture(scope="module")
def fitted():
    basis = diatomic_ensemble(12, seed=1)
    meas = simulate_measurement(
        diatomic_ensemble(8, seed=2),
        q=np.linspace(0.5, 6.0, 16),
        delays=np.arange(-100.0, 301.0, 50.0),
        gamma=0.05,
        t0=30.0,
        irf_fs=70.0,
        photons=1e6,
        seed=0,
    )
    return {name: get_measurement_method(name, **FAST[name]).fit(meas, basis=basis) for name in MEASUREMENT_METHODS}


def test_every_method_has_bad_settings_here():
    assert set(BAD) == set(MEASUREMENT_METHODS) == set(FAST)


@methods
def test_clone_and_set_params_like_scikit_learn(name, fitted):
    model = fitted[name]
    assert model.is_fitted
    copy = model.clone()
    assert type(copy) is type(model) and copy.get_params() == model.get_params() and not copy.is_fitted
    key, value = next(iter(BAD[name][0][0].items()))
    changed = model.clone(**{key: value})
    assert getattr(changed, key) == value and getattr(model, key) != value
    assert changed.set_params(**{key: getattr(model, key)}) is changed and changed.get_params() == model.get_params()
    assert model.is_fitted and model.result_ is model.result  # cloning leaves the original alone


@methods
def test_bad_settings_are_stored_then_refused_by_check_settings(name):
    cls = MEASUREMENT_METHODS[name]
    assert cls().check_settings() == []
    for bad, match in BAD[name]:
        method = cls(**bad)  # the constructor only stores
        with pytest.raises(InputError, match=f"^{re.escape(match)}"):
            method.check_settings()
        with pytest.raises(InputError, match=f"^{re.escape(match)}"):
            get_measurement_method(name, **bad)  # the registry checks at once, before any file is read
        with pytest.raises(InputError, match=f"^{re.escape(match)}"):
            cls().set_params(**bad).check_settings()


def _unknown_message(make) -> tuple[str, list[str]]:
    with pytest.raises(InputError) as info:
        make()
    found = re.fullmatch(r"the '([\w-]+)' method has no setting 'hiden'; its settings are (.+)", str(info.value))
    assert found, str(info.value)
    return found.group(1), found.group(2).split(", ")


@methods
def test_an_unknown_setting_is_refused_as_for_the_inversion_methods(name):
    cls = MEASUREMENT_METHODS[name]
    assert _unknown_message(lambda: get_method("nearest", hiden=3)) == (
        "nearest",
        ["memory_mb", "refine", "refine_std", "refine_weight"],
    )
    assert _unknown_message(lambda: get_measurement_method(name, hiden=3)) == (name, cls.setting_names())
    assert _unknown_message(lambda: cls().set_params(hiden=3)) == (name, cls.setting_names())
    assert _unknown_message(lambda: cls().clone(hiden=3)) == (name, cls.setting_names())


@methods
def test_repr_names_the_changed_settings_only(name):
    key, value = next(iter(FAST[name].items()))
    assert repr(MEASUREMENT_METHODS[name]()) == f"{MEASUREMENT_METHODS[name].__name__}()"
    assert repr(get_measurement_method(name, **{key: value})) == f"{MEASUREMENT_METHODS[name].__name__}({key}={value!r})"
