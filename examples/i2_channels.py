"""The LCLS I2 run explained channel by channel: the model-selection table of docs/i2-channels.md and its figure.

    molmovie ingest ../shared/data/i2-lcls/phil-trans-data.h5 --output i2-aniso.h5 --q-units 1/A --delay-units ps \
        --t0 2376 --reference-before 2350 --q-range 1.0:3.5 --molecule I2 --anisotropy 2,4
    molmovie generate i2 -n 80 -o i2-ion.h5 --seed 7 --workers 1 --calculator morse --morse we=240,re=2.58,D0=2.69 \
        --initial displaced:1 --amplitude 0.06:0.11 --phase 0:0 --tmax 3500 --dt 10 --timestep 1
    python examples/i2_channels.py i2-aniso.h5 i2-basis.h5 --family I2+=i2-ion.h5 --out i2-channels
    # i2-basis.h5: the I2 tutorial's basis; i2-ion.h5: the cation I2+ (X 2Pi_3/2g) vibrating from the neutral's bond

Writes OUT/table.md, OUT/results.json and OUT/residuals.png (the residual/σ maps of every model, S_0 and S_2).
Models (each with the ground-state hole, the IRF fixed at 40 fs as in the README, t0 searched):

1. isotropic: S_0 only, one alignment (the README's ensemble fit, on the same basis);
2. + S_2, every trajectory one-photon parallel, axes fixed;
2r. the same with the thermal rotational dephasing of bound molecules' alignment (temperature on a grid);
3. + channels: each trajectory under 1-3 photon parallel and 1-2 photon perpendicular alignments, axes fixed;
3r. the same with rotational dephasing;
4. + the named families (``--family``, e.g. the cation's bound vibration) beside the basis, under the same alignments;
5. + nuisance terms on the best of 3, 3r and 4 by BIC, added one at a time while BIC falls (its t0 and IRF);
5s. model 5 with σ from the data's own scatter.

The cation family: I2+ X ²Π3/2,g as a Morse potential, ω_e = 240 cm⁻¹ and r_e = 2.58 Å (Huber and Herzberg,
*Constants of Diatomic Molecules*, 1979), D0 = D0(I2) + IP(I) − IP(I2) = 1.542 + 10.451 − 9.307 = 2.69 eV;
its trajectories start at the neutral's bond (2.64-2.69 Å: a vertical ionisation) at rest, so they vibrate about
2.58 Å with the cation's period (~139 fs). The IAM uses neutral atoms' form factors for it (the electron an ion
lacks is a 5p one, whose scattering falls off below the fitted q range's middle; not modelled).

Models 2-4 read the file's components as the LCLS analysis made them (``projection="i2-lcls"``: polynomials of the
angle θ_q, see molmovie.scattering.anisotropy); model 3 is also fitted with textbook components (``cos``) and
every model again with σ from the data's own scatter (``sigma="scatter"``), for the record.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from molmovie.fitting import fit_channels, select_nuisance
from molmovie.io.dataset import read_dataset
from molmovie.io.measurement import read_measurement
from molmovie.trajectories import Ensemble

D0 = 1.542  # eV, I2 X-state dissociation energy (Huber and Herzberg)
PHOTON = 1.55  # eV, 800 nm
ALIGNMENTS = "1par,2par,3par,1perp,2perp"


def thin(ens: Ensemble, stride: int) -> Ensemble:
    """Every ``stride``-th frame (the fit holds each frame for its cell, so 20 fs frames serve 30 fs delays)."""
    if stride == 1:
        return ens
    keep = np.arange(0, ens.n_frames, stride)
    length = np.minimum((ens.length - 1) // stride + 1, keep.size)
    return Ensemble(
        molecule=ens.molecule,
        symbols=ens.symbols,
        time=ens.time[keep],
        positions=ens.positions[:, keep],
        length=length,
        dissociated=ens.dissociated,
        source=ens.source,
        provenance=ens.provenance,
    )


def row(name: str, fit, extra: str = "") -> dict:
    red = fit.reduced_by_order()
    bands = fit.band_means()
    return dict(
        model=name,
        orders=list(fit.orders),
        alignments=[a.name for a in fit.alignments],
        nuisance=list(fit.nuisance),
        projection=fit.projection,
        sigma=fit.sigma_source,
        chi2=fit.chi2,
        n_data=fit.n_data,
        n_params=fit.n_params,
        reduced_chi2=fit.reduced_chi2,
        reduced_by_order={str(k): v for k, v in red.items()},
        bic=fit.bic,
        aic=fit.aic,
        gamma=fit.gamma,
        t0=fit.t0,
        irf_fs=fit.irf_fs,
        qscale=fit.qscale,
        rotation_temperature=fit.rotation_temperature,
        hole_gamma=fit.hole_gamma,
        hole_period_fs=fit.hole_period_fs,
        hole_period_std=getattr(fit, "hole_period_std", None),
        max_abs_band={str(m): float(np.abs(bands[f]).max()) for f, m in enumerate(fit.orders)},
        bins_beyond_1={str(m): float(np.mean(np.abs(bands[f]) > 1)) for f, m in enumerate(fit.orders)},
        families=list(fit.families),
        channels=[asdict(c) for c in fit.channels],
        note=extra,
    )


def table(rows: list[dict]) -> str:
    """The model-selection table and the channels of every model, as Markdown."""
    lines = [
        "| model | σ | χ²_red (S_0 + S_2) | χ²_red S_0 | χ²_red S_2 | k | BIC | ΔBIC | γ | t0 (fs) | T_rot (K) | nuisance kept |"
        " max over q of mean resid./σ (S_0, S_2) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    comparable = [r for r in rows if r["orders"] == [0, 2] and r["sigma"] == "measured"]
    ref = min((r["bic"] for r in comparable), default=float("nan"))

    def delta(r: dict) -> str:
        return f"{r['bic'] - ref:+.0f}" if r in comparable else "(other data)"

    for r in rows:
        red = r["reduced_by_order"]
        both = r["orders"] == [0, 2]
        lines.append(
            f"| {r['model']} | {'file' if r['sigma'] == 'measured' else 'scatter'} | "
            f"{r['reduced_chi2']:.2f}{'' if both else ' (S_0 only)'} | {red['0']:.2f} | {red.get('2', float('nan')):.2f} | "
            f"{r['n_params']} | {r['bic']:.0f} | {delta(r)} | {r['gamma']:.3f} | {r['t0']:.1f} | "
            f"{r.get('rotation_temperature') or '—'} | {', '.join(r['nuisance']) or '—'} | "
            + ", ".join(f"{v:.2f}" for v in r["max_abs_band"].values())
            + " |"
        )
    lines += [
        "",
        "| model | channel | population (of excited) | speed (Å/fs) | σ (bootstrap) | spread | KER (eV) | period (fs) |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def period(p, sd) -> str:
        if p is None:
            return "—"
        return f"{p:.1f}" + ("" if sd is None or sd != sd else f" ± {sd:.1f}")

    for r in rows:
        for c in r["channels"]:
            if c["population"] < 0.005:
                continue
            bound = c["dissociated"] < 0.5
            speed = "—" if bound else f"{c['speed']:.4f} | {c['speed_std']:.4f} | {c['speed_spread']:.4f} | {c['energy_ev']:.2f}"
            lines.append(
                f"| {r['model']} | {c['name']} (a_2 = {c['a2']:.3f}) | {c['population']:.3f} ± {c['population_std']:.3f} | "
                + (f"{speed} | | | | " if bound else f"{speed} | ")
                + f"{period(c['period_fs'], c.get('period_std')) if bound else '—'} |"
            )
        lines.append(
            f"| {r['model']} | the hole (ground state) | γ = {r['hole_gamma']:.3f} | | | | | "
            f"{period(r.get('hole_period_fs'), r.get('hole_period_std'))} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table-from", help="print the tables of a results.json and stop")
    ap.add_argument("measurement", nargs="?")
    ap.add_argument("basis", nargs="?")
    ap.add_argument("--out", default="i2-channels")
    ap.add_argument(
        "--family",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a named excited-state family (a dataset with the basis's frame times), e.g. I2+=i2-ion.h5; repeatable",
    )
    ap.add_argument("--stride", type=int, default=2, help="keep every n-th basis frame (memory)")
    ap.add_argument("--t0-range", default="-80,-20")
    ap.add_argument("--bootstrap", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="models 1-3 only")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows of OUT/results.json; their models are refitted at their t0 (for the figure) only",
    )
    ap.add_argument(
        "--spectra",
        action="store_true",
        help="only draw OUT/spectra.png: the power over delays > 300 fs of the data's S_0 and of models 3, 4 and 5 "
        "(refitted at the t0 of OUT/results.json), summed over q; prints the power at the cation's and the X state's periods",
    )
    ap.add_argument(
        "--pump-axis-y",
        action="store_true",
        help="only refit model 3 with the pump polarisation along the detector's y axis (i2-lcls-y) at the "
        "rotational temperature of OUT/results.json's best model, and add it to OUT/results.json",
    )
    a = ap.parse_args()
    if a.table_from:
        print(table(json.loads(Path(a.table_from).read_text())))
        return
    if not (a.measurement and a.basis):
        ap.error("give MEASUREMENT and BASIS (or --table-from)")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    meas = read_measurement(a.measurement)
    basis = thin(read_dataset(a.basis).ensemble, a.stride)
    families = {}
    for item in a.family:
        name, _, path = item.partition("=")
        if not name or not path:
            ap.error(f"--family takes NAME=PATH; got {item!r}")
        families[name] = thin(read_dataset(path).ensemble, a.stride)
    lo, hi = (float(v) for v in a.t0_range.split(","))
    common = dict(hole=True, t0_range=(lo, hi), irf_range=(40.0, 40.0), grid=(7, 1), bootstrap=a.bootstrap)
    rows, fits = [], {}
    log = out / "log.txt"
    done = {r["model"]: r for r in json.loads((out / "results.json").read_text())} if a.resume else {}
    if a.spectra:
        spectra(meas, basis, families, json.loads((out / "results.json").read_text()), out / "spectra.png")
        return
    if a.pump_axis_y:
        rows = json.loads((out / "results.json").read_text())
        rot = next(r for r in rows if r["model"].startswith("3c"))["rotation_temperature"]

    def run(name, fn, **kw):
        if name in done:  # the row stands; the fit is redone at its t0 for the figure
            r = done[name]
            kw = {k: v for k, v in kw.items() if k not in ("candidates", "rotation")}
            if fn is select_nuisance:
                kw["nuisance"] = tuple(r["nuisance"])
            fit = fit_channels(
                meas,
                basis,
                **{**common, **kw, "t0_range": (r["t0"], r["t0"]), "bootstrap": 0, "rotation": r["rotation_temperature"]},
            )
            fits[name] = fit
            rows.append(r)
            return fit
        t = time.time()
        fit = fn(meas, basis, **{**common, **kw})
        if isinstance(fit, tuple):
            fit, path = fit
            kw["path"] = [(list(p), float(v), float(c)) for p, v, c in path]
        fits[name] = fit
        r = row(name, fit)
        r["seconds"] = time.time() - t
        r["path"] = kw.get("path")
        rows.append(r)
        with open(log, "a") as f:
            f.write(
                json.dumps({k: r[k] for k in ("model", "reduced_chi2", "reduced_by_order", "bic", "gamma", "t0", "seconds")})
                + "\n"
            )
        (out / "results.json").write_text(json.dumps(rows, indent=1, default=float))
        return fit

    temps = (300.0, 400.0, 500.0)
    aniso = dict(orders=(0, 2), projection="i2-lcls")
    if a.pump_axis_y:
        run(
            "3y + channels, pump along y",
            fit_channels,
            orders=(0, 2),
            projection="i2-lcls-y",
            alignments=ALIGNMENTS,
            rotation=rot,
        )
        return
    run("1 isotropic (S_0)", fit_channels, orders=(0,), alignments="1par", projection="cos")
    run("2 + S_2, one alignment (1par)", fit_channels, alignments="1par", **aniso)
    run("2r + rotational dephasing", fit_channels, alignments="1par", rotation=temps, **aniso)
    f3 = run("3 + channels", fit_channels, alignments=ALIGNMENTS, **aniso)
    f3r = run("3r + channels, rotational dephasing", fit_channels, alignments=ALIGNMENTS, rotation=temps, **aniso)
    best = f3r if f3r.bic < f3.bic else f3
    rot = best.rotation_temperature
    run("3c + channels, textbook components", fit_channels, orders=(0, 2), projection="cos", alignments=ALIGNMENTS, rotation=rot)
    fam: dict = {}
    if families:
        fam = dict(families=families)
        f4 = run(f"4 + {', '.join(families)} families", fit_channels, alignments=ALIGNMENTS, rotation=rot, **fam, **aniso)
        if f4.bic < best.bic:
            best = f4
        else:
            fam = {}
    if not a.quick:
        fixed = dict(t0_range=(best.t0, best.t0), irf_range=(best.irf_fs, best.irf_fs), qscale_grid=(0.99, 1.0, 1.01))
        f5 = run(
            "5 + nuisance (BIC)",
            select_nuisance,
            alignments=ALIGNMENTS,
            rotation=rot,
            candidates=("offset", "step", "background", "leak", "qscale"),
            **fam,
            **aniso,
            **fixed,
        )
        run(
            "5s model 5, σ from the scatter",
            fit_channels,
            alignments=ALIGNMENTS,
            rotation=rot,
            nuisance=f5.nuisance,
            sigma="scatter",
            **fam,
            **aniso,
            **fixed,
        )
    figure(fits, out / "residuals.png")
    (out / "table.md").write_text(table(rows) + "\n")


def _power(delays: np.ndarray, S: np.ndarray, after: float = 300.0) -> tuple[np.ndarray, np.ndarray]:
    """Periods (fs) and the power of S (T, Q) over delays > ``after`` (a cubic trend removed per q, Hann window,
    10 fs grid, zero-padded 16x), summed over q, between 80 and 300 fs."""
    sel = delays > after
    grid = np.arange(delays[sel][0], delays[sel][-1], 10.0)
    total = 0.0
    for k in range(S.shape[1]):
        y = np.interp(grid, delays[sel], S[sel, k])
        y = y - np.polyval(np.polyfit(grid, y, 3), grid)
        f = np.fft.rfftfreq(16 * y.size, 10.0)
        total = total + np.abs(np.fft.rfft(y * np.hanning(y.size), 16 * y.size)) ** 2
    keep = (f > 1 / 300) & (f < 1 / 80)
    return 1 / f[keep], total[keep]


def spectra(meas, basis, families: dict, rows: list[dict], path: Path) -> None:
    """The data's and models 3-5's S_0 power spectra over delay (see --spectra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.4, 2.6))
    period, power = _power(meas.delays, meas.dS)
    ref = power[np.argmin(abs(period - 157.8))]
    ax.plot(period, power / ref, "k", lw=1.5, label="data")
    print(f"data: power at 139 fs / at 158 fs = {power[np.argmin(abs(period - 139.0))] / ref:.3f}")
    for r in rows:
        if r["model"].split()[0] not in ("3", "4", "5"):
            continue
        kw = dict(
            hole=True, orders=tuple(r["orders"]), projection=r["projection"], alignments=ALIGNMENTS,
            nuisance=tuple(r["nuisance"]), t0_range=(r["t0"], r["t0"]), irf_range=(r["irf_fs"], r["irf_fs"]),
            bootstrap=0, rotation=r["rotation_temperature"], qscale_grid=(r["qscale"],),
        )  # fmt: skip
        if set(r.get("families", [])) - {"basis"}:
            kw["families"] = families
        fit = fit_channels(meas, basis, **kw)
        p, pw = _power(fit.delays, fit.model[0])
        ax.plot(p, pw / ref, lw=1, label=f"model {r['model'].split()[0]}")
        print(f"model {r['model']}: power at 139 fs / the data's at 158 fs = {pw[np.argmin(abs(p - 139.0))] / ref:.3f}")
    for x in (139.0, 157.8):
        ax.axvline(x, color="0.6", lw=0.6, ls="--")
    ax.set_xlabel("period (fs)", fontsize=8)
    ax.set_ylabel("S_0 power (data's 158 fs peak = 1)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=300)
    plt.close(fig)


def figure(fits: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in fits if n.split()[0] in ("1", "2", "3", "4", "5")]
    fig, axes = plt.subplots(2, len(names), figsize=(3.3 * len(names), 6), sharex=True, sharey=True, squeeze=False)
    for j, name in enumerate(names):
        fit = fits[name]
        for f in range(2):
            ax = axes[f, j]
            if f < len(fit.orders):
                r = (fit.data[f] - fit.model[f]) / fit.sigma[f]
                title = f"{name}\nS_{fit.orders[f]}: χ²_red {fit.reduced_by_order()[fit.orders[f]]:.2f}"
            else:
                other = next(v for v in fits.values() if 2 in v.orders)
                r = other.data[1] / other.sigma[1]
                title = f"{name}\nS_2 not fitted: data/σ"
            im = ax.pcolormesh(fit.delays, fit.q, r.T, cmap="RdBu_r", vmin=-5, vmax=5, shading="auto")
            ax.set_title(title, fontsize=8)
            if j == 0:
                ax.set_ylabel("q (1/Å)")
            if f == 1:
                ax.set_xlabel("delay (fs)")
    fig.colorbar(im, ax=axes, label="(data − model)/σ", shrink=0.8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
