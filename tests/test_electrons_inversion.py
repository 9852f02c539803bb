"""Learned inversion of electron signals: nearest, Viterbi and the VRNN train and invert ΔI/I as they do ΔS."""

from __future__ import annotations

import numpy as np
import pytest

from molmovie.evaluation.metrics import reconstruct_signal
from molmovie.inversion import get_method, load_method
from molmovie.inversion.losses import to_target
from molmovie.scattering import SignalSpec, simulate

from _fit_fixtures import diatomic_ensemble

S = np.linspace(0.5, 10.0, 24)


@pytest.fixture(scope="module")
def ued():
    basis = diatomic_ensemble(16, seed=3, t_end=200.0, dt=10.0)
    spec = SignalSpec(S, probe="electron", energy_kev=3700.0)
    ds = basis.with_signals(*simulate(basis.symbols, basis.positions, basis.length, basis.time, spec))
    return ds


def _splits(ds):
    idx = np.arange(ds.n_trajectories)
    return ds.subset(idx[:10]), ds.subset(idx[10:13]), ds.subset(idx[13:])


def test_reconstructed_signal_uses_the_electron_model(ued):
    np.testing.assert_allclose(
        reconstruct_signal(ued.ensemble.distances, ued.symbols, ued.q, ued.I_ref, **ued.spec.forward()), ued.dS, atol=1e-12
    )


@pytest.mark.parametrize(
    "name, settings",
    [
        ("nearest", {}),
        ("nearest-viterbi", {"k": 4}),
        ("vrnn", dict(hidden=8, features=6, latent_free=2, epochs=2, batch_size=4, physics=1.0, device="cpu")),
    ],
)
def test_methods_train_and_invert_electron_signals(ued, tmp_path, name, settings):
    train, val, test = _splits(ued)
    method = get_method(name, **settings).fit(train, val=val)
    assert method.spec_.probe == "electron" and method.spec_.energy_kev == 3700.0
    pred = method.predict(test.dS, q=test.q, lengths=test.length)
    assert pred.distances.shape == test.ensemble.distances.shape
    if name == "nearest":  # the training signals answer their own distances (past the first frames, all ΔS = 0 alike)
        own = method.predict(train.dS, q=train.q, lengths=train.length).distances
        np.testing.assert_allclose(own[:, 1:], train.ensemble.distances[:, 1:], atol=1e-12)
    back = load_method(method.save(tmp_path / f"{name}.safetensors"))
    assert back.spec_ == method.spec_
    np.testing.assert_allclose(back.predict(test.dS, q=test.q, lengths=test.length).distances, pred.distances, atol=1e-6)


def test_vrnn_physics_term_is_the_electron_forward_model(ued):
    import torch

    train, val, _ = _splits(ued)
    vrnn = get_method("vrnn", hidden=8, features=6, latent_free=2, epochs=1, batch_size=4, physics=1.0, device="cpu")
    vrnn.fit(train, val=val)
    R = train.ensemble.distances[:, :10]
    mu = (to_target(R, vrnn.target) - vrnn.y_mean_) / vrnn.y_std_
    dS = vrnn.signal_model()(torch.as_tensor(mu, dtype=torch.float32)).double().numpy()
    # float32 through the electron Debye sum: 1e-4 of the signal's size
    np.testing.assert_allclose(dS, train.dS[:, :10], atol=1e-4 * np.abs(train.dS[:, :10]).max())
