"""The io layer and the SignalSpec: formats name themselves, old files still read, the spec travels with the signals."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest

import molmovie
from molmovie import InputError
from molmovie.datasets import Dataset
from molmovie.inversion import NearestReference, Prediction, load_method
from molmovie.io import (
    DATASET_FORMAT,
    DATASET_VERSION,
    INVERSION_FORMAT,
    INVERSION_VERSION,
    MODEL_FORMAT,
    MODEL_VERSION,
    read_dataset,
    read_inversion,
    read_model_file,
    read_signals,
    write_dataset,
    write_inversion,
    write_model_file,
)
from molmovie.scattering import SignalSpec, q_grid, simulate, simulate_signals

from _fixtures import assert_one_line_error, run_cli
from test_inversion import make_dataset

Q = q_grid(n_q=9)


# ---------------------------------------------------------------- SignalSpec


def test_spec_validates_on_construction():
    with pytest.raises(InputError, match="'first' or 'ground'"):
        SignalSpec(Q, reference="laser-off")
    with pytest.raises(InputError, match="'photons' parameter must be > 0"):
        SignalSpec(Q, photons=0)
    with pytest.raises(InputError, match="'irf_fs' parameter must be > 0"):
        SignalSpec(Q, irf_fs=float("nan"))
    with pytest.raises(InputError, match="'seed' parameter must be a whole number"):
        SignalSpec(Q, seed=-1)
    with pytest.raises(InputError, match="'inelastic' parameter must be True or False"):
        SignalSpec(Q, inelastic="yes")
    with pytest.raises(InputError, match=">= 0"):
        SignalSpec([-1.0, 1.0])


def test_spec_is_a_frozen_value():
    a = SignalSpec(Q, reference="ground", photons=1e6, irf_fs=30, seed=np.int64(4))
    b = SignalSpec(list(Q), reference="ground", photons=1e6, irf_fs=30.0, seed=4)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != SignalSpec(Q, reference="ground", photons=1e6, irf_fs=30, seed=5)
    assert a != SignalSpec(Q[:-1], reference="ground", photons=1e6, irf_fs=30, seed=4)
    assert a.attrs() == {
        "inelastic": True,
        "reference": "ground",
        "photons": 1e6,
        "irf_fs": 30.0,
        "seed": 4,
        "probe": "xray",
        "energy_kev": None,
    }
    assert type(a.seed) is int and type(a.irf_fs) is float  # JSON-able as stored
    with pytest.raises(AttributeError):
        a.photons = 2.0
    with pytest.raises(ValueError):
        a.q[0] = 0.0  # the grid is a read-only copy
    assert "9 points" in repr(a)


def test_spec_from_attrs_fills_defaults_and_refuses_unknown_attributes():
    assert SignalSpec.from_attrs(Q, {}) == SignalSpec(Q)
    assert SignalSpec.from_attrs(Q, {"reference": "ground"}) == SignalSpec(Q, reference="ground")
    with pytest.raises(InputError, match="unknown signal attributes \\['colour'\\]"):
        SignalSpec.from_attrs(Q, {"colour": "red"})


def test_simulate_returns_the_spec_with_the_signals_simulate_signals_made():
    ds = make_dataset(M=3, T=5, Q=4, seed=1)
    spec = SignalSpec(Q, reference="ground", photons=1e5, seed=7)
    dS, I_ref, got = simulate(ds.symbols, ds.positions, ds.length, ds.time, spec)
    assert got is spec
    old = simulate_signals(ds.symbols, ds.positions, ds.length, ds.time, Q, reference="ground", photons=1e5, seed=7)
    np.testing.assert_array_equal(dS, old[0])
    np.testing.assert_array_equal(I_ref, old[1])
    # a Generator as seed still works (the spec records no seed then)
    rng = simulate_signals(
        ds.symbols, ds.positions, ds.length, ds.time, Q, reference="ground", photons=1e5, seed=np.random.default_rng(7)
    )
    np.testing.assert_array_equal(rng[0], dS)


# ---------------------------------------------------------------- the dataset and its spec


def test_dataset_signals_come_with_their_spec():
    ds = make_dataset(M=3, T=5, Q=4, seed=1)
    with pytest.raises(InputError, match="dS, I_ref and spec together; got only dS, I_ref"):
        Dataset(ds.ensemble, dS=ds.dS, I_ref=ds.I_ref)
    with pytest.raises(InputError, match=r"shape \(trajectories, frames, q\) = \(3, 5, 4\)"):
        Dataset(ds.ensemble, dS=ds.dS[:, :, :3], I_ref=ds.I_ref, spec=ds.spec)
    with pytest.raises(InputError, match="must be a molmovie.scattering.SignalSpec"):
        Dataset(ds.ensemble, dS=ds.dS, I_ref=ds.I_ref, spec=ds.signal_attrs)
    assert ds.q is ds.spec.q and ds.signal_attrs == ds.spec.attrs()
    assert ds.subset([0, 2]).spec is ds.spec


def test_spec_round_trips_through_the_dataset_file(tmp_path):
    ds = make_dataset(M=3, T=5, Q=4, seed=1)
    spec = SignalSpec(ds.q, inelastic=False, reference="ground", photons=2.5e4, irf_fs=40.0, seed=11)
    ds = ds.with_signals(ds.dS, ds.I_ref, spec)
    back = read_dataset(write_dataset(ds, tmp_path / "d.h5"))
    assert back.spec == spec
    with h5py.File(tmp_path / "d.h5", "r") as f:  # the attributes main has always written, JSON each
        assert {k: json.loads(v) for k, v in f["signals"].attrs.items()} == spec.attrs()
        assert f.attrs["format"] == DATASET_FORMAT == "molmovie" and f.attrs["version"] == DATASET_VERSION == 1
        assert f.attrs["molmovie_version"] == molmovie.__version__


def _write_as_main_did(path: Path, ds, attrs: dict) -> Path:
    """A dataset file laid out as molmovie 0.1.0 (before the io package) wrote it."""
    ens = ds.ensemble
    with h5py.File(path, "w") as f:
        f.attrs.update(format="molmovie", version=1, molmovie_version="0.1.0", molecule=ens.molecule, provenance="{}")
        f.create_dataset("atoms/symbols", data=np.array(ens.symbols, dtype="S3"))
        f.create_dataset("atoms/masses", data=ens.masses).attrs["units"] = "u"
        f.create_dataset("time", data=ens.time).attrs["units"] = "fs"
        f.create_dataset("trajectories/positions", data=ens.positions).attrs["units"] = "Angstrom"
        f.create_dataset("trajectories/length", data=ens.length).attrs["units"] = "frames"
        f.create_dataset("trajectories/dissociated", data=ens.dissociated)
        f.create_dataset("trajectories/source", data=np.array(ens.source, dtype=h5py.string_dtype()))
        f.create_dataset("signals/q", data=ds.q).attrs["units"] = "1/Angstrom"
        f.create_dataset("signals/dS", data=ds.dS).attrs["units"] = "fraction"
        f.create_dataset("signals/I_ref", data=ds.I_ref).attrs["units"] = "electron units"
        for k, v in attrs.items():
            f["signals"].attrs[k] = json.dumps(v)
        f.create_dataset("splits/train", data=np.arange(2))
    return path


def test_a_dataset_written_by_the_old_writer_still_reads(tmp_path):
    ds = make_dataset(M=3, T=5, Q=4, seed=1)
    full = dict(inelastic=False, reference="ground", photons=1000.0, irf_fs=None, seed=3)
    back = read_dataset(_write_as_main_did(tmp_path / "old.h5", ds, full))
    # a file written before electrons holds X-ray signals
    assert back.spec == SignalSpec(ds.q, **full) and back.signal_attrs == {**full, "probe": "xray", "energy_kev": None}
    np.testing.assert_array_equal(back.dS, ds.dS)
    # attributes a file lacks take their defaults
    few = read_dataset(_write_as_main_did(tmp_path / "few.h5", ds, {"reference": "ground"}))
    assert few.spec == SignalSpec(ds.q, reference="ground")
    # an attribute nobody wrote, or a value no spec has, is damage, said in one line
    with pytest.raises(InputError, match=r"bad\.h5: damaged molmovie dataset \(The 'reference' parameter"):
        read_dataset(_write_as_main_did(tmp_path / "bad.h5", ds, {"reference": "sideways"}))
    with pytest.raises(InputError, match="damaged molmovie dataset .*unknown signal attributes"):
        read_dataset(_write_as_main_did(tmp_path / "odd.h5", ds, {"noise_model": "gauss"}))


def test_the_file_functions_live_in_io_and_the_dataset_type_below_it():
    # the dataset module no longer hands out io's names (that made datasets <-> io an import circle)
    from molmovie import datasets, io

    for old in (
        "read_dataset",
        "write_dataset",
        "atomic_path",
        "check_output",
        "read_signals",
        "write_inversion",
        "FORMAT",
        "VERSION",
        "INVERSION_FORMAT",
    ):
        assert not hasattr(datasets, old), old
    assert molmovie.read_dataset is io.read_dataset is read_dataset and molmovie.write_dataset is io.write_dataset
    assert molmovie.Dataset is datasets.Dataset is Dataset


# ---------------------------------------------------------------- version


def test_one_version_everywhere():
    from molmovie._version import __version__

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert molmovie.__version__ == __version__
    # the package metadata reads the number from molmovie._version: it is written nowhere else
    assert "version" in pyproject["project"]["dynamic"] and "version" not in pyproject["project"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "molmovie._version.__version__"}


# ---------------------------------------------------------------- model file


@pytest.fixture(scope="module")
def nearest_model(tmp_path_factory):
    ds = make_dataset(M=8, T=6, Q=10, seed=2)
    spec = SignalSpec(ds.q, reference="first", photons=5e4, seed=9)
    ds = ds.with_signals(ds.dS, ds.I_ref, spec)
    path = tmp_path_factory.mktemp("model") / "nearest.safetensors"
    NearestReference().fit(ds).save(path)
    return path, spec


def test_model_file_carries_format_version_and_the_spec(nearest_model):
    path, spec = nearest_model
    method, config, arrays = read_model_file(path)
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        header = json.loads(f.metadata()["molmovie"])
    assert header["format"] == MODEL_FORMAT == "molmovie-model" and header["version"] == MODEL_VERSION == 1
    assert method == "nearest" and config["signal_attrs"] == spec.attrs()
    assert load_method(path).spec_ == spec


def test_old_model_files_still_load(nearest_model, tmp_path):
    path, spec = nearest_model
    method, config, arrays = read_model_file(path)
    # a model trained on signals without attributes (old files stored an empty dict)
    config["signal_attrs"] = {}
    old = write_model_file(tmp_path / "old.safetensors", method, config, arrays)
    assert load_method(old).spec_ == SignalSpec(spec.q)
    # and one from before the key existed at all
    del config["signal_attrs"]
    older = write_model_file(tmp_path / "older.safetensors", method, config, arrays)
    assert load_method(older).spec_ == SignalSpec(spec.q)
    config["signal_attrs"] = {"reference": "nowhere"}
    bad = write_model_file(tmp_path / "bad.safetensors", method, config, arrays)
    with pytest.raises(InputError, match="bad.safetensors: damaged molmovie model file \\(The 'reference'"):
        load_method(bad)


def test_model_file_is_not_replaced_without_force(nearest_model, tmp_path):
    path, _ = nearest_model
    method, config, arrays = read_model_file(path)
    target = tmp_path / "m.safetensors"
    target.write_text("keep me")
    with pytest.raises(InputError, match="exists; use force=True to replace it"):
        write_model_file(target, method, config, arrays)
    assert target.read_text() == "keep me"


# ---------------------------------------------------------------- inversion result


def test_inversion_result_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    pred = Prediction(rng.uniform(1, 3, (2, 4, 3)), rng.uniform(0, 0.1, (2, 4, 3)))
    pred.distances[1, 3] = np.nan
    kw = dict(
        time=np.arange(4) * 0.5,
        lengths=[4, 3],
        method="vrnn",
        molecule="cs2",
        symbols=("C", "S", "S"),
        pair_labels=["C1-S2", "C1-S3", "S2-S3"],
        model="m.safetensors",
        signals="s.h5",
        interpolated_q=True,
    )
    path = write_inversion(tmp_path / "r.h5", pred, **kw)
    back = read_inversion(path)
    np.testing.assert_array_equal(back.distances, pred.distances)
    np.testing.assert_array_equal(back.std, pred.std)
    np.testing.assert_array_equal(back.length, [4, 3])
    assert back.pair_labels == ("C1-S2", "C1-S3", "S2-S3") and back.symbols == ("C", "S", "S")
    assert (back.method, back.molecule, back.model, back.signals, back.interpolated_q) == (
        "vrnn",
        "cs2",
        "m.safetensors",
        "s.h5",
        True,
    )
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == INVERSION_FORMAT == "molmovie-inversion" and f.attrs["version"] == INVERSION_VERSION == 1
    before = path.read_bytes()
    with pytest.raises(InputError, match="exists; use force=True"):
        write_inversion(path, Prediction(pred.distances), **kw)
    assert path.read_bytes() == before
    assert read_inversion(write_inversion(path, Prediction(pred.distances), **kw, force=True)).std is None
    with pytest.raises(InputError, match="not a molmovie inversion result"):
        read_inversion(write_dataset(make_dataset(M=2, T=3, Q=2), tmp_path / "d.h5"))


# ---------------------------------------------------------------- minimal signals file, CLI wording


def test_minimal_signals_file_reads(tmp_path):
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["q"], f["time"], f["dS"] = Q, np.arange(3.0), np.zeros((3, len(Q)))
    sig = read_signals(tmp_path / "s.h5")
    assert sig["dS"].shape == (1, 3, len(Q)) and sig["series"] == 1 and sig["length"] is None


def test_library_says_force_true_and_the_cli_says_force(tmp_path, capsys):
    ds = make_dataset(M=3, T=5, Q=4, seed=1)
    path = write_dataset(ds, tmp_path / "d.h5")
    with pytest.raises(InputError, match="d.h5 exists; use force=True to replace it"):
        write_dataset(ds, path)
    code, _, err = run_cli(["import", tmp_path, "-o", path], capsys)
    assert_one_line_error(code, err, match="d.h5 exists; use --force to replace it")


def test_files_of_a_newer_format_version_are_refused(tmp_path):
    data = write_dataset(make_dataset(M=2, T=3, Q=2), tmp_path / "d.h5")
    result = write_inversion(
        tmp_path / "r.h5",
        Prediction(np.ones((1, 2, 3))),
        time=[0.0, 1.0],
        lengths=[2],
        method="nearest",
        molecule="cs2",
        symbols=("C", "S", "S"),
        pair_labels=["a", "b", "c"],
    )
    for path, read, what in ((data, read_dataset, "molmovie dataset"), (result, read_inversion, "molmovie inversion result")):
        with h5py.File(path, "a") as f:
            f.attrs["version"] = 2
        with pytest.raises(
            InputError, match=f"{what} format version 2 is newer than this molmovie reads \\(1\\); upgrade molmovie"
        ):
            read(path)
