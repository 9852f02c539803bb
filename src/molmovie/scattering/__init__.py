"""Scattering: the forward models from molecular geometries to X-ray and electron scattering signals.

Eq. (1) of Asenov et al. in the independent atom model (IAM), orientation
averaged (gas phase):

    I(q) = Σ_A f_A(q)² + Σ_A Σ_{B≠A} f_A(q) f_B(q) sin(q R_AB)/(q R_AB)  [+ Σ_A S_A(q)]

For electrons (``probe="electron"``, a beam energy in keV) the same sum with
complex amplitudes f_A = |f_A| e^{iη_A} and s for q:

    I(s) = Σ_A |f_A|² + Σ_A Σ_{B≠A} |f_A||f_B| cos(η_A − η_B) sin(s R_AB)/(s R_AB)

- :func:`form_factors`, :func:`incoherent`: f and S from xraylib (Hubbell's tables);
- :func:`electron_amplitudes`, :func:`electron_inelastic`: the electron
  amplitudes (ELSEPA at 3.7 MeV, Mott-Bethe elsewhere) and Morse's background;
- :func:`atomic_intensity`, :func:`modified_intensity`: I_at and sM(s) = s I_mol/I_at;
- :func:`pair_distribution`: P(r) = r ∫ sM(s) sin(sr) e^{−αs²} ds (and ΔP from ΔsM);
- :func:`intensity`, :func:`intensity_from_distances`: Eq. (1), compiled (numba);
- :func:`difference_signal`: ΔS = (I − I_ref)/I_ref;
- :class:`DebyeTorch`, :func:`intensity_torch`: the same formula in PyTorch,
  differentiable with respect to the distances (imported on first use, so
  ``import molmovie.scattering`` does not import torch); :class:`DebyeCompiled`:
  the same module computed by the compiled kernels, gradient included (CPU, float64);
- :func:`q_grid`, :data:`DEFAULT_Q`, :func:`simulate`, :func:`simulate_signals`:
  the detector model (q grid, reference, photon noise, time resolution);
- :class:`SignalSpec`: what a simulated ΔS is (q grid, inelastic, reference,
  noise, IRF, seed), returned with the signals and stored with them.

The measurement model, what a pump-probe experiment records (ensemble
average, excitation fraction, time zero, IRF, noise), is built on this
package in :mod:`molmovie.measurement`.

Units: q in 1/Å (q = 4π sin(θ)/λ), distances in Å, intensities in electron
units (X-rays) or Å² (electrons, |f|² with f in Å).
"""

from __future__ import annotations

from typing import Any

from .debye import atomic_intensity, difference_signal, intensity, intensity_from_distances, scattering_factors
from .detector import DEFAULT_Q, Signals, q_grid, simulate, simulate_signals
from .electrons import PROBES, electron_amplitudes, electron_inelastic, modified_intensity, wavenumber
from .pdf import pair_distribution
from .spec import SignalSpec
from .tables import form_factors, incoherent

__all__ = [
    "form_factors",
    "incoherent",
    "electron_amplitudes",
    "electron_inelastic",
    "wavenumber",
    "PROBES",
    "intensity",
    "intensity_from_distances",
    "difference_signal",
    "atomic_intensity",
    "scattering_factors",
    "modified_intensity",
    "pair_distribution",
    "DebyeTorch",
    "DebyeCompiled",
    "intensity_torch",
    "q_grid",
    "DEFAULT_Q",
    "SignalSpec",
    "Signals",
    "simulate",
    "simulate_signals",
]

_TORCH_NAMES = ("DebyeTorch", "intensity_torch")
_COMPILED_NAMES = ("DebyeCompiled",)


def __getattr__(name: str) -> Any:
    # PyTorch is imported only when its part of the API is first asked for.
    if name in _TORCH_NAMES:
        from . import debye_torch

        return getattr(debye_torch, name)
    if name in _COMPILED_NAMES:
        from . import debye_compiled

        return getattr(debye_compiled, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_TORCH_NAMES) | set(_COMPILED_NAMES))
