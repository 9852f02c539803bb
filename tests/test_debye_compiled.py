"""Eq. (1) and its gradient by the compiled kernels (DebyeCompiled), pinned to the PyTorch reference (DebyeTorch).

Reference answers: the PyTorch module (itself pinned to NumPy and to finite
differences in test_scattering.py), torch.autograd.gradcheck (finite
differences), and the exact limits at R = 0 and q = 0.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_scattering import nmm_geometries

from molmovie import InputError
from molmovie.geometry import distances

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

from molmovie.scattering import DebyeCompiled, DebyeTorch  # noqa: E402

GRIDS = {
    "uniform": np.linspace(0.5, 6.8, 100),  # the study's grid: the recurrence of both kernels
    "uniform from 0": np.linspace(0.0, 6.8, 60),  # q = 0: the direct path of the gradient
    "non-uniform": np.sort(np.random.default_rng(3).uniform(0.0, 8.0, 37)),
}


def _distance_rows(seed: int) -> np.ndarray:
    """NMM geometries (153 pairs) and rows with tiny, zero, long and NaN distances."""
    symbols, pos = nmm_geometries(70, seed=seed)
    d = distances(pos)
    d[1, :5] = [0.0, 1e-6, 1e-3, 0.02, 0.09]  # the series of sinc' and its switch-over
    d[2, 7] = 250.0
    d[3, 3] = 4e4  # beyond the recurrence's range check for the grid's q r
    return d


@pytest.mark.parametrize("grid", list(GRIDS))
def test_values_and_gradients_equal_pytorchs_to_1e10(grid):
    q = GRIDS[grid]
    symbols = nmm_geometries(1, seed=0)[0]
    d = _distance_rows(seed=11)
    ref, comp = DebyeTorch(symbols, q), DebyeCompiled(symbols, q)
    cotangent = torch.from_numpy(np.random.default_rng(5).standard_normal((len(d), len(q))))
    got = {}
    for name, model in (("torch", ref), ("compiled", comp)):
        x = torch.tensor(d, requires_grad=True)
        intensity = model(x)
        (intensity * cotangent).sum().backward()
        got[name] = intensity.detach().numpy(), x.grad.numpy()
    np.testing.assert_allclose(got["compiled"][0], got["torch"][0], rtol=1e-10, atol=0)
    # the gradient: a sum of signed terms, so to 1e-10 of its scale per geometry
    scale = np.abs(got["torch"][1]).max(axis=1, keepdims=True)
    np.testing.assert_allclose(got["compiled"][1], got["torch"][1], rtol=0, atol=1e-10 * scale.max())
    assert np.all(np.abs(got["compiled"][1] - got["torch"][1]) <= 1e-10 * scale)
    # the closed-form Jacobian too (the Hessians and the continuation's Levenberg-Marquardt use it)
    I_ref, J_ref = ref.value_and_jacobian(torch.from_numpy(d))
    I_got, J_got = comp.value_and_jacobian(torch.from_numpy(d))
    np.testing.assert_allclose(I_got.numpy(), I_ref.numpy(), rtol=1e-10, atol=0)
    np.testing.assert_allclose(J_got.numpy(), J_ref.numpy(), rtol=0, atol=1e-10 * np.abs(J_ref.numpy()).max())


def test_gradients_pass_gradcheck_including_zero_distance_and_zero_q():
    model = DebyeCompiled(["C", "S", "S"], [0.0, 0.5, 2.0, 6.8])
    d = torch.tensor([[1.55, 1.60, 3.15], [1e-5, 1.4, 2.0], [0.8, 2e-4, 0.9]], dtype=torch.float64, requires_grad=True)
    # central differences (step 1e-7) lose ~eps |I| / step to rounding, |I| up to (6 + 16 + 16)² = 1444 at q = 0
    atol = 4 * np.finfo(float).eps * float(model(d).detach().abs().max()) / 1e-7
    assert torch.autograd.gradcheck(model, (d,), eps=1e-7, atol=atol, rtol=1e-6)
    # the uniform grid's recurrence, on a batch of more geometries than one block of lanes
    model = DebyeCompiled(["C", "S", "S"], np.linspace(0.5, 6.8, 40))
    d = torch.from_numpy(1.2 + 2.0 * np.random.default_rng(2).random((40, 3))).requires_grad_(True)
    atol = 4 * np.finfo(float).eps * float(model(d).detach().abs().max()) / 1e-7
    assert torch.autograd.gradcheck(model, (d,), eps=1e-7, atol=atol, rtol=1e-6)
    # exactly zero distance: the limit d sinc(x)/dx = 0
    z = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    model(z).sum().backward()
    assert torch.all(z.grad == 0)


def test_a_subset_of_pairs_is_its_part_of_eq1_with_its_gradient():
    """pairs(index): Σ over the listed pairs of w_p sinc(q R_p); with the others' part and the constant, Eq. (1)."""
    q = GRIDS["uniform"]
    symbols = nmm_geometries(1, seed=0)[0]
    d = _distance_rows(seed=4)
    full = DebyeCompiled(symbols, q)
    some = np.array([0, 5, 17, 40, 152])
    rest = np.setdiff1d(np.arange(full.n_pairs), some)
    x = torch.tensor(d, requires_grad=True)
    want = DebyeTorch(symbols, q)(x)
    cotangent = torch.from_numpy(np.random.default_rng(6).standard_normal(want.shape))
    (want * cotangent).sum().backward()
    y = torch.tensor(d[:, some], requires_grad=True)
    got = full.const + full.pairs(rest)(torch.from_numpy(d[:, rest])) + full.pairs(some)(y)
    (got * cotangent).sum().backward()
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-10, atol=0)
    np.testing.assert_allclose(y.grad.numpy(), x.grad[:, some].numpy(), rtol=0, atol=1e-10 * x.grad.abs().max().item())
    _, J = full.pairs(some).value_and_jacobian(torch.from_numpy(d[:, some]))
    _, J_full = full.value_and_jacobian(torch.from_numpy(d))
    np.testing.assert_array_equal(J.numpy(), J_full[..., some].numpy())
    with pytest.raises(InputError, match="between 0 and 152"):
        full.pairs([153])


def test_shapes_nan_and_what_it_refuses():
    model = DebyeCompiled(["C", "S", "S"], GRIDS["uniform"])
    x = torch.tensor([[[np.nan, 1.5, 3.1], [1.55, 1.55, 3.1]]], dtype=torch.float64, requires_grad=True)
    out = model(x)
    assert out.shape == (1, 2, 100)
    assert torch.isnan(out[0, 0]).all() and torch.isfinite(out[0, 1]).all()
    out[0, 1].sum().backward()
    # as PyTorch's: a NaN distance has a NaN gradient (0 x NaN), the others of its row 0
    y = x.detach().clone().requires_grad_(True)
    DebyeTorch(["C", "S", "S"], GRIDS["uniform"])(y)[0, 1].sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), y.grad.numpy(), rtol=1e-10, atol=0)
    assert torch.isnan(x.grad[0, 0, 0]) and torch.all(x.grad[0, 0, 1:] == 0) and torch.all(x.grad[0, 1] != 0)
    empty = model(torch.zeros((0, 3), dtype=torch.float64))
    assert empty.shape == (0, 100)
    with pytest.raises(InputError, match=r"shape \(\.\.\., 3\)"):
        model(torch.ones(2, 4, dtype=torch.float64))
    with pytest.raises(InputError, match="float64 distances on the CPU"):
        model(torch.ones(2, 3, dtype=torch.float32))
    with pytest.raises(InputError, match="must be torch.float64"):
        DebyeCompiled(["C", "S", "S"], GRIDS["uniform"], dtype=torch.float32)
    with pytest.raises(InputError, match="CPU only"):
        DebyeCompiled(["C", "S", "S"], GRIDS["uniform"], device="cuda")


@pytest.mark.parametrize("reference", ["first", "given"])
def test_the_signal_fits_data_term_in_one_node_passes_gradcheck_and_equals_pytorchs(reference):
    """The fit's ½ Σ_q ((I/I_ref - 1 - ΔS)/σ)² per frame, over some moving pairs with the others held as background."""
    from molmovie.inversion._refine_misfit import Misfit

    q = np.linspace(0.5, 6.8, 30)
    symbols = ["C", "O", "S", "H"]  # 6 pairs; move 3, hold 3
    rng = np.random.default_rng(8)
    d = 1.1 + 2.0 * rng.random((2, 5, 6))
    moving, held = np.array([0, 1, 3]), np.array([2, 4, 5])
    full = DebyeCompiled(symbols, q)
    background = (full.const + full.pairs(held)(torch.from_numpy(d[..., held]))).numpy()
    data, sigma = 0.01 * rng.standard_normal((2, 5, 30)), 0.003 + 0.01 * rng.random((2, 30))
    ref = None if reference == "first" else DebyeTorch(symbols, q)(torch.from_numpy(d[:, 0] * 1.02)).numpy()
    u = torch.from_numpy(np.log(d[..., moving])).requires_grad_(True)

    def compiled(u):
        return Misfit.apply(u, full.pairs(moving), background, data, sigma, ref)

    def pytorch(u):
        R = torch.from_numpy(d).index_copy(-1, torch.from_numpy(moving), u.exp())
        intensity = DebyeTorch(symbols, q)(R)
        r0 = intensity[:, :1] if ref is None else torch.from_numpy(ref)[:, None]
        resid = (intensity / r0 - 1.0 - torch.from_numpy(data)) / torch.from_numpy(sigma)[:, None]
        return 0.5 * (resid**2).sum(-1)

    np.testing.assert_allclose(compiled(u).detach().numpy(), pytorch(u).detach().numpy(), rtol=1e-10, atol=0)
    w = torch.from_numpy(rng.standard_normal((2, 5)))
    (g_c,) = torch.autograd.grad((compiled(u) * w).sum(), u)
    (g_t,) = torch.autograd.grad((pytorch(u) * w).sum(), u)
    np.testing.assert_allclose(g_c.numpy(), g_t.numpy(), rtol=0, atol=1e-10 * g_t.abs().max().item())
    assert torch.autograd.gradcheck(compiled, (u,), eps=1e-6, atol=1e-6, rtol=1e-6)
