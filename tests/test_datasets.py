"""The HDF5 dataset file: round trip, units, atomic writes, splits, filters."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from molmovie import Dataset, InputError, make_splits, read_dataset, write_dataset
from molmovie.io import dataset as dsmod
from molmovie.scattering import SignalSpec
from molmovie.trajectories import read_ensemble

from _fixtures import cs2_positions, write_sharc


@pytest.fixture
def dataset(tmp_path):
    for k in range(4):
        write_sharc(tmp_path / "runs" / f"TRAJ_{k:05d}", cs2_positions(31 if k % 2 == 0 else 25, dissociate=k % 2 == 1, seed=k))
    ens = read_ensemble([tmp_path / "runs"], dt=1.0)
    rng = np.random.default_rng(0)
    q = np.linspace(0.5, 4, 7)
    dS = rng.normal(size=(4, ens.n_frames, 7))
    dS[~ens.mask] = np.nan
    spec = SignalSpec(q, inelastic=True, reference="first", photons=None, irf_fs=None, seed=0)
    return Dataset(ens, dS=dS, I_ref=rng.uniform(1, 2, (4, 7)), spec=spec, splits=make_splits(4, (2, 1, 1)))


def test_round_trip_is_exact_and_carries_units(tmp_path, dataset):
    path = write_dataset(dataset, tmp_path / "d.h5")
    back = read_dataset(path)
    assert back.symbols == dataset.symbols and back.molecule == "cs2"
    for name in ("positions", "time", "length", "dissociated"):
        np.testing.assert_array_equal(getattr(back, name), getattr(dataset, name))
    np.testing.assert_array_equal(back.dS, dataset.dS)
    np.testing.assert_array_equal(back.ensemble.energy, dataset.ensemble.energy)
    assert back.signal_attrs == dataset.signal_attrs
    assert back.ensemble.source == dataset.ensemble.source
    assert {k: v.tolist() for k, v in back.splits.items()} == {k: v.tolist() for k, v in dataset.splits.items()}
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "molmovie"
        assert f["trajectories/positions"].attrs["units"] == "Angstrom"
        assert f["time"].attrs["units"] == "fs"
        assert f["signals/q"].attrs["units"] == "1/Angstrom"
        assert f["trajectories/energy"].attrs["units"] == "eV"
        np.testing.assert_allclose(f["atoms/masses"][()], [12.011, 32.06, 32.06], atol=0.01)


def test_existing_output_needs_force(tmp_path, dataset):
    path = write_dataset(dataset, tmp_path / "d.h5")
    before = path.read_bytes()
    with pytest.raises(InputError, match="force=True"):
        write_dataset(dataset.subset([0]), path)
    assert path.read_bytes() == before
    write_dataset(dataset.subset([0]), path, force=True)
    assert read_dataset(path).n_trajectories == 1


def test_failed_write_leaves_nothing(tmp_path, dataset, monkeypatch):
    path = write_dataset(dataset, tmp_path / "d.h5")
    before = path.read_bytes()
    calls = []

    def broken(group, name, data, units=None, **kw):
        calls.append(name)
        if name == "dS":
            raise KeyboardInterrupt  # Ctrl-C in the middle of the write
        return group.create_dataset(name, data=data, **kw)

    monkeypatch.setattr(dsmod, "write_array", broken)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(dataset, path, force=True)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(dataset, tmp_path / "new.h5")
    assert "dS" in calls
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5", "runs"]


def test_not_a_dataset(tmp_path):
    (tmp_path / "x.h5").write_text("hello")
    with pytest.raises(InputError, match="not an HDF5 file"):
        read_dataset(tmp_path / "x.h5")
    with h5py.File(tmp_path / "y.h5", "w") as f:
        f["a"] = 1
    with pytest.raises(InputError, match="not a molmovie dataset"):
        read_dataset(tmp_path / "y.h5")
    with pytest.raises(InputError, match="no such file"):
        read_dataset(tmp_path / "z.h5")


def test_splits_are_disjoint_complete_and_seeded():
    s = make_splits(942, (753, 94, 95), seed=3)
    assert [len(s[k]) for k in ("train", "val", "test")] == [753, 94, 95]
    allidx = np.concatenate(list(s.values()))
    assert sorted(allidx.tolist()) == list(range(942))
    assert all(np.array_equal(s[k], make_splits(942, (753, 94, 95), seed=3)[k]) for k in s)
    assert not np.array_equal(s["test"], make_splits(942, (753, 94, 95), seed=4)["test"])
    p = make_splits(107, (85, 11, 11))
    assert [len(p[k]) for k in ("train", "val", "test")] == [85, 11, 11]
    p = make_splits(5, (85, 11, 11))
    assert [len(p[k]) for k in ("train", "val", "test")] == [3, 1, 1]
    p = make_splits(1000, (80, 10, 10))
    assert [len(p[k]) for k in ("train", "val", "test")] == [800, 100, 100]


def test_without_dissociating_reindexes_splits(dataset):
    kept = dataset.without_dissociating()
    assert kept.n_trajectories == 2 and not kept.dissociated.any()
    orig_index = np.flatnonzero(~dataset.dissociated)
    for name, idx in kept.splits.items():
        # a kept trajectory is in the same split as before
        assert set(orig_index[idx].tolist()) == set(dataset.splits[name].tolist()) & set(orig_index.tolist())
    np.testing.assert_array_equal(kept.dS, dataset.dS[orig_index])


def test_empty_subset(dataset):
    empty = dataset.subset([])
    assert empty.n_trajectories == 0 and empty.dS.shape == (0,) + dataset.dS.shape[1:]


def test_subset_selects_the_per_trajectory_records(dataset):
    from dataclasses import replace

    records = [{"seed": i} for i in range(dataset.n_trajectories)]
    ens = replace(dataset.ensemble, provenance={"model": "m", "trajectories": records})
    picked = Dataset(ens).subset([2, 0])
    assert picked.ensemble.provenance["trajectories"] == [{"seed": 2}, {"seed": 0}]
    assert picked.ensemble.provenance["model"] == "m"
    # records that are not one per trajectory are kept as they are
    odd = replace(dataset.ensemble, provenance={"trajectories": records[:1]})
    assert Dataset(odd).subset([1]).ensemble.provenance["trajectories"] == records[:1]


def test_split_selects_trajectories(dataset):
    test = dataset.split("test")
    np.testing.assert_array_equal(test.positions, dataset.positions[dataset.splits["test"]])
    with pytest.raises(InputError, match="no 'foo' split"):
        dataset.split("foo")


def test_written_files_get_the_usual_permissions_not_a_temporary_files(tmp_path):
    import os

    from molmovie.io import atomic_path

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "shared.json") as tmp:
            assert (tmp.stat().st_mode & 0o777) == 0o600  # mkstemp's owner-only file ...
            tmp.write_text("{}")
        assert ((tmp_path / "shared.json").stat().st_mode & 0o777) == 0o644  # ... readable by the group once written
        os.umask(0o077)
        with atomic_path(tmp_path / "private.json") as tmp:
            tmp.write_text("{}")
        assert ((tmp_path / "private.json").stat().st_mode & 0o777) == 0o600
    finally:
        os.umask(old)


@pytest.mark.parametrize("length", [[5.5], [12], [-1], [3, 3]])
def test_read_signals_refuses_lengths_that_are_not_frame_counts(tmp_path, length):
    from molmovie.io import read_signals

    path = tmp_path / "measured.h5"
    with h5py.File(path, "w") as f:  # one series of 10 frames on 4 q points
        f["q"], f["time"], f["dS"], f["length"] = np.linspace(1, 4, 4), np.arange(10.0), np.zeros((10, 4)), length
    with pytest.raises(
        InputError, match=r"measured\.h5: length must hold one whole number of valid frames \(0 to 10\) per series \(1\)"
    ):
        read_signals(path)
    with h5py.File(path, "r+") as f:
        del f["length"]
        f["length"] = [7]
    got = read_signals(path)
    assert got["length"].tolist() == [7] and got["dS"].shape == (1, 10, 4) and got["series"] == 1
