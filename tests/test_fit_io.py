"""The fit result file holds the edges every other format holds (issue 10, through the shared guards of ``molmovie.io``).

A full disk is one line and leaves no file, a forged array header is refused before anything
is allocated, and a version that is not a whole number is one line. Each test failed before
``io/fit.py`` went through ``atomic_hdf5`` / ``file_version`` / ``read_array``.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from molmovie import InputError
from molmovie.fitting import get_measurement_method
from molmovie.io.fit import read_fit, write_fit
from molmovie.io.measurement import write_measurement
from molmovie.measurement import simulate_measurement

from _fit_fixtures import diatomic_ensemble
from _fixtures import assert_one_line_error, run_cli

SRC = str(Path(__file__).resolve().parents[1] / "src")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A small simulated measurement (meas.h5) and the pdf fit of it (fit.h5), made once."""
    folder = tmp_path_factory.mktemp("fitio")
    meas = simulate_measurement(
        diatomic_ensemble(10, seed=2),
        q=np.linspace(0.5, 6.0, 20),
        delays=np.arange(-100.0, 301.0, 50.0),
        gamma=0.05,
        t0=30.0,
        irf_fs=70.0,
        photons=1e6,
        seed=0,
    )
    write_measurement(meas, folder / "meas.h5")
    result = get_measurement_method("pdf", r_max=5.0).fit(meas).result_
    write_fit(result, folder / "fit.h5")
    return {"dir": folder, "result": result}


@pytest.fixture
def fit_copy(made, tmp_path):
    copy = tmp_path / "fit.h5"
    copy.write_bytes((made["dir"] / "fit.h5").read_bytes())
    return copy


# --------------------------------------------------------------------------- a full disk


def _half_then_full(path, data):
    Path(path).write_bytes(bytes(data)[: len(data) // 2])
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_writing_a_fit_is_one_line_and_keeps_the_old_file(made, tmp_path, monkeypatch):
    old = tmp_path / "r.h5"
    old.write_bytes(b"the user's earlier fit")
    monkeypatch.setattr("molmovie._guards._write_bytes", _half_then_full)  # where a full disk raises: the file's one write
    with pytest.raises(InputError, match=f"^no space left on device writing {old}$"):
        write_fit(made["result"], old, force=True)
    assert old.read_bytes() == b"the user's earlier fit" and leftovers(tmp_path) == ["r.h5"]


def test_a_full_disk_under_molmovie_fit_is_one_line_and_leaves_nothing(made, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr("molmovie._guards._write_bytes", _half_then_full)
    code, _, err = run_cli(
        ["fit", made["dir"] / "meas.h5", "--method", "pdf", "--set", "r_max=5", "--output", out / "r.h5"], capsys
    )
    assert_one_line_error(code, err, f"no space left on device writing {out / 'r.h5'}$")
    assert leftovers(out) == []


def test_a_real_full_disk_while_writing_a_fit_is_one_line_not_a_crash(made, nearly_full):
    """In a child process: HDF5 writing onto a full disk itself can end the process (SIGSEGV)."""
    target = nearly_full / "r.h5"
    code = (
        "from molmovie import InputError\nfrom molmovie.io.fit import read_fit, write_fit\n"
        f"result = read_fit({str(made['dir'] / 'fit.h5')!r})\n"
        "try:\n"
        f"    write_fit(result, {str(target)!r})\n"
        "except InputError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"no space left on device writing {target}"
    assert done.stderr == ""
    assert leftovers(nearly_full) == ["filler"]


# --------------------------------------------------------------------------- forged headers and versions


@pytest.mark.parametrize("name", ["dS", "pdf/dP"])
def test_a_fit_header_claiming_a_huge_array_is_refused_before_reading(fit_copy, monkeypatch, name):
    with h5py.File(fit_copy, "a") as f:
        units = f[name].attrs["units"]
        del f[name]
        node = f.create_dataset(name, shape=(10**6, 10**6), dtype="f8", chunks=(1, 1000))  # 7.28 TiB never written
        node.attrs["units"] = units
    monkeypatch.setenv("MOLMOVIE_MAX_MEMORY", "1G")
    with pytest.raises(InputError, match=rf"^{fit_copy}: /{name} \(shape \(1000000, 1000000\)\) needs 7.28 TiB"):
        read_fit(fit_copy)


@pytest.mark.parametrize("value", ["abc", -1, 1.5, b"\xff\xfe"], ids=["text", "negative", "fraction", "bytes"])
def test_a_fit_whose_version_is_not_a_whole_number_is_one_line(fit_copy, value):
    with h5py.File(fit_copy, "a") as f:
        f.attrs["version"] = value
    with pytest.raises(
        InputError, match=rf"^{fit_copy}: damaged molmovie fit result \(version must be a whole number >= 0; got "
    ):
        read_fit(fit_copy)


def test_a_fit_of_a_newer_version_or_another_format_is_one_line(made, fit_copy):
    with h5py.File(fit_copy, "a") as f:
        f.attrs["version"] = 2
    with pytest.raises(
        InputError, match=rf"^{fit_copy}: molmovie fit result format version 2 is newer than this molmovie reads \(1\); upgrade"
    ):
        read_fit(fit_copy)
    meas = made["dir"] / "meas.h5"
    with pytest.raises(InputError, match=rf"^{meas}: not a molmovie fit result \(no format='molmovie-fit' attribute\)$"):
        read_fit(meas)


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            lambda f: f.attrs.__setitem__("chi2", "abc"),
            r"damaged molmovie fit result \(could not convert string to float: 'abc'\)",
        ),
        (
            lambda f: f.attrs.__setitem__("settings", "[1, 2]"),
            r"damaged molmovie fit result \(settings and provenance must be JSON objects\)",
        ),
        (
            lambda f: (
                f.__delitem__("q"),
                f.create_dataset("q", data=np.array([b"0.5"] * 20)).attrs.__setitem__("units", "1/Angstrom"),
            ),
            r"damaged molmovie fit result \(/q holds \|S3 values, not numbers\)",
        ),
        (
            lambda f: f["delays"].attrs.__setitem__("units", "ps"),
            r"damaged molmovie fit result \(/delays is not an array in 'fs'\)",
        ),
        (lambda f: f.__delitem__("pdf/r"), r"damaged molmovie fit result \(no array /pdf/r\)"),
    ],
)
def test_a_damaged_fit_is_one_line(fit_copy, edit, match):
    with h5py.File(fit_copy, "a") as f:
        edit(f)
    with pytest.raises(InputError, match=rf"^{fit_copy}: {match}$"):
        read_fit(fit_copy)


def test_the_written_fit_reads_back_whole(made, tmp_path):
    back = read_fit(made["dir"] / "fit.h5")
    res = made["result"]
    for name in ("dS", "sigma", "dS_fit", "q", "delays"):
        np.testing.assert_array_equal(getattr(back, name), getattr(res, name))
    for name in ("r", "dP", "dP_std", "dP_sine", "dP_sine_std", "I_gs"):
        np.testing.assert_array_equal(getattr(back.pdf, name), getattr(res.pdf, name))
    assert back.pdf.pair_types == ("I-I",) and back.symbols == ("I", "I") and back.settings == res.settings
    with h5py.File(made["dir"] / "fit.h5", "r") as f:
        assert f["residual"].attrs["units"] == "1" and f["pdf/dP"].attrs["units"] == "1/Angstrom"
