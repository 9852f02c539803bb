"""The contract every inversion method keeps (after scikit-learn's estimator checks).

One suite, parametrised over every registered method: fit returns self,
predict before fit fails clearly, shapes and NaN past each length, a saved
model predicts identically after a fresh load (in another process), settings
are validated, a seed makes training deterministic, and bad input is refused
with an InputError. The small datasets built here are also used by the other
inversion and CLI test modules.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from molmovie import InputError
from molmovie.datasets import Dataset, make_splits
from molmovie.inversion import METHODS, VRNN, NearestReference, Prediction, get_method, load_method
from molmovie.scattering import SignalSpec
from molmovie.trajectories import Ensemble

# ----------------------------------------------------------------------------- data

Z = {"H": 1.0, "C": 6.0, "N": 7.0, "O": 8.0, "S": 16.0}


def debye_z(symbols, R, q):
    """Eq. (1) with constant form factors f = Z: a cheap, exact stand-in signal model."""
    z = np.array([Z[s] for s in symbols])
    i, j = np.triu_indices(len(symbols), 1)
    qr = q * R[..., None]
    return (z**2).sum() + 2 * np.einsum("p,...pq->...q", z[i] * z[j], np.sin(qr) / qr)


def cs2_positions(M, T, *, seed=0, dissociate=0.3, dt=5.0):
    """CS2 vibrating (symmetric/antisymmetric stretch, bend, random phases) and, for a
    fraction, losing one S (either one); dissociating runs stop early. (M, T, 3, 3), lengths."""
    rng = np.random.default_rng(seed)
    t = np.arange(T) * dt
    pos = np.full((M, T, 3, 3), np.nan)
    length = np.full(M, T)
    diss = np.zeros(M, bool)
    for m in range(M):
        a_s, a_a, a_b = rng.uniform(0.02, 0.12, 3)
        ph = rng.uniform(0, 2 * np.pi, 3)
        r1 = 1.56 + a_s * np.sin(2 * np.pi * t / 50 + ph[0]) + a_a * np.sin(2 * np.pi * t / 25 + ph[1])
        r2 = 1.56 + a_s * np.sin(2 * np.pi * t / 50 + ph[0]) - a_a * np.sin(2 * np.pi * t / 25 + ph[1])
        theta = np.pi - 2.5 * a_b * np.abs(np.sin(2 * np.pi * t / 80 + ph[2]))
        if rng.random() < dissociate:
            diss[m] = True
            grow = np.clip(t - rng.uniform(0.1, 0.5) * t[-1], 0, None) * rng.uniform(0.02, 0.06)
            if rng.random() < 0.5:
                r1 = r1 + grow
            else:
                r2 = r2 + grow
            length[m] = rng.integers(max(2, T // 2), T + 1)
        frame = np.zeros((T, 3, 3))
        frame[:, 1, 2] = r1
        frame[:, 2, 0] = r2 * np.sin(theta)
        frame[:, 2, 2] = r2 * np.cos(theta)
        pos[m, : length[m]] = frame[: length[m]]
    return t, pos, length, diss


def make_dataset(M=24, T=12, Q=16, *, seed=0, dissociate=0.3, symbols=("C", "S", "S"), q_max=8.0):
    """A small molmovie Dataset of CS2-like trajectories with ΔS (reference: first frame)."""
    t, pos, length, diss = cs2_positions(M, T, seed=seed, dissociate=dissociate)
    ens = Ensemble("cs2" if symbols == ("C", "S", "S") else "test", symbols, t, pos, length, diss, [f"run{m}" for m in range(M)])
    q = np.linspace(0.5, q_max, Q)
    R = ens.distances
    intensity = debye_z(symbols, np.where(np.isnan(R), 1.0, R), q)
    I_ref = intensity[:, 0]
    dS = intensity / I_ref[:, None] - 1.0
    dS[~ens.mask] = np.nan
    spec = SignalSpec(q, inelastic=True, reference="first", photons=None, irf_fs=None, seed=0)
    return Dataset(ens, dS=dS, I_ref=I_ref, spec=spec, splits=make_splits(M, (70, 15, 15), seed=seed))


#: Small, fast settings per method for the contract suite.
FAST = {
    "nearest": {},
    "vrnn": dict(hidden=8, features=6, latent_free=2, epochs=3, batch_size=4, physics=0.0, device="cpu"),
    "nearest-viterbi": dict(k=4),
}


def fast_method(name, **extra):
    return get_method(name, **{**FAST[name], **extra})


@pytest.fixture(scope="module")
def data():
    ds = make_dataset()
    return ds.split("train"), ds.split("val"), ds.split("test")


@pytest.fixture(scope="module")
def fitted(data):
    train, val, _ = data
    return {name: fast_method(name).fit(train, val) for name in METHODS}


methods = pytest.mark.parametrize("name", sorted(METHODS))


def test_every_method_has_small_settings():
    assert set(FAST) == set(METHODS)


# ----------------------------------------------------------------------------- protocol


@methods
def test_fit_returns_self_and_sets_state(name, data):
    train, val, _ = data
    method = fast_method(name)
    assert not method.is_fitted
    assert method.fit(train, val) is method
    assert method.is_fitted
    assert method.symbols_ == ("C", "S", "S") and method.pair_labels_ == ["C1-S2", "C1-S3", "S2-S3"]
    np.testing.assert_array_equal(method.q_, train.q)


@methods
def test_constructor_only_stores_settings(name):
    method = fast_method(name)
    assert not any(k.endswith("_") and not k.startswith("_") for k in vars(method))
    assert method.get_params() == {**type(method)().get_params(), **FAST[name]}


@methods
def test_predict_before_fit_is_a_clear_error(name, data):
    _, _, test = data
    with pytest.raises(InputError, match="not fitted yet.*fit"):
        fast_method(name).predict(test.dS, q=test.q, lengths=test.length)
    with pytest.raises(InputError, match="not fitted"):
        fast_method(name).save("never-written.safetensors")


@methods
def test_prediction_shapes_and_nan_past_length(name, fitted, data):
    _, _, test = data
    assert np.any(test.length < test.n_frames), "the test data must have short trajectories"
    pred = fitted[name].predict(test.dS, q=test.q, lengths=test.length)
    assert isinstance(pred, Prediction)
    M, T = test.n_trajectories, test.n_frames
    assert pred.distances.shape == (M, T, 3)
    assert np.array_equal(np.isfinite(pred.distances).all(axis=2), test.mask)
    assert np.all(np.isnan(pred.distances[~test.mask]))
    assert np.all(pred.distances[test.mask] > 0)
    if pred.std is not None:
        assert pred.std.shape == (M, T, 3)
        assert np.array_equal(np.isfinite(pred.std).all(axis=2), test.mask)
        assert np.all(pred.std[test.mask] > 0)
    # lengths inferred from the trailing NaN frames give the same answer
    again = fitted[name].predict(test.dS, q=test.q)
    np.testing.assert_array_equal(again.distances, pred.distances)


@methods
def test_predict_ignores_values_past_length(name, fitted, data):
    _, _, test = data
    dS = test.dS.copy()
    dS[~test.mask] = 123.0  # garbage past each length
    a = fitted[name].predict(dS, q=test.q, lengths=test.length)
    b = fitted[name].predict(test.dS, q=test.q, lengths=test.length)
    np.testing.assert_array_equal(a.distances, b.distances)


@methods
def test_saved_model_predicts_identically_in_a_fresh_process(name, fitted, data, tmp_path):
    _, _, test = data
    path = tmp_path / f"{name}.safetensors"
    fitted[name].save(path)
    np.savez(tmp_path / "in.npz", dS=test.dS, q=test.q, length=test.length)
    script = textwrap.dedent(
        f"""
        import numpy as np
        from molmovie.inversion import load_method
        d = np.load({str(tmp_path / "in.npz")!r})
        m = load_method({str(path)!r})
        p = m.predict(d["dS"], q=d["q"], lengths=d["length"])
        np.savez({str(tmp_path / "out.npz")!r}, R=p.distances, s=np.zeros(0) if p.std is None else p.std)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    out = np.load(tmp_path / "out.npz")
    pred = fitted[name].predict(test.dS, q=test.q, lengths=test.length)
    np.testing.assert_array_equal(out["R"], pred.distances)
    if pred.std is not None:
        np.testing.assert_array_equal(out["s"], pred.std)
    # in-process load by class and by registry
    loaded = type(fitted[name]).load(path)
    assert loaded.get_params() == fitted[name].get_params()
    assert loaded.symbols_ == fitted[name].symbols_ and loaded.molecule_ == "cs2"
    np.testing.assert_array_equal(load_method(path).predict(test.dS, q=test.q).distances, pred.distances)


@methods
def test_save_refuses_to_overwrite_without_force(name, fitted, tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_text("keep me")
    with pytest.raises(InputError, match="exists"):
        fitted[name].save(path)
    assert path.read_text() == "keep me"
    fitted[name].save(path, force=True)
    assert load_method(path).is_fitted
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary file left


@methods
def test_same_seed_same_model(name, data):
    train, val, test = data
    a = fast_method(name).fit(train, val).predict(test.dS, q=test.q)
    b = fast_method(name).fit(train, val).predict(test.dS, q=test.q)
    np.testing.assert_array_equal(a.distances, b.distances)


def test_vrnn_seed_matters_and_fit_leaves_global_rng_alone(data):
    import torch

    train, val, test = data
    state = torch.get_rng_state()
    a = fast_method("vrnn", seed=1).fit(train, val).predict(test.dS, q=test.q)
    assert torch.equal(torch.get_rng_state(), state)
    b = fast_method("vrnn", seed=2).fit(train, val).predict(test.dS, q=test.q)
    assert not np.allclose(a.distances, b.distances)


# ----------------------------------------------------------------------------- settings

BAD_SETTINGS = {
    "nearest": [dict(memory_mb=0), dict(memory_mb="big")],
    "nearest-viterbi": [
        dict(k=0),
        dict(k=2.5),
        dict(k=1001),
        dict(lam=-1.0),
        dict(lam=float("nan")),
        dict(lam=1e7),
        dict(symmetry="yes"),
        dict(memory_mb=0),
    ],
    "vrnn": [
        dict(hidden=0),
        dict(hidden=2.5),
        dict(beta=-1.0),
        dict(alpha=0.0),
        dict(target="sqrt"),
        dict(device="tpu"),
        dict(symmetry="yes"),
        dict(lr=0.0),
        dict(epochs=True),
    ],
}


@methods
def test_bad_settings_are_refused_at_fit(name, data):
    train, _, _ = data
    assert set(BAD_SETTINGS) == set(METHODS)
    for bad in BAD_SETTINGS[name]:
        method = fast_method(name, **bad)  # the constructor only stores
        with pytest.raises(InputError, match=f"'{next(iter(bad))}' setting"):
            method.fit(train)


@methods
def test_bad_settings_are_refused_by_check_settings_before_any_data(name):
    assert fast_method(name).check_settings() == []
    for bad in BAD_SETTINGS[name]:
        with pytest.raises(InputError, match=f"'{next(iter(bad))}' setting"):
            fast_method(name, **bad).check_settings()


@methods
def test_clone_and_set_params_like_scikit_learn(name, fitted):
    model = fitted[name]
    copy = model.clone()
    assert type(copy) is type(model) and copy.get_params() == model.get_params() and not copy.is_fitted
    key, value = next(iter(BAD_SETTINGS[name][0].items()))
    changed = model.clone(**{key: value})
    assert getattr(changed, key) == value and getattr(model, key) != value
    assert changed.set_params(**{key: getattr(model, key)}) is changed and changed.get_params() == model.get_params()
    with pytest.raises(InputError, match="no setting 'hiden'"):
        changed.set_params(hiden=3)
    assert model.is_fitted  # cloning leaves the original alone


def test_registry_lookup_and_unknown_names():
    assert isinstance(get_method("nearest"), NearestReference)
    assert isinstance(get_method("vrnn", hidden=4), VRNN)
    with pytest.raises(InputError, match="unknown inversion method 'knn'.*nearest, vrnn"):
        get_method("knn")
    with pytest.raises(InputError, match="no setting 'hiden'"):
        get_method("vrnn", hiden=4)


def test_vrnn_cuda_without_gpu_is_refused(data):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    train, _, _ = data
    with pytest.raises(InputError, match="no CUDA GPU"):
        fast_method("vrnn", device="cuda").fit(train)


# ----------------------------------------------------------------------------- bad input


@methods
def test_bad_signals_are_refused(name, fitted, data):
    _, _, test = data
    method = fitted[name]
    dS, q, L = test.dS, test.q, test.length
    bad = dS.copy()
    bad[0, 0, 3] = np.nan
    with pytest.raises(InputError, match="NaN or inf"):
        method.predict(bad, q=q, lengths=L)
    with pytest.raises(InputError, match="NaN or inf"):
        method.predict(bad, q=q)
    bad = dS.copy()
    bad[0, 1, 0] = np.inf
    with pytest.raises(InputError, match="NaN or inf"):
        method.predict(bad, q=q, lengths=L)
    with pytest.raises(InputError, match=r"shape \(series, frames, q\)"):
        method.predict(dS[0], q=q)
    with pytest.raises(InputError, match="one value per column"):
        method.predict(dS, q=q[:-1])
    with pytest.raises(InputError, match="q grid .* differs .*--interpolate-q"):
        method.predict(dS, q=q * 1.01, lengths=L)
    with pytest.raises(InputError, match="lengths must be"):
        method.predict(dS, q=q, lengths=L[:-1])
    with pytest.raises(InputError, match="lengths must lie between"):
        method.predict(dS, q=q, lengths=L + 100)


@methods
def test_empty_or_signal_less_training_data_is_refused(name, data):
    train, _, _ = data
    with pytest.raises(InputError, match="training split is empty"):
        fast_method(name).fit(train.subset(np.zeros(0, dtype=int)))
    no_signals = train.subset(np.arange(3))
    no_signals.dS = None
    with pytest.raises(InputError, match="no scattering signals.*molmovie scatter"):
        fast_method(name).fit(no_signals)
    broken = train.subset(np.arange(3))
    broken.dS = broken.dS.copy()
    broken.dS[0, 0, 0] = np.inf
    with pytest.raises(InputError, match="NaN or inf"):
        fast_method(name).fit(broken)


@methods
def test_validation_data_of_another_molecule_is_refused(name, data):
    train, _, _ = data
    other = make_dataset(M=6, symbols=("O", "C", "O")).split("train")
    with pytest.raises(InputError, match="another molecule"):
        fast_method(name).fit(train, other)


@methods
def test_model_knows_its_molecule(name, fitted):
    fitted[name].check_molecule(("C", "S", "S"))
    with pytest.raises(InputError, match=r"model of cs2 \(C S S\), data of CO2 \(O C O\)"):
        fitted[name].check_molecule(("O", "C", "O"))


# ----------------------------------------------------------------------------- model files


class _Payload:
    """Unpickling this object creates a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_payload_is_refused_and_never_runs(tmp_path):
    import torch

    marker = tmp_path / "PWNED"
    evil = tmp_path / "model.safetensors"
    evil.write_bytes(pickle.dumps(_Payload(str(marker))))
    evil_torch = tmp_path / "model.pt"
    torch.save({"weights": _Payload(str(marker))}, evil_torch)
    for path in (evil, evil_torch):
        with pytest.raises(InputError, match="pickle.*never unpickles"):
            load_method(path)
        for cls in METHODS.values():
            with pytest.raises(InputError):
                cls.load(path)
    assert not marker.exists()
    pickle.loads(evil.read_bytes()).close()  # the payload is live: unpickling it does create the marker
    assert marker.exists()


def test_missing_corrupt_and_foreign_model_files(fitted, tmp_path):
    with pytest.raises(InputError, match="no such model file"):
        load_method(tmp_path / "absent.safetensors")
    with pytest.raises(InputError, match="folder"):
        load_method(tmp_path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(InputError, match="not a readable molmovie model"):
        load_method(junk)
    # a damaged safetensors file whose header length begins like a pickle (0x80 0x03) is still called damaged
    pickle_like = tmp_path / "pickle-like.safetensors"
    pickle_like.write_bytes((0x0380).to_bytes(8, "little") + b'{"a": 1')
    with pytest.raises(InputError, match="not a readable molmovie model"):
        load_method(pickle_like)
    good = tmp_path / "good.safetensors"
    fitted["vrnn"].save(good)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(InputError, match="not a readable molmovie model"):
        load_method(truncated)
    from safetensors.numpy import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"a": np.zeros(3)}, str(plain))
    with pytest.raises(InputError, match="not a molmovie model"):
        load_method(plain)
    with pytest.raises(InputError, match="holds a 'vrnn' model, not a 'nearest'"):
        NearestReference.load(good)


def test_damaged_model_arrays_are_refused(fitted, tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    good = tmp_path / "good.safetensors"
    fitted["vrnn"].save(good)
    with safe_open(str(good), framework="np") as f:
        meta = f.metadata()
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    weights = [k for k in arrays if k.startswith("net.")]
    wrong = dict(arrays)
    wrong[weights[0]] = np.zeros((1, 1), dtype=np.float32)
    save_file(wrong, str(tmp_path / "wrong.safetensors"), metadata=meta)
    with pytest.raises(InputError, match="damaged.*weights do not fit"):
        load_method(tmp_path / "wrong.safetensors")
    missing = {k: v for k, v in arrays.items() if k != "y_std"}
    save_file(missing, str(tmp_path / "missing.safetensors"), metadata=meta)
    with pytest.raises(InputError, match="damaged.*'y_std' is missing"):
        load_method(tmp_path / "missing.safetensors")
