"""Beamline files in: HDF5, NPZ and text tables of I(q, t) or ΔS(q, t) -> a :class:`Measurement`.

A beamline file holds a q axis, a delay axis and a data array (absolute
intensities, often stacked Legendre components, or a ready difference
signal), with variances or standard deviations, each in its own units. This
module reads them (:func:`read_beamline`, one reader per format in
:data:`READERS`), converts the units at the edge (:data:`Q_UNITS`,
:data:`DELAY_UNITS`, :data:`SIGNAL_UNITS`), builds the difference signal
against a reference with first-order propagation of the uncertainties
(:func:`difference_signal`), and puts it all together (:func:`ingest`).

Conventions (they are the CLI's, ``molmovie ingest``):

- The data array has one axis of the length of q and one of the length of
  the delays, in any order; a third axis is the Legendre stack. When the
  lengths are ambiguous, ``axes`` names them (e.g. ``"l,q,t"``).
- ``t0`` and ``reference_before`` are in the file's delay units; the q range
  (``qmin``, ``qmax``) is in 1/Angstrom.
- Intensities or a ready ΔS (``kind``): ``"auto"`` takes the data as
  intensities when the isotropic component (order 0 of a stack, else the
  data) is positive everywhere in the q range, and as a ready ΔS otherwise.

The modules, in the order a file goes through them: ``_read``
(:func:`read_beamline`, :data:`READERS`), ``_arrays`` (HDF5 and NPZ: arrays
by name), ``_text`` (text tables), ``_data`` (:class:`BeamlineData`, what every
reader returns), ``_reference`` (:func:`difference_signal`,
:func:`pre_t0_chi2`) and ``_ingest`` (the units, :func:`molecule_symbols`,
:func:`ingest`).
"""

from __future__ import annotations

from ._arrays import (  # noqa: F401  (private names importable from here)
    _NAMES,
    _from_source,
    _hdf5_source,
    _legendre_index,
    _npz_source,
    _orient,
    _read_hdf5,
    _read_npz,
    _Source,
)
from ._data import BeamlineData
from ._ingest import (  # noqa: F401
    _ALIASES,
    BOHR,
    DELAY_UNITS,
    Q_UNITS,
    SIGNAL_UNITS,
    _missing,
    _unit,
    ingest,
    molecule_symbols,
)
from ._read import READERS, _guess_format, read_beamline  # noqa: F401
from ._reference import difference_signal, pre_t0_chi2
from ._text import _floats, _parse_text, _read_table, _read_text  # noqa: F401

__all__ = [
    "Q_UNITS",
    "DELAY_UNITS",
    "SIGNAL_UNITS",
    "READERS",
    "BeamlineData",
    "read_beamline",
    "difference_signal",
    "pre_t0_chi2",
    "molecule_symbols",
    "ingest",
]
