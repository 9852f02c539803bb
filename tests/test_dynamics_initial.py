"""Initial-condition families: displaced wavepackets and dissociation at chosen energies, exact
where the physics is exact (positions, momenta, total energy, fragment speeds), statistical
checks that hold for any seed (five standard errors of the exact distributions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import units

from molmovie import InputError
from molmovie.dynamics import generate, get_model, hessian, normal_modes, partial_path, prepare, run_trajectory, trajectory_seed
from molmovie.dynamics.calculators import get_calculator
from molmovie.dynamics.initial import (
    INITIAL_CONDITIONS,
    Displaced,
    Dissociation,
    Mixture,
    Wigner,
    bond_stretch,
    get_initial,
)
from molmovie.dynamics.wigner import HBAR_EV_FS, kinetic_energy
from molmovie.molecules import atomic_masses, builtin, get_molecule

MU = 126.90447 / 2
CALC = get_calculator("morse-i2-x")


@pytest.fixture(scope="module")
def modes():
    return prepare(builtin("i2"), get_model("ground"), factory=CALC)


def bond(x):
    return np.linalg.norm(x[..., 1, :] - x[..., 0, :], axis=-1)


def bond_velocity(x, v):
    e = (x[1] - x[0]) / bond(x)
    return float((v[1] - v[0]) @ e)


def test_displaced_start_is_exactly_A_cos_phi_and_minus_A_mu_omega_sin_phi(modes):
    fam = Displaced(amplitude=(0.05, 0.3), phase=(0, 360), wigner=False)
    omega = modes.omega[0]
    for seed in range(5):
        x, v, drawn = fam.sample(modes, np.random.default_rng(seed))
        a, phi = drawn["amplitude_A"], math.radians(drawn["phase_deg"])
        assert 0.05 <= a <= 0.3 and 0 <= drawn["phase_deg"] <= 360
        np.testing.assert_allclose(bond(x) - 2.666, a * math.cos(phi), atol=1e-9)
        np.testing.assert_allclose(MU * bond_velocity(x, v), -a * MU * omega * math.sin(phi), rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose((v * modes.masses[:, None]).sum(axis=0), 0, atol=1e-13)  # centre of mass at rest
        np.testing.assert_allclose(drawn["omega_per_fs"], omega, rtol=1e-12)
        assert drawn["ground_start"] is False  # a displaced start is not the ground state


def test_displaced_wavepacket_is_the_shifted_ground_state(modes):
    """The coherent state: mean bond A cos(phi), bond variance hbar/(2 mu omega) as in the ground state."""
    n, a, phase = 3000, 0.1, 60.0
    fam = Displaced(amplitude=a, phase=phase)
    rng = np.random.default_rng()
    draws = [fam.sample(modes, rng) for _ in range(n)]
    r = np.array([bond(x) for x, _, _ in draws])
    rdot = np.array([bond_velocity(x, v) for x, v, _ in draws])
    omega = modes.omega[0]
    hbar = HBAR_EV_FS * units.fs**2  # u A^2 / fs
    var_r, var_rdot = hbar / (2 * MU * omega), hbar * omega / (2 * MU)
    assert abs(r.mean() - 2.666 - a * math.cos(math.radians(phase))) < 5 * math.sqrt(var_r / n)
    assert abs(rdot.mean() + a * omega * math.sin(math.radians(phase))) < 5 * math.sqrt(var_rdot / n)
    assert abs(r.var() / var_r - 1) < 5 * math.sqrt(2 / n)
    assert abs(rdot.var() / var_rdot - 1) < 5 * math.sqrt(2 / n)


def test_amplitudes_and_phases_are_uniform_on_their_ranges(modes):
    n = 2000
    fam = Displaced(amplitude=(0.02, 0.3), phase=(90, 270), wigner=False)
    rng = np.random.default_rng()
    drawn = [fam.sample(modes, rng)[2] for _ in range(n)]
    amp = np.array([d["amplitude_A"] for d in drawn])
    ph = np.array([d["phase_deg"] for d in drawn])
    assert amp.min() >= 0.02 and amp.max() <= 0.3 and ph.min() >= 90 and ph.max() <= 270
    assert abs(amp.mean() - 0.16) < 5 * 0.28 / math.sqrt(12 * n)
    assert abs(ph.mean() - 180) < 5 * 180 / math.sqrt(12 * n)


def test_dissociation_starts_at_the_limit_plus_E_and_separates_at_sqrt_2E_over_mu(modes):
    model = get_model("ground").replace(duration=1500.0, n_frames=151, timestep=0.5)
    fam = Dissociation(excess=(0.1, 2.0))
    for seed in (1, 2, 3):
        res = run_trajectory(modes, model, seed=seed, factory=CALC, initial=fam)
        drawn = res.record["initial"]
        e = drawn["excess_eV"]
        assert 0.1 <= e <= 2.0 and res.dissociated and res.record["fate"] == "dissociated"
        np.testing.assert_allclose(drawn["limit_eV"], CALC.well_depth, rtol=1e-12)
        np.testing.assert_allclose(res.energy[0], e, atol=1e-12)  # the Morse's zero is its limit
        speed = (bond(res.positions[-1]) - bond(res.positions[-2])) / 10.0
        expected = math.sqrt(2 * e / MU * units.fs**2)  # 1 eV = units.fs**2 u A^2/fs^2
        np.testing.assert_allclose(drawn["speed_A_per_fs"], expected, rtol=1e-12)
        assert abs(speed / expected - 1) < 1e-3, (speed, expected)


def test_on_a_repulsive_wall_the_atoms_start_at_rest_and_reach_the_same_speed_later(modes):
    """Same total energy E above the limit, same asymptotic speed; on the wall the atoms accelerate
    from the Wigner sample (and lag a free flight), kicked in the well they decelerate (and lead)."""
    model = get_model("ground").replace(duration=1500.0, n_frames=151, timestep=0.5)
    t = np.arange(151) * 10.0
    late = t > 800
    for seed in (1, 2):
        kicked = run_trajectory(modes, model, seed=seed, factory=CALC, initial=Dissociation(excess=(0.3, 2.0)))
        wall = run_trajectory(modes, model, seed=seed, factory=CALC, initial=Dissociation(excess=(0.3, 2.0), repulsive=2.0))
        e = wall.record["initial"]["excess_eV"]
        assert e == kicked.record["initial"]["excess_eV"]  # the same draws
        np.testing.assert_allclose(wall.energy[0] - wall.record["initial"]["limit_eV"] - modes.energy, e, atol=1e-12)
        expected = math.sqrt(2 * e / MU * units.fs**2)
        leads = []
        for res in (kicked, wall):
            r = bond(res.positions)
            slope, intercept = np.polyfit(t[late], r[late], 1)
            assert abs(slope / expected - 1) < 1e-3
            leads.append((intercept - r[0]) / slope)  # fs ahead of r(0) + v t
        assert leads[0] > 5 and leads[1] < -5, leads
        assert wall.record["drift_eV"] < 1e-3
        np.testing.assert_array_equal(wall.positions[0], kicked.positions[0])  # both start at the Wigner sample
    with pytest.raises(InputError, match="for a diatomic"):
        Dissociation(excess=1.0, bond=(0, 1), repulsive=2.0).check(builtin("cs2").symbols, builtin("cs2").positions)


def test_a_given_limit_replaces_the_computed_one(modes):
    x, v, drawn = Dissociation(excess=0.5, limit=2.0, wigner=False).sample(
        modes, np.random.default_rng(0), CALC(("I", "I")).compute
    )
    assert drawn["limit_eV"] == 2.0
    np.testing.assert_allclose(CALC(("I", "I")).compute(x)[0] + kinetic_energy(modes.masses, v), modes.energy + 2.5, atol=1e-12)
    assert bond_velocity(x, v) > 0  # outwards


def _harmonic_modes(symbols, pos, k=20.0):
    i, j = np.triu_indices(len(pos), 1)
    r0 = np.linalg.norm(pos[i] - pos[j], axis=1)

    def forces(x):
        d = x[i] - x[j]
        r = np.linalg.norm(d, axis=1)
        g = (k * (r - r0) / r)[:, None] * d
        f = np.zeros_like(x)
        np.add.at(f, i, -g)
        np.add.at(f, j, g)
        return f

    return normal_modes(symbols, pos, hessian(symbols, pos, forces))


def test_bond_of_a_polyatomic_moves_the_two_fragments_rigidly():
    cs2 = builtin("cs2")
    modes = _harmonic_modes(cs2.symbols, cs2.positions)
    s = bond_stretch(modes, (0, 1))  # C-S: fragments CS (atoms 0, 2) and S (atom 1)
    m = atomic_masses(cs2.symbols)
    np.testing.assert_allclose(s.mu, m[1] * (m[0] + m[2]) / m.sum(), rtol=1e-12)
    x = modes.positions + 0.1 * s.displacement
    d = lambda y, a, b: np.linalg.norm(y[a] - y[b])  # noqa: E731
    np.testing.assert_allclose(d(x, 0, 1) - d(modes.positions, 0, 1), 0.1, atol=1e-12)
    np.testing.assert_allclose(d(x, 0, 2), d(modes.positions, 0, 2), atol=1e-12)
    np.testing.assert_allclose(m @ s.displacement, 0, atol=1e-12)
    np.testing.assert_allclose(np.sum(s.direction**2), 1, rtol=1e-12)
    with pytest.raises(InputError, match="not bonded"):
        Dissociation(excess=1.0, bond=(1, 2)).check(cs2.symbols, cs2.positions)
    with pytest.raises(InputError, match="say which bond"):
        Displaced(amplitude=0.1).check(cs2.symbols, cs2.positions)
    with pytest.raises(InputError, match="from 0 to 2"):
        Displaced(amplitude=0.1, bond=(0, 3)).check(cs2.symbols, cs2.positions)


def test_a_ring_bond_cannot_be_broken():
    mol = get_molecule("smiles:C1CC1")
    with pytest.raises(InputError, match="in a ring"):
        Dissociation(excess=1.0, bond=(0, 1)).check(mol.symbols, mol.positions)


def test_families_validate_their_settings():
    assert set(INITIAL_CONDITIONS) == {"wigner", "displaced", "dissociation"}
    assert get_initial("displaced", amplitude=(0, 0.1)).amplitude == (0.0, 0.1)
    with pytest.raises(InputError, match="unknown initial-condition family 'hot'"):
        get_initial("hot")
    with pytest.raises(InputError, match="cannot be made"):
        get_initial("displaced", colour="red")
    with pytest.raises(InputError, match="lo <= hi"):
        Displaced(amplitude=(0.3, 0.1))
    with pytest.raises(InputError, match=">= 0 Angstrom"):
        Displaced(amplitude=(-0.1, 0.1))
    with pytest.raises(InputError, match="at most 360 degrees wide"):
        Displaced(amplitude=0.1, phase=(-10, 360))
    with pytest.raises(InputError, match="'excess' range must be >= 0 eV"):
        Dissociation(excess=(-1, 1))
    with pytest.raises(InputError, match="below half the bond length"):
        Displaced(amplitude=1.5).check(("I", "I"), builtin("i2").positions)
    with pytest.raises(InputError, match="weight of 'displaced' in a mixture must be > 0"):
        Mixture(((Displaced(amplitude=0.1), 0.0),))


def test_mixture_blocks_follow_the_largest_remainders():
    mix = Mixture(((Displaced(amplitude=0.1), 2), (Dissociation(excess=1.0), 1)))
    assert mix.counts(7) == [5, 2] and mix.counts(3) == [2, 1] and mix.counts(1) == [1, 0]
    assert Mixture(((Wigner(), 1), (Displaced(amplitude=0.1), 1), (Dissociation(excess=1.0), 1))).counts(4) == [2, 1, 1]
    names = [f.name for f in mix.assign(7)]
    assert names == ["displaced"] * 5 + ["dissociation"] * 2


def test_mixed_run_is_deterministic_and_records_what_each_trajectory_drew(tmp_path):
    model = get_model("ground").replace(duration=400.0, n_frames=41, timestep=1.0)
    mix = Mixture(((Displaced(amplitude=(0.02, 0.3)), 3), (Dissociation(excess=(0.1, 2.0)), 1)))
    a = generate("i2", 8, model=model, calculator="morse-i2-x", initial=mix, seed=11, workers=1)
    b = generate("i2", 8, model=model, calculator="morse-i2-x", initial=mix, seed=11, workers=2)
    np.testing.assert_array_equal(a.positions, b.positions)
    recs = a.ensemble.provenance["trajectories"]
    assert [r["initial"]["initial"] for r in recs] == ["displaced"] * 6 + ["dissociation"] * 2
    assert [r["initial"]["ground_start"] for r in recs] == [False] * 6 + [True] * 2
    assert a.dissociated.tolist() == [False] * 6 + [True] * 2
    assert [r["seed"] for r in recs] == [trajectory_seed(11, i) for i in range(8)]
    prov = a.ensemble.provenance
    assert prov["calculator"]["name"] == "morse-i2-x" and prov["initial"]["name"] == "mixture"
    assert prov["reference"]["wavenumbers_cm-1"] == [214.51]
    c = generate("i2", 8, model=model, calculator="morse-i2-x", initial=mix, seed=12, workers=1)
    assert not np.array_equal(a.positions, c.positions)


def test_checkpoint_of_other_initial_conditions_is_refused(tmp_path):
    model = get_model("ground").replace(duration=20.0, n_frames=3, timestep=1.0)
    out = tmp_path / "i2.h5"

    def stop(done, *rest):
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(
            "i2", 2, model=model, calculator="morse-i2-x", initial=Displaced(amplitude=0.1), workers=1, output=out, progress=stop
        )
    assert partial_path(out).is_dir()
    with pytest.raises(InputError, match="different molecule, model or seed"):
        generate("i2", 2, model=model, calculator="morse-i2-x", initial=Displaced(amplitude=0.2), workers=1, output=out)


def test_default_calculator_and_family_leave_an_xtb_run_as_it_was():
    """calculator='xtb' and initial='wigner' are the defaults: the same trajectories and records."""
    model = get_model("c2h4-pipi").replace(duration=2.0, n_frames=3)
    a = generate("c2h4", 2, model=model, seed=5, workers=1)
    b = generate("c2h4", 2, model=model, seed=5, workers=1, calculator="xtb", initial="wigner")
    np.testing.assert_array_equal(a.positions, b.positions)
    for prov in (a.ensemble.provenance, b.ensemble.provenance):
        assert "calculator" not in prov and "initial" not in prov
        assert all("initial" not in r for r in prov["trajectories"])


def test_too_many_frames_are_refused_before_any_work():
    model = get_model("ground").replace(duration=1e6, n_frames=1_000_001, timestep=1.0)
    with pytest.raises(InputError, match=r"needs [0-9.]+ GiB of memory, more than the limit"):
        generate("i2", 2000, model=model, calculator="morse-i2-x")
