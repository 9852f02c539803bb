"""The study: the paper's five experiments and one of electron diffraction, end to end, resumable, for any list of methods.

Its rooms: :mod:`.presets` (the experiments, presets and scores),
:mod:`.manifest` (what defines a study, ``study.json``, and its revision),
:mod:`.stages` (a dataset; one method trained and scored), :mod:`.engine`
(the stages as Dask tasks), :mod:`.transfer` (scores on foreign SHARC runs),
:mod:`.ranking` (means, spreads, winners), :mod:`.report` (tables and
figures) and :mod:`.run` (:func:`run_study`, which puts them together).

Experiments (the paper's): all NMM trajectories; all C2H4; C2H4 without
dissociation; all CS2; CS2 without dissociation. Each has its own
train/val/test split. A sixth, "CS2 UED", probes the all-CS2 trajectories
and split with 3.7 MeV electrons instead of X-rays (ΔI/I of the electron
I(s) on the same grid, :mod:`molmovie.scattering.electrons`): the same
motion, another probe, the same methods and scores. A :class:`Preset` names the inversion methods it runs
(keys of :data:`molmovie.inversion.METHODS`) with their settings, and may
change them per experiment; an :class:`Experiment` may run only some of them.
Each method is trained, scored on the test split (labelled and
symmetry-aware RMSD, SSR) and compared: every score's winner and its margin
over the runner-up.

With ``seeds=K`` the methods that take a ``seed`` are trained K times, with
seeds s, s+1, ..., s+K-1, on the same datasets and splits (those of the
study's seed s); methods without a seed (the frame-by-frame baseline) are
deterministic and trained once. Every score is then the mean over seeds,
with the sample standard deviation (K-1 in the denominator) as its spread,
and a method wins a score only when its mean is below every other method's
by more than the sum of the two standard deviations (:func:`rank_methods`);
otherwise the score is a tie within the spread. With ``jobs=N`` the
(experiment, method, seed) stages run as Dask tasks on a local cluster of N
worker processes; with ``scheduler=ADDRESS``, on an existing Dask cluster.

Stages, each written atomically so a rerun skips what is done and Ctrl-C
leaves nothing corrupt::

    OUT/study.json                       what defines the study (a rerun with other settings is refused)
    OUT/data/{nmm,c2h4,cs2}.h5           generated trajectories + signals
    OUT/data/cs2-electron-3700kev.h5     cs2.h5's trajectories and splits with electron signals
    OUT/data/cs2-cs2-triplet.h5          another dynamics model's CS2 trajectories, for the transfer score (``Preset.foreign_models``)
    OUT/models/{experiment}-{method}.safetensors           trained with the study's seed
    OUT/models/{experiment}-{method}-seed{s}.safetensors   trained with another seed s (seeds=K > 1)
    OUT/eval/{experiment}-{method}[-seed{s}].npz   predictions and per-frame metrics (:func:`~molmovie.evaluation.write_scores`)
    OUT/eval/{experiment}-{method}[-seed{s}]-transfer-sharc.npz   the model scored on foreign SHARC runs (CS2 only, with ``sharc_dir``)
    OUT/eval/{experiment}-{method}[-seed{s}]-transfer-sharc-{condition}-draw{d}.npz   the same under a noise level, as itself and with the shared fit
    OUT/eval/{experiment}-{method}[-seed{s}]-transfer-cs2-triplet[-{condition}-draw{d}].npz   the same on the other model's runs
    OUT/eval/conditions/{experiment}-{method}[-seed{s}]-{condition}[-draw{d}].npz   the test split under a condition (:mod:`.shared_fit`)
    OUT/results.json, OUT/results.md     the tables
    OUT/fig2a.png, fig2b.png, fig2c.png, signals.png

The number of seeds is not part of what defines a study: a rerun with more
seeds keeps the stages it has and trains the seeds it lacks; one with fewer
reports only those (the other files stay).

Transfer (with ``sharc_dir``): every model of the CS2 experiments is also
scored on foreign trajectories, real surface-hopping (SHARC) runs of CS2 that
it did not train on (:func:`~molmovie.evaluation.transfer.transfer`: each run
on the model's time grid, its ΔS simulated as the training ΔS was, the
symmetry-aware mean distance error). A bound-only experiment is scored on the
runs that stay bound. The score is made in the study's process once a model
exists, and kept in its ``-transfer-sharc.npz`` file with fingerprints of the
runs and of the model file: a rerun reuses it while both are unchanged, and
scores again (seconds) when either changed. The foreign runs are not part of
what defines a study. Under each noise level among the experiment's test
conditions the runs' signals get that level's noise (the same draw for every
method) and each model answers as itself and with the shared signal fit
(:mod:`.transfer`). The same on the trajectories of another dynamics model
that the study generates for a preset's ``foreign_models`` (both presets:
``cs2-triplet``, CS2 put on the triplet surface at once, where the trained
model waits on the bound singlet; another seed than the datasets'), with or
without ``sharc_dir``.
"""

from __future__ import annotations

from . import shared_fit
from .manifest import MANIFEST, MODELS_VALID_SINCE, REPORT, REVISION
from .presets import (
    EXPERIMENTS,
    MAX_JOBS,
    MAX_SEEDS,
    PRESETS,
    SCORES,
    Experiment,
    Preset,
    check_count,
    experiment_methods,
    is_seeded,
    method_label,
    method_seeds,
    method_settings,
)
from .ranking import SPREAD, WIN_RULE, rank_methods
from .report import results_markdown, write_report
from .run import run_study
from .transfer import SHARC_DEFAULT, TRANSFER_SCORE, TRANSFER_TITLE, default_sharc_dir

__all__ = [
    "Preset",
    "PRESETS",
    "EXPERIMENTS",
    "Experiment",
    "SCORES",
    "run_study",
    "rank_methods",
    "method_label",
    "method_settings",
    "method_seeds",
    "experiment_methods",
    "is_seeded",
    "check_count",
    "SPREAD",
    "WIN_RULE",
    "MAX_SEEDS",
    "MAX_JOBS",
    "MANIFEST",
    "REVISION",
    "MODELS_VALID_SINCE",
    "REPORT",
    "results_markdown",
    "write_report",
    "SHARC_DEFAULT",
    "TRANSFER_SCORE",
    "TRANSFER_TITLE",
    "default_sharc_dir",
    "shared_fit",
]
