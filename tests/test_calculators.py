"""Calculators of the generator: the Morse potential from spectroscopic constants (exact answers:
its own level formula, ASE's MorsePotential, the harmonic frequency, the classical period, the
well depth), any ASE calculator, and the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import units

from molmovie import InputError
from molmovie.dynamics import generate, get_model, prepare, run_trajectory
from molmovie.dynamics.calculators import (
    CALCULATORS,
    ASECalculator,
    ASEEngine,
    Morse,
    get_calculator,
    morse_dissociation_energy,
)
from molmovie.dynamics.initial import Displaced
from molmovie.molecules import builtin

I2 = ("I", "I")
MU_I2 = 126.90447 / 2  # u (ASE's IUPAC mass of I)
C_CM_PER_FS = 2.99792458e-5
HARTREE_CM = 219474.6313632  # independent route to hbar*omega: 1 cm^-1 = 1/219474.63 Hartree
HARTREE_EV = 27.211386245988


@pytest.fixture(scope="module")
def i2_modes():
    return prepare(builtin("i2"), get_model("ground"), factory=get_calculator("morse-i2-x"))


def test_well_depth_from_D0_follows_the_morse_levels():
    """D_e - E_0 = D0 with E_0 = hbar w/2 - (hbar w)^2/(16 D_e), the Morse's own zero-point level."""
    hw = 214.5 / HARTREE_CM * HARTREE_EV  # eV, by another route than the module's hbar and c
    de = morse_dissociation_energy(214.5, 1.54)
    e0 = hw / 2 - hw * hw / (16 * de)
    np.testing.assert_allclose(de - e0, 1.54, rtol=1e-9)
    m = get_calculator("morse-i2-x")
    assert m.well_depth == de and abs(de - (1.54 + hw / 2)) < 1e-4  # the anharmonic part is 3e-5 eV
    # omega_e x_e = omega_e^2 / (4 D_e): 0.918 cm^-1 for this Morse (I2 measured: 0.614)
    np.testing.assert_allclose(214.5**2 / (4 * de * HARTREE_CM / HARTREE_EV), 0.918, atol=1e-3)


def test_morse_exponent_units_worked_out_independently():
    m = get_calculator("morse-i2-x")
    omega = 2 * math.pi * C_CM_PER_FS * 214.5  # 1/fs
    k = MU_I2 * omega**2 / units.fs**2  # u/fs^2 -> eV/A^2 (ASE: 1 eV = units.fs**2 u A^2/fs^2 ... inverse)
    # ASE time unit: 1 fs = units.fs * A sqrt(u/eV), so u A^2/fs^2 = 1/units.fs^2 eV
    np.testing.assert_allclose(m.exponent(I2), math.sqrt(k / (2 * m.well_depth)), rtol=1e-12)
    np.testing.assert_allclose(m.exponent(I2), 1.859, atol=1e-3)
    np.testing.assert_allclose(m.period, 155.5, atol=0.05)


def test_morse_equals_ase_morse_potential_and_its_own_gradient():
    """The conventions of ase.calculators.morse.MorsePotential: epsilon = D_e, r0 = r_e, rho0 = a r_e."""
    m = get_calculator("morse-i2-x")
    engine = m(I2)
    ase_engine = ASEEngine(I2, m.ase_calculator(I2))
    rng = np.random.default_rng(0)
    for r in (2.2, 2.5, 2.666, 3.0, 4.0, 6.0, 12.0):
        axis = rng.standard_normal(3)
        axis /= np.linalg.norm(axis)
        x = np.array([np.zeros(3), r * axis]) + rng.standard_normal(3)
        e, f = engine.compute(x)
        e_ase, f_ase = ase_engine.compute(x)
        np.testing.assert_allclose(e, e_ase, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(f, f_ase, rtol=1e-10, atol=1e-13)
        h = 1e-5  # forces are minus the gradient (central differences)
        for atom in range(2):
            for k in range(3):
                xp, xm = x.copy(), x.copy()
                xp[atom, k] += h
                xm[atom, k] -= h
                num = -(engine.compute(xp)[0] - engine.compute(xm)[0]) / (2 * h)
                assert abs(num - f[atom, k]) < 1e-7
        np.testing.assert_allclose(f.sum(axis=0), 0, atol=1e-14)


def test_well_depth_is_reached_at_large_separation():
    m = get_calculator("morse-i2-x")
    engine = m(I2)
    e_min = engine.compute(np.array([[0, 0, 0], [0, 0, 2.666]]))[0]
    np.testing.assert_allclose(e_min, -m.well_depth, rtol=1e-14)
    for r in (30.0, 100.0, 1e4):  # the far tail is exactly the limit, with no underflow
        e, f = engine.compute(np.array([[0, 0, 0], [0, 0, r]]))
        assert abs(e) < 1e-20 and np.abs(f).max() < 1e-20
    np.testing.assert_allclose(engine.energy_at(30.0) - e_min, m.well_depth, rtol=1e-14)


def test_harmonic_frequency_from_the_hessian_is_omega_e(i2_modes):
    """omega_e within 1e-4; exactly (1e-8) what central differences of step h = 5e-3 A give:
    k_h = (V'(r_e + h) - V'(r_e - h)) / 2h, a relative error of about (7/12) a^2 h^2 = 5e-5 in omega."""
    assert len(i2_modes.omega) == 1 and i2_modes.linear
    calc = get_calculator("morse-i2-x")
    a, de, h = calc.exponent(I2), calc.well_depth, 5e-3

    def dv(r):
        y = math.exp(-a * (r - 2.666))
        return 2 * a * de * (y - y * y)

    k_h = (dv(2.666 + h) - dv(2.666 - h)) / (2 * h)
    np.testing.assert_allclose(i2_modes.wavenumbers[0], 214.5 * math.sqrt(k_h / (2 * a * a * de)), rtol=1e-8)
    np.testing.assert_allclose(i2_modes.wavenumbers[0], 214.5, rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(i2_modes.positions[1] - i2_modes.positions[0]), 2.666, atol=1e-4)
    np.testing.assert_allclose(i2_modes.energy, -get_calculator("morse-i2-x").well_depth, atol=1e-9)


def _period(time: np.ndarray, r: np.ndarray) -> float:
    """Mean period from the upward crossings of the mean bond length (linear interpolation)."""
    y = r - 0.5 * (r.max() + r.min())
    k = np.flatnonzero((y[:-1] < 0) & (y[1:] >= 0))
    t = time[k] - y[k] * (time[k + 1] - time[k]) / (y[k + 1] - y[k])
    return float((t[-1] - t[0]) / (len(t) - 1))


def test_small_oscillation_has_the_period_of_omega_e(i2_modes):
    """1/(c omega_e) = 155.5 fs for I2, within 0.5 % (here within 0.05 %)."""
    model = get_model("ground").replace(duration=1600.0, n_frames=1601, timestep=0.5)
    calc = get_calculator("morse-i2-x")
    res = run_trajectory(i2_modes, model, seed=0, factory=calc, initial=Displaced(amplitude=0.003, phase=0.0, wigner=False))
    r = np.linalg.norm(res.positions[:, 1] - res.positions[:, 0], axis=1)
    period = _period(np.arange(len(r)) * 1.0, r)
    assert abs(period / 155.508 - 1) < 5e-4, period
    np.testing.assert_allclose(r[0] - 2.666, 0.003, atol=1e-5)  # phase 0: the outer turning point
    assert res.record["drift_eV"] < 1e-8  # velocity Verlet's energy error, (ω dt)² E_vib / 4 = 4.9e-9 eV at this amplitude


def test_large_oscillation_has_the_exact_classical_morse_period(i2_modes):
    """A Morse oscillator of energy E below the limit has T(E) = T_0 / sqrt(1 - E/D_e) (exactly)."""
    calc = get_calculator("morse-i2-x")
    model = get_model("ground").replace(duration=2000.0, n_frames=2001, timestep=0.5)
    res = run_trajectory(i2_modes, model, seed=0, factory=calc, initial=Displaced(amplitude=0.25, phase=0.0, wigner=False))
    r = np.linalg.norm(res.positions[:, 1] - res.positions[:, 0], axis=1)
    e = float(calc(I2).energy_at(r[0]) + calc.well_depth)  # at rest at the turning point
    expected = calc.period / math.sqrt(1 - e / calc.well_depth)
    assert expected > 1.07 * calc.period  # a real anharmonic shift (7.7 %), not the harmonic answer
    measured = _period(np.arange(len(r)) * 1.0, r)
    assert abs(measured / expected - 1) < 1e-3, (measured, expected)
    assert res.record["drift_eV"] < 2e-4


def test_energy_is_conserved_over_picoseconds(i2_modes):
    model = get_model("ground").replace(duration=3300.0, n_frames=331, timestep=1.0)
    res = run_trajectory(
        i2_modes, model, seed=4, factory=get_calculator("morse-i2-x"), initial=Displaced(amplitude=0.3, phase=(0.0, 360.0))
    )
    assert res.record["drift_eV"] < 2e-3 and not res.record["drift_flag"]
    assert np.isfinite(res.energy).all() and not res.dissociated


def test_any_ase_calculator_drives_the_same_dynamics():
    """ASE's MorsePotential behind ASECalculator gives the trajectories of molmovie's Morse."""
    calc = get_calculator("morse-i2-x")
    wrapped = ASECalculator(calc.ase_calculator, name="ase-morse", settings={"epsilon": calc.well_depth})
    model = get_model("ground").replace(duration=50.0, n_frames=11, timestep=1.0)
    a = generate("i2", 2, model=model, calculator=calc, workers=1, seed=3)
    b = generate("i2", 2, model=model, calculator=wrapped, workers=1, seed=3)
    np.testing.assert_allclose(b.positions, a.positions, atol=1e-10)
    assert b.ensemble.provenance["calculator"] == {"name": "ase-morse", "form": "ase", "settings": {"epsilon": calc.well_depth}}
    assert a.ensemble.provenance["calculator"]["D_e_eV"] == calc.well_depth


def test_registry_and_validation():
    assert {"xtb", "morse", "morse-i2-x"} <= set(CALCULATORS)
    m = get_calculator("morse", omega_e=214.5, r_e=2.666, D_e=1.6)
    assert m.well_depth == 1.6 and m.D0 is None
    assert get_calculator("morse-i2-x", D_e=1.6).well_depth == 1.6
    assert get_calculator(m) is m and get_calculator(None).name == "xtb"
    with pytest.raises(InputError, match="unknown calculator 'warp'; choose from xtb, morse"):
        get_calculator("warp")
    with pytest.raises(InputError, match="cannot be made"):
        get_calculator("morse", omega_e=214.5)
    with pytest.raises(InputError, match="exactly one of D_e"):
        Morse(214.5, 2.666, D_e=1.0, D0=1.0)
    with pytest.raises(InputError, match="'r_e' must be a number > 0"):
        Morse(214.5, -1.0, D0=1.0)
    with pytest.raises(InputError, match="holds no vibrational level"):
        Morse(214.5, 2.666, D_e=0.01)
    with pytest.raises(InputError, match="describes a diatomic"):
        m.check(("C", "S", "S"))
    with pytest.raises(InputError, match="one potential energy surface; model 'cs2-isc' switches"):
        m.check(I2, get_model("cs2-isc"))
    with pytest.raises(InputError, match="one potential energy surface"):
        generate("i2", 1, model=get_model("ground").replace(excited=get_model("triplet").surface, switch_time=10.0), calculator=m)
    with pytest.raises(InputError, match="either a calculator or an engine factory"):
        generate("i2", 1, calculator=m, factory=m)
