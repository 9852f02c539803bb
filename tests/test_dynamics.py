"""The trajectory generator: Wigner sampling, integrator, excess energy, models, SCF failures,
determinism, checkpoint and resume.

xTB runs here are a few femtoseconds long; the statistical checks hold for any seed
(tolerances of five standard errors computed from the exact distributions).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from molmovie import InputError
from molmovie.dynamics import (
    MODELS,
    Model,
    Surface,
    generate,
    get_model,
    normal_modes,
    partial_path,
    prepare,
    run_trajectory,
    trajectory_seed,
    velocity_verlet,
    wigner_sample,
)
from molmovie.dynamics.excess import add_kinetic_energy, direction_basis
from molmovie.dynamics.wigner import HBAR_EV_FS, kinetic_energy
from molmovie.molecules import builtin, get_molecule
from molmovie.trajectories import is_dissociated

from _fixtures import users_cluster

# --------------------------------------------------------------------------- helpers


class HarmonicEngine:
    """Exact harmonic bonds about a reference geometry: E = sum k/2 (r_ij - r0_ij)^2 over all pairs.

    ``fail_after`` makes every call after that many (counted per factory) raise like a failed SCF;
    ``fail_once_at`` fails exactly one call (the ladder's fresh guess then succeeds).
    """

    def __init__(self, ref, k=20.0, counter=None, fail_after=None, fail_once_at=None, fail_beyond=None, repulsive=False):
        self.ref, self.k, self.counter = np.asarray(ref), k, counter
        self.fail_after, self.fail_once_at, self.fail_beyond = fail_after, fail_once_at, fail_beyond
        self.repulsive = repulsive
        i, j = np.triu_indices(len(ref), 1)
        self.i, self.j = i, j
        self.r0 = np.linalg.norm(self.ref[i] - self.ref[j], axis=1)

    def compute(self, x):
        self.counter[0] += 1
        c = self.counter[0]
        if (self.fail_after is not None and c > self.fail_after) or c == self.fail_once_at:
            raise RuntimeError("SCF not converged in 250 iterations")
        if self.fail_beyond is not None and np.abs(x - self.ref).max() > self.fail_beyond:
            raise RuntimeError("SCF not converged in 250 iterations")
        d = x[self.i] - x[self.j]
        r = np.linalg.norm(d, axis=1)
        if self.repulsive:  # E = k / r: everything flies apart
            g = (-self.k / r**3)[:, None] * d
            f = np.zeros_like(x)
            np.add.at(f, self.i, -g)
            np.add.at(f, self.j, g)
            return float(np.sum(self.k / r)), f
        e = 0.5 * self.k * np.sum((r - self.r0) ** 2)
        g = (self.k * (r - self.r0) / r)[:, None] * d
        f = np.zeros_like(x)
        np.add.at(f, self.i, -g)
        np.add.at(f, self.j, g)
        return e, f


def harmonic_factory(ref, **kw):
    counter = [0]

    def factory(symbols, surface, settings):
        return HarmonicEngine(ref, counter=counter, **kw)

    factory.counter = counter
    return factory


def diatomic_modes(k=30.0, r0=1.1):
    """Normal modes of a harmonic N2-like diatomic with force constant k (eV/A^2)."""
    pos = np.array([[0, 0, -r0 / 2], [0, 0, r0 / 2]])
    eng = HarmonicEngine(pos, k=k, counter=[0])
    from molmovie.dynamics import hessian

    h = hessian(("N", "N"), pos, lambda x: eng.compute(x)[1])
    return normal_modes(("N", "N"), pos, h)


@pytest.fixture(scope="module")
def c2h4_modes():
    return prepare(builtin("c2h4"), get_model("c2h4-pipi"))


@pytest.fixture(scope="module")
def cs2_modes():
    return prepare(builtin("cs2"), get_model("cs2-triplet"))


SHORT = dict(duration=4.0, n_frames=5)  # 8 steps of 0.5 fs, a frame every 1 fs


# --------------------------------------------------------------------------- Wigner sampling


def test_diatomic_frequency_and_wigner_statistics_are_exact():
    k = 30.0
    modes = diatomic_modes(k)
    from ase import units

    mu = 14.007 / 2
    omega = np.sqrt(k / mu) * units.fs  # 1/fs
    assert modes.linear and len(modes.omega) == 1
    np.testing.assert_allclose(modes.omega[0], omega, rtol=1e-5)
    n = 40000
    x, v = wigner_sample(modes, np.random.default_rng(), size=n)
    # bond length variance hbar / (2 mu omega); kinetic energy = (hbar omega/4) chi^2_1
    r = np.linalg.norm(x[:, 1] - x[:, 0], axis=1)
    hbar = HBAR_EV_FS * units.fs**2  # u A^2 / fs
    var_r = hbar / (2 * mu * omega)
    assert abs(r.mean() - 1.1) < 5 * np.sqrt(var_r / n)
    assert abs(r.var() / var_r - 1) < 5 * np.sqrt(2 / n)
    ke = kinetic_energy(modes.masses, v)
    mean_ke = HBAR_EV_FS * omega / 4
    np.testing.assert_allclose(modes.zpe / 2, mean_ke, rtol=1e-12)
    assert abs(ke.mean() / mean_ke - 1) < 5 * np.sqrt(2 / n)
    # no overall translation, no rotation of a diatomic
    p = v * modes.masses[:, None]
    np.testing.assert_allclose(p.sum(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(np.cross(x - x.mean(axis=1, keepdims=True), p).sum(axis=1), 0, atol=1e-12)


def test_wigner_kinetic_energy_is_half_zpe_for_a_real_molecule(c2h4_modes):
    m = c2h4_modes
    assert not m.linear and len(m.omega) == 12 and m.frozen.size == 0
    n = 20000
    _, v = wigner_sample(m, np.random.default_rng(), size=n)
    ke = kinetic_energy(m.masses, v)
    # exact variance of a sum of independent (hbar omega_k/4) chi^2_1 terms
    sd = np.sqrt(np.sum(2 * (HBAR_EV_FS * m.omega / 4) ** 2) / n)
    assert abs(ke.mean() - m.zpe / 2) < 5 * sd
    np.testing.assert_allclose((v * m.masses[:, None]).sum(axis=1), 0, atol=1e-10)


def test_cs2_modes_are_linear_with_a_degenerate_bend(cs2_modes):
    w = cs2_modes.wavenumbers
    assert cs2_modes.linear and len(w) == 4
    assert abs(w[0] - w[1]) < 1.0 and w[0] < w[2] < w[3]


def test_modes_and_samples_do_not_depend_on_the_eigensolvers_basis(monkeypatch):
    """An eigensolver is free to flip each mode and to rotate a degenerate level (LAPACK builds differ):
    the modes, and so the Wigner sample of a seed, must not follow it (they once did: CS2's bends)."""
    import torch

    cs2 = builtin("cs2")
    ref = torch.as_tensor(cs2.positions, dtype=torch.float64)
    r0 = torch.linalg.norm(ref[1:] - ref[0], dim=1)

    def energy(x):  # two C-S springs and a bend: E = k/2 Σ (r - r0)² + k_b/2 |u1 + u2|² (u: unit C→S vectors)
        d = x.reshape(3, 3)[1:] - x.reshape(3, 3)[0]
        r = torch.linalg.norm(d, dim=1)
        return 0.5 * 20.0 * ((r - r0) ** 2).sum() + 0.5 * 3.0 * ((d / r[:, None]).sum(0) ** 2).sum()

    h = torch.autograd.functional.hessian(energy, ref.reshape(-1)).numpy()
    plain = normal_modes(cs2.symbols, cs2.positions, h)
    eigh = np.linalg.eigh

    def other_basis(a):
        w, v = eigh(a)
        c, s = np.cos(0.7), np.sin(0.7)  # the degenerate bend pair (the two lowest) rotated, every mode flipped
        v = v.copy()
        v[:, :2] = v[:, :2] @ np.array([[c, -s], [s, c]])
        return w, -v

    monkeypatch.setattr(np.linalg, "eigh", other_basis)
    rotated = normal_modes(cs2.symbols, cs2.positions, h)
    monkeypatch.undo()
    assert abs(plain.wavenumbers[0] - plain.wavenumbers[1]) < 1e-6  # one degenerate level
    np.testing.assert_allclose(rotated.vectors, plain.vectors, atol=1e-12)
    np.testing.assert_allclose(rotated.omega, plain.omega, rtol=1e-12)
    x1, v1 = wigner_sample(plain, 7)
    x2, v2 = wigner_sample(rotated, 7)
    np.testing.assert_allclose(x2, x1, atol=1e-12)
    np.testing.assert_allclose(v2, v1, atol=1e-12)
    # the canonical basis: each bend along one Cartesian axis, each mode pointing along the first axis it moves
    vec = plain.vectors.reshape(len(plain.omega), -1)
    np.testing.assert_allclose(vec @ vec.T, np.eye(len(vec)), atol=1e-12)
    first = [np.flatnonzero(np.abs(m) >= 0.1)[0] for m in vec]
    assert all(vec[k, i] > 0 for k, i in enumerate(first))
    assert first[:2] == [0, 1]  # carbon's x, then y: the bend in the xz plane, then in yz


def test_a_level_split_by_noise_is_one_level_in_the_canonical_basis(monkeypatch):
    """A finite-difference Hessian splits CS2's bends by ~0.006 cm^-1 along a direction set by rounding: the two
    modes are one level (its mean frequency), in the same basis whichever way the split and the solver turn."""
    import torch

    cs2 = builtin("cs2")
    ref = torch.as_tensor(cs2.positions, dtype=torch.float64)
    r0 = torch.linalg.norm(ref[1:] - ref[0], dim=1)

    def energy(x):
        d = x.reshape(3, 3)[1:] - x.reshape(3, 3)[0]
        r = torch.linalg.norm(d, dim=1)
        return 0.5 * 20.0 * ((r - r0) ** 2).sum() + 0.5 * 3.0 * ((d / r[:, None]).sum(0) ** 2).sum()

    h = torch.autograd.functional.hessian(energy, ref.reshape(-1)).numpy()
    exact = normal_modes(cs2.symbols, cs2.positions, h)

    def split_modes(angle):  # the carbon pushed along a direction in the bend plane: the bends split along it
        u = np.zeros(9)
        u[:2] = np.cos(angle), np.sin(angle)
        return normal_modes(cs2.symbols, cs2.positions, h + 2e-5 * np.outer(u, u))

    results = [split_modes(a) for a in (0.3, 1.2)]
    for modes in results:
        nu = modes.wavenumbers
        assert nu[0] == nu[1]  # one level: its mean
        np.testing.assert_allclose(nu, exact.wavenumbers, atol=0.05)
        np.testing.assert_allclose(modes.vectors, exact.vectors, atol=1e-6)  # the split does not turn the basis
    # the eigensolver's own modes follow the push: without the canonical basis the two would differ
    from molmovie.dynamics import wigner

    monkeypatch.setattr(wigner, "_canonical_modes", lambda vectors, evals, nu: (vectors, evals))
    raw = [split_modes(a) for a in (0.3, 1.2)]
    assert 1e-4 < abs(raw[0].wavenumbers[1] - raw[0].wavenumbers[0]) < 0.5  # a split below the grouping threshold
    assert np.abs(np.abs(raw[0].vectors[:2]) - np.abs(raw[1].vectors[:2])).max() > 0.1


# --------------------------------------------------------------------------- integrator and excess energy


def test_velocity_verlet_matches_ase():
    from typing import ClassVar

    from ase import Atoms, units
    from ase.calculators.calculator import Calculator, all_changes
    from ase.md.verlet import VelocityVerlet

    ref = np.array([[0, 0, 0], [0, 0, 1.6], [0, 0, -1.6]])
    eng = HarmonicEngine(ref, counter=[0])

    class Calc(Calculator):
        implemented_properties: ClassVar[list[str]] = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            self.results["energy"], self.results["forces"] = eng.compute(self.atoms.positions)

    rng = np.random.default_rng(3)
    x0 = ref + 0.05 * rng.standard_normal(ref.shape)
    v0 = 0.01 * rng.standard_normal(ref.shape)  # A/fs
    atoms = Atoms("CSS", positions=x0)
    masses = atoms.get_masses()
    atoms.set_velocities(v0 / units.fs)
    atoms.calc = Calc()
    VelocityVerlet(atoms, timestep=0.5 * units.fs).run(20)
    x, v = x0, v0
    f = eng.compute(x)[1]
    for _ in range(20):
        x, v, _, f = velocity_verlet(x, v, masses, f, eng.compute, 0.5)
    np.testing.assert_allclose(x, atoms.get_positions(), atol=1e-12)
    np.testing.assert_allclose(v, atoms.get_velocities() * units.fs, atol=1e-12)


def test_add_kinetic_energy_is_exact(c2h4_modes):
    m = c2h4_modes
    _, v = wigner_sample(m, 5)
    (basis,) = direction_basis(["torsion"], m)
    before = kinetic_energy(m.masses, v)
    after = kinetic_energy(m.masses, add_kinetic_energy(m.masses, v, basis[0], 2.5))
    np.testing.assert_allclose(after - before, 2.5, atol=1e-12)


def test_torsion_direction_twists_the_double_bond_only(c2h4_modes):
    from ase import Atoms

    m = c2h4_modes
    (basis,) = direction_basis(["torsion"], m)
    u = basis[0] / np.sqrt(m.masses)[:, None]  # Cartesian displacement pattern
    a = Atoms(m.symbols, positions=m.positions + 1e-4 * u)
    b = Atoms(m.symbols, positions=m.positions)
    d_dihedral = abs(a.get_dihedral(2, 0, 1, 4) - b.get_dihedral(2, 0, 1, 4))
    assert d_dihedral > 1e-3  # degrees, first order in the step
    assert abs(a.get_distance(0, 1) - b.get_distance(0, 1)) < 1e-7  # C=C: second order only
    # no overall translation
    np.testing.assert_allclose(np.sum(basis[0] * np.sqrt(m.masses)[:, None], axis=0), 0, atol=1e-10)


def test_cs2_bend_and_stretch_bases(cs2_modes):
    bend, stretch = direction_basis(["bend", "asymmetric-stretch"], cs2_modes)
    assert bend.shape[0] == 2 and stretch.shape[0] == 1
    allv = np.concatenate([bend, stretch]).reshape(3, -1)
    np.testing.assert_allclose(allv @ allv.T, np.eye(3), atol=1e-10)
    # the asymmetric stretch moves C along the axis against the two S
    assert abs(stretch[0, 0, 2]) > 0.9 and abs(stretch[0, 0, :2]).max() < 1e-8


def test_named_direction_that_does_not_fit_is_a_teaching_error(c2h4_modes):
    with pytest.raises(InputError, match="bend.*exactly one atom"):
        direction_basis(["bend"], c2h4_modes)


# --------------------------------------------------------------------------- models


def test_models_validate_their_fields():
    base = get_model("cation")
    with pytest.raises(InputError, match="whole number of 0.5 fs"):
        base.replace(duration=100.0, n_frames=7)
    with pytest.raises(InputError, match="unknown model field"):
        base.replace(colour="red")
    with pytest.raises(InputError, match="excess-energy direction"):
        base.replace(photon_energy=5.0, excess_into=("wiggle",))
    with pytest.raises(InputError, match="unknown model"):
        get_model("nmm-singlet")
    with pytest.raises(InputError, match="made for CS2"):
        get_model("cs2-isc").check(builtin("c2h4").symbols)
    with pytest.raises(InputError, match="S0 .* impossible with 15 electrons"):  # NO is a radical
        get_model("triplet").check(("N", "O"))
    for name, model in MODELS.items():
        assert model.name == name and model.description
        assert Model.from_dict(json.loads(json.dumps(model.to_dict()))) == model


def test_paper_timing_of_builtin_models():
    for mol, (t, frames) in {"nmm": (1000, 201), "cs2": (1000, 201), "c2h4": (150, 151)}.items():
        from molmovie.dynamics import default_model

        m = default_model(builtin(mol))
        assert (m.duration, m.n_frames, m.timestep) == (t, frames, 0.5)
        m.check(builtin(mol).symbols)
    assert get_model("nmm-cation").stride == 10 and get_model("c2h4-pipi").stride == 2


# --------------------------------------------------------------------------- trajectories on xTB


def test_energy_matching_puts_the_photon_energy_on_the_ground_state(c2h4_modes):
    from molmovie.dynamics._xtb import RobustSurface

    m = c2h4_modes
    model = get_model("c2h4-pipi").replace(**SHORT)
    res = run_trajectory(m, model, seed=11)
    x0, v0 = wigner_sample(m, np.random.default_rng(11))
    np.testing.assert_allclose(res.positions[0], x0)
    e_s0 = RobustSurface(m.symbols, model.ground).energy(x0)
    # total energy at t=0 = ground-state energy + photon energy + Wigner kinetic energy
    np.testing.assert_allclose(res.energy[0], e_s0 + 7.7 + kinetic_energy(m.masses, v0), atol=1e-6)
    assert res.record["excess_eV"] > 1.0 and res.length == 5 and res.record["failure"] is None


def test_switch_conserves_energy_and_changes_state(c2h4_modes):
    s1 = Surface("S1*", 0, 3, False)
    model = get_model("triplet").replace(
        excited=s1, surface=Surface("S0"), switch_time=1.0, duration=10.0, n_frames=11, timestep=0.1
    )
    res = run_trajectory(c2h4_modes, model, seed=2)
    assert res.record["switch_fs"] is not None and res.state[0] == 0 and res.state[-1] == 1
    # S1* lies ~4 eV above S0 here: the velocities take it all and the total stays put (a 0.1 fs
    # step, as the now very hot molecule needs it; at 0.5 fs the Verlet error alone is ~0.07 eV)
    assert res.record["drift_eV"] < 0.005


def test_cs2_energised_run_conserves_energy(cs2_modes):
    model = get_model("cs2-triplet").replace(duration=100.0, n_frames=21)
    res = run_trajectory(cs2_modes, model, seed=7)
    assert res.length == 21 and res.record["excess_eV"] > 1.0
    assert res.record["drift_eV"] < 0.02 and not res.record["drift_flag"]


def test_bound_excited_state_releases_its_energy_at_the_switch(cs2_modes):
    """excess='potential': the first surface is shifted to the photon energy, and the shift becomes
    kinetic energy when the molecule switches to the triplet; the total is conserved throughout."""
    from molmovie.dynamics._xtb import RobustSurface

    model = get_model("cs2-isc").replace(switch_time=5.0, duration=60.0, n_frames=13)
    res = run_trajectory(cs2_modes, model, seed=3)
    x0, v0 = wigner_sample(cs2_modes, np.random.default_rng(3))
    e_s0 = RobustSurface(cs2_modes.symbols, model.ground).energy(x0)
    np.testing.assert_allclose(res.energy[0], e_s0 + 6.2 + kinetic_energy(cs2_modes.masses, v0), atol=1e-6)
    assert res.record["switch_fs"] is not None and res.state[-1] == 1
    assert res.record["drift_eV"] < 0.02


def test_nmm_cation_run_conserves_energy():
    nmm = builtin("nmm")
    model = get_model("nmm-cation").replace(duration=10.0, n_frames=3)
    modes = prepare(nmm, model)
    res = run_trajectory(modes, model, seed=0)
    assert res.length == 3 and res.record["drift_eV"] < 0.03 and not res.dissociated


# --------------------------------------------------------------------------- SCF failures


def test_scf_failure_once_is_rescued_by_a_fresh_guess(c2h4_modes):
    m = c2h4_modes
    factory = harmonic_factory(m.positions, fail_once_at=4)
    res = run_trajectory(m, get_model("ground").replace(**SHORT), seed=1, factory=factory)
    assert res.record["failure"] is None and res.length == 5 and res.record["scf_retries"] == 1


def test_scf_failure_ends_the_trajectory_and_keeps_its_frames(c2h4_modes):
    m = c2h4_modes
    factory = harmonic_factory(m.positions, fail_after=4)  # call 1: t = 0; step 4 (call 5) fails, and every retry
    res = run_trajectory(m, get_model("ground").replace(**SHORT), seed=1, factory=factory)
    assert "SCF not converged" in res.record["failure"] and "3 attempts" in res.record["failure"]
    assert res.length == 2  # frames at 0 and 1 fs (step 2); the frame of step 4 (2 fs) is never reached
    assert np.isfinite(res.positions).all() and np.isfinite(res.energy).all()


def test_failed_trajectories_never_end_a_run(tmp_path):
    # the SCF "fails" away from the minimum: set-up (optimisation, Hessian) works, every trajectory fails
    model = get_model("ground").replace(**SHORT)
    factory = harmonic_factory(builtin("c2h4").positions, fail_beyond=0.02)
    out = tmp_path / "f.h5"
    ds = generate("c2h4", 3, model=model, seed=0, workers=1, output=out, factory=factory)
    recs = ds.ensemble.provenance["trajectories"]
    assert all("SCF not converged" in r["failure"] for r in recs)
    assert ds.length.tolist() == [1, 1, 1] and np.isnan(ds.positions[:, 1:]).all()
    assert ds.ensemble.provenance["summary"]["failed"] == 3 and out.is_file()


# --------------------------------------------------------------------------- generate: determinism, resume, flags


def test_trajectory_seeds_are_spawned_children():
    ss = np.random.SeedSequence(42).spawn(3)
    for i in range(3):
        assert trajectory_seed(42, i) == int(ss[i].generate_state(1, np.uint64)[0] >> np.uint64(1))
    assert len({trajectory_seed(0, i) for i in range(100)}) == 100


def test_same_seed_same_trajectories_with_one_or_two_workers_or_a_cluster():
    model = get_model("c2h4-pipi").replace(**SHORT)
    a = generate("c2h4", 3, model=model, seed=5, workers=1)
    b = generate("c2h4", 3, model=model, seed=5, workers=2)
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.ensemble.energy, b.ensemble.energy)
    with users_cluster(n_workers=2, threads_per_worker=1) as cluster:
        c = generate("c2h4", 3, model=model, seed=5, scheduler=cluster.scheduler_address)
    np.testing.assert_array_equal(a.positions, c.positions)
    assert not np.array_equal(a.positions[0], a.positions[1])
    for k in range(3):
        assert a.dissociated[k] == is_dissociated(a.symbols, a.positions[k], a.length[k])
    c = generate("c2h4", 2, model=model, seed=6, workers=1)
    assert not np.array_equal(a.positions[:2], c.positions)


def test_interrupted_run_resumes_to_the_same_trajectories(tmp_path):
    model = get_model("c2h4-pipi").replace(**SHORT)
    full = generate("c2h4", 4, model=model, seed=3, workers=1, output=tmp_path / "full.h5")

    out = tmp_path / "cut.h5"

    def interrupt(done, info):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate("c2h4", 4, model=model, seed=3, workers=1, output=out, progress=interrupt)
    folder = partial_path(out)
    assert not out.exists() and sorted(p.name for p in folder.glob("traj-*.npz")) == ["traj-000000.npz", "traj-000001.npz"]
    seen = []
    resumed = generate("c2h4", 4, model=model, seed=3, workers=1, output=out, progress=lambda done, info: seen.append(done))
    assert seen[0] == 2  # two were read back, not run again
    np.testing.assert_array_equal(resumed.positions, full.positions)
    np.testing.assert_array_equal(resumed.ensemble.energy, full.ensemble.energy)
    assert out.is_file() and not folder.exists()
    from molmovie.io import read_dataset

    back = read_dataset(out)
    np.testing.assert_array_equal(back.positions, full.positions)
    assert [r["seed"] for r in back.ensemble.provenance["trajectories"]] == [trajectory_seed(3, i) for i in range(4)]


def test_checkpoint_of_other_settings_is_refused(tmp_path):
    model = get_model("c2h4-pipi").replace(**SHORT)
    out = tmp_path / "x.h5"
    with pytest.raises(KeyboardInterrupt):
        generate(
            "c2h4",
            2,
            model=model,
            seed=1,
            workers=1,
            output=out,
            progress=lambda d, info: (_ for _ in ()).throw(KeyboardInterrupt) if d == 1 else None,
        )
    with pytest.raises(InputError, match="different molecule, model or seed"):
        generate("c2h4", 2, model=model, seed=2, workers=1, output=out)
    ds = generate("c2h4", 2, model=model, seed=2, workers=1, output=out, force=True)
    assert ds.n_trajectories == 2 and out.is_file()


def test_dissociation_flag_and_fate_follow_the_import_rule(c2h4_modes):
    model = get_model("ground").replace(duration=20.0, n_frames=3)
    res = run_trajectory(c2h4_modes, model, seed=0, factory=harmonic_factory(c2h4_modes.positions, k=50.0, repulsive=True))
    assert res.dissociated and res.record["fate"] == "dissociated"
    assert is_dissociated(c2h4_modes.symbols, res.positions)
    calm = run_trajectory(c2h4_modes, model, seed=0, factory=harmonic_factory(c2h4_modes.positions))
    assert not calm.dissociated and calm.record["fate"] == "bound"
    # stop_dissociated ends it at the first frame where the fragments are apart, as SHARC runs do
    stop = model.replace(duration=20.0, n_frames=21, stop_dissociated=True)
    short = run_trajectory(c2h4_modes, stop, seed=0, factory=harmonic_factory(c2h4_modes.positions, k=50.0, repulsive=True))
    assert short.dissociated and 1 < short.length < 21 and short.record["stopped_fs"] == short.length - 1


def test_bad_arguments_are_teaching_errors(tmp_path):
    with pytest.raises(InputError, match=">= 1"):
        generate("c2h4", 0)
    with pytest.raises(InputError, match="unknown molecule"):
        generate("benzene-ish", 2)
    with pytest.raises(InputError, match="SMILES"):
        generate("smiles:C1CC(", 2)
    with pytest.raises(InputError, match="either --workers"):
        generate("c2h4", 2, workers=2, scheduler="tcp://127.0.0.1:1")
    out = tmp_path / "exists.h5"
    out.write_text("x")
    with pytest.raises(InputError, match="exists"):
        generate("c2h4", 2, output=out)


def test_user_molecule_from_smiles_gets_the_generic_model():
    mol = get_molecule("smiles:O")
    model = get_model("cation").replace(**SHORT)
    ds = generate(mol, 1, model=model, workers=1)
    assert ds.ensemble.provenance["model"]["name"] == "cation" and ds.length.tolist() == [5]
    assert ds.ensemble.state[0].tolist() == [0] * 5
