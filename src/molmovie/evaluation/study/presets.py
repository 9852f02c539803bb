"""What a study runs: the paper's five experiments and one of electron diffraction, the presets (dataset sizes, methods, settings), the scores.

A :class:`Preset` names the inversion methods it runs (keys of
:data:`molmovie.inversion.METHODS`) with their settings, and may change them
per experiment; an :class:`Experiment` may run only some of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..._errors import InputError
from ...inversion import METHODS
from ...scattering.electrons import check_probe
from .conditions import CONDITIONS, NOISE_LEVELS, check_conditions


@dataclass(frozen=True)
class Experiment:
    """One experiment of the study.

    Attributes
    ----------
    key : str
        Name of its files (``models/{key}-{method}.safetensors``).
    label : str
        Its name in tables and figures.
    molecule : str
        The dataset it uses (a key of the preset's ``trajectories``).
    bound_only : bool
        Leave out dissociating trajectories (and split the rest anew).
    methods : tuple of str, optional
        The preset's methods it runs (default: all of them).
    pair : str, optional
        The distance the trajectory figure follows (a pair label such as
        "N2-O5", or two elements such as "O-N"); default: the pair whose true
        distance varies most.
    probe : {"xray", "electron"}, default "xray"
        What scatters in its signals. An experiment of another probe than
        X-rays uses the same trajectories and splits as the molecule's
        X-ray dataset, with the signals of that probe (same q grid, the
        probe's default inelastic setting, first-frame reference), kept in
        a dataset of its own (:attr:`dataset`).
    energy_kev : float, optional
        The electrons' kinetic energy (default 3700 keV, MeV-UED; None for X-rays).
    """

    key: str
    label: str
    molecule: str
    bound_only: bool
    methods: tuple[str, ...] | None = None
    pair: str | None = None
    probe: str = "xray"
    energy_kev: float | None = None

    def __post_init__(self) -> None:
        probe, energy = check_probe(self.probe, self.energy_kev)
        object.__setattr__(self, "probe", probe)
        object.__setattr__(self, "energy_kev", energy)

    @property
    def dataset(self) -> str:
        """Name of its dataset (``data/{dataset}.h5``): the molecule for X-rays, e.g. "cs2-electron-3700kev" for electrons."""
        return self.molecule if self.probe == "xray" else f"{self.molecule}-{self.probe}-{self.energy_kev:g}kev"


EXPERIMENTS = (
    Experiment("nmm", "NMM", "nmm", False, pair="O-N"),
    Experiment("c2h4", "C2H4", "c2h4", False),
    Experiment("c2h4-bound", "C2H4 bound", "c2h4", True),
    Experiment("cs2", "CS2", "cs2", False),
    Experiment("cs2-bound", "CS2 bound", "cs2", True),
    # ultrafast electron diffraction (MeV-UED, 3.7 MeV) of the same CS2 trajectories and splits as "cs2"
    Experiment("cs2-ued", "CS2 UED", "cs2", False, probe="electron", energy_kev=3700.0),
)


@dataclass(frozen=True)
class Preset:
    """What a study run trains, and on how much data.

    Attributes
    ----------
    name : str
    trajectories : dict molecule -> (train, val, test) counts
    methods : dict method name -> dict of settings
        The inversion methods to compare (keys of
        :data:`molmovie.inversion.METHODS`), in the order of the tables, with
        their settings; a method that takes a ``seed`` gets the study's.
    settings_by_experiment : dict experiment key -> dict method name -> dict of settings
        Per-experiment changes to ``methods``' settings.
    description : str
    conditions : tuple of str
        The test conditions (keys of :data:`~.conditions.CONDITIONS`: the noise ladder, the forward-model
        mismatches) under which every method answers the test split, as itself and with the shared signal
        fit (:mod:`.shared_fit`); empty: none, only the study's main table.
    condition_experiments : tuple of str, optional
        The experiments (keys) answered under ``conditions``; default: all.
    foreign_models : dict molecule -> (model, count)
        Trajectories of another dynamics model (a name in :data:`molmovie.dynamics.MODELS`) that the study
        generates beside the molecule's dataset, with another seed, for the transfer score of the molecule's
        models (:mod:`.transfer`; the molecule's experiments that are scored on SHARC runs, CS2).
    """

    name: str
    trajectories: dict
    methods: dict
    settings_by_experiment: dict = field(default_factory=dict)
    description: str = ""
    conditions: tuple[str, ...] = ()
    condition_experiments: tuple[str, ...] | None = None
    foreign_models: dict[str, tuple[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_conditions(tuple(self.conditions))
        from ...dynamics.models import MODELS

        for mol, (model, count) in self.foreign_models.items():
            if model not in MODELS:
                raise InputError(
                    f"the {self.name} preset scores transfer on an unknown model {model!r}; models are {', '.join(MODELS)}"
                )
            if mol not in self.trajectories or int(count) < 1:
                raise InputError(
                    f"the {self.name} preset's foreign runs of {mol!r} need the molecule among its datasets and a count >= 1"
                )
        known = [e.key for e in EXPERIMENTS]
        unknown = [k for k in self.condition_experiments or () if k not in known]
        if unknown:
            raise InputError(
                f"the {self.name} preset answers test conditions in unknown experiments {', '.join(map(repr, unknown))}; "
                f"experiments are {', '.join(known)}"
            )


#: The noise the presets' VRNNs train on: each training sequence draws its σ of ΔS from the ladder and 0
#: (one model across levels; benchmarks/noise_training.py, docs/where-dynamics-help.md).
TRAINING_NOISE = (0.0, *NOISE_LEVELS)


#: The other dynamics model whose CS2 trajectories the presets score transfer on: put on the triplet surface at
#: once with the 6.2 eV excitation's energy (no singlet lifetime), where the trained model (``cs2-isc``) waits on
#: the bound singlet for 650 fs on average; the same GFN2-xTB surfaces and starting conditions (another seed).
OTHER_MODEL = "cs2-triplet"


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        "paper",
        # Table 1 of the paper
        {"nmm": (85, 11, 11), "c2h4": (800, 100, 100), "cs2": (753, 94, 95)},
        methods={"nearest": {}, "nearest-viterbi": {}, "vrnn": dict(epochs=150, patience=20, signal_noise=TRAINING_NOISE)},
        description="the paper's dataset sizes (Table 1)",
        conditions=tuple(CONDITIONS),
        foreign_models={"cs2": (OTHER_MODEL, 95)},
    ),
    "quick": Preset(
        "quick",
        {"nmm": (12, 2, 4), "c2h4": (96, 12, 12), "cs2": (48, 8, 8)},
        methods={"nearest": {}, "nearest-viterbi": {}, "vrnn": dict(epochs=60, patience=10, signal_noise=TRAINING_NOISE)},
        description="small datasets: about 15 minutes on 2 cores (measured 14; up to 32 on a slower host)",
        # every condition, on the two CS2 experiments only: the shared signal fit of one answer on NMM's test
        # split took over 15 minutes on the loaded 2-core machine (C2H4: 70 s, CS2: see docs/where-dynamics-help.md)
        conditions=tuple(CONDITIONS),
        condition_experiments=("cs2", "cs2-bound"),
        foreign_models={"cs2": (OTHER_MODEL, 8)},
    ),
}


#: The scores compared per experiment (sums over the test frames; smaller wins), in the tables' order.
SCORES = ("rmsd_sum", "rmsd_sym_traj_sum", "rmsd_sym_sum", "ssr_sum")


#: How the tables name them.
SCORE_NAMES = {
    "rmsd_sum": "RMSD sum (Å), labelled",
    "rmsd_sym_traj_sum": "RMSD sum (Å), symmetry-aware per trajectory",
    "rmsd_sym_sum": "RMSD sum (Å), symmetry-aware per frame",
    "ssr_sum": "SSR sum",
}


#: Most training seeds and worker processes a study accepts (a typed number must not start millions of jobs).
MAX_SEEDS = 1000


MAX_JOBS = 256


def method_label(name: str) -> str:
    """How tables and figures call a method: its class's ``label``, else its name."""
    cls = METHODS.get(name)
    return (getattr(cls, "label", "") or name) if cls is not None else name


def experiment_conditions(preset: Preset, exp: Experiment) -> tuple[str, ...]:
    """The test conditions an experiment is answered under (:attr:`Preset.conditions`; none for an experiment left out)."""
    chosen = preset.condition_experiments
    return preset.conditions if chosen is None or exp.key in chosen else ()


def experiment_methods(preset: Preset, exp: Experiment) -> list[str]:
    """The methods an experiment runs under a preset, in the preset's order."""
    return [m for m in preset.methods if exp.methods is None or m in exp.methods]


def method_settings(preset: Preset, exp: Experiment, method: str, seed: int) -> dict:
    """A method's settings in one experiment: the preset's, the experiment's changes, and the training seed ``seed`` (for a method that takes one)."""
    s = dict(preset.methods[method])
    s.update(preset.settings_by_experiment.get(exp.key, {}).get(method, {}))
    if is_seeded(method):
        s["seed"] = seed
    return s


def is_seeded(method: str) -> bool:
    """Whether a method's training depends on a seed (it takes a ``seed`` setting); one without is trained once."""
    return method in METHODS and "seed" in METHODS[method].setting_names()


def method_seeds(method: str, seed: int, seeds: int) -> list[int]:
    """The training seeds of a method in a study of ``seeds`` seeds from ``seed``: s, s+1, ..., s+K-1, or [s] for a method without a seed."""
    return [seed + k for k in range(seeds)] if is_seeded(method) else [seed]


def check_count(name: str, value: object, most: int) -> None:
    """Refuse a count that is not a whole number from 1 to ``most``, naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= most:
        raise InputError(f"The {name!r} parameter must be a whole number from 1 to {most}; got {value!r}")
