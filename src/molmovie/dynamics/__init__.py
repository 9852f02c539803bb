"""Built-in trajectory generator: photoexcited dynamics on GFN2-xTB surfaces, in parallel on Dask.

The paper trained on CASSCF surface-hopping trajectories that cannot be run on
a laptop; this package makes cheap, physically motivated stand-ins so that
molmovie runs end to end for any molecule:

1. initial conditions: GFN2-xTB ground-state minimum, finite-difference
   Hessian, 0 K Wigner sampling (:mod:`.wigner`);
2. an excited-state :class:`Model` (:mod:`.models`): which GFN2-xTB surfaces
   stand in for the excited state, the photon energy, where the excess energy
   goes (:mod:`.excess`), and an optional delayed switch between surfaces;
3. velocity Verlet at 0.5 fs on tblite's GFN2-xTB, with an SCF retry ladder
   (:mod:`.md`, :mod:`._xtb`);
4. many trajectories as Dask tasks, streamed to a checkpoint and resumable
   (:mod:`.runner`).

Energies come from a calculator looked up by name (:mod:`.calculators`:
GFN2-xTB by default, a diatomic Morse potential from spectroscopic
constants, any ASE calculator), and trajectories may start from other
initial-condition families than the Wigner sample (:mod:`.initial`: a
displaced wavepacket, dissociation at chosen excess energies, mixtures).

Example
-------
>>> from molmovie.dynamics import generate, get_model
>>> ds = generate("c2h4", 8, seed=1, output="c2h4.h5")                    # doctest: +SKIP
>>> slow = get_model("cs2-isc").replace(switch_time=800.0)
>>> ds = generate("cs2", 100, model=slow, workers=2, output="cs2.h5")     # doctest: +SKIP
>>> from molmovie.dynamics import Displaced, Dissociation, Mixture
>>> start = Mixture(((Displaced(amplitude=(0.02, 0.3)), 2), (Dissociation(excess=(0.1, 2.0)), 1)))
>>> ds = generate("i2", 300, calculator="morse-i2-x", initial=start)       # doctest: +SKIP
"""

from ._xtb import SCF_LADDER, SCFError, Surface, XTBEngine, optimise
from .calculators import CALCULATORS, ASECalculator, Morse, get_calculator, register_calculator
from .excess import DIRECTIONS
from .initial import INITIAL_CONDITIONS, Displaced, Dissociation, Mixture, Wigner, get_initial
from .md import TrajectoryResult, run_trajectory, velocity_verlet
from .models import MODELS, Model, default_model, get_model
from .runner import generate, partial_path, prepare, trajectory_seed
from .wigner import NormalModes, hessian, normal_modes, wigner_sample

__all__ = [
    "Surface",
    "Model",
    "MODELS",
    "DIRECTIONS",
    "get_model",
    "default_model",
    "NormalModes",
    "hessian",
    "normal_modes",
    "wigner_sample",
    "prepare",
    "run_trajectory",
    "velocity_verlet",
    "TrajectoryResult",
    "generate",
    "trajectory_seed",
    "partial_path",
    "optimise",
    "XTBEngine",
    "SCFError",
    "SCF_LADDER",
    "CALCULATORS",
    "get_calculator",
    "register_calculator",
    "Morse",
    "ASECalculator",
    "INITIAL_CONDITIONS",
    "get_initial",
    "Wigner",
    "Displaced",
    "Dissociation",
    "Mixture",
]
