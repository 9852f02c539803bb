"""The measurement file: round trip, validation, refusal of other formats, the molecule check."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from molmovie import InputError
from molmovie.io.measurement import (
    MEASUREMENT_FORMAT,
    MEASUREMENT_VERSION,
    Measurement,
    Truth,
    check_molecule,
    read_measurement,
    write_measurement,
)


def _truth(T: int, Q: int, rng) -> Truth:
    return Truth(
        weights=np.array([0.25, 0.75]),
        trajectories=np.array([4, 9]),
        gamma=0.05,
        t0=12.5,
        irf_fs=80.0,
        photons=1e7,
        pair_labels=("I1-I2",),
        quantile_levels=np.array([0.05, 0.5, 0.95]),
        distance_mean=2.67 + rng.random((T, 1)),
        distance_std=rng.random((T, 1)),
        distance_quantiles=np.sort(2.5 + rng.random((T, 1, 3)), axis=-1),
        dissociated_fraction=np.linspace(0, 0.5, T),
        dS_clean=rng.normal(size=(T, Q)) * 1e-3,
    )


def _measurement(T=5, Q=4, *, truth=False, sigma=True, seed=0) -> Measurement:
    rng = np.random.default_rng(seed)
    return Measurement(
        q=np.linspace(1.0, 3.5, Q),
        delays=np.array([-100.0, -20.0, 0.0, 35.0, 400.0])[:T],
        dS=rng.normal(size=(T, Q)) * 1e-2,
        sigma=rng.random((T, Q)) * 1e-3 if sigma else None,
        symbols=("i", "I"),
        molecule="I2",
        provenance={"made_by": "test", "q_range": [1.0, 3.5], "legendre": np.int64(0)},
        truth=_truth(T, Q, rng) if truth else None,
    )


def test_round_trip_with_truth(tmp_path):
    m = _measurement(truth=True)
    path = write_measurement(m, tmp_path / "m.h5")
    r = read_measurement(path)
    for name in ("q", "delays", "dS", "sigma"):
        np.testing.assert_array_equal(getattr(r, name), getattr(m, name))
    assert r.symbols == ("I", "I") and r.molecule == "I2"
    assert r.provenance == {"made_by": "test", "q_range": [1.0, 3.5], "legendre": 0}
    t, u = r.truth, m.truth
    assert (t.gamma, t.t0, t.irf_fs, t.photons, t.pair_labels) == (0.05, 12.5, 80.0, 1e7, ("I1-I2",))
    assert t.trajectories.tolist() == [4, 9]
    for name in (
        "weights",
        "quantile_levels",
        "distance_mean",
        "distance_std",
        "distance_quantiles",
        "dissociated_fraction",
        "dS_clean",
    ):
        np.testing.assert_array_equal(getattr(t, name), getattr(u, name))
    with h5py.File(path, "r") as f:
        # text as fixed-length strings (bytes), never heap pointers a damaged file could aim anywhere
        assert f.attrs["format"] == MEASUREMENT_FORMAT.encode() and f.attrs["version"] == MEASUREMENT_VERSION
        assert h5py.check_string_dtype(f.attrs.get_id("format").dtype).length is not None
        assert h5py.check_string_dtype(f["truth/pair_labels"].dtype).length is not None
        units = {k: f[k].attrs["units"].decode() for k in ("q", "delays", "dS", "sigma")}
        assert units == {"q": "1/Angstrom", "delays": "fs", "dS": "fraction", "sigma": "fraction"}
        assert all("units" in f["truth"][k].attrs for k in f["truth"] if k != "pair_labels")


def test_round_trip_without_sigma_symbols_truth(tmp_path):
    m = Measurement(np.array([1.0, 2.0]), np.array([-5.0, 5.0]), np.zeros((2, 2)), None, None, None, {})
    r = read_measurement(write_measurement(m, tmp_path / "m.h5"))
    assert r.sigma is None and r.symbols is None and r.molecule is None and r.truth is None and r.provenance == {}


def test_existing_file_needs_force_and_write_is_atomic(tmp_path):
    path = tmp_path / "m.h5"
    write_measurement(_measurement(seed=1), path)
    before = path.read_bytes()
    with pytest.raises(InputError, match="exists; use force=True"):
        write_measurement(_measurement(seed=2), path)
    assert path.read_bytes() == before
    write_measurement(_measurement(seed=2), path, force=True)
    np.testing.assert_array_equal(read_measurement(path).dS, _measurement(seed=2).dS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]  # no temporary file left


def test_reader_opens_read_only(tmp_path):
    path = write_measurement(_measurement(), tmp_path / "m.h5")
    path.chmod(0o444)
    assert read_measurement(path).n_delays == 5


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda f: f.attrs.__setitem__("format", "molmovie"), "a molmovie dataset, not a measurement"),
        (lambda f: f.attrs.__setitem__("format", "nexus"), "'nexus' file, not a molmovie measurement"),
        (lambda f: f.attrs.__delitem__("format"), "no format attribute"),
        (lambda f: f.attrs.__setitem__("version", MEASUREMENT_VERSION + 1), "newer than this molmovie reads"),
        (lambda f: f["delays"].__setitem__(2, -50.0), "delays must be strictly increasing"),
        (lambda f: f["dS"].__setitem__((1, 1), np.nan), "dS holds a non-finite value"),
        (lambda f: f["sigma"].__setitem__((0, 0), -1e-3), "sigma must be >= 0"),
        (lambda f: f["q"].attrs.__setitem__("units", "1/nm"), "q is in units '1/nm'"),
        (lambda f: f.__delitem__("q"), "no array q"),
        (
            lambda f: (f.__delitem__("dS"), f.create_dataset("dS", data=np.zeros((4, 5))).attrs.__setitem__("units", "fraction")),
            r"dS has shape \(4, 5\), expected \(5, 4\)",
        ),
        (lambda f: f["truth/weights"].__setitem__(0, 0.5), "truth weights must be non-negative and sum to 1"),
    ],
)
def test_reader_refuses_foreign_and_damaged_files(tmp_path, change, match):
    path = write_measurement(_measurement(truth=True), tmp_path / "m.h5")
    with h5py.File(path, "a") as f:
        change(f)
    with pytest.raises(InputError, match=match) as info:
        read_measurement(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_reader_refuses_missing_and_non_hdf5(tmp_path):
    with pytest.raises(InputError, match="no such measurement file"):
        read_measurement(tmp_path / "none.h5")
    (tmp_path / "x.h5").write_text("q t\n")
    with pytest.raises(InputError, match="not an HDF5 file"):
        read_measurement(tmp_path / "x.h5")


def test_measurement_validates_on_construction():
    q, d = np.array([1.0, 2.0]), np.array([0.0, 1.0, 2.0])
    with pytest.raises(InputError, match=r"dS must have shape \(delays, q\) = \(3, 2\)"):
        Measurement(q, d, np.zeros((2, 3)), None, None, None, {})
    with pytest.raises(InputError, match="q must be strictly increasing"):
        Measurement(q[::-1], d, np.zeros((3, 2)), None, None, None, {})
    with pytest.raises(InputError, match="unknown element symbol 'Xx'"):
        Measurement(q, d, np.zeros((3, 2)), None, ("Xx",), None, {})
    with pytest.raises(InputError, match="truth arrays must be on the measurement's 3 delays"):
        Measurement(q, d, np.zeros((3, 2)), None, None, None, {}, truth=_truth(5, 2, np.random.default_rng(0)))


def test_provenance_must_be_json(tmp_path):
    m = Measurement(np.array([1.0]), np.array([0.0]), np.zeros((1, 1)), None, None, None, {"x": object()})
    with pytest.raises(InputError, match="provenance is not JSON-able"):
        write_measurement(m, tmp_path / "m.h5")
    assert not list(tmp_path.iterdir())


def test_check_molecule():
    m = _measurement()
    check_molecule(m, ["I", "I"])
    cs2 = Measurement(m.q, m.delays, m.dS, None, ("C", "S", "S"), "cs2", {})
    check_molecule(cs2, ["S", "C", "S"])  # atom order does not change ΔS
    with pytest.raises(InputError, match="measurement is of I2 but dataset cs2.h5 holds CS2"):
        check_molecule(m, ["C", "S", "S"], what="dataset cs2.h5")
    with pytest.raises(InputError, match=r"cs2 \(CS2\) but the dataset holds CS"):
        check_molecule(cs2, ["C", "S"])
    check_molecule(Measurement(m.q, m.delays, m.dS, None, None, None, {}), ["C", "S", "S"])  # nothing to check


def test_provenance_is_json_in_the_file(tmp_path):
    path = write_measurement(_measurement(), tmp_path / "m.h5")
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["provenance"])["made_by"] == "test"


def test_header_claiming_huge_arrays_is_refused_before_reading(tmp_path):
    path = write_measurement(_measurement(), tmp_path / "m.h5")
    with h5py.File(path, "a") as f:
        del f["q"]
        f.create_dataset("q", shape=(10**11,), dtype="f8", chunks=(1024,)).attrs["units"] = "1/Angstrom"
    with pytest.raises(InputError, match="q claims 800000000000 bytes"):
        read_measurement(path)
