"""Anisotropic Legendre components of a measurement: ingest keeps them, the file stores them, old files still read."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from test_ingest import _h5, _stack

from molmovie import InputError
from molmovie.io.beamline import ingest
from molmovie.io.measurement import read_measurement, write_measurement
from molmovie.measurement import LegendreComponent, Measurement

from _fixtures import assert_one_line_error, run_cli

UNITS = dict(q_units="1/A", delay_units="ps", t0=2.0)


def test_ingest_keeps_order_2_beside_order_0_exactly(tmp_path):
    mean, var = _stack()
    m = ingest(_h5(tmp_path), anisotropy=(2,), **UNITS)
    alone2 = ingest(_h5(tmp_path), legendre=2, **UNITS)
    alone0 = ingest(_h5(tmp_path), **UNITS)
    np.testing.assert_array_equal(m.dS, alone0.dS)
    np.testing.assert_array_equal(m.sigma, alone0.sigma)
    (c,) = m.components
    assert c.order == 2
    s0_ref, s2_ref = mean[0, :, :3].mean(axis=1), mean[1, :, :3].mean(axis=1)
    np.testing.assert_allclose(c.dS, (mean[1].T - s2_ref) / s0_ref, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(c.sigma, alone2.sigma)
    assert m.provenance["anisotropy"]["orders"] == [2]
    assert m.component(2) is c
    with pytest.raises(InputError, match="no Legendre order 4"):
        m.component(4)


def test_components_round_trip_and_files_without_them_still_read(tmp_path):
    m = ingest(_h5(tmp_path), anisotropy=(2,), **UNITS)
    write_measurement(m, tmp_path / "m.h5")
    back = read_measurement(tmp_path / "m.h5")
    assert [c.order for c in back.components] == [2]
    np.testing.assert_array_equal(back.components[0].dS, m.components[0].dS)
    np.testing.assert_array_equal(back.components[0].sigma, m.components[0].sigma)
    with h5py.File(tmp_path / "m.h5") as f:
        assert f["legendre/l2/dS"].attrs["units"] == b"fraction" and f["legendre/l2"].attrs["order"] == 2
    iso = ingest(_h5(tmp_path), **UNITS)
    write_measurement(iso, tmp_path / "iso.h5")
    with h5py.File(tmp_path / "iso.h5") as f:
        assert "legendre" not in f
    assert read_measurement(tmp_path / "iso.h5").components == ()


def test_component_shapes_and_orders_are_checked():
    q, d = np.linspace(1, 2, 3), np.arange(4.0)
    dS = np.zeros((4, 3))
    with pytest.raises(InputError, match="even and > 0"):
        LegendreComponent(1, dS)
    with pytest.raises(InputError, match="shape"):
        Measurement(q, d, dS, None, None, None, {}, components=(LegendreComponent(2, np.zeros((3, 3))),))
    with pytest.raises(InputError, match="distinct orders"):
        Measurement(q, d, dS, None, None, None, {}, components=(LegendreComponent(2, dS), LegendreComponent(2, dS)))


@pytest.mark.parametrize(
    ("value", "match"),
    [("3", "even Legendre orders > 0"), ("x", "even Legendre orders > 0"), ("4", "Legendre order 4 is not in the file")],
)
def test_bad_anisotropy_option_is_one_line_exit_2(tmp_path, capsys, value, match):
    out = tmp_path / "out.h5"
    args = ["ingest", _h5(tmp_path), "--q-units", "1/A", "--delay-units", "ps", "--t0", "2000", "--anisotropy", value, "-o", out]
    code, _, err = run_cli(args, capsys)
    assert_one_line_error(code, err, match=match)
    assert not out.exists()
