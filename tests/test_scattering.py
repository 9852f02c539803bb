"""Scattering forward model: form factors, Eq. (1) in NumPy/numba and PyTorch, ΔS.

Reference answers are exact or independent of the code under test:

- one atom gives f², two identical atoms 2f²(1 + sin(qr)/(qr)), q = 0 gives (Σ Z)²;
- xraylib's form factors against the Waasmaier-Kirfel fit (Acta Cryst. A51, 416
  (1995); the coefficients ASE ships, evaluated here at s = q/4π), and hydrogen's
  against its closed form f = (1 + (a₀q/2)²)⁻², S = 1 - f²;
- the compiled kernels against the plain NumPy broadcast, and the sine kernel
  against 100-digit arithmetic (mpmath);
- PyTorch against NumPy, and its gradients against finite differences (gradcheck).

NumPy floating-point errors raise in every test (tests/conftest.py).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from molmovie._errors import InputError
from molmovie.geometry import distances, n_pairs
from molmovie.molecules import atomic_numbers, builtin
from molmovie.scattering import (
    _kernels,
    difference_signal,
    form_factors,
    incoherent,
    intensity,
    intensity_from_distances,
)
from molmovie.scattering.debye import intensity_reference

Q = np.linspace(0.5, 6.8, 100)
BOHR = 0.529177210903  # Angstrom (CODATA 2018)

# Waasmaier & Kirfel (1995), Table 1: a1, b1, ..., a5, b5, c, as shipped in ase/utils/xrdebye.py.
WK = {
    "C": [2.657506, 14.780758, 1.078079, 0.776775, 1.490909, 42.086843, -4.241070, -0.000294, 0.713791, 0.239535, 4.297983],
    "N": [11.893780, 0.000158, 3.277479, 10.232723, 1.858092, 30.344690, 0.858927, 0.656065, 0.912985, 0.217287, -11.804902],
    "O": [2.960427, 14.182259, 2.5088111, 5.936858, 0.637053, 0.112726, 0.722838, 34.958481, 1.142756, 0.390240, 0.027014],
    "S": [6.372157, 1.514347, 5.154568, 22.092528, 1.473732, 0.061373, 1.635073, 55.445176, 1.209372, 0.646925, 0.154722],
}


def f_waasmaier_kirfel(symbol: str, q: np.ndarray) -> np.ndarray:
    """f(s) = Σ_i a_i exp(-b_i s²) + c at s = sin(θ)/λ = q/4π (the fit's own variable)."""
    a = WK[symbol]
    s2 = (q / (4 * np.pi)) ** 2
    return a[10] + sum(a[2 * i] * np.exp(-a[2 * i + 1] * s2) for i in range(5))


def f_hydrogen(q: np.ndarray) -> np.ndarray:
    """Form factor of the hydrogen 1s atom, exact: (1 + (a₀ q / 2)²)⁻²."""
    return 1.0 / (1.0 + (BOHR * q / 2) ** 2) ** 2


def debye_independent(f_rows: np.ndarray, d: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Eq. (1), elastic, written out pair by pair (double loop) for small tests."""
    n = len(f_rows)
    out = np.sum(f_rows**2, axis=0)
    k = 0
    for i in range(n):
        for j in range(i + 1, n):
            x = q * d[k]
            out = out + 2 * f_rows[i] * f_rows[j] * np.sin(x) / x
            k += 1
    return out


def nmm_geometries(n: int, seed: int, scale: float = 0.1) -> tuple[tuple[str, ...], np.ndarray]:
    mol = builtin("nmm")
    rng = np.random.default_rng(seed)
    return mol.symbols, mol.positions + rng.normal(0.0, scale, (n, mol.n_atoms, 3))


# ---------------------------------------------------------------- form factors


def test_form_factor_at_zero_is_the_atomic_number():
    symbols = ["H", "C", "N", "O", "S", "Cl", "Fe", "I", "U"]
    f0 = form_factors(symbols, [0.0])[:, 0]
    np.testing.assert_array_equal(f0, atomic_numbers(symbols))
    np.testing.assert_array_equal(incoherent(symbols, [0.0])[:, 0], 0.0)


@pytest.mark.parametrize("symbol", ["C", "N", "O", "S"])
def test_form_factors_agree_with_waasmaier_kirfel(symbol):
    f = form_factors([symbol], Q)[0]
    ref = f_waasmaier_kirfel(symbol, Q)
    # Two independent tabulations (Hubbell 1975 vs the Waasmaier-Kirfel fit to
    # Hartree-Fock densities) differ by at most 0.6 % (C) on this grid.
    np.testing.assert_allclose(f, ref, rtol=0.01)


def test_hydrogen_form_factor_and_incoherent_function_are_exact():
    f = form_factors(["H"], Q)[0]
    np.testing.assert_allclose(f, f_hydrogen(Q), rtol=1e-3)  # xraylib's 5-digit table
    # One electron: S = 1 - f² (Waller-Hartree).
    q = np.linspace(0.05, 6.8, 60)
    np.testing.assert_allclose(incoherent(["H"], q)[0], 1 - f_hydrogen(q) ** 2, atol=2e-4)


def test_incoherent_function_rises_from_zero_to_z():
    q = np.array([0.0, 0.5, 2.0, 6.8, 4 * np.pi * 100])
    S = incoherent(["C", "N", "O", "S"], q)
    assert np.all(np.diff(S, axis=1) > 0)
    np.testing.assert_allclose(S[:, -1], [6, 7, 8, 16], rtol=1e-6)


def test_small_q_below_the_tables_is_smooth():
    # xraylib refuses x = q/4π below 1e-7 (f) and 1e-3 (S); the small-x expansion takes over.
    q = np.array([0.0, 1e-9, 1e-7, 1e-5, 1e-3, 0.005, 0.0125, 0.013, 0.02])
    f = form_factors(["C"], q)[0]
    S = incoherent(["C"], q)[0]
    assert np.all(np.abs(f - 6.0) < 1e-4)
    assert np.all(np.diff(S) >= 0) and S[0] == 0.0 and S[1] < 1e-15
    # continuous across the table's first S point, x = 1e-3 (q = 0.012566)
    q_table = 4 * np.pi * 1e-3
    below, above = incoherent(["C"], [q_table * (1 - 1e-9), q_table * (1 + 1e-9)])[0]
    assert abs(above - below) < 1e-10


def test_form_factor_input_errors():
    with pytest.raises(InputError, match="must be >= 0"):
        form_factors(["C"], [-0.1, 1.0])
    with pytest.raises(InputError, match="unknown element"):
        form_factors(["Xx"], Q)
    with pytest.raises(InputError, match="Z = 98"):
        form_factors(["Es"], Q)
    with pytest.raises(InputError, match="finite"):
        incoherent(["C"], [np.nan])


# ---------------------------------------------------------------- Eq. (1), exact cases


def test_one_atom_gives_its_form_factor_squared():
    f = form_factors(["C"], Q)[0]
    S = incoherent(["C"], Q)[0]
    pos = np.zeros((1, 3))
    np.testing.assert_allclose(intensity(["C"], pos, Q, inelastic=False), f**2, rtol=1e-15)
    np.testing.assert_allclose(intensity(["C"], pos, Q), f**2 + S, rtol=1e-15)


@pytest.mark.parametrize(
    "q", [Q, np.array([0.3, 0.31, 2.0, 5.5]), np.linspace(0.0, 6.8, 37)], ids=["uniform", "irregular", "from-zero"]
)
def test_two_identical_atoms(q):
    r = 1.7
    pos = np.array([[0.0, 0.0, 0.0], [0.0, r, 0.0]])
    f = form_factors(["O"], q)[0]
    x = q * r
    sinc = np.where(x == 0, 1.0, np.sin(x) / np.where(x == 0, 1.0, x))
    np.testing.assert_allclose(intensity(["O", "O"], pos, q, inelastic=False), 2 * f**2 * (1 + sinc), rtol=1e-13)


def test_q_zero_gives_the_square_of_the_electron_count():
    symbols, pos = nmm_geometries(3, seed=1)
    q = np.linspace(0.0, 3.0, 11)
    Z = atomic_numbers(symbols).sum()  # C5H11NO: 56 electrons
    assert Z == 56
    I = intensity(symbols, pos, q, inelastic=False)
    np.testing.assert_allclose(I[:, 0], Z**2, rtol=1e-14)
    np.testing.assert_allclose(intensity(symbols, pos, q)[:, 0], Z**2, rtol=1e-14)  # S(0) = 0


def test_coincident_atoms_scatter_as_one_with_double_form_factor():
    f = form_factors(["S"], Q)[0]
    I = intensity_from_distances(["S", "S"], [0.0], Q, inelastic=False)
    np.testing.assert_allclose(I, 4 * f**2, rtol=1e-14)


def test_pairs_follow_triu_order():
    # Swapping two atoms of different elements must swap the roles of their distances.
    symbols = ["C", "S", "O"]
    d = np.array([1.2, 2.5, 3.1])  # C-S, C-O, S-O
    f = form_factors(symbols, Q)
    np.testing.assert_allclose(intensity_from_distances(symbols, d, Q, inelastic=False), debye_independent(f, d, Q), rtol=1e-13)


def test_cs2_difference_signal_agrees_with_an_independent_table():
    # Symmetric stretch of CS2 by 0.1 Angstrom: ΔS from xraylib's f and from the
    # Waasmaier-Kirfel f agree within 0.5 percentage points (form-factor table differences).
    cs2 = builtin("cs2")
    stretched = cs2.positions.copy()
    stretched[1:, 2] *= (1.55011472 + 0.1) / 1.55011472
    d0, d1 = distances(cs2.positions), distances(stretched)
    dS = difference_signal(
        intensity_from_distances(cs2.symbols, d1, Q, inelastic=False),
        intensity_from_distances(cs2.symbols, d0, Q, inelastic=False),
    )
    f_wk = np.stack([f_waasmaier_kirfel(s, Q) for s in cs2.symbols])
    dS_wk = debye_independent(f_wk, d1, Q) / debye_independent(f_wk, d0, Q) - 1
    assert np.max(np.abs(dS)) > 0.05  # a real signal, several percent
    np.testing.assert_allclose(dS, dS_wk, atol=0.005)


# ---------------------------------------------------------------- compiled kernels


@pytest.mark.parametrize(
    "q",
    [
        Q,
        np.linspace(0.0, 6.8, 100),
        np.linspace(0.1, 30.0, 300),
        np.sort(np.random.default_rng(5).uniform(0, 8, 73)),
        np.array([0.0, 2.0]),
        np.array([4.0]),
    ],
    ids=["uniform", "uniform-from-zero", "reseeded-300", "irregular", "two-points", "one-point"],
)
def test_kernel_matches_numpy_broadcast(q):
    symbols, pos = nmm_geometries(77, seed=2)  # 77: not a multiple of the 32-geometry block
    pos[70:] = pos[70:] * 4.0  # dissociated-like: distances up to ~20 Angstrom
    d = distances(pos)
    got = intensity_from_distances(symbols, d, q)
    ref = intensity_reference(symbols, d, q)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)
    np.testing.assert_allclose(
        intensity_from_distances(symbols, d, q, inelastic=False),
        intensity_reference(symbols, d, q, inelastic=False),
        rtol=1e-12,
        atol=0,
    )


def test_recurrence_stays_accurate_over_long_grids_and_extreme_distances():
    # One pair, distances from 1e-3 to 100 Angstrom, 1000 uniform q points: the
    # recurrence runs 1000 steps (re-seeded every 128); sin(qr)/(qr) must stay exact to rounding.
    q = np.linspace(0.0, 30.0, 1000)
    r = np.concatenate([np.geomspace(1e-3, 100.0, 60), np.pi / (q[1] - q[0]) * np.array([0.999, 1.0, 1.001])])
    f = form_factors(["C", "O"], q)
    got = (intensity_from_distances(["C", "O"], r[:, None], q, inelastic=False) - (f**2).sum(0)) / (2 * f[0] * f[1])
    x = r[:, None] * q
    sinc = np.where(x == 0, 1.0, np.sin(x) / np.where(x == 0, 1.0, x))
    assert np.max(np.abs(got - sinc)) < 1e-13


def test_sincos_kernel_against_high_precision():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-10, 10, 300), rng.uniform(-1e4, 1e4, 300), [0.0, -0.0, 1e-300, np.pi / 4, np.pi / 2, 1e7]])
    s, c = np.empty_like(x), np.empty_like(x)
    _kernels.sincos_array(x, s, c)
    s_ref = np.array([float(mpmath.sin(mpmath.mpf(v))) for v in x])
    c_ref = np.array([float(mpmath.cos(mpmath.mpf(v))) for v in x])
    assert np.max(np.abs(s - s_ref)) <= 3e-16
    assert np.max(np.abs(c - c_ref)) <= 3e-16
    s_nan, c_nan = np.empty(1), np.empty(1)
    _kernels.sincos_array(np.array([np.nan]), s_nan, c_nan)
    assert np.isnan(s_nan[0]) and np.isnan(c_nan[0])


def test_pair_distances_are_the_geometry_modules():
    from molmovie.scattering.debye import pair_distances

    assert pair_distances is distances  # one implementation, kept under its old name

    symbols, pos = nmm_geometries(10, seed=8)
    pos[4, 2] = np.nan
    np.testing.assert_allclose(pair_distances(pos.reshape(2, 5, 18, 3)), distances(pos).reshape(2, 5, -1), rtol=1e-15)
    assert pair_distances(np.zeros((3, 1, 3))).shape == (3, 0)


def test_nan_geometries_give_nan_rows():
    symbols, pos = nmm_geometries(40, seed=4)
    pos[3, 5] = np.nan
    pos[35] = np.nan
    for q in (Q, np.array([0.0, 0.7, 1.9])):
        I = intensity(symbols, pos, q)
        bad = np.zeros(40, bool)
        bad[[3, 35]] = True
        assert np.isnan(I[bad]).all()
        assert np.isfinite(I[~bad]).all()


def test_distances_beyond_the_kernel_range_fall_back_to_numpy():
    f = form_factors(["C", "O"], Q)
    I = intensity_from_distances(["C", "O"], [[1e9], [1.2]], Q, inelastic=False)
    x = 1e9 * Q
    np.testing.assert_allclose(I[0], (f**2).sum(0) + 2 * f[0] * f[1] * np.sin(x) / x, rtol=1e-14)
    np.testing.assert_allclose(I[1], debye_independent(f, np.array([1.2]), Q), rtol=1e-13)


def test_shapes_and_input_errors():
    symbols, pos = nmm_geometries(6, seed=5)
    I = intensity(symbols, pos.reshape(2, 3, 18, 3), Q)
    assert I.shape == (2, 3, 100)
    np.testing.assert_allclose(I.reshape(6, 100), intensity(symbols, pos, Q), rtol=0, atol=0)
    assert intensity(symbols, pos[0], Q).shape == (100,)
    assert intensity_from_distances(symbols, np.zeros((0, n_pairs(18))), Q).shape == (0, 100)
    with pytest.raises(InputError, match=r"must be >= 0"):
        intensity(symbols, pos, [-0.5, 1.0])
    with pytest.raises(InputError, match=r"shape \(\.\.\., 153\)"):
        intensity_from_distances(symbols, np.ones((4, 152)), Q)
    with pytest.raises(InputError, match=r"shape \(\.\.\., 18, 3\)"):
        intensity(symbols, pos[:, :17], Q)
    with pytest.raises(InputError, match="1-D"):
        intensity(symbols, pos, np.ones((2, 2)))


def test_difference_signal():
    I = np.array([[1.0, 2.0, 3.0], [np.nan, np.nan, np.nan]])
    ref = np.array([1.0, 4.0, 2.0])
    dS = difference_signal(I, ref)
    np.testing.assert_array_equal(dS[0], [0.0, -0.5, 0.5])
    assert np.isnan(dS[1]).all()
    batch = difference_signal(np.ones((2, 5, 3)), np.full((2, 1, 3), 2.0))
    assert batch.shape == (2, 5, 3) and np.all(batch == -0.5)
    with pytest.raises(InputError, match="> 0"):
        difference_signal(I, [1.0, 0.0, 1.0])
    with pytest.raises(InputError, match="broadcast"):
        difference_signal(I, np.ones(4))


def test_import_does_not_load_torch_or_numba():
    code = "import sys, molmovie.scattering as s; print('torch' in sys.modules, 'numba' in sys.modules, 'DebyeTorch' in dir(s))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "True"]


# ---------------------------------------------------------------- PyTorch


torch = pytest.importorskip("torch")


def test_torch_matches_numpy():
    from molmovie.scattering import DebyeTorch, intensity_torch

    symbols, pos = nmm_geometries(20, seed=6)
    d = distances(pos)
    d[0, 0] = 0.0
    q = np.linspace(0.0, 6.8, 50)
    ref = intensity_from_distances(symbols, d, q)
    model = DebyeTorch(symbols, q)
    got = model(torch.from_numpy(d)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=0)
    np.testing.assert_allclose(
        intensity_torch(symbols, torch.from_numpy(d), q, inelastic=False).numpy(),
        intensity_from_distances(symbols, d, q, inelastic=False),
        rtol=1e-10,
        atol=0,
    )
    assert set(dict(model.named_buffers())) == {"q", "pair_weight", "const"}


def test_torch_float32_agrees_with_float64():
    from molmovie.scattering import DebyeTorch

    symbols, pos = nmm_geometries(20, seed=7)
    d = torch.from_numpy(distances(pos))
    I64 = DebyeTorch(symbols, Q)(d)
    I32 = DebyeTorch(symbols, Q, dtype=torch.float32)(d.float())
    assert I32.dtype == torch.float32
    # float32 rounding over 153 pair terms: stated tolerance 1e-5 relative.
    np.testing.assert_allclose(I32.double().numpy(), I64.numpy(), rtol=1e-5, atol=0)


def test_torch_gradients_pass_gradcheck_including_zero_distance_and_zero_q():
    from molmovie.scattering import DebyeTorch

    model = DebyeTorch(["C", "S", "S"], [0.0, 0.5, 2.0, 6.8])
    d = torch.tensor([[1.55, 1.60, 3.15], [1e-5, 1.4, 2.0], [0.8, 2e-4, 0.9]], dtype=torch.float64, requires_grad=True)
    # its central differences (step 1e-7) lose ~eps |I| / step to rounding, |I| up to (6 + 16 + 16)² = 1444 at q = 0
    atol = 4 * np.finfo(float).eps * float(model(d).detach().abs().max()) / 1e-7
    assert torch.autograd.gradcheck(model, (d,), eps=1e-7, atol=atol, rtol=1e-6)
    # exactly zero distance: finite gradient, equal to the limit d sinc(x)/dx = 0
    z = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    model(z).sum().backward()
    assert torch.isfinite(z.grad).all() and torch.all(z.grad.abs() < 1e-12)


def test_torch_closed_form_jacobian_matches_autograd_and_finite_differences():
    """value_and_jacobian: the intensities of forward, and dI/dR equal to autograd's (which gradcheck pins to finite
    differences above), at ordinary, tiny and zero distances and at q = 0."""
    from molmovie.scattering import DebyeTorch

    model = DebyeTorch(["C", "S", "S"], [0.0, 0.5, 2.0, 6.8])
    d = torch.tensor([[1.55, 1.60, 3.15], [1e-5, 1.4, 2.0], [0.0, 2e-4, 0.9]], dtype=torch.float64, requires_grad=True)
    I = model(d)
    want = torch.stack([torch.autograd.grad(I[:, k].sum(), d, retain_graph=True)[0] for k in range(4)], dim=1)  # (3, Q, P)
    got_I, got_J = model.value_and_jacobian(d.detach())
    np.testing.assert_array_equal(got_I.numpy(), I.detach().numpy())
    np.testing.assert_allclose(got_J.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)
    # central differences of the forward model, independently of the sinc derivative both of the above use:
    # every (geometry, q, pair) with R > 0, including R = 1e-5 and 2e-4 Angstrom, and q = 0
    x = d.detach()
    h = 1e-7
    # rounding costs them ~eps |I| / h (|I| up to 1444): 4 eps max|I| / h = 1.3e-5, below the smallest derivative
    # checked (2e-4 at R = 1e-5 Angstrom, q = 0.5)
    atol = 4 * np.finfo(float).eps * float(model(x).abs().max()) / h
    for p in range(3):
        step = torch.zeros(3, dtype=torch.float64)
        step[p] = h
        fd = (model(x + step) - model(x - step)) / (2 * h)
        ok = x[:, p] > h
        np.testing.assert_allclose(got_J[ok, :, p].numpy(), fd[ok].numpy(), rtol=1e-6, atol=atol, err_msg=f"pair {p}")
    # at R = 0 and at q = 0 the exact derivative is 0 (sinc is even; I does not depend on R at q = 0)
    assert got_J[2, :, 0].abs().max() == 0 and torch.all(got_J[:, 0] == 0)
    with pytest.raises(InputError, match=r"shape \(\.\.\., 3\)"):
        model.value_and_jacobian(torch.ones(2, 4, dtype=torch.float64))


def test_torch_nan_and_errors():
    from molmovie.scattering import DebyeTorch

    model = DebyeTorch(["C", "S", "S"], Q)
    out = model(torch.tensor([[np.nan, 1.5, 3.1], [1.55, 1.55, 3.1]], dtype=torch.float64))
    assert torch.isnan(out[0]).all() and torch.isfinite(out[1]).all()
    with pytest.raises(InputError, match=r"shape \(\.\.\., 3\)"):
        model(torch.ones(2, 4, dtype=torch.float64))
    with pytest.raises(InputError, match=">= 0"):
        DebyeTorch(["C"], [-1.0])


def test_the_kernel_runs_on_numbas_own_thread_pool_not_a_second_openmp():
    # numba's OpenMP layer loads a libgomp beside PyTorch's; its idle worker then spun inside torch
    # operations and slowed VRNN training tenfold on a busy machine
    import os

    import numba

    if "NUMBA_THREADING_LAYER" in os.environ:
        pytest.skip("the user chose numba's threading layer")
    intensity_from_distances(("C", "S", "S"), np.array([[1.55, 1.55, 3.1]] * 64), np.linspace(0.5, 6.8, 16))
    assert numba.threading_layer() == "workqueue"
