"""Measurement and fit files open in xarray with named dimensions (HDF5 dimension scales, issue 27).

Opened as a user would, ``xr.open_dataset(path, engine="h5netcdf")`` without ``phony_dims``:
the arrays carry the dimensions ``delay``, ``q``, ``pair`` (and in the method groups ``quantile``,
``channel``, ``trajectory``, ``replicate``, ``r``), the coordinates hold exactly the values the
file was written with, and molmovie's own readers read the files as before.
"""

from __future__ import annotations

import numpy as np
import pytest

from molmovie.fitting import get_measurement_method
from molmovie.io import read_fit, read_measurement, write_fit, write_measurement
from molmovie.measurement import simulate_measurement

from _fit_fixtures import diatomic_ensemble

xr = pytest.importorskip("xarray")
pytest.importorskip("h5netcdf")

Q = np.linspace(0.5, 6.0, 12)
DELAYS = np.array([-150.0, -60.0, 0.0, 35.0, 80.0, 150.0, 240.0, 330.0, 450.0])  # not uniform: the values are checked


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("xr")
    basis = diatomic_ensemble(8, seed=1, t_end=700.0, dt=25.0)
    meas = simulate_measurement(
        diatomic_ensemble(6, seed=2, t_end=500.0, dt=25.0),
        q=Q,
        delays=DELAYS,
        gamma=0.05,
        t0=30.0,
        irf_fs=70.0,
        photons=1e6,
        seed=0,
    )
    write_measurement(meas, folder / "meas.h5")
    ensemble = get_measurement_method("ensemble", bootstrap=2, profile=3, grid=(3, 2)).fit(meas, basis).result_
    write_fit(ensemble, folder / "ensemble.h5")
    pdf = get_measurement_method("pdf", r_max=5.0).fit(meas).result_
    write_fit(pdf, folder / "pdf.h5")
    return {"dir": folder, "meas": meas, "ensemble": ensemble, "pdf": pdf}


def open_(path, group=None):
    return xr.open_dataset(path, engine="h5netcdf", group=group)  # no phony_dims: every axis is named


def text(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).tolist()]


def test_a_measurement_opens_with_delay_and_q(files):
    meas = files["meas"]
    with open_(files["dir"] / "meas.h5") as ds:
        assert ds["dS"].dims == ("delay", "q") and ds["sigma"].dims == ("delay", "q")
        np.testing.assert_array_equal(ds["delay"].values, DELAYS)
        np.testing.assert_array_equal(ds["q"].values, Q)
        np.testing.assert_array_equal(ds["dS"].values, meas.dS)
        np.testing.assert_array_equal(ds["sigma"].sel(delay=80.0).values, meas.sigma[4])
        assert ds["delay"].attrs["units"] == "fs" and ds.attrs["format"] == "molmovie-measurement"
    with open_(files["dir"] / "meas.h5", "truth") as truth:
        assert truth["distance_mean"].dims == ("delay", "pair")
        assert truth["distance_quantiles"].dims == ("delay", "pair", "quantile")
        assert text(truth["pair"].values) == list(meas.truth.pair_labels) == ["I1-I2"]
        np.testing.assert_array_equal(truth["distance_mean"].values, meas.truth.distance_mean)
        np.testing.assert_array_equal(truth["trajectory"].values, meas.truth.trajectories)
    again = read_measurement(files["dir"] / "meas.h5")  # molmovie's reader is unchanged by the scales
    np.testing.assert_array_equal(again.dS, meas.dS)
    np.testing.assert_array_equal(again.delays, DELAYS)


def test_an_ensemble_fit_opens_with_delay_q_and_pair(files):
    res = files["ensemble"]
    with open_(files["dir"] / "ensemble.h5") as ds:
        for name in ("dS", "sigma", "dS_fit", "residual"):
            assert ds[name].dims == ("delay", "q"), name
        np.testing.assert_array_equal(ds["delay"].values, DELAYS)
        np.testing.assert_array_equal(ds["dS_fit"].values, res.dS_fit)
    with open_(files["dir"] / "ensemble.h5", "ensemble") as g:
        e = res.ensemble
        assert g["distance_mean"].dims == ("delay", "pair")
        assert g["channel_distance_quantiles"].dims == ("channel", "delay", "pair", "quantile")
        assert g["weights"].dims == ("trajectory",) and g["bootstrap_gamma"].dims == ("replicate",)
        assert text(g["pair"].values) == list(e.pair_labels) and text(g["channel"].values) == list(e.channels)
        np.testing.assert_array_equal(g["distance_mean"].values, e.distance_mean)
        np.testing.assert_array_equal(g["weights"].values, e.weights)
        assert not [d for d in g.dims if str(d).startswith("phony")]
    np.testing.assert_array_equal(read_fit(files["dir"] / "ensemble.h5").ensemble.distance_mean, res.ensemble.distance_mean)


def test_a_pdf_fit_opens_with_delay_pair_and_r(files):
    res = files["pdf"]
    with open_(files["dir"] / "pdf.h5", "pdf") as g:
        assert g["dP"].dims == ("delay", "pair", "r") and g["I_gs"].dims == ("q",)
        np.testing.assert_array_equal(g["r"].values, res.pdf.r)
        np.testing.assert_array_equal(g["dP"].values, res.pdf.dP)
        assert text(g["pair"].values) == list(res.pdf.pair_types)


def test_an_inversion_result_opens_with_series_time_and_pair(tmp_path):
    from molmovie.inversion import Prediction
    from molmovie.io import read_inversion, write_inversion

    rng = np.random.default_rng(0)
    pred = Prediction(rng.uniform(1, 3, (2, 4, 3)), rng.uniform(0, 0.1, (2, 4, 3)))
    time = np.array([0.0, 0.5, 1.5, 3.0])
    labels = ["C1-S2", "C1-S3", "S2-S3"]
    path = write_inversion(
        tmp_path / "r.h5",
        pred,
        time=time,
        lengths=[4, 3],
        method="vrnn",
        molecule="cs2",
        symbols=("C", "S", "S"),
        pair_labels=labels,
        model="m.safetensors",
        signals="s.h5",
        interpolated_q=False,
    )
    with open_(path) as ds:
        assert ds["distances"].dims == ("series", "time", "pair") and ds["std"].dims == ("series", "time", "pair")
        np.testing.assert_array_equal(ds["time"].values, time)
        assert text(ds["pair"].values) == labels
        np.testing.assert_array_equal(ds["distances"].sel(pair="S2-S3").values, pred.distances[..., 2])
    np.testing.assert_array_equal(read_inversion(path).distances, pred.distances)
