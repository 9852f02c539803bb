# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # SHARC-format runs in, distances out: the nearest-frame inversion
#
# This tutorial runs at every build of the documentation. It writes a dozen small trajectory runs of
# CS2 in SHARC's folder layout (`TRAJ_*/output.xyz` and `output.lis`), reads them as molmovie reads real
# SHARC output, simulates their scattering signals ΔS(q, t) by Eq. (1), trains the paper's baseline
# (for every frame, the training frame of least Σ_q (ΔS − ΔS_ref)²) and inverts the signals of runs it
# did not see into atom-atom distances. With real SHARC runs the same steps are
# `molmovie import`, `molmovie scatter`, `molmovie train`, `molmovie invert` ([SHARC tutorial](sharc.md)).
#
# **The runs are made up**, so that the page needs no data: a linear CS2 whose C–S bonds vibrate
# (random amplitude, period and phase), and in half of the runs one S atom leaves at a random speed.
# They carry SHARC's format, not SHARC's physics.

# %%
import tempfile
from pathlib import Path

import numpy as np

rng = np.random.default_rng(0)
folder = Path(tempfile.mkdtemp()) / "sharc-runs"
dt_fs, n_steps = 0.5, 401  # SHARC's 0.5 fs steps, 200 fs


def write_run(path: Path, positions: np.ndarray) -> None:
    """One SHARC run folder: output.xyz (frames with `t=` times) and output.lis (one row per step)."""
    path.mkdir(parents=True)
    times = np.arange(len(positions)) * dt_fs
    xyz = []
    for t, frame in zip(times, positions, strict=True):
        xyz += ["3", f"  t= {t:.5f}   1    1"] + [
            f"{s} {x:.9f} {y:.9f} {z:.9f}" for s, (x, y, z) in zip("CSS", frame, strict=True)
        ]
    (path / "output.xyz").write_text("\n".join(xyz) + "\n")
    rows = ["#" + "=" * 60, "#     Step |  Time | State | Energy", "#  [fs] | diag | MCH | kin | pot | tot"]
    rows += [f"{k:10d} {t:14.5f} {1:7d} {1:7d} {0.5:14.6f} {0.5:14.6f} {1.0:14.6f} 1.0 0.1 0.0 100" for k, t in enumerate(times)]
    (path / "output.lis").write_text("\n".join(rows) + "\n")


t = np.arange(n_steps) * dt_fs
for run in range(12):
    amplitude, period, phase = rng.uniform(0.02, 0.08), rng.uniform(40, 60), rng.uniform(0, 2 * np.pi)
    r1 = 1.56 + amplitude * np.sin(2 * np.pi * t / period + phase)
    speed = rng.uniform(0.01, 0.03) if run % 2 else 0.0  # Angstrom/fs: every other run dissociates
    r2 = 1.56 + amplitude * np.sin(2 * np.pi * t / period + phase + 0.3) + speed * t
    positions = np.zeros((n_steps, 3, 3))
    positions[:, 1, 2], positions[:, 2, 2] = r1, -r2
    write_run(folder / f"TRAJ_{run + 1:05d}", positions)
print(sorted(p.name for p in folder.iterdir()))

# %% [markdown]
# **Read them.** `read_ensemble` finds the runs in the folder, reads each with the SHARC reader, keeps a
# frame every 5 fs (`dt=5`), and flags the runs whose bond graph has split by their last frame.

# %%
from molmovie import read_ensemble

ensemble = read_ensemble([folder], dt=5.0)
print(
    ensemble.n_trajectories,
    "runs,",
    ensemble.n_frames,
    "frames of",
    ensemble.symbols,
    "; dissociated:",
    ensemble.dissociated.astype(int),
)

# %% [markdown]
# **Signals.** ΔS(q, t) = (I(q, t) − I(q, 0))/I(q, 0) of every run by Eq. (1) with the Compton term, on
# molmovie's default q grid (0.5-6.8 1/Å, 100 points), against each run's first frame.

# %%
from molmovie import Dataset, make_splits
from molmovie.scattering import SignalSpec, q_grid, simulate

spec = SignalSpec(q=q_grid(), reference="first")
signals = simulate(ensemble.symbols, ensemble.positions, ensemble.length, ensemble.time, spec)
dataset = Dataset(
    ensemble, dS=signals.dS, I_ref=signals.I_ref, spec=spec, splits=make_splits(ensemble.n_trajectories, (8, 0, 4), seed=0)
)
print("ΔS", dataset.dS.shape, "(runs, frames, q); train", dataset.splits["train"], "test", dataset.splits["test"])

# %% [markdown]
# **Train and invert.** The nearest-frame baseline stores the training frames; `predict` answers each
# test frame with the distances of the training frame whose ΔS is nearest.

# %%
from molmovie.inversion import get_method

method = get_method("nearest").fit(dataset.split("train"))
test = dataset.split("test")
prediction = method.predict(test.dS, q=dataset.q, lengths=test.length)
print("predicted distances", prediction.distances.shape, "(runs, frames, pairs); pairs C–S, C–S, S–S")

# %%
from molmovie.geometry import distances

true = distances(test.positions)
error = np.nanmean(np.abs(prediction.distances - true), axis=(1, 2))
for k, run in enumerate(dataset.splits["test"]):
    print(f"test run {run}: mean |R_pred − R_true| = {error[k]:.3f} Å ({'dissociating' if test.dissociated[k] else 'bound'})")

# %% [markdown]
# The S–S distance of each test run, true and predicted. Eight training runs are few: where no training
# run passed through a test run's geometry, the nearest frame is only the least bad one.

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, len(test.length), figsize=(10, 2.6), sharey=True)
for k, ax in enumerate(axes):
    ax.plot(test.time, true[k, :, 2], "k", label="truth")
    ax.plot(test.time, prediction.distances[k, :, 2], "C1", label="nearest frame")
    ax.set_xlabel("time (fs)")
axes[0].set_ylabel("S–S distance (Å)")
axes[0].legend()
fig.tight_layout()
plt.show()
