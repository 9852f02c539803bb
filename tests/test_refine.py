"""Signal fit at inference: MAP distances under the prediction as prior, against exact answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from molmovie import InputError
from molmovie.geometry import distances
from molmovie.inversion import VRNN, NearestReference, refine_distances
from molmovie.scattering import SignalSpec, intensity_from_distances, simulate

from test_inversion import FAST, make_dataset

Q = np.linspace(0.5, 6.8, 40)
I2 = ["I", "I"]


def _diatomic_objective(u, dS, m, s, I_ref, sigma, w):
    """The refinement's objective for one distance, written out in NumPy (the independent Eq. (1))."""
    model = intensity_from_distances(I2, np.array([np.exp(u)]), Q) / I_ref - 1.0
    return 0.5 * np.sum(((model - dS) / sigma) ** 2) + 0.5 * w * ((u - np.log(m)) / (s / m)) ** 2


@pytest.mark.parametrize("sigma, w", [(1e-2, 1.0), (3e-2, 4.0)])
def test_diatomic_map_and_laplace_std_match_scipy_on_the_same_objective(sigma, w):
    spec = SignalSpec(Q, reference="ground")
    I_ref = intensity_from_distances(I2, np.array([2.70]), Q)
    R_true, m, s = np.array([2.66, 2.80]), np.array([2.72, 2.70]), np.array([0.05, 0.08])
    dS = intensity_from_distances(I2, R_true[:, None], Q) / I_ref - 1.0  # (T=2, Q), exact
    got, got_std = refine_distances(
        m[:, None], s[:, None], dS, symbols=I2, spec=spec, I_ref=I_ref, noise=sigma, weight=w, device="cpu"
    )
    for t in range(2):
        f = lambda u, t=t: _diatomic_objective(u, dS[t], m[t], s[t], I_ref, sigma, w)  # noqa: E731
        best = minimize_scalar(f, bounds=(np.log(m[t]) - 0.1, np.log(m[t]) + 0.1), method="bounded", options={"xatol": 1e-12})
        assert got[t, 0] == pytest.approx(np.exp(best.x), abs=1e-6)
        # the Laplace std: the Gauss-Newton curvature of the same objective, by central differences of the model
        u, h = best.x, 1e-6
        J = (
            (
                intensity_from_distances(I2, np.array([np.exp(u + h)]), Q)
                - intensity_from_distances(I2, np.array([np.exp(u - h)]), Q)
            )
            / (2 * h)
            / I_ref
        )
        H = np.sum((J / sigma) ** 2) + w / (s[t] / m[t]) ** 2
        assert got_std[t, 0] == pytest.approx(np.exp(u) / np.sqrt(H), rel=1e-5)
    # the data pull toward the truth: the MAP lies between the prior mean and the true distance
    assert np.all(np.abs(got[:, 0] - R_true) < np.abs(m - R_true))


def _rounding_reach(fit, dS, answer):
    """How far rounding alone moves a fit's answer: ``fit`` of ΔS changed by two units in its last place.

    Two kernels that round differently (or PyTorch on another CPU, whose reductions run in another order)
    agree to this reach, not to a fixed number of digits: it is tiny where the fit converges, ~1e-4
    relative where it stops short of its minimum. Returned per output, as 10x the reach plus 8 eps of the answer.
    """
    moved = fit(dS * (1 + 2 * np.finfo(float).eps))
    return [10 * np.abs(b - a).max() + 8 * np.finfo(float).eps * np.abs(a).max() for a, b in zip(answer, moved)]


OCS = ["O", "C", "S"]  # no two atoms alike, so no relabelling fits the signal as well as the truth


def _ocs(T=30, reference="first", seed=1):
    """Exact ΔS of two vibrating, bending OCS trajectories: distances (2, T, 3) and ΔS (2, T, Q)."""
    rng = np.random.default_rng(seed)
    t = np.arange(T) * 5.0
    pos = np.zeros((2, T, 3, 3))
    for m in range(2):
        r1 = 1.16 + 0.05 * np.sin(2 * np.pi * t / (90 + 20 * m))
        r2 = 1.56 + 0.08 * np.cos(2 * np.pi * t / 70)
        angle = np.pi - 0.3 * (1 - np.cos(2 * np.pi * t / 300)) + 0.01 * rng.standard_normal(T)
        pos[m, :, 0, 0] = -r1
        pos[m, :, 2, 0] = r2 * np.cos(np.pi - angle)
        pos[m, :, 2, 1] = r2 * np.sin(np.pi - angle)
    spec = SignalSpec(Q, reference=reference)
    sig = simulate(OCS, pos, [T, T], t, spec)
    return distances(pos), sig.dS, spec, sig.I_ref


def _residual(D, dS, I_ref=None):
    intensity = intensity_from_distances(OCS, D, Q)
    return np.sum((intensity / (intensity[:, :1] if I_ref is None else I_ref[:, None]) - 1.0 - dS) ** 2)


@pytest.mark.parametrize("reference", ["first", "ground"])
def test_wide_prior_moves_toward_the_truth_and_lowers_the_residual(reference):
    R, dS, spec, I_ref = _ocs(reference=reference)
    # a prior offset from the truth by a known amount, with a wide std; with reference "first" (the reference
    # refined with the frames) the first frame's error makes every frame's reference wrong too
    offset = np.array([0.05, -0.06, 0.08])
    prior = R + offset
    std = np.full_like(R, 0.3)
    # with reference "ground" the reference is known (a model keeps its training set's mean I_ref)
    ref = None if reference == "first" else I_ref
    got, got_std = refine_distances(
        prior, std, dS, symbols=OCS, spec=spec, I_ref=ref, noise=1e-3, max_iter=300, posterior="laplace", device="cpu"
    )
    before, after = np.abs(prior - R).mean(), np.abs(got - R).mean()
    assert after < before / 20  # 0.063 Å before
    assert _residual(got, dS, ref) < _residual(prior, dS, ref) / 100
    # the data narrow the wide prior (except the first frame of reference "first", whose own ΔS is 0 by construction)
    first = 1 if reference == "first" else 0
    assert np.all(got_std[:, first:] < std[:, first:] / 3)
    if first:
        np.testing.assert_allclose(got_std[:, 0] / got[:, 0], std[:, 0] / prior[:, 0])


def test_tight_prior_stays_at_the_prior():
    R, dS, spec, _ = _ocs(T=12)
    prior = R + np.array([0.05, -0.06, 0.08])
    std = np.full_like(R, 1e-7)
    got, got_std = refine_distances(prior, std, dS, symbols=OCS, spec=spec, posterior="laplace", device="cpu")
    np.testing.assert_allclose(got, prior, atol=1e-6)
    np.testing.assert_allclose(got_std, std, rtol=1e-3)
    # so does any prior with an overwhelming weight
    got, _ = refine_distances(prior, np.full_like(R, 0.3), dS, symbols=OCS, spec=spec, weight=1e12, device="cpu")
    np.testing.assert_allclose(got, prior, atol=1e-6)


def test_frames_past_each_length_are_ignored_and_series_are_independent():
    R, dS, spec, I_ref = _ocs(T=16, reference="ground")
    prior, std = R + 0.05, np.full_like(R, 0.2)
    kw = dict(symbols=OCS, spec=spec, I_ref=I_ref[0], noise=1e-3, device="cpu")
    whole, _ = refine_distances(prior, std, dS, **kw)
    cut = dS.copy()
    cut[1, 10:] = np.nan
    part, part_std = refine_distances(np.where(np.isnan(cut[..., :3]), np.nan, prior), std, cut, lengths=[16, 10], **kw)
    assert np.all(np.isnan(part[1, 10:])) and np.all(np.isnan(part_std[1, 10:]))
    np.testing.assert_allclose(part[0], whole[0], atol=1e-6)
    one, _ = refine_distances(prior[1, :10], std[1, :10], dS[1, :10], **kw)
    np.testing.assert_allclose(part[1, :10], one, atol=1e-6)
    np.testing.assert_allclose(part[1, :10], R[1, :10], atol=1e-4)
    # a series' answer does not depend on which others are refined with it: bit for bit
    alone, alone_std = refine_distances(prior[:1], std[:1], dS[:1], **kw)
    np.testing.assert_array_equal(alone[0], whole[0])


def test_photon_noise_sets_the_data_weight():
    """With photons, σ_q is the Poisson σ of ΔS: more photons, a fit closer to the signal, a narrower posterior."""
    R, dS, _, I_ref = _ocs(T=10, reference="ground")
    prior, std = R + 0.05, np.full_like(R, 0.05)
    err, width = [], []
    for photons in (1e5, 1e9):
        spec = SignalSpec(Q, reference="ground", photons=photons, seed=0)
        got, got_std = refine_distances(prior, std, dS, symbols=OCS, spec=spec, I_ref=I_ref[0], device="cpu")
        err.append(np.abs(got - R).mean())
        width.append(np.mean(got_std))
    assert err[1] < err[0] / 10 and width[1] < width[0] / 10


def test_bad_input_is_one_clear_error():
    R, dS, spec, _ = _ocs(T=6)
    std = np.full_like(R, 0.1)
    kw = dict(symbols=OCS, spec=spec)
    with pytest.raises(InputError, match="std"):
        refine_distances(R, -std, dS, **kw)
    with pytest.raises(InputError, match="'dS' parameter must have shape"):
        refine_distances(R, std, dS[..., :-1], **kw)
    with pytest.raises(InputError, match="pairs"):
        refine_distances(R, std, dS, symbols=["O", "C"], spec=spec)
    with pytest.raises(InputError, match=r"time resolution \(irf_fs 50 fs\) need the frames' spacing"):
        refine_distances(R, std, dS, symbols=OCS, spec=SignalSpec(Q, irf_fs=50.0))
    with pytest.raises(InputError, match="'dt' setting must be > 0"):
        refine_distances(R, std, dS, symbols=OCS, spec=SignalSpec(Q, irf_fs=50.0), dt=0.0)
    with pytest.raises(InputError, match="'weight' setting"):
        refine_distances(R, std, dS, weight=0.0, **kw)
    with pytest.raises(InputError, match="'noise' parameter"):
        refine_distances(R, std, dS, noise=np.ones(3), **kw)
    with pytest.raises(InputError, match="'noise' parameter"):
        refine_distances(R, std, dS, noise="loud", **kw)
    with pytest.raises(InputError, match="'pairs' setting"):
        refine_distances(R, std, dS, pairs="light", **kw)
    with pytest.raises(InputError, match=r"got shape \(2, 6, 40\)"):  # the shape given, not a part of it
        refine_distances(R[0], std[0], dS, **kw)


def test_vrnn_refine_setting_is_the_refinement_of_its_prediction():
    ds = make_dataset(M=10, T=8, Q=12, dissociate=0.0, seed=3)
    model = VRNN(**FAST["vrnn"]).fit(ds)
    assert model.refine and model.refine_space == "geometry"  # the defaults
    plain = model.set_params(refine=False).predict(ds.dS, q=ds.q)
    want = refine_distances(
        plain.distances, plain.std, ds.dS, symbols=ds.symbols, spec=ds.spec, lengths=ds.length, space="geometry", device="cpu"
    )
    got = model.set_params(refine=True).predict(ds.dS, q=ds.q)
    np.testing.assert_allclose(got.distances, want[0], rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(got.std, want[1], rtol=1e-10, equal_nan=True)
    for bad in (dict(refine="yes"), dict(refine_weight=0.0), dict(refine_noise=-1.0)):
        with pytest.raises(InputError, match="refine"):
            model.clone(**bad).check_settings()
    # signals with an instrument response: the fit smears its ΔS at the training frame interval
    from dataclasses import replace

    model.spec_ = replace(model.spec_, irf_fs=50.0)
    want = refine_distances(
        plain.distances,
        plain.std,
        ds.dS,
        symbols=ds.symbols,
        spec=model.spec_,
        lengths=ds.length,
        space="geometry",
        device="cpu",
        dt=model.dt_,
    )
    got = model.set_params(refine=True).predict(ds.dS, q=ds.q)
    np.testing.assert_allclose(got.distances, want[0], rtol=1e-10, equal_nan=True)
    # a model file of before the frame interval was recorded: skipped, not an error
    model.dt_ = None
    np.testing.assert_array_equal(model.set_params(refine=True).predict(ds.dS, q=ds.q).distances, plain.distances)


def test_nearest_refine_setting_uses_its_relative_prior_width():
    ds = make_dataset(M=10, T=8, Q=12, dissociate=0.0, seed=4)
    train, test = ds.split("train"), ds.split("test")
    model = NearestReference().fit(train)
    plain = model.predict(test.dS, q=test.q)
    assert plain.std is None
    want = refine_distances(
        plain.distances, 0.05 * plain.distances, test.dS, symbols=ds.symbols, spec=ds.spec, lengths=test.length
    )
    got = model.set_params(refine=True, refine_std=0.05).predict(test.dS, q=test.q)
    np.testing.assert_allclose(got.distances, want[0], rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(got.std, want[1], rtol=1e-10, equal_nan=True)
    with pytest.raises(InputError, match="refine_std"):
        model.clone(refine_std=0.0).check_settings()


def test_noise_free_signals_keep_the_priors_relative_width_by_default():
    R, dS, spec, _ = _ocs(T=8)
    prior, std = R + 0.03, 0.02 * (R + 0.03)
    got, got_std = refine_distances(prior, std, dS, symbols=OCS, spec=spec, device="cpu")
    np.testing.assert_allclose(got_std / got, 0.02, rtol=1e-12)
    assert np.abs(got - R)[:, 1:].mean() < np.abs(prior - R)[:, 1:].mean()


def test_heavy_pairs_only_leaves_the_hydrogen_pairs_at_the_prior():
    HCN = ["H", "C", "N"]  # pairs H-C, H-N, C-N
    T = 10
    pos = np.zeros((1, T, 3, 3))
    pos[0, :, 0, 0] = -1.07 - 0.03 * np.sin(np.arange(T))
    pos[0, :, 2, 0] = 1.16 + 0.04 * np.cos(np.arange(T))
    spec = SignalSpec(Q, reference="ground")
    sig = simulate(HCN, pos, [T], np.arange(T) * 5.0, spec)
    R = distances(pos)
    prior, std = R + 0.04, np.full_like(R, 0.2)
    got, got_std = refine_distances(
        prior, std, sig.dS, symbols=HCN, spec=spec, I_ref=sig.I_ref[0], noise=1e-3, pairs="heavy", device="cpu"
    )
    np.testing.assert_allclose(got[..., :2], prior[..., :2], rtol=1e-14)
    np.testing.assert_allclose(got_std[..., :2], std[..., :2], rtol=1e-12)
    assert np.abs(got[..., 2] - R[..., 2]).max() < 0.01  # 0.04 before

    # the compiled kernel computes the held pairs' part of Eq. (1) once: the PyTorch fit's answer, to rounding
    def torch_fit(data):
        return refine_distances(
            prior, std, data, symbols=HCN, spec=spec, I_ref=sig.I_ref[0], noise=1e-3, pairs="heavy", kernel="torch"
        )

    want, want_std = torch_fit(sig.dS)
    tol, tol_std = _rounding_reach(torch_fit, sig.dS, (want, want_std))
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    np.testing.assert_allclose(got_std, want_std, rtol=0, atol=tol_std)
    assert tol < 1e-8 * np.abs(want).max()  # a converged fit: rounding reaches the 9th digit at most


@pytest.mark.parametrize("space", ["distances", "geometry"])
@pytest.mark.parametrize("reference", ["first", "ground"])
def test_compiled_kernel_is_the_cpu_default_and_reaches_the_pytorch_fit(space, reference):
    """kernel="auto" on the CPU is the compiled kernel (bit for bit), and it reaches the answer of the PyTorch
    forward model, the reference (the two agree to 1e-10 and their gradients too: test_debye_compiled.py)."""
    R, dS, spec, I_ref = _ocs(T=16, reference=reference)
    prior, std = R + np.array([0.05, -0.06, 0.08]), np.full_like(R, 0.3)
    ref = None if reference == "first" else I_ref[0]
    kw = dict(symbols=OCS, spec=spec, I_ref=ref, noise=1e-3, posterior="laplace", space=space, device="cpu")
    want, want_std = refine_distances(prior, std, dS, kernel="torch", **kw)
    # the kernels compared under one optimiser (L-BFGS, PyTorch's only one); the compiled kernels' own default
    # for distances, Levenberg-Marquardt, is tested against the minimum below
    solver = {"solver": "lbfgs"} if space == "distances" else {}
    got, got_std = refine_distances(prior, std, dS, kernel="compiled", **kw, **solver)
    auto, auto_std = refine_distances(prior, std, dS, **kw, **solver)
    np.testing.assert_array_equal(auto, got)
    np.testing.assert_array_equal(auto_std, got_std)
    if space == "distances":
        default = refine_distances(prior, std, dS, **kw)
        explicit = refine_distances(prior, std, dS, kernel="compiled", solver="gauss-newton", **kw)
        np.testing.assert_array_equal(default[0], explicit[0])
        np.testing.assert_array_equal(default[1], explicit[1])
    # the same answer, to what rounding alone moves it: where the fit converges, ~1e-11 relative; the geometry fit
    # with reference "first" stops short of its minimum (0.9 mÅ from the truth here), where the path decides the
    # last digits: two ulps of ΔS move PyTorch's own answer by ~1.6e-4 Å and its std by ~6e-4 relative (measured)
    tol, tol_std = _rounding_reach(lambda data: refine_distances(prior, std, data, kernel="torch", **kw), dS, (want, want_std))
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    np.testing.assert_allclose(got_std, want_std, rtol=0, atol=tol_std)
    slow = space == "geometry" and reference == "first"
    assert tol < (1e-2 if slow else 1e-8) * np.abs(want).max()  # the reach is rounding's, not a failed fit's
    assert np.abs(got - R).mean() < np.abs(prior - R).mean() / 20
    with pytest.raises(InputError, match="'kernel' setting"):
        refine_distances(prior, std, dS, kernel="numba", **kw)


def _map_objective(u, dS, mean, std, I_ref, sigma, w):
    """The fit of distances' objective over log distances u (M, T, P), written out in NumPy (Eq. (1) of the package's
    independent ``intensity_from_distances``); I_ref None: each series' first frame."""
    intensity = intensity_from_distances(OCS, np.exp(u), Q)
    ref = intensity[:, :1] if I_ref is None else I_ref[:, None]
    data = 0.5 * np.sum(((intensity / ref - 1.0 - dS) / sigma) ** 2)
    return data + 0.5 * w * np.sum(((u - np.log(mean)) / (std / mean)) ** 2)


@pytest.mark.parametrize("reference", ["first", "ground"])
def test_gauss_newton_reaches_the_minimum_of_the_fit_of_distances(reference):
    """Levenberg-Marquardt (the compiled kernels' default) ends where the objective is stationary, by central
    differences of the objective written out in NumPy; it is the minimum L-BFGS approaches given many iterations,
    and it lies no higher than L-BFGS's answer after its default 100."""
    R, dS, spec, I_ref = _ocs(T=16, reference=reference)
    prior, std = R + np.array([0.05, -0.06, 0.08]), np.full_like(R, 0.3)
    ref = None if reference == "first" else I_ref[0]
    kw = dict(symbols=OCS, spec=spec, I_ref=ref, noise=1e-3, pairs="all", device="cpu")
    got, _ = refine_distances(prior, std, dS, solver="gauss-newton", **kw)
    ref_rows = None if ref is None else np.broadcast_to(ref, (2, len(Q)))

    def f(u):
        return _map_objective(u, dS, prior, std, ref_rows, 1e-3, 1.0)

    def gradient(u, h=1e-6):  # central differences
        out = np.zeros_like(u)
        for idx in np.ndindex(u.shape):
            step = np.zeros_like(u)
            step[idx] = h
            out[idx] = (f(u + step) - f(u - step)) / (2 * h)
        return out

    # central differences of f ~ 1e2 carry ~1e-7 of rounding; the gradient at the prior's mean is ~1e6
    assert np.abs(gradient(np.log(got))).max() < 1e-9 * np.abs(gradient(np.log(prior))).max()
    many, _ = refine_distances(prior, std, dS, solver="lbfgs", max_iter=3000, **kw)
    np.testing.assert_allclose(got, many, rtol=0, atol=1e-8)
    hundred, _ = refine_distances(prior, std, dS, solver="lbfgs", **kw)
    assert f(np.log(got)) <= f(np.log(hundred)) * (1 + 1e-12)


def test_gauss_newton_is_refused_where_it_does_not_apply():
    R, dS, spec, _ = _ocs(T=8)
    kw = dict(symbols=OCS, noise=1e-3, device="cpu", solver="gauss-newton")
    with pytest.raises(InputError, match="'solver' setting 'gauss-newton' needs the compiled kernels"):
        refine_distances(R, 0.1 * R, dS, spec=spec, kernel="torch", **kw)
    with pytest.raises(InputError, match="without a time resolution"):
        refine_distances(R, 0.1 * R, dS, spec=SignalSpec(Q, reference="first", irf_fs=50.0), dt=5.0, **kw)
    with pytest.raises(InputError, match="'solver' setting"):
        refine_distances(R, 0.1 * R, dS, spec=spec, symbols=OCS, solver="newton")


# ---------------------------------------------------------------- the fit of coordinates (space="geometry")


@pytest.mark.parametrize("posterior", ["laplace", "prior"])
def test_geometry_space_is_the_fit_of_distances_for_a_diatomic(posterior):
    """Two atoms have one distance and every positive value is a geometry: both spaces solve the same problem."""
    spec = SignalSpec(Q, reference="ground")
    I_ref = intensity_from_distances(I2, np.array([2.70]), Q)
    m, s = np.array([[2.72], [2.70]]), np.array([[0.05], [0.08]])
    dS = intensity_from_distances(I2, np.array([[2.66], [2.80]]), Q) / I_ref - 1.0
    kw = dict(symbols=I2, spec=spec, I_ref=I_ref, noise=1e-2, posterior=posterior, device="cpu")
    want, want_std = refine_distances(m, s, dS, **kw)
    got, got_std = refine_distances(m, s, dS, space="geometry", **kw)
    np.testing.assert_allclose(got, want, atol=1e-7)
    np.testing.assert_allclose(got_std, want_std, rtol=1e-5)


def test_geometry_space_answers_the_nearest_geometry_to_a_prior_no_geometry_has():
    """A prior that breaks the triangle inequality, and a signal that says nothing: the answer is the collinear
    geometry that minimises the prior term, checked against scipy on the two free lengths."""
    from scipy.optimize import minimize

    R, dS, spec, _ = _ocs(T=3)
    prior = np.broadcast_to([1.20, 1.50, 3.40], R.shape).copy()  # O-C + C-S = 2.70 < O-S = 3.40
    std = prior * np.array([0.05, 0.10, 0.08])
    got, _ = refine_distances(prior, std, dS, symbols=OCS, spec=spec, noise=1e6, space="geometry", device="cpu")

    def prior_term(lengths):  # the best geometry is straight: O-S = O-C + C-S
        u = np.log([lengths[0], lengths[1], lengths[0] + lengths[1]])
        return np.sum(((u - np.log(prior[0, 0])) / (std[0, 0] / prior[0, 0])) ** 2)

    best = minimize(prior_term, prior[0, 0, :2], method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-14})
    want = [best.x[0], best.x[1], best.x.sum()]
    np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), atol=1e-5)
    # the fit of distances keeps the impossible set
    free, _ = refine_distances(prior, std, dS, symbols=OCS, spec=spec, noise=1e6, device="cpu")
    np.testing.assert_allclose(free, prior, atol=1e-6)


@pytest.mark.parametrize("reference", ["first", "ground"])
def test_geometry_space_moves_toward_the_truth_and_lowers_the_residual(reference):
    R, dS, spec, I_ref = _ocs(reference=reference)
    prior = R + np.array([0.05, -0.06, 0.08])
    std = np.full_like(R, 0.3)
    ref = None if reference == "first" else I_ref
    got, _ = refine_distances(prior, std, dS, symbols=OCS, spec=spec, I_ref=ref, noise=1e-3, space="geometry", device="cpu")
    assert np.abs(got - R).mean() < np.abs(prior - R).mean() / 20  # 0.063 Å before
    assert _residual(got, dS, ref) < _residual(prior, dS, ref) / 100
    # every answer is a triangle
    assert np.all(got[..., 2] <= got[..., 0] + got[..., 1] + 1e-9)


@pytest.mark.parametrize("reference", ["first", "ground"])
def test_geometry_space_series_are_independent_and_end_at_their_lengths(reference):
    """A series' answer does not depend on the others refined with it, nor on their lengths (up to the rounding
    of batched BLAS products, which differ in the last bits between one matrix and several; an L-BFGS over
    several series moved single frames by up to 0.7 Å). Three series of 12, 9 and 6 frames: the continuation's
    batches at each frame hold three, two or one of them."""
    T = 12
    (R, dS, spec, I_ref), (R2, dS2, _, _) = _ocs(T=T, reference=reference), _ocs(T=T, reference=reference, seed=5)
    R, dS = np.concatenate([R, R2[:1]]), np.concatenate([dS, dS2[:1]])
    rng = np.random.default_rng(0)
    prior, std = R * (1 + 0.06 * rng.standard_normal(R.shape)), 0.15 * R
    lengths = np.array([12, 9, 6])
    cut = dS.copy()
    for m, L in enumerate(lengths):
        cut[m, L:] = np.nan
    kw = dict(
        symbols=OCS, spec=spec, I_ref=None if reference == "first" else I_ref[0], noise=1e-3, space="geometry", device="cpu"
    )
    whole, whole_std = refine_distances(prior, std, cut, lengths=lengths, **kw)
    assert np.all(np.isnan(whole[1, 9:])) and np.all(np.isnan(whole_std[2, 6:]))
    # Each fit keeps a step when its objective f (~1) falls, which it tells only to ~eps f, so it fixes the whitened
    # distances to ~sqrt(eps) (log R to 0.15 sqrt(eps)): a last-bit difference between whole and alone (a batched
    # product, a padded frame in a sum) may move an answer that far (a 1-ulp change of ΔS moved series 1 and 2 by up
    # to 1e-9); the Laplace std's Hessian varies as sin(qR), by q_max R_max ~ 20 times the distances' relative change
    rtol = np.sqrt(np.finfo(float).eps)
    for m, L in enumerate(lengths):
        alone, alone_std = refine_distances(prior[m, :L], std[m, :L], dS[m, :L], **kw)
        np.testing.assert_allclose(whole[m, :L], alone, rtol=rtol, atol=0, err_msg=f"series {m}")
        np.testing.assert_allclose(whole_std[m, :L], alone_std, rtol=20 * rtol, atol=0, err_msg=f"series {m}")
        assert np.abs(alone - R[m, :L]).mean() < np.abs(prior[m, :L] - R[m, :L]).mean() / 5


def test_unknown_space_is_refused():
    R, dS, spec, _ = _ocs(T=4)
    with pytest.raises(InputError, match="'space' setting"):
        refine_distances(R, 0.1 * R, dS, symbols=OCS, spec=spec, space="coordinates")


def test_vrnn_refine_space_setting_is_passed_to_the_fit():
    ds = make_dataset(M=10, T=8, Q=12, dissociate=0.0, seed=3)
    model = VRNN(**FAST["vrnn"]).fit(ds)
    plain = model.set_params(refine=False).predict(ds.dS, q=ds.q)
    want = refine_distances(
        plain.distances, plain.std, ds.dS, symbols=ds.symbols, spec=ds.spec, lengths=ds.length, space="distances", device="cpu"
    )
    got = model.set_params(refine=True, refine_space="distances").predict(ds.dS, q=ds.q)
    np.testing.assert_allclose(got.distances, want[0], rtol=1e-10, equal_nan=True)
    with pytest.raises(InputError, match="refine_space"):
        model.clone(refine_space="atoms").check_settings()


def _departing_cs2(T=30):
    """A linear-ish CS2 whose second S leaves (1.56 to 9 Å), exact ΔS against the first frame's intensity."""
    pos = np.zeros((T, 3, 3))
    pos[:, 1, 0] = -1.56
    pos[:, 2, 0] = np.linspace(1.56, 9.0, T)
    pos[:, 2, 1] = 0.3 * np.linspace(0.0, 1.0, T)
    R = distances(pos)
    I_ref = intensity_from_distances(CS2, R[0], Q)
    return R, intensity_from_distances(CS2, R, Q) / I_ref - 1.0, SignalSpec(Q, reference="ground"), I_ref


CS2 = ["C", "S", "S"]


def _posterior(D, prior, std, dS, I_ref, sigma):
    """Each frame's posterior objective, written out in NumPy (prior in log R, Eq. (1) misfit)."""
    resid = (intensity_from_distances(CS2, D, Q) / I_ref - 1.0 - dS) / sigma
    return 0.5 * np.sum(resid**2, axis=-1) + 0.5 * np.sum(((np.log(D) - np.log(prior)) / (std / prior)) ** 2, axis=-1)


def test_continuation_tracks_a_departing_atom_from_the_first_frame():
    """With no joint fit (max_iter 0) every frame starts at the prior, 25 % short of the leaving S; the
    continuation carries the right first frame along, frame by frame, to the truth."""
    R, dS, spec, I_ref = _departing_cs2()
    prior = R * np.linspace(1.0, 0.75, len(R))[:, None]
    std = 0.2 * prior
    kw = dict(symbols=CS2, spec=spec, I_ref=I_ref, noise=1e-3, space="geometry", max_iter=0, device="cpu")
    stuck, _ = refine_distances(prior, std, dS, sweeps=0, **kw)
    np.testing.assert_allclose(stuck, prior, rtol=1e-9)  # no fit at all: the prior is a geometry here
    got, _ = refine_distances(prior, std, dS, sweeps=1, **kw)
    assert np.abs(got - R).max() < 0.02  # 2.2 Å before


def test_continuation_never_raises_a_frames_posterior_objective():
    R, dS, spec, I_ref = _departing_cs2()
    rng = np.random.default_rng(2)
    prior = R * (1 + 0.15 * rng.standard_normal(R.shape))
    std = 0.1 * prior
    kw = dict(symbols=CS2, spec=spec, I_ref=I_ref, noise=0.03, space="geometry", device="cpu")
    before, _ = refine_distances(prior, std, dS, sweeps=0, **kw)
    after, _ = refine_distances(prior, std, dS, sweeps=2, **kw)
    f0, f1 = (_posterior(D, prior, std, dS, I_ref, 0.03) for D in (before, after))
    assert np.all(f1 <= f0 * (1 + 1e-9) + 1e-9)
    with pytest.raises(InputError, match="'sweeps' setting"):
        refine_distances(prior, std, dS, sweeps=-1, **kw)


def test_distance_fit_continuation_lowers_every_frames_objective_and_finds_the_leaving_atom():
    """Levenberg-Marquardt from a prior 15 % off (noise 0.03) leaves some frames of the leaving S in other minima of
    the sinc misfit (4.6 Å off); refitted from their neighbours' answers they find the truth's, and no frame's
    objective rises (the reference is given, so the frames are independent problems)."""
    R, dS, spec, I_ref = _departing_cs2()
    rng = np.random.default_rng(2)
    prior = R * (1 + 0.15 * rng.standard_normal(R.shape))
    std = 0.1 * prior
    kw = dict(symbols=CS2, spec=spec, I_ref=I_ref, noise=0.03, device="cpu", solver="gauss-newton")
    before, _ = refine_distances(prior, std, dS, sweeps=0, **kw)
    after, _ = refine_distances(prior, std, dS, sweeps=1, **kw)
    f0, f1 = (_posterior(D, prior, std, dS, I_ref, 0.03) for D in (before, after))
    assert np.all(f1 <= f0 * (1 + 1e-9) + 1e-9)
    assert f1.sum() < f0.sum() / 2  # 277 before, 97 after
    assert np.abs(before - R).max() > 2.0 and np.abs(after - R).max() < 0.3


@pytest.mark.parametrize("space", ["distances", "geometry"])
def test_signals_with_a_time_resolution_are_fitted_through_it(space):
    """ΔS smeared by a 40 fs IRF over 5 fs frames (simulate's own smoothing): the fit that smears its ΔS the same way
    finds the truth from an offset prior; the same fit told there is no IRF is held off by the smearing."""
    T = 30
    R, _, _, _ = _ocs(T=T, reference="ground")
    t = np.arange(T) * 5.0
    from molmovie.geometry import coordinates_from_distances

    pos = coordinates_from_distances(R)
    spec = SignalSpec(Q, reference="ground", irf_fs=40.0)
    sig = simulate(OCS, pos, [T, T], t, spec)
    prior, std = R + np.array([0.05, -0.06, 0.08]), np.full_like(R, 0.3)
    kw = dict(symbols=OCS, I_ref=sig.I_ref[0], noise=1e-3, max_iter=300, device="cpu", space=space)
    got, got_std = refine_distances(prior, std, sig.dS, spec=spec, dt=5.0, **kw)
    blind, _ = refine_distances(prior, std, sig.dS, spec=SignalSpec(Q, reference="ground"), **kw)
    inner = slice(8, T - 8)  # away from the ends, where the smearing renormalises over fewer frames
    err, err_blind = np.abs(got - R)[:, inner].mean(), np.abs(blind - R)[:, inner].mean()
    assert err < np.abs(prior - R).mean() / 10  # 0.063 Å before
    assert err < err_blind / 3
    assert np.all(got_std < std)


@pytest.mark.parametrize("reference", ["first", "ground"])
def test_gauss_newton_system_is_the_jacobians_by_finite_differences(reference):
    """The gradient and the blocks of JᵀJ that the compiled kernel accumulates (frames, frame 0's coupling and own
    block for the reference "first") equal those of the whole series' Jacobian taken by central differences of the
    residuals, written out with the package's independent Eq. (1); a masked frame counts for nothing."""
    from molmovie.inversion._refine_gauss_newton import _evaluate, _normal_equations
    from molmovie.scattering import DebyeCompiled

    R, dS, _, I_ref = _ocs(T=5, reference=reference)
    B, T, P = R.shape
    rng = np.random.default_rng(3)
    mu, s = np.log(R) + 0.02 * rng.standard_normal(R.shape), np.full(R.shape, 0.1)
    z = rng.standard_normal(R.shape)
    mask = np.ones((B, T))
    mask[1, 3:] = 0.0
    sigma, w = np.full((B, len(Q)), 1e-3), 0.7
    ref = None if reference == "first" else np.broadcast_to(I_ref[0], (B, len(Q))).copy()

    def residuals(zb, b):  # (T, Q) whitened residuals of series b, independently of the fit's code
        intensity = intensity_from_distances(OCS, np.exp(mu[b] + s[b] * zb), Q)
        r0 = intensity[:1] if ref is None else ref[b][None]
        return (intensity / r0 - 1.0 - dS[b]) / sigma[b] * mask[b][:, None]

    _, jac = _evaluate(DebyeCompiled(OCS, Q), 0.0, mu, s, dS, sigma, ref, mask, w, z, jacobian=True)
    g, H, Hc, H00 = _normal_equations(jac, z, mask, w, ref is None)
    for b in range(B):
        J = np.zeros((T * len(Q), T * P))
        for k in range(T * P):
            h = np.zeros(T * P)
            h[k] = 1e-6
            J[:, k] = (residuals(z[b] + h.reshape(T, P), b) - residuals(z[b] - h.reshape(T, P), b)).ravel() / 2e-6
        JtJ = J.T @ J
        grad = J.T @ residuals(z[b], b).ravel() + w * (mask[b][:, None] * z[b]).ravel()
        scale = np.abs(JtJ).max()
        np.testing.assert_allclose(g[b].ravel(), grad, rtol=0, atol=1e-6 * np.abs(grad).max())
        for t in range(T):
            block = JtJ[t * P : (t + 1) * P, t * P : (t + 1) * P] + w * np.eye(P)
            if ref is None and t == 0:
                np.testing.assert_allclose(H00[b], block, rtol=0, atol=1e-6 * scale)
                continue
            np.testing.assert_allclose(H[b, t], block, rtol=0, atol=1e-6 * scale)
            coupling = JtJ[t * P : (t + 1) * P, :P]  # with frame 0
            if t == 0:
                continue
            if ref is None:
                np.testing.assert_allclose(Hc[b, t], coupling, rtol=0, atol=1e-6 * scale)
            else:
                assert Hc is None and np.abs(coupling).max() == 0.0
        assert np.abs(g[b, mask[b] == 0]).max(initial=0.0) == 0.0


def test_damped_cholesky_solve_equals_a_general_solve_and_refuses_an_indefinite_matrix():
    """The compiled solve of (H + λ1) x = b (the Gauss-Newton steps) equals NumPy's LU solve on positive definite
    matrices, each with its own λ and several right-hand sides; where H + λ1 is not positive definite it answers NaN
    (a step the fit refuses) instead of a number."""
    from molmovie.inversion._refine_gn_kernels import cholesky_solve

    rng = np.random.default_rng(5)
    M, P, K = 6, 7, 3
    J = rng.standard_normal((M, 20, P))
    H = J.swapaxes(-1, -2) @ J
    lam = rng.uniform(0, 2, M)
    rhs = rng.standard_normal((M, P, K))
    H[-1] = -np.eye(P)  # indefinite even with its λ < 1
    out = np.empty_like(rhs)
    cholesky_solve(H, lam, rhs, out)
    want = np.linalg.solve(H[:-1] + lam[:-1, None, None] * np.eye(P), rhs[:-1])
    np.testing.assert_allclose(out[:-1], want, rtol=1e-10, atol=1e-12)
    assert np.isnan(out[-1]).all()
