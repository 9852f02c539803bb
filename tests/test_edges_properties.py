"""Property-based edges (issue 25): any mutation of a valid file, any range text, ends in a result or one InputError.

Hypothesis truncates valid files, overwrites bytes anywhere in them and types arbitrary range
options; the readers and the range parser must answer with a value or an :class:`InputError`
(one line at the command line), never another exception.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from molmovie import InputError
from molmovie._ranges import parse_range
from molmovie.io.beamline import ingest
from molmovie.io.measurement import read_measurement, write_measurement
from molmovie.measurement import simulate_measurement

from _fit_fixtures import diatomic_ensemble

Q = np.linspace(0.5, 6.0, 10)
DELAYS = np.arange(-100.0, 301.0, 50.0)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("valid")
    meas = simulate_measurement(
        diatomic_ensemble(4, seed=2, t_end=400.0, dt=25.0), q=Q, delays=DELAYS, gamma=0.05, t0=0.0, irf_fs=50.0, photons=1e6
    )
    write_measurement(meas, folder / "m.h5")
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(
        buffer,
        q=Q,
        delays=DELAYS,
        intensity=100 + rng.random((DELAYS.size, Q.size)),
        variance=np.full((DELAYS.size, Q.size), 0.01),
    )
    return {"h5": (folder / "m.h5").read_bytes(), "npz": buffer.getvalue()}


def _mutate(data: bytes, cut: float, edits: list[tuple[float, int]]) -> bytes:
    out = bytearray(data[: max(0, int(cut * len(data)))] if cut < 1 else data)
    for where, value in edits:
        if out:
            out[int(where * (len(out) - 1))] = value
    return bytes(out)


mutations = st.tuples(
    st.one_of(st.just(1.0), st.floats(0, 1)),
    st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8),
)


@SETTINGS
@given(mutation=mutations)
def test_a_mutated_measurement_file_reads_or_is_one_input_error(valid, tmp_path, mutation):
    path = tmp_path / "m.h5"
    path.write_bytes(_mutate(valid["h5"], *mutation))
    try:
        read_measurement(path)
    except InputError:
        pass


@SETTINGS
@given(mutation=mutations)
# a byte of a member's flags set to 1, "encrypted": zipfile raised RuntimeError ("password required"), a traceback
@example(mutation=(1.0, [(0.95, 1)]))
def test_a_mutated_beamline_npz_ingests_or_is_one_input_error(valid, tmp_path, mutation):
    path = tmp_path / "b.npz"
    path.write_bytes(_mutate(valid["npz"], *mutation))
    try:
        ingest(path, q_units="1/A", delay_units="fs", molecule="I2")
    except InputError:
        pass


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=20), st.text(alphabet="0123456789.,:-+eEinfa ", max_size=20)))
def test_any_range_text_parses_to_an_ordered_range_or_one_input_error(text):
    try:
        values = parse_range(text, "--t0-range", "fs", step=True)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert len(values) in (2, 3) and values[0] <= values[1] and all(np.isfinite(values))
    assert len(values) == 2 or values[2] > 0


def test_mutations_reach_the_readers(valid, tmp_path):
    """The strategy is not vacuous: a truncated file is refused, the untouched one reads."""
    path = Path(tmp_path / "m.h5")
    path.write_bytes(valid["h5"])
    read_measurement(path)
    path.write_bytes(_mutate(valid["h5"], 0.5, []))
    with pytest.raises(InputError):
        read_measurement(path)


@pytest.fixture(scope="module")
def fit_bytes(tmp_path_factory) -> bytes:
    from molmovie.cli import main
    from molmovie.io import write_dataset

    folder = tmp_path_factory.mktemp("fit")
    write_dataset(diatomic_ensemble(6, seed=1, t_end=600.0, dt=25.0), folder / "basis.h5")
    meas = simulate_measurement(
        diatomic_ensemble(4, seed=2, t_end=400.0, dt=25.0), q=Q, delays=DELAYS, gamma=0.05, t0=0.0, irf_fs=50.0, photons=1e6
    )
    write_measurement(meas, folder / "m.h5")
    argv = ["fit", folder / "m.h5", "--basis", folder / "basis.h5", "-o", folder / "f.h5"]
    try:
        main([str(a) for a in [*argv, "--set", "bootstrap=2", "--set", "profile=3", "--set", "grid=[3,2]"]])
    except SystemExit as exc:
        assert not exc.code
    return (folder / "f.h5").read_bytes()


@SETTINGS
@given(mutation=mutations)
# one byte set to 1 in an attribute's heap: h5py raised RuntimeError ("ran off end of input buffer"), a traceback
@example(mutation=(1.0, [(0.6557230682570708, 1)]))
def test_a_mutated_fit_result_reads_or_is_one_input_error(fit_bytes, tmp_path, mutation):
    from molmovie.io.fit import read_fit

    path = tmp_path / "f.h5"
    path.write_bytes(_mutate(fit_bytes, *mutation))
    try:
        read_fit(path)
    except InputError:
        pass


@pytest.mark.parametrize(
    "damage",
    [
        RuntimeError("Can't synchronously determine if attribute exists by name (ran off end of input buffer while decoding)"),
        OSError("Can't read data (wrong B-tree signature)"),
        ValueError("Insufficient precision in available types to represent (63, 52, 11, 0, 52)"),
        KeyError("Unable to synchronously open object (bad object header version number)"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_damage_met_while_reading_an_hdf5_file_is_one_input_error(tmp_path, damage):
    """What h5py raises from a damaged header or heap as a reader reads (each message is one h5py gave on a
    mutated file) becomes "PATH: damaged WHAT"; the reader's own InputError passes unchanged."""
    import h5py

    from molmovie.io._files import reading_hdf5

    path = tmp_path / "r.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "x"
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: damaged inversion result \(cannot be read: "):
        with reading_hdf5(path, "inversion result", "not HDF5"):
            raise damage
    with pytest.raises(InputError, match="^own$"):
        with reading_hdf5(path, "inversion result", "not HDF5"):
            raise InputError("own")
