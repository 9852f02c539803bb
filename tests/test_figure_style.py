"""Every figure is journal-ready (molmovie.evaluation._style): one or two columns wide, no text under 7 pt,
PNG at 300 dpi beside a PDF, maps with the delay across and q up, and the truth drawn where it is known."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from molmovie.evaluation import figures as sf, fit_figures as ff
from molmovie.evaluation._style import DOUBLE_COLUMN, MIN_FONT_PT, SINGLE_COLUMN, figure_files, smallest_font
from molmovie.evaluation.inversion_figures import plot_inversion
from molmovie.evaluation.measurement_figures import plot_measurement
from molmovie.fitting import get_measurement_method
from molmovie.measurement import simulate_measurement

from _fit_fixtures import diatomic_ensemble

RNG = np.random.default_rng(0)
Q = np.linspace(0.5, 6.0, 10)
DELAYS = np.linspace(-100.0, 500.0, 13)
DS = 0.01 * RNG.standard_normal((13, 10))


def _figures():
    T, P, K = 13, 3, 5
    mean = 2 + RNG.random((T, P))
    quant = np.sort(mean[..., None] + RNG.random((T, P, K)) - 0.5, axis=-1)
    yield "fit signals", ff.plot_fit_signals(Q, DELAYS, DS, DS, RNG.standard_normal(DS.shape), truth_dS=DS)
    yield (
        "distance bands",
        ff.plot_distance_bands(DELAYS, ["A-B", "A-C", "B-C"], mean, 0.1 * mean, quant, np.linspace(0.05, 0.95, K)),
    )
    boot = RNG.random(20)
    yield "parameters", ff.plot_parameters(0.05, 0.01, 30.0, 2.0, 80.0, 5.0, boot, boot, boot, truth=(0.05, 30.0, 80.0))
    r = np.linspace(1, 5, 20)
    yield (
        "pdf map",
        ff.plot_pdf_map(DELAYS, r, RNG.random((13, 2, 20)), RNG.random((13, 2, 20)), ["C-S", "S-S"], sine=RNG.random((13, 20))),
    )
    yield "hole", ff.plot_hole(2 + RNG.random((30, 1)), RNG.random(30), ["I1-I2"])
    yield "measurement", plot_measurement(Q, DELAYS, DS, np.full(DS.shape, 0.002), title="a title " * 30)
    d = 2 + RNG.random((4, 13, 3))
    yield "inversion", plot_inversion(DELAYS, d, ["C1-S2", "C1-S3", "S2-S3"], std=0.1 * d, symbols=("C", "S", "S"), truth=d)
    yield "rmsd sums", sf.plot_rmsd_sums(["a", "b"], {"labelled": {"x": [1.0, 2.0], "y": [2.0, 3.0]}})
    yield "per time step", sf.plot_per_time_step(DELAYS, {"x": {"rmsd": RNG.random(13), "ssr": RNG.random(13)}})
    yield "signals", sf.plot_signals(DELAYS, Q, {"truth": DS, "VRNN": DS})
    yield "distance trace", sf.plot_distance_trace(DELAYS, mean[:, 0], {"x": (mean[:, 1], None)}, pair_label="A-B")
    levels = [0.0, 0.01, 0.1]
    yield "noise ladder", sf.plot_noise_ladder(levels, {f"panel {k}": {"x": ([1.0, 2.0, 3.0], None)} for k in range(5)})


@pytest.mark.parametrize(("name", "fig"), list(_figures()), ids=lambda v: v if isinstance(v, str) else "")
def test_figures_are_a_column_wide_with_readable_text(name, fig):
    try:
        width = fig.get_size_inches()[0]
        assert width in (SINGLE_COLUMN, DOUBLE_COLUMN), (name, width)
        fig.canvas.draw()
        assert smallest_font(fig) >= MIN_FONT_PT, name
    finally:
        plt.close(fig)


def test_figure_files_are_png_at_300_dpi_and_pdf():
    fig = ff.plot_parameters(0.05, 0.01, 30.0, 2.0, 80.0, 5.0, RNG.random(5), RNG.random(5), RNG.random(5))
    files = figure_files(fig)
    plt.close(fig)
    assert set(files) == {"png", "pdf"} and files["pdf"][:5] == b"%PDF-"
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(files["png"]))
    assert image.size == (round(DOUBLE_COLUMN * 300), round(2.4 * 300))


def test_delay_across_and_q_up_in_the_maps_of_show_and_fit():
    for fig, ax_index in ((ff.plot_fit_signals(Q, DELAYS, DS, DS, DS), 0), (plot_measurement(Q, DELAYS, DS, None), 0)):
        ax = fig.axes[ax_index]
        assert ax.get_xlabel().startswith("delay") and ax.get_ylabel().startswith("q"), (ax.get_xlabel(), ax.get_ylabel())
        plt.close(fig)


def test_the_fit_figures_draw_the_truth_of_a_simulated_measurement():
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
    result = (
        get_measurement_method("ensemble", bootstrap=2, profile=0, grid=(3, 2))
        .fit(meas, diatomic_ensemble(8, seed=1, t_end=700.0, dt=25.0))
        .result_
    )
    figs = ff.fit_figures(result, meas)
    try:
        assert sorted(figs) == sorted(ff.fit_figure_names("ensemble"))
        bands = figs["ensemble_distances"].axes[0]
        (truth,) = [line for line in bands.get_lines() if line.get_label() == "truth (mean)"]
        np.testing.assert_array_equal(truth.get_ydata(), meas.truth.distance_mean[:, 0])
        params = figs["ensemble_parameters"].axes
        drawn = [line.get_xdata()[0] for a in params for line in a.get_lines() if str(line.get_label()).startswith("truth")]
        assert drawn == [0.05, 30.0, 70.0]
        lineouts = figs["ensemble_fit_signals"].axes[3]
        assert any(line.get_label() == "truth" for line in lineouts.get_lines())
        without = ff.fit_figures(result)  # no measurement given: nothing labelled truth
        assert not [line for f in without.values() for a in f.axes for line in a.get_lines() if "truth" in str(line.get_label())]
    finally:
        plt.close("all")
