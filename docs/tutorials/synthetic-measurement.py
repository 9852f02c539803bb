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
# # A synthetic measurement, simulated and fitted
#
# This tutorial runs at every build of the documentation, on a small basis that takes seconds to make.
# It makes a pump-probe measurement of iodine (I2) whose truth is known, from trajectories on a Morse
# potential of I2's X state, then fits it with the ensemble fit and compares what it finds with the
# truth. It needs nothing beyond molmovie: no beamline file, no `../shared`. The same chain from the
# command line is `molmovie generate`, `molmovie simulate-experiment`, `molmovie fit`
# ([Getting started](../getting-started.md)); the real LCLS iodine data go through it in the
# [I2 tutorial](i2.md).
#
# **The basis.** 60 trajectories of I2 on the Morse potential `morse-i2-x` (ω_e = 214.5 cm⁻¹,
# r_e = 2.666 Å, D0 = 1.54 eV), each started from the 0 K Wigner sample with 0.05-3.5 eV above the
# dissociation limit along the bond: the atoms fly apart at different speeds. 1.2 ps, a frame every
# 10 fs. (A basis that also holds vibrating molecules makes γ harder to tell from the data: random
# vibrational phases average to almost no ΔS, so their weight, and with it γ, is nearly free; the
# [I2 tutorial](i2.md) meets this with the ground-state hole of `fit --hole`.)

# %%
import numpy as np

from molmovie import get_molecule
from molmovie.dynamics import default_model, generate, get_calculator, get_initial

calculator = get_calculator("morse-i2-x")
molecule = get_molecule("i2")
model = default_model(molecule, calculator).replace(duration=1200.0, n_frames=121, timestep=1.0)
initial = get_initial("dissociation", excess=(0.05, 3.5))
basis = generate(molecule, 60, model=model, seed=0, workers=1, calculator=calculator, initial=initial, splits=(1, 0, 0))
print(
    basis.n_trajectories,
    "trajectories,",
    basis.n_frames,
    "frames to",
    basis.time[-1],
    "fs;",
    int(basis.dissociated.sum()),
    "dissociated",
)

# %% [markdown]
# **The measurement.** An experiment sees the average over the excited molecules, scaled by the
# excitation fraction γ, shifted by time zero t0, smeared by the instrument response (IRF, a Gaussian
# of FWHM `irf_fs`), with Poisson noise of `photons` per q bin and delay. `simulate_measurement` applies
# exactly that measurement model to 40 of the trajectories (equal weights) and stores the truth beside
# the data. q from 1 to 4 1/Å, delays from −200 to 900 fs.

# %%
from molmovie.measurement import simulate_measurement

rng = np.random.default_rng(1)
members = np.sort(rng.choice(basis.n_trajectories, size=40, replace=False))
measurement = simulate_measurement(
    basis,
    q=np.linspace(1.0, 4.0, 61),
    delays=np.arange(-200.0, 901.0, 25.0),
    trajectories=members,
    gamma=0.08,
    t0=40.0,
    irf_fs=80.0,
    photons=1e7,
    seed=2,
)
print(measurement.dS.shape, "(delays, q); peak |ΔS|", f"{100 * np.abs(measurement.truth.dS_clean).max():.2f} %")

# %% [markdown]
# The map of ΔS(q, t), in percent: the depletion of the I–I interference after time zero, as the
# excited molecules fly apart.

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 3.2))
image = ax.pcolormesh(measurement.delays, measurement.q, 100 * measurement.dS.T, cmap="RdBu_r", shading="auto")
ax.set_xlabel("delay (fs)")
ax.set_ylabel("q (1/Å)")
fig.colorbar(image, ax=ax, label="ΔS (%)")
plt.show()

# %% [markdown]
# **The fit.** The ensemble fit explains the measurement as non-negative weights over the whole basis
# (all 60 trajectories, not only the 40 that made it), with γ, t0 and the IRF searched (NNLS inside a
# search over t0 and the IRF; a parametric bootstrap for the spreads). `bootstrap=10` keeps this page
# quick; the command line's default is larger.

# %%
from molmovie.fitting import get_measurement_method

fit = get_measurement_method("ensemble", bootstrap=10, seed=0).fit(measurement, basis=basis)
result = fit.result_
ens = result.ensemble
truth = measurement.truth
print(f"reduced chi2 {result.reduced_chi2:.3f} (1 when the model explains the data within sigma)")
print(f"gamma {ens.gamma:.4f} ± {ens.gamma_std:.4f}   (truth {truth.gamma})")
print(f"t0    {ens.t0:.1f} ± {ens.t0_std:.1f} fs (truth {truth.t0})")
print(f"IRF   {ens.irf_fs:.1f} ± {ens.irf_fs_std:.1f} fs (truth {truth.irf_fs})")

# %% [markdown]
# **The motion.** The fit's answer is a distribution of I–I distances at every delay. The dissociated
# fraction of the excited ensemble, found and true:

# %%
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(result.delays, ens.dissociated_fraction, label="fit")
ax.fill_between(
    result.delays,
    ens.dissociated_fraction - 2 * ens.dissociated_fraction_std,
    ens.dissociated_fraction + 2 * ens.dissociated_fraction_std,
    alpha=0.3,
    label="fit ± 2σ",
)
ax.plot(result.delays, truth.dissociated_fraction, "k--", label="truth")
ax.set_xlabel("delay (fs)")
ax.set_ylabel("dissociated fraction")
ax.legend()
plt.show()

# %% [markdown]
# The residual of a good fit is noise: (ΔS − fit)/σ should have a standard deviation near 1.

# %%
residual = (result.dS - result.dS_fit) / result.sigma
print(f"std of the residual/σ: {np.nanstd(residual):.3f}")
