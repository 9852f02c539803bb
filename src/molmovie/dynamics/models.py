"""Excited-state models: named, documented recipes for photoexcited dynamics on GFN2-xTB.

GFN2-xTB gives ground states of any charge and spin, not excited singlets, so
each model maps a photoexcitation onto surfaces xTB does have, and says where
the photon's energy goes. A :class:`Model` is a frozen dataclass: pick one by
name from :data:`MODELS` and change any field with :meth:`Model.replace`.

Every trajectory starts from a 0 K Wigner sample of the neutral ground state
(``ground``). Then:

1. It is put on ``excited`` (if given) or else on ``surface``.
2. If ``photon_energy`` is set, the energy it would have after a vertical
   excitation, :math:`E_{S_0}(x) + E_{h\\nu}`, is matched: the difference
   :math:`E_{S_0}(x) + E_{h\\nu} - E_{start}(x)` is added as kinetic energy
   along the ``excess_into`` directions (see :mod:`molmovie.dynamics.excess`),
   or, with ``excess="potential"``, held as a constant shift of the first
   surface until the switch.
3. With ``excited`` set, it switches to ``surface`` after a random delay drawn
   from an exponential distribution of mean ``switch_time`` (a first-order
   decay: internal conversion, intersystem crossing), at the first step after
   the delay where the two surfaces lie within ``switch_gap`` of each other
   (a crossing region) if that is set. The switch conserves the total
   energy: the velocities are scaled, as surface hopping does when no
   coupling vector is known (SHARC's default), or, with
   ``excess="potential"``, the released energy goes along ``excess_into``;
   if there is not enough kinetic energy the switch waits for a later step
   (a frustrated hop).

The built-in recipes and the physical argument behind each setting are in
:data:`MODELS` (``references``) and in the README ("Built-in trajectory
generator").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .._errors import InputError
from .._typing import Symbols
from ..molecules import atomic_numbers, formula
from ._xtb import Surface
from .excess import DIRECTIONS

if TYPE_CHECKING:
    from ..molecules import Molecule
    from .calculators import Calculator

__all__ = ["Model", "Surface", "MODELS", "get_model", "default_model", "S0"]

S0 = Surface("S0", charge=0, multiplicity=1)


@dataclass(frozen=True)
class Model:
    """A recipe for photoexcited dynamics on GFN2-xTB surfaces.

    Attributes
    ----------
    name : str
    description : str
        One line: the photophysics the recipe stands for.
    surface : Surface
        Surface the dynamics runs on (after the switch, if there is one).
    excited : Surface or None
        Surface before the switch; None starts on ``surface``.
    switch_time : float
        Mean of the exponentially distributed delay of the switch from
        ``excited`` to ``surface``, fs (ignored without ``excited``).
    switch_gap : float or None
        After the delay, switch only at a step where the two surfaces lie
        within this many eV of each other (a crossing, where non-adiabatic
        and spin-orbit transitions happen); None switches at the first step
        after the delay whatever the gap.
    photon_energy : float or None
        eV. None adds no excess energy: the trajectory keeps the energy of
        its Wigner sample on the first surface (a vertical start).
    excess : {"kinetic", "potential"}
        Where the excess energy :math:`E_{S_0}(x) + E_{h\\nu} - E_{start}(x)`
        is at the start. ``"kinetic"``: added as kinetic energy along
        ``excess_into`` at t = 0. ``"potential"``: the first surface is shifted
        up by it (a constant per trajectory, so the forces are unchanged): the
        molecule moves on the shape of the excited surface with the energy of
        the excited state, which for a bound state keeps it bound; at the
        switch to ``surface`` the shift is released as kinetic energy along
        ``excess_into``.
    excess_into : tuple of str
        Directions that take the excess kinetic energy
        (:data:`molmovie.dynamics.excess.DIRECTIONS`).
    partition : {"equal", "random"}
        How the excess is shared between the directions.
    ground : Surface
        Surface of the initial conditions (optimisation, Hessian, Wigner
        sampling) and of the energy matching.
    duration : float
        Simulated time, fs.
    n_frames : int
        Frames stored, equally spaced from 0 to ``duration``.
    timestep : float
        Velocity Verlet step, fs.
    electronic_temperature : float
        Fermi smearing of the SCF, K.
    drift_threshold : float
        A trajectory whose total energy strays further than this from its
        start is flagged, eV.
    stop_dissociated : bool
        End a trajectory at the first stored frame where its fragments are
        apart even with a bond cutoff of twice the covalent radii (as SHARC
        runs stop when a fragment leaves); saves the free flight of the
        fragments, at the price of shorter trajectories in the dataset.
    formula : str or None
        The molecule the recipe is made for (Hill formula); None for any.
    references : tuple of str
        Where the numbers come from.
    """

    name: str
    description: str
    surface: Surface
    excited: Surface | None = None
    switch_time: float = 0.0
    switch_gap: float | None = None
    photon_energy: float | None = None
    excess: str = "kinetic"
    excess_into: tuple[str, ...] = ()
    partition: str = "equal"
    ground: Surface = S0
    duration: float = 1000.0
    n_frames: int = 201
    timestep: float = 0.5
    electronic_temperature: float = 300.0
    drift_threshold: float = 0.1
    stop_dissociated: bool = False
    formula: str | None = None
    references: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "excess_into", tuple(self.excess_into))
        object.__setattr__(self, "references", tuple(self.references))
        for name in self.excess_into:
            if name not in DIRECTIONS:
                raise InputError(f"unknown excess-energy direction {name!r}; choose from {', '.join(DIRECTIONS)}")
        if self.excess not in ("kinetic", "potential"):
            raise InputError(f"the 'excess' of a model must be 'kinetic' or 'potential'; got {self.excess!r}")
        if self.excess == "potential" and self.excited is None:
            raise InputError("a model with excess='potential' needs an 'excited' surface to switch from")
        if self.partition not in ("equal", "random"):
            raise InputError(f"the 'partition' of a model must be 'equal' or 'random'; got {self.partition!r}")
        if not self.duration > 0:
            raise InputError(f"the 'duration' of a model must be > 0 fs; got {self.duration}")
        if not self.timestep > 0:
            raise InputError(f"the 'timestep' of a model must be > 0 fs; got {self.timestep}")
        if self.n_frames < 2:
            raise InputError(f"a model needs 'n_frames' >= 2; got {self.n_frames}")
        steps = self.duration / self.timestep
        stride = steps / (self.n_frames - 1)
        if abs(steps - round(steps)) > 1e-6 or abs(stride - round(stride)) > 1e-6 or round(stride) < 1:
            raise InputError(
                f"the frame interval {self.duration / (self.n_frames - 1):g} fs must be a whole number of "
                f"{self.timestep:g} fs time steps"
            )
        if self.switch_gap is not None and not self.switch_gap > 0:
            raise InputError(f"the 'switch_gap' of a model must be > 0 eV or None; got {self.switch_gap}")
        if self.switch_time < 0:
            raise InputError(f"the 'switch_time' of a model must be >= 0 fs; got {self.switch_time}")
        if self.photon_energy is not None and not self.photon_energy > 0:
            raise InputError(f"the 'photon_energy' of a model must be > 0 eV; got {self.photon_energy}")
        if self.excess_into and self.photon_energy is None:
            raise InputError("a model with 'excess_into' directions needs a 'photon_energy'")

    @property
    def n_steps(self) -> int:
        """Time steps per trajectory."""
        return int(round(self.duration / self.timestep))

    @property
    def stride(self) -> int:
        """Time steps between stored frames."""
        return int(round(self.n_steps / (self.n_frames - 1)))

    @property
    def surfaces(self) -> tuple[Surface, ...]:
        """Surfaces in the order a trajectory visits them; ``state`` indexes this."""
        return (self.surface,) if self.excited is None else (self.excited, self.surface)

    def replace(self, **changes: Any) -> Model:
        """A copy with some fields changed (validated again)."""
        unknown = set(changes) - set(self.__dataclass_fields__)
        if unknown:
            raise InputError(
                f"unknown model field(s) {', '.join(sorted(unknown))}; fields are {', '.join(self.__dataclass_fields__)}"
            )
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-serialisable record of the recipe."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Model:
        d = dict(d)
        for key in ("surface", "excited", "ground"):
            if d.get(key) is not None:
                d[key] = Surface(**d[key])
        return cls(**d)

    def check(self, symbols: Symbols) -> None:
        """Raise :class:`InputError` if the recipe does not fit a molecule."""
        if self.formula is not None and formula(symbols) != self.formula:
            raise InputError(
                f"model {self.name!r} is made for {self.formula}, not {formula(symbols)}; "
                f"use 'cation', 'triplet' or 'ground' for other molecules"
            )
        electrons = int(atomic_numbers(symbols).sum())
        for s in (self.ground,) + self.surfaces:
            n = electrons - s.charge
            if n < 1 or (s.multiplicity - 1) % 2 != n % 2 or s.multiplicity - 1 > n:
                raise InputError(
                    f"surface {s.label} of model {self.name!r} (charge {s.charge:+d}, multiplicity {s.multiplicity}) "
                    f"is impossible with {n} electrons; for a radical give the model surfaces of even multiplicity, "
                    f"e.g. get_model({self.name!r}).replace(ground=Surface('D0', 0, 2), ...)"
                )


# --------------------------------------------------------------------------- built-in recipes

_PAPER = "Asenov, Zotev, Ramamoorthy, Kirrander, 'Inversion of Ultrafast X-ray Scattering with Dynamics Constraints'"

CATION = Surface("D0+", charge=1, multiplicity=2)
T1 = Surface("T1", charge=0, multiplicity=3, spin_polarization=True)
#: Open-shell singlet proxy: the triplet's one-electron-promoted configuration
#: without GFN2's spin-polarisation (exchange) term, i.e. the spin-averaged
#: energy of the open-shell configuration, which lies between the triplet and
#: the open-shell singlet of that configuration.
S1_PROXY = Surface("S1*", charge=0, multiplicity=3, spin_polarization=False)

MODELS: dict[str, Model] = {}


def _register(model: Model) -> Model:
    MODELS[model.name] = model
    return model


_register(
    Model(
        name="nmm-cation",
        description="N-methylmorpholine after 3p Rydberg excitation (200 nm): the ion core drives the motion, on the NMM+ surface",
        surface=CATION,
        formula="C5H11NO",
        duration=1000.0,
        n_frames=201,
        references=(
            _PAPER,
            "Rydberg states have the geometry and forces of the cation core: the Rydberg surface is the cation "
            "surface shifted by the Rydberg electron's binding energy, so no excess energy is added "
            "(Stankus et al., Nat. Chem. 11, 716 (2019) for NMM 3p -> 3s dynamics).",
        ),
    )
)

_register(
    Model(
        name="c2h4-pipi",
        description="ethylene after pi-pi* excitation at 7.7 eV: the pi-pi* configuration (S1*) with the energy of the "
        "excitation, excess shared between the C=C twist and the Franck-Condon active C=C stretch",
        surface=S1_PROXY,
        photon_energy=7.7,
        excess_into=("torsion", "gradient"),
        partition="equal",
        formula="C2H4",
        duration=150.0,
        n_frames=151,
        references=(
            _PAPER,
            "7.7 eV (161 nm) is the maximum of the pi-pi* (V) band, the pump of Kosma et al., J. Phys. Chem. A 112, 7514 "
            "(2008) and of Tao et al., J. Phys. Chem. A 113, 13656 (2009).",
            "The V state and S1* share the pi-pi* configuration, whose energy falls along the C=C twist to a 90 degree "
            "minimum; 'the initial relaxation follows a superposition of CC twist and stretch coordinates' (Kosma 2008).",
            "S1* has no spin polarisation: the spin-averaged energy of the open-shell configuration, closer to the "
            "singlet V state than the exchange-stabilised triplet.",
        ),
    )
)

_register(
    Model(
        name="c2h4-triplet",
        description="ethylene, alternative: the spin-polarised triplet with the energy of the 7.7 eV excitation, all excess in the twist",
        surface=T1,
        photon_energy=7.7,
        excess_into=("torsion",),
        formula="C2H4",
        duration=150.0,
        n_frames=151,
        references=(_PAPER,),
    )
)

_register(
    Model(
        name="cs2-isc",
        description="CS2 at 6.2 eV: the bound 1B2 state (S1* shape, shifted to the photon energy) predissociates "
        "through a switch to the triplet surface after an exponential delay",
        excited=S1_PROXY,
        surface=T1,
        switch_time=650.0,
        photon_energy=6.2,
        excess="potential",
        excess_into=("asymmetric-stretch", "bend"),
        formula="CS2",
        duration=1000.0,
        n_frames=201,
        references=(
            _PAPER,
            "Townsend et al., J. Chem. Phys. 125, 234302 (2006): the 1B2(1Sigma_u+) state decays with 350-650 fs "
            "(biexponential, plus a <50 fs component); the S(1D) and S(3P) channels decay on very similar time scales. "
            "650 fs, the upper end of that range, is used: nearly every trajectory dissociates within ~50 fs of its "
            "switch, so the fraction dissociated by 1 ps is ~1 - exp(-(1000 fs - 50 fs) / switch_time): 77 % at "
            "650 fs, 79 % at 600 fs (measured: 83 +- 3 % on 150), 69 % at 800 fs.",
            "Horio et al. (2016): S(1D) products appear with a ~400 fs delay. 1B2 is bound at 6.2 eV: it dissociates only "
            "by predissociation (S(3P) by spin-orbit coupling to triplets, the majority product at 193-200 nm).",
            "The S1* shape (spin-averaged open-shell configuration) is bent like 1B2; the constant shift keeps its "
            "dissociation limit above the photon energy, as for the real bound state.",
        ),
    )
)

_register(
    Model(
        name="cs2-triplet",
        description="CS2, alternative: put at once on the triplet surface with the energy of the 6.2 eV excitation (no "
        "singlet lifetime): an upper bound on dissociation",
        surface=T1,
        photon_energy=6.2,
        excess_into=("asymmetric-stretch", "bend"),
        formula="CS2",
        duration=1000.0,
        n_frames=201,
        references=(_PAPER,),
    )
)

MODEL_NAMES_BY_MOLECULE = {"nmm": "nmm-cation", "c2h4": "c2h4-pipi", "cs2": "cs2-isc", "i2": "ground"}

_register(
    Model(
        name="cation",
        description="generic: the cation surface, no excess energy (Rydberg excitation or ionisation; the ion core drives the motion)",
        surface=CATION,
    )
)
_register(
    Model(
        name="triplet",
        description="generic: vertical start on the lowest triplet surface, no excess energy (motion of a pi-pi*/n-pi* configuration)",
        surface=T1,
    )
)
_register(
    Model(
        name="ground",
        description="generic: ground-state zero-point motion (no excitation; a reference and a test of the sampling)",
        surface=S0,
    )
)


def get_model(name: str) -> Model:
    """A built-in model by name; unknown names are an :class:`InputError` listing the choices."""
    if isinstance(name, Model):
        return name
    key = str(name).lower()
    if key not in MODELS:
        raise InputError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[key]


def default_model(molecule: Molecule | str, calculator: Calculator | None = None) -> Model:
    """The model of a built-in molecule (by its name), or ``"cation"`` for any other molecule.

    With a calculator of one surface (``calculator.multi_surface`` false, e.g.
    a Morse potential), ``"ground"``: the dynamics on that surface, started
    by the initial-condition family.
    """
    if calculator is not None and not getattr(calculator, "multi_surface", True):
        return MODELS["ground"]
    name = getattr(molecule, "name", str(molecule)).lower()
    return MODELS[MODEL_NAMES_BY_MOLECULE.get(name, "cation")]
