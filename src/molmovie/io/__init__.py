"""File formats: one module per format, each with its format name and version.

- :mod:`molmovie.io.dataset`: the dataset (HDF5, format ``molmovie``),
  :func:`read_dataset`, :func:`write_dataset`;
- :mod:`molmovie.io.signals`: the minimal signals file that ``invert`` reads
  (HDF5 with q, time, dS), :func:`read_signals`;
- :mod:`molmovie.io.inversion`: the inversion result (HDF5, ``molmovie-inversion``),
  :func:`write_inversion`, :func:`read_inversion`;
- :mod:`molmovie.io.model`: the model file (safetensors, ``molmovie-model``),
  :func:`write_model_file`, :func:`read_model_file`;
- :mod:`molmovie.io.measurement`: the measurement (HDF5, ``molmovie-measurement``),
  :func:`read_measurement`, :func:`write_measurement`;
- :mod:`molmovie.io.fit`: the fit result (HDF5, ``molmovie-fit``), :func:`read_fit`, :func:`write_fit`;
- :mod:`molmovie.io.beamline`: a beamline's file (HDF5, ``.npz``, text), :func:`read_beamline`,
  and :func:`ingest`, which makes a measurement of it;
- :mod:`molmovie.io.extxyz`: predicted geometries as extended XYZ, :func:`write_extxyz`,
  :func:`geometries_from_distances`;
- :mod:`molmovie.io.describe`: what any of these files holds, :func:`describe` (``molmovie info``);

and what they share (:mod:`molmovie.io._files`): :func:`check_output` (an
existing output is replaced only with ``force=True``) and :class:`atomic_path`
(a temporary file in the same folder, renamed onto the target on success,
with the permissions of a new file, 0666 less the umask). Every file carries
``format`` and ``version`` root attributes (the model file: in its header),
every stored array a ``units`` attribute, and readers open files read-only.
"""

from __future__ import annotations

from ._files import atomic_path, check_output
from .beamline import ingest, read_beamline
from .dataset import DATASET_FORMAT, DATASET_VERSION, read_dataset, write_dataset
from .describe import describe, file_kind
from .extxyz import geometries_from_distances, write_extxyz
from .fit import FIT_FORMAT, FIT_VERSION, FitResult, read_fit, write_fit
from .inversion import INVERSION_FORMAT, INVERSION_VERSION, Inversion, read_inversion, write_inversion
from .measurement import MEASUREMENT_FORMAT, MEASUREMENT_VERSION, read_measurement, write_measurement
from .model import MODEL_FORMAT, MODEL_VERSION, need_array, read_model_file, write_model_file
from .signals import read_signals

__all__ = [
    "atomic_path",
    "check_output",
    "DATASET_FORMAT",
    "DATASET_VERSION",
    "read_dataset",
    "write_dataset",
    "read_signals",
    "INVERSION_FORMAT",
    "INVERSION_VERSION",
    "Inversion",
    "read_inversion",
    "write_inversion",
    "MODEL_FORMAT",
    "MODEL_VERSION",
    "read_model_file",
    "write_model_file",
    "need_array",
    "MEASUREMENT_FORMAT",
    "MEASUREMENT_VERSION",
    "read_measurement",
    "write_measurement",
    "FIT_FORMAT",
    "FIT_VERSION",
    "FitResult",
    "read_fit",
    "write_fit",
    "read_beamline",
    "ingest",
    "file_kind",
    "describe",
    "geometries_from_distances",
    "write_extxyz",
]
