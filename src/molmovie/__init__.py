"""molmovie: molecular movies from ultrafast X-ray scattering.

Trajectories -> signals (Eq. (1), IAM Debye formula) -> dataset (HDF5) ->
inversion (frame-by-frame baseline, VRNN) -> distances R_AB(t) with
uncertainties -> metrics and figures.

The top-level package re-exports the light, commonly used pieces; heavy
modules (torch, tblite) load only when their features are used.
"""

from __future__ import annotations

from ._errors import InputError
from ._version import __version__
from .datasets import Dataset, make_splits
from .io import read_dataset, write_dataset
from .molecules import Molecule, builtin, get_molecule
from .trajectories import Ensemble, read_ensemble, read_trajectory

__all__ = [
    "__version__",
    "InputError",
    "Molecule",
    "builtin",
    "get_molecule",
    "Ensemble",
    "read_ensemble",
    "read_trajectory",
    "Dataset",
    "read_dataset",
    "write_dataset",
    "make_splits",
]
