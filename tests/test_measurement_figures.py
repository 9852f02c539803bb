"""The measurement's maps draw what they say: ΔS in percent and |ΔS|/σ over delay and q, with exact cell edges."""

from __future__ import annotations

import numpy as np
import pytest

from molmovie.evaluation.fit_figures import plot_fit_signals
from molmovie.evaluation.measurement_figures import plot_dS_map, plot_snr_map

Q = np.array([1.0, 2.0, 4.0])  # non-uniform: edges 0.5, 1.5, 3, 5
DELAYS = np.array([-100.0, 0.0, 100.0, 300.0])  # edges -150, -50, 50, 200, 400
DS = np.arange(12.0).reshape(4, 3) / 1000 - 0.005


@pytest.fixture(autouse=True)
def close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _mesh(ax):
    (mesh,) = [c for c in ax.collections if hasattr(c, "get_coordinates")]
    return mesh


def test_dS_map_draws_percent_on_the_cell_edges_with_a_centred_colour_scale():
    fig = plot_dS_map(Q, DELAYS, DS, vmax=0.4)
    ax = fig.axes[0]
    mesh = _mesh(ax)
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(3, 4), 100 * DS.T)
    corners = mesh.get_coordinates()
    np.testing.assert_allclose(corners[0, :, 0], [-150, -50, 50, 200, 400])
    np.testing.assert_allclose(corners[:, 0, 1], [0.5, 1.5, 3, 5])
    assert mesh.get_clim() == (-0.4, 0.4)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("delay (fs)", "q (1/Å)", "ΔS(q, t)")
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "ΔS (%)"  # the colour bar


def test_snr_map_leaves_bins_without_sigma_blank_and_shows_ps_for_long_scans():
    sigma = np.full(DS.shape, 0.002)
    sigma[1, 2] = 0.0
    delays = DELAYS * 10  # spans 4 ps: shown in ps
    fig = plot_snr_map(Q, delays, DS, sigma, colorbar=False)
    ax = fig.axes[0]
    mesh = _mesh(ax)
    values = np.ma.masked_invalid(np.asarray(mesh.get_array())).reshape(3, 4)
    expect = np.abs(DS) / np.where(sigma > 0, sigma, np.nan)
    assert values.mask[2, 1] and values.mask.sum() == 1
    np.testing.assert_allclose(values.filled(np.nan).T[sigma > 0], expect[sigma > 0])
    np.testing.assert_allclose(mesh.get_coordinates()[0, :, 0], [-1.5, -0.5, 0.5, 2.0, 4.0])
    assert mesh.get_clim()[0] == 0 and ax.get_xlabel() == "delay (ps)" and len(fig.axes) == 1


def test_fit_signal_maps_share_the_cell_edges():
    fig = plot_fit_signals(Q, DELAYS, DS, DS, np.zeros_like(DS))
    corners = _mesh(fig.axes[0]).get_coordinates()
    np.testing.assert_allclose(corners[0, :, 0], [-150, -50, 50, 200, 400])  # delay across, as in `show`
    np.testing.assert_allclose(corners[:, 0, 1], [0.5, 1.5, 3, 5])  # q up
