"""Transfer in the study: the training frame interval in model files, and the CS2 models scored on foreign runs.

The study's CS2 experiments score each trained model on foreign trajectories
(SHARC runs; here tiny SHARC-like folders written by the test) with
:func:`molmovie.evaluation.transfer.transfer`. The numbers in results.json
must be exactly those of calling ``transfer`` on the stored model; a study
without foreign runs reads as before.
"""

from __future__ import annotations

import numpy as np
import pytest

from molmovie import InputError
from molmovie.datasets import Dataset
from molmovie.inversion import get_method, load_method
from molmovie.io.model import read_model_file, write_model_file
from molmovie.scattering import SignalSpec, q_grid, simulate
from molmovie.trajectories import Ensemble

from _fixtures import CS2_SYMBOLS, cs2_positions


# ----------------------------------------------------------------------------- the frame interval in model files


def _cs2_dataset(time: np.ndarray) -> Dataset:
    pos = np.stack([cs2_positions(len(time), seed=k) for k in range(3)])
    ens = Ensemble("cs2", CS2_SYMBOLS, time, pos, np.full(3, len(time)), np.zeros(3, bool), [f"run{k}" for k in range(3)])
    return Dataset(ens).with_signals(*simulate(ens.symbols, ens.positions, ens.length, ens.time, SignalSpec(q_grid(n_q=12))))


@pytest.mark.parametrize("name", ["nearest", "vrnn"])
def test_a_model_records_the_median_frame_interval_and_keeps_it_through_its_file(name, tmp_path):
    # frames every 2.5 fs but one gap of 5 fs: the median spacing is 2.5 fs, the mean would not be
    time = np.array([0.0, 2.5, 5.0, 7.5, 12.5, 15.0, 17.5])
    settings = dict(hidden=4, features=3, latent_free=1, epochs=1, batch_size=3, physics=0.0, device="cpu") if name == "vrnn" else {}
    method = get_method(name, **settings).fit(_cs2_dataset(time))
    assert method.dt_ == 2.5
    back = load_method(method.save(tmp_path / "m.safetensors"))
    assert back.dt_ == 2.5 and isinstance(back.dt_, float)


def test_a_model_file_from_before_the_frame_interval_loads_without_one(tmp_path):
    path = get_method("nearest").fit(_cs2_dataset(np.arange(6) * 5.0)).save(tmp_path / "m.safetensors")
    name, config, arrays = read_model_file(path)
    assert config["dt_fs"] == 5.0
    del config["dt_fs"]
    old = load_method(write_model_file(tmp_path / "old.safetensors", name, config, arrays))
    assert old.dt_ is None
    np.testing.assert_array_equal(old.q_, load_method(path).q_)
    config["dt_fs"] = -1.0
    with pytest.raises(InputError, match=r"bad\.safetensors: damaged molmovie model file \(frame interval dt_fs -1\.0"):
        load_method(write_model_file(tmp_path / "bad.safetensors", name, config, arrays))
