"""Issue 10, case 2 and beyond: forged model files, mutated datasets and hostile arrays.

A model file never costs more than its size suggests and never gives garbage: settings are
checked against the stored tensors (on PyTorch's meta device) before a network is built;
types, versions, symbol counts and settings are checked before they are used. The readers
and the public functions answer any mutation with a result or one :class:`InputError`
(property-based tests with hypothesis, kept small).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from molmovie import InputError
from molmovie.inversion import get_method, load_method
from molmovie.io import read_dataset, read_model_file, write_dataset
from molmovie.scattering import intensity, simulate_signals

from test_inversion import make_dataset

SRC = str(Path(__file__).resolve().parents[1] / "src")
QUICK = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def forge(src: Path, dst: Path, header=None, arrays=None) -> Path:
    """A copy of the model file ``src`` with its JSON header and/or arrays edited in place by the callables."""
    with safe_open(str(src), framework="np") as f:
        head = json.loads(f.metadata()["molmovie"])
    tensors = load_file(str(src))
    if header:
        header(head)
    if arrays:
        arrays(tensors)
    save_file(tensors, str(dst), metadata={"molmovie": json.dumps(head)})
    return dst


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    ds = make_dataset(M=8, T=6, Q=8)
    vrnn = get_method("vrnn", hidden=8, features=6, latent_free=2, epochs=1, batch_size=4, physics=0.0, device="cpu")
    vrnn.fit(ds.split("train")).save(folder / "vrnn.st")
    get_method("nearest").fit(ds.split("train")).save(folder / "nearest.st")
    return folder


def _setting(name, value):
    return lambda h: h["config"]["settings"].__setitem__(name, value)


# --------------------------------------------------------------------------- case 2


def test_a_network_larger_than_its_file_is_refused_before_it_is_built(models, tmp_path):
    """hidden=6000 cost 1.4 GB before the refusal; 20000, 200000 and latent_free=1e9 asked for 6-512 GB."""
    forged = {
        "h6000": forge(models / "vrnn.st", tmp_path / "h6000.st", _setting("hidden", 6000)),
        "h20000": forge(models / "vrnn.st", tmp_path / "h20000.st", _setting("hidden", 20000)),
        "h200000": forge(models / "vrnn.st", tmp_path / "h200000.st", _setting("hidden", 200000)),
        "l1e9": forge(models / "vrnn.st", tmp_path / "l1e9.st", _setting("latent_free", 1e9)),
        "l10**9": forge(models / "vrnn.st", tmp_path / "lint.st", _setting("latent_free", 10**9)),
    }
    code = (
        "import resource, sys\nfrom molmovie import InputError\nfrom molmovie.inversion import load_method\n"
        f"load_method({str(models / 'vrnn.st')!r})\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n        load_method(path)\n        print('loaded')\n"
        "    except InputError as exc:\n        print(exc)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, forged.values())],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        timeout=120,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr[-2000:]
    *lines, grown_mb = done.stdout.splitlines()
    assert int(grown_mb) < 100  # MB of peak memory beyond loading the real model
    assert "network weights do not fit: 'net." in lines[0] and "hidden=6000" in lines[0]
    assert "The 'hidden' setting must be <= 8192; got 20000" in lines[1]
    assert "The 'hidden' setting must be <= 8192; got 200000" in lines[2]
    assert "The 'latent_free' setting must be a whole number; got 1000000000.0" in lines[3]
    assert "The 'latent_free' setting must be <= 4096; got 1000000000" in lines[4]
    assert all(line.startswith(str(tmp_path)) and "damaged molmovie model file" in line for line in lines)


@pytest.mark.parametrize("name", ["net.enc_hc.weight", "x_mean"])
def test_a_tensor_whose_type_was_changed_is_refused_not_reinterpreted(models, tmp_path, name):
    def to_int(t):
        t[name] = t[name].view(np.int64) if t[name].dtype == np.float64 else t[name].astype(np.float64).view(np.int64)

    bad = forge(models / "vrnn.st", tmp_path / "int.st", arrays=to_int)
    with pytest.raises(InputError, match=f"array '{name}' is int64; a model stores floats"):
        load_method(bad)


@pytest.mark.parametrize("value", ["abc", -1, 1.5, None, [1]])
def test_a_model_version_that_is_not_a_whole_number_is_one_line(models, tmp_path, value):
    bad = forge(models / "nearest.st", tmp_path / "v.st", lambda h: h.__setitem__("version", value))
    with pytest.raises(InputError, match=r"v.st: damaged molmovie model file \(version must be a whole number >= 0; got "):
        read_model_file(bad)


@pytest.mark.parametrize(
    "value, match",
    [
        (-1, r"The 'memory_mb' setting must be > 0; got -1"),
        (0, r"The 'memory_mb' setting must be > 0; got 0"),
        ("lots", r"The 'memory_mb' setting must be a number; got 'lots'"),
    ],
)
def test_nearest_settings_are_checked_on_loading(models, tmp_path, value, match):
    bad = forge(models / "nearest.st", tmp_path / "m.st", _setting("memory_mb", value))
    with pytest.raises(InputError, match=match):
        load_method(bad)


def test_a_million_symbols_is_a_short_line(models, tmp_path):
    bad = forge(models / "nearest.st", tmp_path / "m.st", lambda h: h["config"].__setitem__("symbols", ["C"] * 10**6))
    with pytest.raises(InputError) as info:
        load_method(bad)
    assert str(info.value) == f"{bad}: damaged molmovie model file (1000000 symbols make 499999500000 pairs; the file labels 3)"


@pytest.mark.parametrize("symbols", [["C", 7, "S"], ["C", "S" * 5000, "S"], ["C"]])
def test_symbols_that_are_not_element_symbols_are_refused(models, tmp_path, symbols):
    bad = forge(models / "nearest.st", tmp_path / "m.st", lambda h: h["config"].__setitem__("symbols", symbols))
    with pytest.raises(InputError) as info:
        load_method(bad)
    assert "are not element symbols" in str(info.value) and len(str(info.value)) < 400


def test_a_model_of_a_method_with_a_huge_name_is_a_short_line(models, tmp_path):
    bad = forge(models / "nearest.st", tmp_path / "m.st", lambda h: h.__setitem__("method", "x" * 10**6))
    with pytest.raises(InputError, match="which this molmovie does not know") as info:
        load_method(bad)
    assert len(str(info.value)) < 400


# --------------------------------------------------------------------------- property-based: the model loader

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@QUICK
@given(
    which=st.sampled_from(["vrnn.st", "nearest.st"]),
    path=st.lists(st.text(max_size=12), min_size=1, max_size=3),
    value=json_values,
    data=st.data(),
)
def test_any_edit_of_a_model_header_loads_or_is_one_input_error(models, tmp_path_factory, which, path, value, data):
    src = models / which
    with safe_open(str(src), framework="np") as f:
        head = json.loads(f.metadata()["molmovie"])
    # walk into the header along existing keys where there are some, then set the last one
    node = head
    keys = []
    for _ in range(len(path)):
        if isinstance(node, dict) and node:
            key = data.draw(st.sampled_from(sorted(node)))
            keys.append(key)
            if isinstance(node[key], dict):
                node = node[key]
                continue
        break
    target = head
    for key in keys[:-1]:
        target = target[key]
    if isinstance(target, dict):
        target[keys[-1] if keys else path[0]] = value
    bad = forge(src, tmp_path_factory.mktemp("h") / "m.st", header=lambda h: (h.clear(), h.update(head)))
    try:
        method = load_method(bad)
    except InputError as exc:
        assert "\n" not in str(exc).strip() and len(str(exc)) < 2000
    else:
        assert method.is_fitted


@QUICK
@given(
    name=st.sampled_from(["q", "x_mean", "net.enc_hc.weight", "pair_perms", "y_std"]),
    dtype=st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.uint8, np.float16]),
    shape=st.lists(st.integers(0, 5), max_size=3),
    fill=st.sampled_from([0.0, 1.0, np.nan, np.inf, -1.0, 1e300]),
)
def test_any_replaced_model_array_loads_or_is_one_input_error(models, tmp_path_factory, name, dtype, shape, fill):
    def replace(t):
        t[name] = (
            np.full(shape, fill).astype(dtype) if np.isfinite(fill) or np.dtype(dtype).kind == "f" else np.zeros(shape, dtype)
        )

    with np.errstate(all="ignore"):
        bad = forge(models / "vrnn.st", tmp_path_factory.mktemp("a") / "m.st", arrays=replace)
    try:
        load_method(bad)
    except InputError as exc:
        assert "\n" not in str(exc).strip()


def test_a_model_without_any_pair_permutation_is_one_input_error(models, tmp_path):
    """Found by the property test above: an empty (0, P) 'pair_perms' reached numpy's min() of nothing."""

    def replace(t):
        t["pair_perms"] = np.zeros((0, t["pair_perms"].shape[1]), dtype=np.int64)

    bad = forge(models / "vrnn.st", tmp_path / "m.st", arrays=replace)
    with pytest.raises(InputError, match="pair_perms"):
        load_method(bad)


# --------------------------------------------------------------------------- property-based: the dataset reader


@pytest.fixture(scope="module")
def dataset_file(tmp_path_factory):
    return write_dataset(make_dataset(M=4, T=5, Q=6), tmp_path_factory.mktemp("d") / "d.h5")


_NODES = [
    "time",
    "atoms/symbols",
    "trajectories/positions",
    "trajectories/length",
    "trajectories/dissociated",
    "trajectories/source",
    "signals/q",
    "signals/dS",
    "signals/I_ref",
    "splits/train",
    "splits/val",
]


@QUICK
@given(
    node=st.sampled_from(_NODES),
    replacement=st.one_of(
        st.just(None),
        st.builds(
            lambda shape, fill: np.full(shape, fill),
            st.lists(st.integers(0, 4), max_size=4),
            st.sampled_from([0.0, -1.0, 2.5, np.nan, np.inf, 1e300]),
        ),
        st.builds(lambda n: np.array([b"x"] * n), st.integers(0, 4)),
        st.builds(lambda n: np.arange(n) - 2, st.integers(0, 8)),
    ),
)
def test_any_replaced_dataset_array_reads_or_is_one_input_error(dataset_file, tmp_path_factory, node, replacement):
    path = tmp_path_factory.mktemp("m") / "d.h5"
    path.write_bytes(dataset_file.read_bytes())
    with h5py.File(path, "a") as f:
        del f[node]
        if replacement is not None:
            f[node] = replacement
    try:
        read_dataset(path)
    except InputError as exc:
        assert "\n" not in str(exc).strip() and str(exc).startswith(str(path))


@QUICK
@given(
    name=st.sampled_from(["format", "version", "molecule", "provenance"]),
    value=st.one_of(
        st.text(st.characters(blacklist_characters="\x00"), max_size=10),
        st.integers(-5, 5),
        st.floats(allow_nan=True),
        st.binary(min_size=1, max_size=6),
    ),
)
def test_any_edited_dataset_attribute_reads_or_is_one_input_error(dataset_file, tmp_path_factory, name, value):
    path = tmp_path_factory.mktemp("a") / "d.h5"
    path.write_bytes(dataset_file.read_bytes())
    with h5py.File(path, "a") as f:
        f.attrs[name] = np.void(value) if isinstance(value, bytes) else value
    try:
        read_dataset(path)
    except InputError as exc:
        assert "\n" not in str(exc).strip()


# --------------------------------------------------------------------------- property-based: the forward model


hostile = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e300, 1e-300])


@QUICK
@given(value=hostile, where=st.sampled_from(["positions", "q"]), n_q=st.integers(0, 3))
def test_intensity_of_hostile_numbers_is_finite_or_one_input_error(value, where, n_q):
    positions = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.2]])
    q = np.linspace(0.5, 4.0, n_q)
    if where == "positions":
        positions[1, 2] = value
    elif n_q:
        q[0] = value
    refused = n_q == 0 or (where == "q" and not 0 <= value <= 4e9 * np.pi) or (where == "positions" and abs(value) > 1e6)
    try:
        with np.errstate(under="ignore"):  # an underflow to zero is exact here, not an error
            out = intensity(("C", "O"), positions, q)
    except InputError:
        assert refused
        return
    assert not refused and out.shape == (n_q,)
    assert np.all(np.isnan(out)) if np.isnan(value) and where == "positions" else np.all(np.isfinite(out))


@QUICK
@given(value=hostile, where=st.sampled_from(["positions", "time", "length"]), seed=st.integers(-3, 3))
def test_simulate_signals_of_hostile_numbers_is_finite_or_one_input_error(value, where, seed):
    rng = np.random.default_rng(0)
    positions = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.2]]) + 0.01 * rng.standard_normal((2, 4, 2, 3))
    time = np.arange(4.0)
    length = np.array([4, 4])
    if where == "positions":
        positions[0, 1, 1, 2] = value
    elif where == "time":
        time = time.copy()
        time[2] = value
    else:
        length = np.array([4, value]) if np.isfinite(value) else np.array([4.0, value])
    try:
        dS, I_ref = simulate_signals(("C", "O"), positions, length, time, np.linspace(0.5, 4.0, 5), seed=seed)
    except InputError:
        return
    assert np.all(np.isfinite(dS)) and np.all(np.isfinite(I_ref))


# --------------------------------------------------------------------------- property-based: signals and measurement files


@pytest.fixture(scope="module")
def measurement_file(tmp_path_factory):
    from molmovie.io.measurement import write_measurement
    from molmovie.measurement import Measurement

    q, delays = np.linspace(1.0, 4.0, 6), np.linspace(-50.0, 200.0, 5)
    meas = Measurement(q, delays, np.zeros((5, 6)), np.full((5, 6), 0.01), ("C", "S", "S"), "cs2", {"kind": "difference"})
    return write_measurement(meas, tmp_path_factory.mktemp("meas") / "m.h5")


_ARRAYS = st.one_of(
    st.just(None),
    st.builds(
        lambda shape, fill: np.full(shape, fill),
        st.lists(st.integers(0, 7), max_size=3),
        st.sampled_from([0.0, -1.0, 2.5, np.nan, np.inf]),
    ),
    st.builds(lambda n: np.array([b"1.5"] * n), st.integers(0, 6)),
    st.builds(lambda n: np.arange(n) - 1, st.integers(0, 8)),
)


@QUICK
@given(node=st.sampled_from(["q", "time", "dS", "length", "symbols"]), replacement=_ARRAYS)
def test_any_minimal_signals_file_reads_or_is_one_input_error(tmp_path_factory, node, replacement):
    path = tmp_path_factory.mktemp("s") / "sig.h5"
    with h5py.File(path, "w") as f:
        f["q"], f["time"], f["dS"] = np.linspace(1.0, 4.0, 6), np.arange(5.0), np.zeros((2, 5, 6))
        f["length"], f["symbols"] = np.array([5, 3]), np.array([b"C", b"S", b"S"])
        del f[node]
        if replacement is not None:
            f[node] = replacement
    from molmovie.io import read_signals

    try:
        sig = read_signals(path)
    except InputError as exc:
        assert "\n" not in str(exc).strip()
    else:
        assert sig["dS"].ndim == 3 and sig["dS"].shape[1:] == (len(sig["time"]), len(sig["q"]))


@QUICK
@given(
    node=st.sampled_from(["q", "delays", "dS", "sigma", "atoms/symbols"]),
    replacement=_ARRAYS,
    units=st.sampled_from([None, "1/Angstrom", "fs", "fraction", "percent"]),
)
def test_any_measurement_file_reads_or_is_one_input_error(measurement_file, tmp_path_factory, node, replacement, units):
    from molmovie.io.measurement import read_measurement

    path = tmp_path_factory.mktemp("m") / "m.h5"
    path.write_bytes(measurement_file.read_bytes())
    with h5py.File(path, "a") as f:
        del f[node]
        if replacement is not None:
            f[node] = replacement
            if units is not None:
                f[node].attrs["units"] = units
    try:
        meas = read_measurement(path)
    except InputError as exc:
        assert "\n" not in str(exc).strip()
    else:
        assert meas.dS.shape == (len(meas.delays), len(meas.q)) and np.all(np.isfinite(meas.dS))
