"""`molmovie ingest` and `molmovie show`: beamline files (HDF5, NPZ, text) -> measurement file.

The physics is pinned to exact answers (ΔS of a synthetic I(q, t) against its
pre-t0 mean, unit conversions), the σ propagation to a Monte-Carlo estimate,
and every bad input to one line and exit code 2 with nothing written.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from molmovie import InputError
from molmovie.io.beamline import BOHR, difference_signal, ingest, pre_t0_chi2
from molmovie.io.measurement import read_measurement

from _fixtures import assert_one_line_error, run_cli

I2_FILE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "i2-lcls" / "phil-trans-data.h5"

Q = np.linspace(0.5, 4.0, 8)  # 1/Angstrom
DELAYS_PS = np.array([-0.2, -0.1, -0.05, 0.0, 0.1, 0.3, 1.0])  # 3 delays before time zero


def _true_dS():
    """ΔS(t, q): zero before time zero, a damped pattern after it."""
    t = DELAYS_PS[:, None]
    return np.where(t > 0, 0.03 * np.sin(2.1 * Q[None, :]) * (1 - np.exp(-t / 0.1)), 0.0)


def _stack():
    """Legendre stack (L=2, Q, T) of intensities: order 0 = I0(q)(1 + ΔS), order 2 = an anisotropy."""
    I0 = 1000.0 * np.exp(-0.3 * Q)
    s0 = (I0[None, :] * (1 + _true_dS())).T
    s2 = (0.01 * I0[None, :] * np.cos(Q)[None, :] * (DELAYS_PS[:, None] > 0)).T + 0.5
    mean = np.stack([s0, s2])
    var = (0.002 * mean) ** 2 + 1.0
    return mean, var


def _h5(tmp_path, name="beam.h5", **override) -> Path:
    mean, var = _stack()
    arrays = dict(Q=Q, timebins=DELAYS_PS + 2.0, legendres=np.array([0, 2]), mean=mean, variance=var)
    arrays.update(override)
    path = tmp_path / name
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            if v is not None:
                f[k] = v
    return path


def _npz(tmp_path, **override) -> Path:
    mean, var = _stack()
    arrays = dict(q=Q * 10, delays=DELAYS_PS * 1000, intensity=mean[0].T, std=np.sqrt(var[0]).T)  # q in 1/nm, (T, Q)
    arrays.update(override)
    np.savez(tmp_path / "beam.npz", **arrays)
    return tmp_path / "beam.npz"


def _text(path: Path, values_tq, *, q=Q, delays=DELAYS_PS, q_in="column", corner="q\\t") -> Path:
    if q_in == "column":
        head = ([corner] if corner else []) + [f"{t:.17g}" for t in delays]
        rows = [[f"{qq:.17g}"] + [f"{v:.17g}" for v in values_tq[:, k]] for k, qq in enumerate(q)]
    else:
        head = ([corner] if corner else []) + [f"{qq:.17g}" for qq in q]
        rows = [[f"{t:.17g}"] + [f"{v:.17g}" for v in values_tq[i]] for i, t in enumerate(delays)]
    path.write_text("# a beamline export\n" + "\n".join("  ".join(r) for r in [head] + rows) + "\n")
    return path


# --------------------------------------------------------------------------- physics


def test_dS_against_pre_t0_mean_is_exact(tmp_path):
    m = ingest(_h5(tmp_path), q_units="1/A", delay_units="ps", t0=2.0)
    np.testing.assert_allclose(m.delays, DELAYS_PS * 1000, rtol=0, atol=1e-9)
    np.testing.assert_allclose(m.dS, _true_dS(), rtol=0, atol=1e-13)  # pre-t0 patterns are all I0
    assert m.provenance["reference"] == "pre-t0 mean of 3 delays"
    assert m.provenance["kind"] == "intensity" and m.provenance["legendre"] == 0
    assert m.provenance["t0_shift_fs"] == pytest.approx(2000.0)
    # with a drifting pre-t0 baseline the reference is its mean, exactly
    mean, var = _stack()
    mean[0, :, :3] *= np.array([0.99, 1.0, 1.01])
    m = ingest(_h5(tmp_path, "drift.h5", mean=mean), q_units="1/A", delay_units="ps", t0=2.0)
    ref = mean[0, :, :3].mean(axis=1)
    np.testing.assert_allclose(m.dS, mean[0].T / ref - 1, rtol=0, atol=1e-15)


def test_reference_before_separates_reference_from_time_zero(tmp_path):
    m = ingest(_h5(tmp_path), q_units="1/A", delay_units="ps", t0=2.0, reference_before=1.92)
    assert m.provenance["reference"] == "pre-t0 mean of 2 delays"
    np.testing.assert_allclose(m.delays[:2], [-200, -100], atol=1e-9)
    assert "reference_chi2_dof" in m.provenance


def test_anisotropic_order_is_normalised_by_the_isotropic_reference(tmp_path):
    mean, _ = _stack()
    m = ingest(_h5(tmp_path), q_units="1/A", delay_units="ps", t0=2.0, legendre=2)
    s0_ref = mean[0, :, :3].mean(axis=1)
    s2_ref = mean[1, :, :3].mean(axis=1)
    np.testing.assert_allclose(m.dS, (mean[1].T - s2_ref) / s0_ref, rtol=0, atol=1e-15)
    assert m.provenance["legendre"] == 2


@pytest.mark.parametrize("anisotropic", [False, True])
def test_sigma_propagation_matches_monte_carlo(anisotropic):
    """First-order σ(ΔS) (reference noise and the covariance of reference delays included)
    against the spread of ΔS over 4000 noisy copies: within 6 % in every bin, for any seed.
    The Monte-Carlo σ scatters by 1/sqrt(2*4000) = 1.1 %, the first-order error at 1 %
    relative noise is ~1e-4; a σ without the reference's noise, or without the covariance
    of delays that are in the reference, is off by 30-50 % in some bins."""
    rng = np.random.default_rng()
    T, Qn, n = 6, 5, 4000
    I = 100.0 * (1 + 0.05 * rng.random((T, Qn)))
    s = 0.01 * I * (0.5 + rng.random((T, Qn)))
    rows = np.array([True, True, True, False, False, False])
    iso = iso_s = None
    if anisotropic:
        iso = 500.0 * (1 + 0.05 * rng.random((T, Qn)))
        iso_s = 0.01 * iso
    _, sigma = difference_signal(
        I, s**2, reference_rows=rows, isotropic=iso, isotropic_variance=None if iso_s is None else iso_s**2
    )
    draws = I + s * rng.standard_normal((n, T, Qn))
    if anisotropic:
        iso_draws = iso + iso_s * rng.standard_normal((n, T, Qn))
        mc = (draws - draws[:, rows].mean(axis=1, keepdims=True)) / iso_draws[:, rows].mean(axis=1, keepdims=True)
    else:
        mc = draws / draws[:, rows].mean(axis=1, keepdims=True) - 1
    ratio = sigma / mc.std(axis=0, ddof=1)
    assert np.all(np.abs(ratio - 1) < 0.06), ratio


def test_laser_off_reference(tmp_path):
    mean, var = _stack()
    off = 1000.0 * np.exp(-0.3 * Q) * 1.002
    off_var = np.full_like(Q, 4.0)
    with h5py.File(tmp_path / "off.h5", "w") as f:
        f["Q"], f["timebins"], f["legendres"] = Q, [0.0], [0, 2]
        f["mean"] = np.stack([off, 0.5 + 0 * off])[:, :, None]
        f["variance"] = np.stack([off_var, off_var])[:, :, None]
    m = ingest(_h5(tmp_path), q_units="1/A", delay_units="ps", t0=2.0, laser_off=tmp_path / "off.h5", axes="l,q,t")
    I = mean[0].T
    np.testing.assert_allclose(m.dS, I / off - 1, rtol=0, atol=1e-15)
    np.testing.assert_allclose(m.sigma, np.sqrt(var[0].T / off**2 + I**2 * off_var / off**4), rtol=1e-14)
    assert m.provenance["reference"].startswith("laser-off file")


def test_unit_conversions_are_exact(tmp_path):
    mean, var = _stack()
    base = ingest(_h5(tmp_path), q_units="1/A", delay_units="ps", t0=2.0)
    nm = ingest(_npz(tmp_path), q_units="1/nm", delay_units="fs")  # q * 10 in the file; delays in fs
    np.testing.assert_allclose(nm.q, Q, rtol=1e-15)
    np.testing.assert_allclose(nm.delays, DELAYS_PS * 1000, rtol=1e-15)
    np.testing.assert_allclose(nm.dS, base.dS, rtol=0, atol=1e-15)
    np.testing.assert_allclose(nm.sigma, base.sigma, rtol=1e-13)  # std squared = variance
    bohr = ingest(_h5(tmp_path, "b.h5", Q=Q * BOHR), q_units="1/bohr", delay_units="ps", t0=2.0)
    np.testing.assert_allclose(bohr.q, Q, rtol=1e-15)
    assert BOHR == 0.529177210903
    # a ready ΔS in percent, with standard deviations in percent
    pct = ingest(
        _npz(tmp_path, intensity=100 * _true_dS(), std=np.full((7, 8), 0.5)),
        q_units="1/nm",
        delay_units="fs",
        kind="difference",
        signal_units="percent",
    )
    np.testing.assert_allclose(pct.dS, _true_dS(), rtol=1e-15)
    np.testing.assert_allclose(pct.sigma, 0.005, rtol=1e-15)
    assert pct.provenance["reference"] == "given" and pct.provenance["units_read"]["signal"] == "percent"


def test_units_from_file_attributes(tmp_path):
    path = _h5(tmp_path)
    with h5py.File(path, "a") as f:
        f["Q"].attrs["units"] = "nm^-1"
        f["timebins"].attrs["units"] = "ps"
    m = ingest(path, t0=2.0)
    np.testing.assert_allclose(m.q, Q / 10, rtol=1e-15)
    assert m.provenance["units_read"]["file_attributes"] == {"q": "nm^-1", "delays": "ps", "data": None}


@pytest.mark.parametrize("q_in", ["column", "row"])
def test_text_tables(tmp_path, q_in):
    mean, var = _stack()
    data = _text(tmp_path / "I.txt", mean[0].T, q_in=q_in, corner="" if q_in == "row" else "q\\t")
    err = _text(tmp_path / "var.txt", var[0].T, q_in=q_in)
    m = ingest(data, q_units="1/A", delay_units="ps", variance_path=str(err), q_in=q_in)
    np.testing.assert_allclose(m.dS, _true_dS(), rtol=0, atol=1e-13)
    ref = ingest(_h5(tmp_path), q_units="1/A", delay_units="ps", t0=2.0)
    np.testing.assert_allclose(m.sigma, ref.sigma, rtol=1e-12)


def test_axes_are_found_in_either_order(tmp_path):
    mean, var = _stack()
    a = ingest(_npz(tmp_path, intensity=mean[0].T, std=np.sqrt(var[0]).T), q_units="1/nm", delay_units="fs")
    b = ingest(_npz(tmp_path, intensity=mean[0], std=np.sqrt(var[0])), q_units="1/nm", delay_units="fs")
    np.testing.assert_array_equal(a.dS, b.dS)


def test_qrange_mask_and_molecule(tmp_path):
    m = ingest(_h5(tmp_path), q_units="1/A", delay_units="ps", t0=2.0, qmin=1.0, qmax=3.0, molecule="I2")
    np.testing.assert_array_equal(m.q, Q[(Q >= 1.0) & (Q <= 3.0)])
    assert m.symbols == ("I", "I") and m.molecule == "I2"
    assert m.provenance["q_range"] == [m.q[0], m.q[-1]]
    m = ingest(_h5(tmp_path), q_units="1/A", delay_units="ps", t0=2.0, molecule="cs2")
    assert m.symbols == ("C", "S", "S")


def test_ingest_and_show_commands(tmp_path, capsys):
    out, fig = tmp_path / "m.h5", tmp_path / "m.png"
    code, stdout, err = run_cli(
        [
            "ingest",
            _h5(tmp_path),
            "-o",
            out,
            "--q-units",
            "1/A",
            "--delay-units",
            "ps",
            "--t0",
            "2000",
            "--qmin",
            "1",
            "--symbols",
            "I I",
        ],
        capsys,
    )
    assert code == 0, err
    # --t0 is in fs whatever the file's delay units; the old --qmin is read with a deprecation line
    assert err.splitlines() == [
        "molmovie: note: --t0 and --reference-before are in fs (before molmovie 0.2 they were in the file's delay units, ps here)",
        "molmovie: deprecated: --qmin 1 is read as --q-range 1:QMAX until molmovie 0.3; write --q-range 1:QMAX",
    ]
    assert "pre-t0 mean of 3 delays" in stdout and "7 delays -200 to 1000 fs" in stdout
    m = read_measurement(out)
    assert m.symbols == ("I", "I") and m.q[0] >= 1
    assert pre_t0_chi2(m)[1] == 3
    code, stdout, err = run_cli(["show", out, "-o", fig, "--q-lines", "1.5,3"], capsys)
    assert code == 0, err
    code, stdout, err = run_cli(["show", out, "-o", fig, "--q", "1.5,3", "--force"], capsys)  # the old spelling
    assert code == 0 and "--q 1.5,3 (in show) is read as --q-lines 1.5,3" in err
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- bad input


def _bad_cases(tmp_path):
    mean, var = _stack()
    nan = mean.copy()
    nan[0, 1, 4] = np.nan  # q = 1.0 1/Angstrom
    neg = var.copy()
    neg[0, 5, 2] = -1.0
    shuffled = DELAYS_PS + 2.0
    shuffled[[3, 4]] = shuffled[[4, 3]]
    units = ["--q-units", "1/A", "--delay-units", "ps"]
    return {
        "no q axis": (["ingest", _h5(tmp_path, "a.h5", Q=None, k=Q)] + units, "no q axis found; give --q-path"),
        "delays not increasing": (
            ["ingest", _h5(tmp_path, "b.h5", timebins=shuffled)] + units + ["--t0", "2000"],
            "delays must be finite and strictly increasing",
        ),
        "no delay before t0": (["ingest", _h5(tmp_path)] + units + ["--t0", "1500"], "no delay before 1.5 ps"),
        "negative variance": (["ingest", _h5(tmp_path, "c.h5", variance=neg)] + units + ["--t0", "2000"], "negative variance"),
        "NaN in the q range": (
            ["ingest", _h5(tmp_path, "d.h5", mean=nan)] + units + ["--t0", "2000"],
            "NaN or inf in the chosen q range",
        ),
        "empty q range": (
            ["ingest", _h5(tmp_path)] + units + ["--t0", "2000", "--qmin", "5", "--qmax", "6"],
            "no q point of the file lies in 5 to 6",
        ),
        "inverted q range": (
            ["ingest", _h5(tmp_path)] + units + ["--t0", "2000", "--qmin", "3", "--qmax", "2"],
            "the q range is empty",
        ),
        "Legendre order not in file": (
            ["ingest", _h5(tmp_path)] + units + ["--t0", "2000", "--legendre", "4"],
            r"Legendre order 4 is not in the file \(orders there: 0, 2\)",
        ),
        "unknown q units": (
            ["ingest", _h5(tmp_path), "--q-units", "1/furlong", "--delay-units", "ps", "--t0", "2000"],
            "unknown units '1/furlong' for q",
        ),
        "units not in the file": (
            ["ingest", _h5(tmp_path), "--q-units", "1/A", "--t0", "2000"],
            "does not say the units of the delays; give --delay-units",
        ),
        "unknown molecule": (["ingest", _h5(tmp_path)] + units + ["--t0", "2000", "--molecule", "iodine"], "give --symbols"),
        "text with Legendre": (
            ["ingest", _text(tmp_path / "t.txt", mean[0].T)] + units + ["--legendre", "2"],
            "Legendre order 2 is not in the file",
        ),
        "NPZ without q": (["ingest", _npz_noq(tmp_path)] + units, "no q axis found"),
    }


def _npz_noq(tmp_path):
    mean, var = _stack()
    np.savez(tmp_path / "noq.npz", delays=DELAYS_PS, intensity=mean[0].T)
    return tmp_path / "noq.npz"


@pytest.mark.parametrize(
    "case",
    [
        "no q axis",
        "delays not increasing",
        "no delay before t0",
        "negative variance",
        "NaN in the q range",
        "empty q range",
        "inverted q range",
        "Legendre order not in file",
        "unknown q units",
        "units not in the file",
        "unknown molecule",
        "text with Legendre",
        "NPZ without q",
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, case):
    args, match = _bad_cases(tmp_path)[case]
    out = tmp_path / "out.h5"
    code, _, err = run_cli(args + ["-o", out], capsys)
    assert_one_line_error(code, err, match=match)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.h5")]


def test_nan_outside_the_q_range_is_fine(tmp_path):
    mean, _ = _stack()
    mean[0, 0, :] = np.nan  # q = 0.5: a bin without data
    m = ingest(_h5(tmp_path, mean=mean), q_units="1/A", delay_units="ps", t0=2.0, qmin=0.9)
    assert np.isfinite(m.dS).all() and m.q[0] == Q[1]


def test_existing_output_and_input_as_output_are_refused(tmp_path, capsys):
    src = _h5(tmp_path)
    out = tmp_path / "m.h5"
    out.write_bytes(b"keep")
    args = ["--q-units", "1/A", "--delay-units", "ps", "--t0", "2000"]
    assert_one_line_error(*run_cli(["ingest", src, "-o", out] + args, capsys)[::2], match="exists; use --force")
    assert out.read_bytes() == b"keep"
    before = src.read_bytes()
    assert_one_line_error(
        *run_cli(["ingest", src, "-o", src, "--force"] + args, capsys)[::2], match="is the input .*; write to another file"
    )
    assert src.read_bytes() == before


def test_show_refuses_a_dataset_and_a_bad_suffix(tmp_path, capsys):
    m = tmp_path / "m.h5"
    assert run_cli(["ingest", _h5(tmp_path), "-o", m, "--q-units", "1/A", "--delay-units", "ps", "--t0", "2000"], capsys)[0] == 0
    assert_one_line_error(*run_cli(["show", m, "-o", tmp_path / "f.jpg"], capsys)[::2], match="must be .png, .pdf or .svg")
    assert_one_line_error(
        *run_cli(["show", _h5(tmp_path, "raw.h5"), "-o", tmp_path / "f.png"], capsys)[::2], match="not a molmovie measurement"
    )
    assert not (tmp_path / "f.png").exists()


def test_npz_header_claiming_more_than_stored_is_refused(tmp_path):
    import io
    import zipfile

    def npy(arr=None, header=None):
        buf = io.BytesIO()
        if header is None:
            np.save(buf, arr)
        else:
            np.lib.format.write_array_header_1_0(buf, header)
            buf.write(np.zeros(8).tobytes())
        return buf.getvalue()

    mean, _ = _stack()
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("q.npy", npy(header={"descr": "<f8", "fortran_order": False, "shape": (10**11,)}))
        z.writestr("delays.npy", npy(DELAYS_PS))
        z.writestr("intensity.npy", npy(mean[0].T))
    with pytest.raises(InputError, match=r"q.npy claims shape \(100000000000,\) but stores \d+ bytes; damaged file"):
        ingest(path, q_units="1/nm", delay_units="fs")


# --------------------------------------------------------------------------- the real I2 measurement

I2_COMMAND = [
    "--q-units",
    "1/A",
    "--delay-units",
    "ps",
    "--t0",
    "2376",
    "--reference-before",
    "2350",
    "--q-range",
    "1.0:3.5",
    "--molecule",
    "I2",
]


def test_i2_measurement_is_zero_within_sigma_before_time_zero(tmp_path, capsys):
    if not I2_FILE.is_file():
        pytest.skip("../shared/data/i2-lcls is not present")
    out = tmp_path / "i2.h5"
    code, stdout, err = run_cli(["ingest", I2_FILE, "-o", out] + I2_COMMAND, capsys)
    assert code == 0, err
    m = read_measurement(out)
    assert (m.n_delays, m.n_q) == (109, 69) and m.symbols == ("I", "I")
    chi2, n = pre_t0_chi2(m, before=-30.0)  # the two reference delays, >= 44 fs before time zero
    assert n == 2 and 0.5 < chi2 < 1.5, chi2
    late = m.dS[m.delays > 500]
    band = (m.q > 1.5) & (m.q < 1.8)
    assert late[:, band].mean() > 0.05  # the steady difference after the rise: +5 to +7 % near 1.6 1/A
    assert (np.abs(late[:, band]) / m.sigma[m.delays > 500][:, band]).mean() > 10


def test_laser_off_file_of_one_pattern(tmp_path):
    """A laser-off file without a delay axis: q, I(q) and its variance."""
    mean, var = _stack()
    off = 1000.0 * np.exp(-0.3 * Q) * 0.998
    with h5py.File(tmp_path / "off.h5", "w") as f:
        f["Q"], f["mean"], f["variance"] = Q, off, np.full_like(Q, 9.0)
    with h5py.File(tmp_path / "on.h5", "w") as f:
        f["Q"], f["timebins"], f["mean"], f["variance"] = Q, DELAYS_PS, mean[0].T, var[0].T
    m = ingest(tmp_path / "on.h5", q_units="1/A", delay_units="ps", laser_off=tmp_path / "off.h5")
    I = mean[0].T
    np.testing.assert_allclose(m.dS, I / off - 1, rtol=0, atol=1e-15)
    np.testing.assert_allclose(m.sigma, np.sqrt(var[0].T / off**2 + I**2 * 9.0 / off**4), rtol=1e-14)


def test_more_bad_input_in_npz_and_text(tmp_path):
    mean, var = _stack()
    with pytest.raises(InputError, match="negative standard deviation"):
        ingest(_npz(tmp_path, std=-np.sqrt(var[0]).T), q_units="1/nm", delay_units="fs")
    backwards = DELAYS_PS[::-1].copy()
    with pytest.raises(InputError, match="delays must be finite and strictly increasing"):
        ingest(_text(tmp_path / "t.txt", mean[0].T[::-1], delays=backwards), q_units="1/A", delay_units="ps")
    ragged = tmp_path / "r.txt"
    ragged.write_text("q 0 1\n1.0 5 6\n2.0 7\n")
    with pytest.raises(InputError, match="every row of the table must have 3 cells"):
        ingest(ragged, q_units="1/A", delay_units="ps")
    (tmp_path / "n.txt").write_text("q 0 1\n1.0 5 x\n")
    with pytest.raises(InputError, match="the table must be numbers"):
        ingest(tmp_path / "n.txt", q_units="1/A", delay_units="ps")
