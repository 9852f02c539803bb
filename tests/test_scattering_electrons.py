"""The electron forward model: amplitudes, I(s) in the compiled kernels and in PyTorch, sM(s), SignalSpec's probe.

Reference answers are exact or independent of the code under test:

- one atom gives |f|², two atoms |f_A|² + |f_B|² + 2|f_A||f_B| cos(η_A − η_B) sin(sR)/(sR);
- the ELSEPA amplitudes at the table's own angles are the table's numbers;
  hydrogen's Mott-Bethe amplitude against its closed form (1s, first Born);
- the electron wavelength against the textbook values at 100, 200 and 300 kV;
- IAM-XED (iamxed 1.1.0, MIT), for H2 and cyclobutanone at its own test
  settings: numbers it computed, written below (``tools/iamxed_reference.py``
  prints them; it is not imported here because iamxed 1.1.0 calls
  ``numpy.trapz``, which NumPy 2.4 removed);
- PyTorch against the compiled kernel, and gradcheck.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from molmovie._errors import InputError
from molmovie.geometry import distances
from molmovie.scattering import (
    SignalSpec,
    atomic_intensity,
    electron_amplitudes,
    electron_inelastic,
    intensity,
    intensity_from_distances,
    modified_intensity,
    wavenumber,
)
from molmovie.scattering.debye import intensity_reference
from molmovie.scattering.electrons import _elsepa_table, check_probe

S = np.linspace(0.5, 12.0, 120)
BOHR = 0.529177210903  # Angstrom (CODATA 2018)
MC2_KEV = 510.99895

# ---------------------------------------------------------------- IAM-XED's numbers (tools/iamxed_reference.py)
# iamxed 1.1.0, UEDDiffractionCalculator at 3.7 MeV; every 25th point of its grids. H2: I(s) in Å², s 0 to 10 1/bohr
# (1000 points); cyclobutanone: ΔI/I of c2.xyz against cycbut.xyz, s 0 to 6 1/bohr (600 points). s here in 1/Å.
H2 = (["H", "H"], [[0.0, 0.0, 0.0], [0.7439, 0.0, 0.0]])
CYCBUT = (
    ["O", "C", "C", "C", "C", "H", "H", "H", "H", "H", "H"],
    [
        [1.875860, 0.000000, -0.037051],
        [-0.384718, -1.109610, 0.038134],
        [-1.476860, 0.000000, -0.060005],
        [-0.384719, 1.109610, 0.038104],
        [0.680976, 0.000006, 0.014932],
        [-0.318733, 1.819790, -0.789568],
        [-0.380749, 1.673260, 0.975355],
        [-2.009580, -0.000036, -1.011066],
        [-2.206442, 0.000033, 0.749254],
        [-0.318681, -1.819541, -0.789759],
        [-0.380778, -1.673539, 0.975203],
    ],
)
C2 = (  # the ring opened into two fragments 910 Å apart
    ["C", "H", "H", "C", "O", "C", "C", "H", "H", "H", "H"],
    [
        [0.049030, -0.002092, 0.032503],
        [0.086612, 0.018273, 1.114554],
        [0.963708, -0.008372, -0.546374],
        [-1.113525, -0.019061, -0.581301],
        [-2.149314, -0.034264, -1.128531],
        [-0.087150, 910.038005, 0.018490],
        [0.121673, 910.254510, 1.314914],
        [0.709549, 909.70879, -0.644438],
        [-1.065541, 910.175269, -0.436016],
        [1.099578, 910.115564, 1.770360],
        [-0.675975, 910.581512, 1.977798],
    ],
)
IAMXED_BOHR = 1.0 / 1.8897259886  # IAM-XED's bohr, Å
H2_S = np.arange(0, 1000, 25) * (10.0 / 999) / IAMXED_BOHR
H2_I = np.array([
    7.6059681672861558e+01, 7.1858289891671518e+01, 6.0898879448284966e+01, 4.6930466512745639e+01,
    3.3507265697047600e+01, 2.2615348546373252e+01, 1.4707007312862713e+01, 9.3735990596798153e+00,
    5.9463381259808399e+00, 3.8098268078406892e+00, 2.4998840513671796e+00, 1.7022162788275588e+00,
    1.2144222218490768e+00, 9.1053748029015602e-01, 7.1501447639566740e-01, 5.8255236877842176e-01,
    4.8698304556591160e-01, 4.1314237076161486e-01, 3.5272789440644087e-01, 3.0117917326604915e-01,
    2.5620613845093854e-01, 2.1664255732286533e-01, 1.8194681775016214e-01, 1.5180612136016386e-01,
    1.2598738119578393e-01, 1.0422683644430025e-01, 8.6206355734846404e-02, 7.1548338116780130e-02,
    5.9830765355493046e-02, 5.0609579737942181e-02, 4.3440446972158736e-02, 3.7903058056587995e-02,
    3.3615076349223040e-02, 3.0245334676792895e-02, 2.7518603697696636e-02, 2.5220153179024745e-02,
    2.3190964773738283e-02, 2.1322921888851813e-02, 1.9550157034340487e-02, 1.7842217705282867e-02,
])  # fmt: skip
CB_S = np.arange(0, 600, 25) * (6.0 / 599) / IAMXED_BOHR
CB_DI = np.array([
    -3.9659148465558484e-16, -4.5692470285036668e-01, -2.9944228060426320e-01, 7.8161500410155488e-02,
    5.9023314731384613e-01, 4.4669626948115221e-01, 1.1548213091086200e-01, -4.8871675758022433e-02,
    -9.8511381154954461e-02, -1.1227414737715806e-01, -1.0737760915462183e-01, -7.2094268917186580e-02,
    -2.9729268263661422e-02, 1.1708755477059513e-02, 8.4361297002080532e-02, 1.6883255096636096e-01,
    1.3655551163990162e-01, -3.5370954037238210e-03, -1.2008135512069386e-01, -1.6307914912304283e-01,
    -1.1384465876058522e-01, 2.2460834821674682e-02, 1.4313112795190636e-01, 1.3399252952959315e-01,
])  # fmt: skip


def _electron(symbols, positions, s, **kw):
    return intensity(symbols, np.asarray(positions, dtype=float), s, probe="electron", **kw)


@pytest.mark.parametrize("energy_kev", [3700.0, 3000.0])
def test_h2_static_intensity_agrees_with_iamxed(energy_kev):
    """Within 0.5 % of the curve's range: ELSEPA at 3.7 MeV (measured 1e-4), and even Mott-Bethe near it (measured 2e-3 at 3.7 MeV)."""
    if energy_kev == 3700.0:
        I = _electron(*H2, H2_S)
        assert np.max(np.abs(I - H2_I)) <= 2e-4 * np.ptp(H2_I)
    else:
        # the Born amplitudes scale with γ: rescale IAM-XED's to 3 MeV, I ∝ γ²
        scale = ((1 + energy_kev / MC2_KEV) / (1 + 3700.0 / MC2_KEV)) ** 2
        I = _electron(*H2, H2_S, energy_kev=energy_kev)
        assert np.max(np.abs(I - scale * H2_I)) <= 5e-3 * np.ptp(scale * H2_I)


def test_cyclobutanone_difference_signal_agrees_with_iamxed():
    dI = (_electron(*C2, CB_S) - _electron(*CYCBUT, CB_S)) / _electron(*CYCBUT, CB_S)
    # the bar is 0.5 % of the range; measured 1.6e-5
    assert np.max(np.abs(dI - CB_DI)) <= 1e-4 * np.ptp(CB_DI)


def test_one_atom_gives_its_amplitude_squared():
    for symbol in ("H", "C", "S", "I"):
        f = electron_amplitudes([symbol], S)[0]
        np.testing.assert_allclose(_electron([symbol], np.zeros((1, 3)), S), np.abs(f) ** 2, rtol=1e-14)


@pytest.mark.parametrize("grid", ["uniform", "irregular"])
@pytest.mark.parametrize("energy_kev", [3700.0, 100.0])
def test_two_atoms_exactly(grid, energy_kev):
    s = S if grid == "uniform" else np.sort(np.random.default_rng(3).uniform(0.1, 12.0, 90))
    R = 2.37
    fa, fb = electron_amplitudes(["C", "I"], s, energy_kev)
    x = s * R
    expected = (
        np.abs(fa) ** 2 + np.abs(fb) ** 2 + 2 * np.abs(fa) * np.abs(fb) * np.cos(np.angle(fa) - np.angle(fb)) * np.sin(x) / x
    )
    got = intensity_from_distances(["C", "I"], [[R]], s, probe="electron", energy_kev=energy_kev)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=0)
    # the phase difference matters: iodine's phase is not carbon's at 3.7 MeV (and zero for the Born amplitudes)
    if energy_kev == 3700.0:
        assert np.min(np.abs(np.angle(fb) - np.angle(fa))) > 0.05
    else:
        assert np.all(fa.imag == 0) and np.all(fb.imag == 0)


def test_kernel_matches_the_plain_broadcast_and_s_zero():
    rng = np.random.default_rng(5)
    symbols = CYCBUT[0]
    pos = np.asarray(CYCBUT[1]) + 0.1 * rng.normal(size=(40, 11, 3))
    d = distances(pos)
    for s in (np.linspace(0.0, 12.0, 301), np.sort(rng.uniform(0.0, 12.0, 70))):
        ref = intensity_reference(symbols, d, s, probe="electron")
        np.testing.assert_allclose(intensity_from_distances(symbols, d, s, probe="electron"), ref, rtol=1e-12, atol=0)
    # at s = 0 every sinc is 1: I(0) = |Σ_A f_A(0)|² only when the phases agree; here Σ|f_A||f_B| cos(Δη)
    f0 = electron_amplitudes(symbols, [0.0])[:, 0]
    expected = np.abs(np.sum(f0)) ** 2
    np.testing.assert_allclose(intensity_from_distances(symbols, d[:1], [0.0], probe="electron")[0, 0], expected, rtol=1e-12)


def test_elsepa_amplitudes_are_the_table_at_its_own_angles():
    theta, re, im = _elsepa_table()
    k = wavenumber(3700.0)
    pick = (theta > 0.01) & (theta < 1.0)
    s = 2 * k * np.sin(np.radians(theta[pick]) / 2)
    f = electron_amplitudes(["C", "S"], s)
    np.testing.assert_allclose(f.real, re[[5, 15]][:, pick] * 1e8, rtol=1e-12)
    np.testing.assert_allclose(f.imag, im[[5, 15]][:, pick] * 1e8, rtol=1e-12)


def test_mott_bethe_hydrogen_is_the_closed_form():
    """First Born amplitude of the hydrogen 1s atom: (2γ/a₀)(1 − (1 + (a₀s/2)²)⁻²)/s², γ a₀ at s = 0."""
    energy = 1000.0
    gamma = 1 + energy / MC2_KEV
    s = np.array([0.0, 0.1, 0.3, 0.5, 1.0, 3.0, 8.0])
    f = electron_amplitudes(["H"], s, energy)[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = np.where(s == 0, gamma * BOHR, 2 * gamma / BOHR * (1 - (1 + (BOHR * s / 2) ** 2) ** -2) / s**2)
    # xraylib tabulates H's form factor to about 1e-4; below s = 0.3 the even polynomial through 0.3, 0.5, 0.75
    np.testing.assert_allclose(f.real, exact, rtol=1e-3)
    assert np.all(np.diff(f.real) < 0)  # smooth and monotonic through the switch at 0.3


def test_electron_wavelength_against_textbook_values():
    """λ = 3.701, 2.508, 1.969 pm at 100, 200, 300 kV (e.g. Williams & Carter, Table 1.1); s = 2k sin(θ/2)."""
    for kv, pm in ((100, 3.701), (200, 2.508), (300, 1.969)):
        assert 2 * math.pi / wavenumber(kv) * 100 == pytest.approx(pm, abs=1e-3)


def test_inelastic_option_adds_morses_background():
    sym, pos = H2
    base = _electron(sym, pos, S)
    with_inel = _electron(sym, pos, S, inelastic=True)
    np.testing.assert_allclose(with_inel - base, np.sum(electron_inelastic(sym, S), axis=0), rtol=1e-12, atol=1e-12)
    gamma = 1 + 3700.0 / MC2_KEV
    # hydrogen: S = 1 − f², f = (1 + (a₀s/2)²)⁻²
    f = (1 + (BOHR * S / 2) ** 2) ** -2
    np.testing.assert_allclose(electron_inelastic(["H"], S)[0], (2 * gamma / BOHR) ** 2 * (1 - f * f) / S**4, rtol=2e-3)
    with pytest.raises(InputError, match="s' parameter must be > 0"):
        _electron(sym, pos, [0.0, 1.0], inelastic=True)


def test_modified_intensity_is_s_times_molecular_over_atomic():
    sym, pos = H2
    I = _electron(sym, pos, S)
    I_at = atomic_intensity(sym, S, probe="electron")
    f = electron_amplitudes(["H"], S)[0]
    np.testing.assert_allclose(I_at, 2 * np.abs(f) ** 2, rtol=1e-14)
    sM = modified_intensity(I, I_at, S)
    # two identical atoms: I_mol / I_at = sin(sR)/(sR) exactly
    np.testing.assert_allclose(sM, np.sin(S * 0.7439) / 0.7439, rtol=1e-12, atol=1e-14)
    with pytest.raises(InputError, match="I_at"):
        modified_intensity(I, np.zeros_like(S), S)


def test_probe_and_energy_errors():
    sym, pos = H2
    with pytest.raises(InputError, match="'probe' parameter must be one of xray, electron"):
        intensity(sym, np.asarray(pos), S, probe="neutron")
    with pytest.raises(InputError, match="'energy_kev' parameter is the electron beam"):
        intensity(sym, np.asarray(pos), S, energy_kev=3700.0)
    for bad in (0.0, -5.0, float("nan"), True, "x"):
        with pytest.raises(InputError, match="'energy_kev' parameter must be a kinetic energy"):
            check_probe("electron", bad)
    with pytest.raises(InputError, match="backscattering"):
        intensity(sym, np.asarray(pos), [0.5, 1e3], probe="electron", energy_kev=10.0)
    with pytest.raises(InputError, match="ELSEPA tables shipped end"):
        intensity(sym, np.asarray(pos), [0.5, 400.0], probe="electron")
    with pytest.raises(InputError, match="ELSEPA tables shipped are at 3700 keV only"):
        electron_amplitudes(sym, S, 1000.0, source="elsepa")


def test_signal_spec_carries_the_probe():
    xray = SignalSpec(S)
    assert (xray.probe, xray.energy_kev, xray.inelastic) == ("xray", None, True)
    el = SignalSpec(S, probe="electron")
    assert (el.probe, el.energy_kev, el.inelastic) == ("electron", 3700.0, False)
    assert el.attrs()["probe"] == "electron" and el.attrs()["energy_kev"] == 3700.0
    assert SignalSpec.from_attrs(S, el.attrs()) == el and el != xray
    # files written before the probe existed hold X-ray signals
    old = {"inelastic": True, "reference": "first", "photons": None, "irf_fs": None, "seed": None}
    assert SignalSpec.from_attrs(S, old) == xray
    assert el.forward() == {"inelastic": False, "probe": "electron", "energy_kev": 3700.0}
    with pytest.raises(InputError, match="'energy_kev' parameter is the electron beam"):
        SignalSpec(S, energy_kev=100.0)
    with pytest.raises(InputError, match="'probe' parameter"):
        SignalSpec(S, probe="neutrons")


# ---------------------------------------------------------------- PyTorch


torch = pytest.importorskip("torch")


@pytest.mark.parametrize("energy_kev", [3700.0, 300.0])
def test_torch_matches_the_compiled_kernel(energy_kev):
    from molmovie.scattering import DebyeTorch, intensity_torch

    rng = np.random.default_rng(8)
    symbols = CYCBUT[0]
    d = distances(np.asarray(CYCBUT[1]) + 0.1 * rng.normal(size=(20, 11, 3)))
    s = np.linspace(0.0, 12.0, 80)
    ref = intensity_from_distances(symbols, d, s, probe="electron", energy_kev=energy_kev)
    model = DebyeTorch(symbols, s, probe="electron", energy_kev=energy_kev)
    np.testing.assert_allclose(model(torch.from_numpy(d)).numpy(), ref, rtol=1e-10, atol=0)
    got = intensity_torch(symbols, torch.from_numpy(d), s, probe="electron", energy_kev=energy_kev)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=0)
    assert "probe=electron" in repr(model)


def test_torch_electron_gradients_pass_gradcheck():
    from molmovie.scattering import DebyeTorch

    model = DebyeTorch(["C", "S", "I"], [0.0, 0.5, 2.0, 6.8, 12.0], probe="electron")
    d = torch.tensor([[1.55, 2.6, 3.15], [1e-5, 1.4, 2.0]], dtype=torch.float64, requires_grad=True)
    atol = 4 * np.finfo(float).eps * float(model(d).detach().abs().max()) / 1e-7
    assert torch.autograd.gradcheck(model, (d,), eps=1e-7, atol=atol, rtol=1e-6)


# ---------------------------------------------------------------- the PDF


def test_pdf_of_two_atoms_is_the_closed_form_gaussian_pair():
    """sM = sin(sR)/R over s 0 to 30: P(r) = (r/4R) √(π/α) [e^{−(r−R)²/4α} − e^{−(r+R)²/4α}] (the tail beyond is e^{−36})."""
    from molmovie.scattering import pair_distribution

    R, alpha = 1.9, 0.04
    s = np.linspace(0.0, 30.0, 6001)
    r = np.linspace(0.0, 5.0, 101)
    sM = np.sin(s * R) / R
    exact = r / (4 * R) * np.sqrt(np.pi / alpha) * (np.exp(-((r - R) ** 2) / (4 * alpha)) - np.exp(-((r + R) ** 2) / (4 * alpha)))
    P = pair_distribution(sM, s, r, alpha=alpha)
    np.testing.assert_allclose(P, exact, atol=1e-6 * exact.max())
    # r times a Gaussian at R peaks at R/2 + √(R²/4 + 2α) (1.942 here)
    assert r[np.argmax(P)] == pytest.approx(R / 2 + np.sqrt(R**2 / 4 + 2 * alpha), abs=0.025)
    np.testing.assert_allclose(pair_distribution(sM, s, r, alpha=alpha, variant="pdf")[1:], P[1:] / r[1:], rtol=1e-12)


def test_pdf_of_a_molecule_peaks_at_its_distances_and_is_linear():
    """H2 from the electron model (identical atoms: sM = sin(sR)/R exactly), then ΔP of two frames is P − P."""
    from molmovie.scattering import pair_distribution

    s = np.linspace(0.5, 12.0, 300)
    r = np.linspace(0.0, 3.0, 301)
    sym = ["H", "H"]
    pos = np.array([[[0, 0, 0], [0, 0, 0.74]], [[0, 0, 0], [0, 0, 1.2]]], dtype=float)
    I = intensity(sym, pos, s, probe="electron")
    sM = modified_intensity(I, atomic_intensity(sym, s, probe="electron"), s)
    P = pair_distribution(sM, s, r)
    G = pair_distribution(sM, s, r, variant="pdf")  # the Gaussian at R, without the factor r that shifts it
    assert r[np.argmax(G[0])] == pytest.approx(0.74, abs=0.02) and r[np.argmax(G[1])] == pytest.approx(1.2, abs=0.02)
    np.testing.assert_allclose(pair_distribution(sM[1] - sM[0], s, r), P[1] - P[0], atol=1e-12)
    nan = pair_distribution(np.full((1, s.size), np.nan), s, r)
    assert np.isnan(nan).all()


def test_pdf_input_errors():
    from molmovie.scattering import pair_distribution

    s, r = np.linspace(0.5, 12.0, 50), np.linspace(0, 5, 10)
    for kwargs, match in (
        (dict(alpha=-1.0), "'alpha' parameter must be >= 0"),
        (dict(variant="gr"), "'variant' parameter must be one of rpdf, pdf"),
    ):
        with pytest.raises(InputError, match=match):
            pair_distribution(np.zeros(50), s, r, **kwargs)
    with pytest.raises(InputError, match=r"shape \(\.\.\., 50\)"):
        pair_distribution(np.zeros(49), s, r)
    with pytest.raises(InputError, match="increasing"):
        pair_distribution(np.zeros(50), s[::-1], r)
