"""What a simulated ΔS is: the one description of a signal that every part of molmovie reads.

A :class:`SignalSpec` records how difference signals were (or are to be)
simulated from trajectories by :func:`molmovie.scattering.simulate`: the
probe (X-rays, or electrons at a beam energy), the q (or s) grid, whether the
inelastic term is included, the reference pattern, the
photon noise, the time resolution and the noise seed. It travels with the
signals: it is stored in the dataset file (the attributes of ``/signals``) and
in a model file's configuration, and read back from both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._errors import InputError
from .debye import default_inelastic
from .electrons import check_probe
from .tables import check_q

__all__ = ["SignalSpec", "REFERENCES"]

#: The ΔS references :func:`molmovie.scattering.simulate` knows.
REFERENCES = ("first", "ground")


@dataclass(frozen=True, eq=False, repr=False)
class SignalSpec:
    """How difference signals ΔS(q, t) are simulated.

    Validated on construction, so a spec that exists is a valid one.

    Attributes
    ----------
    q : ndarray, shape (Q,), 1/Angstrom
        The momentum-transfer grid (a read-only copy); s for electrons.
    inelastic : bool, optional
        Whether the inelastic term is included in I(q): the Compton term
        Σ_A S_A(q) for X-rays (default True), Morse's background for
        electrons (default False).
    reference : {"first", "ground"}, default "first"
        I_ref: each trajectory's first frame, or the mean first frame of all
        trajectories (the laser-off ground state).
    photons : float or None
        Expected photons per pattern (Poisson noise); None: no noise.
    irf_fs : float or None
        FWHM of the Gaussian instrument response, fs; None: perfect time resolution.
    seed : int or None
        Seed of the photon noise; None when there is none to record.
    probe : {"xray", "electron"}, default "xray"
        What scattered: X-rays (Eq. (1)) or electrons (complex amplitudes at
        ``energy_kev``; :mod:`molmovie.scattering.electrons`).
    energy_kev : float or None
        The electron beam's kinetic energy, keV (3700 by default for
        electrons); None for X-rays.

    Examples
    --------
    >>> from molmovie.scattering import SignalSpec, q_grid
    >>> spec = SignalSpec(q_grid(), reference="ground", photons=1e6, seed=3)
    >>> spec.attrs()
    {'inelastic': True, 'reference': 'ground', 'photons': 1000000.0, 'irf_fs': None, 'seed': 3, 'probe': 'xray', 'energy_kev': None}
    >>> SignalSpec.from_attrs(spec.q, spec.attrs()) == spec
    True
    """

    q: np.ndarray
    inelastic: bool = None  # type: ignore[assignment]  # None: the probe's default, resolved on construction
    reference: str = "first"
    photons: float | None = None
    irf_fs: float | None = None
    seed: int | None = None
    probe: str = "xray"
    energy_kev: float | None = None

    def __post_init__(self) -> None:
        q = check_q(self.q).copy()
        q.flags.writeable = False
        probe, energy_kev = check_probe(self.probe, self.energy_kev)
        if self.inelastic is None:
            object.__setattr__(self, "inelastic", default_inelastic(probe))
        if not isinstance(self.inelastic, (bool, np.bool_)):
            raise InputError(f"The 'inelastic' parameter must be True or False; got {self.inelastic!r}")
        if self.reference not in REFERENCES:
            raise InputError(f"The 'reference' parameter must be 'first' or 'ground'; got {self.reference!r}")
        seed = self.seed
        if seed is not None:
            if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
                raise InputError(f"The 'seed' parameter must be a whole number >= 0 or None; got {seed!r}")
            seed = int(seed)
        for name, value in (
            ("q", q),
            ("inelastic", bool(self.inelastic)),
            ("reference", str(self.reference)),
            ("photons", _photons(self.photons)),
            ("irf_fs", _positive_or_none("irf_fs", self.irf_fs, "FWHM in fs")),
            ("seed", seed),
            ("probe", probe),
            ("energy_kev", energy_kev),
        ):
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------ the stored form
    def attrs(self) -> dict:
        """Everything but q, as JSON-able values: the ``/signals`` attributes of a dataset file.

        Returns
        -------
        dict
            ``inelastic``, ``reference``, ``photons``, ``irf_fs``, ``seed``,
            ``probe``, ``energy_kev``.
        """
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "q"}

    @classmethod
    def from_attrs(cls, q: ArrayLike, attrs: Mapping) -> SignalSpec:
        """The spec of stored signals: their q grid and the attributes :meth:`attrs` wrote.

        Attributes missing from ``attrs`` take their defaults, as files written
        before an attribute existed mean: a file without ``probe`` (all
        written before electrons) holds X-ray signals.

        Parameters
        ----------
        q : array_like, shape (Q,), 1/Angstrom
        attrs : mapping
            Decoded attribute values, e.g. ``{"reference": "ground", "photons": None}``.

        Raises
        ------
        InputError
            For an attribute this molmovie does not know, or an invalid value.
        """
        known = [f.name for f in fields(cls) if f.name != "q"]
        unknown = sorted(set(attrs) - set(known))
        if unknown:
            raise InputError(f"unknown signal attributes {unknown} (known: {', '.join(known)})")
        return cls(np.asarray(q), **{k: attrs[k] for k in known if k in attrs})

    # ------------------------------------------------------------ value semantics
    def forward(self) -> dict:
        """The forward-model settings, ``inelastic``, ``probe`` and ``energy_kev``, as keywords of
        :func:`molmovie.scattering.intensity_from_distances` and :class:`molmovie.scattering.DebyeTorch`."""
        return {"inelastic": self.inelastic, "probe": self.probe, "energy_kev": self.energy_kev}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SignalSpec):
            return NotImplemented
        return self.attrs() == other.attrs() and np.array_equal(self.q, other.q)

    def __hash__(self) -> int:
        return hash((self.q.tobytes(), *self.attrs().values()))

    def __repr__(self) -> str:
        grid = f"<{self.q.size} points, {self.q[0]:g} to {self.q[-1]:g} 1/Angstrom>"
        rest = ", ".join(f"{k}={v!r}" for k, v in self.attrs().items())
        return f"SignalSpec(q={grid}, {rest})"


def _positive_or_none(name: str, value: Any, meaning: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, (bool, np.bool_)) or not (math.isfinite(number) and number > 0):
        raise InputError(f"The '{name}' parameter must be > 0 ({meaning}); got {value!r}")
    return number


#: Most expected photons per pattern: Poisson counts beyond about 1e18 overflow 64-bit integers.
MAX_PHOTONS = 1e18


def _photons(value: Any) -> float | None:
    photons = _positive_or_none("photons", value, "expected photons per pattern")
    if photons is not None and photons > MAX_PHOTONS:
        raise InputError(
            f"The 'photons' parameter must be <= {MAX_PHOTONS:g} (Poisson counts beyond that overflow "
            f"64-bit integers; for a noise-free signal give no photons); got {photons:g}"
        )
    return photons
