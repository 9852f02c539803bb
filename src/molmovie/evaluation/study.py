"""The five-experiment study of the paper, end to end, resumable.

Experiments (the paper's): all NMM trajectories; all C2H4; C2H4 without
dissociation; all CS2; CS2 without dissociation. Each has its own
train/val/test split; for each, the frame-by-frame baseline (``nearest``) and
the ``vrnn`` are trained, scored on the test split (labelled and
symmetry-aware RMSD, SSR), and compared.

Stages, each written atomically so a rerun skips what is done and Ctrl-C
leaves nothing corrupt::

    OUT/study.json                       what defines the study (a rerun with other settings is refused)
    OUT/data/{nmm,c2h4,cs2}.h5           generated trajectories + signals
    OUT/models/{experiment}-{method}.safetensors
    OUT/eval/{experiment}-{method}.npz   predictions and per-frame metrics
    OUT/results.json, OUT/results.md     the table
    OUT/fig2a.png, fig2b.png, fig2c.png, signals.png
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .._errors import InputError
from ..datasets import SPLITS

__all__ = ["Preset", "PRESETS", "EXPERIMENTS", "Experiment", "run_study", "write_report"]


@dataclass(frozen=True)
class Experiment:
    """One of the paper's five experiments."""

    key: str
    label: str
    molecule: str
    bound_only: bool


EXPERIMENTS = (
    Experiment("nmm", "NMM", "nmm", False),
    Experiment("c2h4", "C2H4", "c2h4", False),
    Experiment("c2h4-bound", "C2H4 bound", "c2h4", True),
    Experiment("cs2", "CS2", "cs2", False),
    Experiment("cs2-bound", "CS2 bound", "cs2", True),
)


@dataclass(frozen=True)
class Preset:
    """Sizes of a study run.

    Attributes
    ----------
    trajectories : dict molecule -> (train, val, test) counts
    vrnn : dict of VRNN settings (common), and per-experiment overrides in ``vrnn_by_experiment``
    """

    name: str
    trajectories: dict
    vrnn: dict
    vrnn_by_experiment: dict = field(default_factory=dict)
    description: str = ""


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        "paper",
        # Table 1 of the paper
        {"nmm": (85, 11, 11), "c2h4": (800, 100, 100), "cs2": (753, 94, 95)},
        vrnn=dict(epochs=150, patience=20),
        description="the paper's dataset sizes (Table 1)",
    ),
    "quick": Preset(
        "quick",
        {"nmm": (12, 2, 4), "c2h4": (96, 12, 12), "cs2": (48, 8, 8)},
        vrnn=dict(epochs=60, patience=10),
        description="small datasets for a run of well under 20 minutes on 2 cores",
    ),
}


# the scores compared per experiment (sums over the test frames; smaller wins)
SCORES = ("rmsd_sum", "rmsd_sym_traj_sum", "rmsd_sym_sum", "ssr_sum")


def _atomic_savez(path: Path, **arrays) -> None:
    from ..datasets import atomic_path

    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


MANIFEST = "study.json"
#: Raised whenever a change to molmovie makes models or scores of an older study invalid
#: (2: the VRNN's early stopping waits for the physics term's full weight).
REVISION = 2


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_manifest(out: Path, preset: Preset, seed: int, data_dir) -> dict:
    """What defines this study; refuse to resume, in ``out``, a study defined otherwise or by an older molmovie."""
    manifest = json.loads(json.dumps({
        "revision": REVISION,
        "preset": preset.name,
        "seed": int(seed),
        "data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
        "trajectories": {k: list(v) for k, v in preset.trajectories.items()},
        "vrnn": preset.vrnn,
        "vrnn_by_experiment": preset.vrnn_by_experiment,
    }))
    path = out / MANIFEST
    if not path.exists():
        stale = [p for sub in ("models", "eval") if (out / sub).is_dir() for p in (out / sub).iterdir()]
        if stale:
            raise InputError(
                f"{out} holds models or scores but no {MANIFEST} (a study by an older molmovie, or other files); "
                "choose another --output"
            )
        return manifest
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        raise InputError(f"{path} is not a study manifest; choose another --output") from None
    if not isinstance(old, dict):
        raise InputError(f"{path} is not a study manifest; choose another --output")
    a, b = _flatten(old), _flatten(manifest)
    diff = [f"{k} {a.get(k, 'unset')} there, {b.get(k, 'unset')} here" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if diff:
        raise InputError(
            f"{out} holds a study defined otherwise ({'; '.join(diff)}); its models would be reused: choose another --output"
        )
    return manifest


def _experiment_dataset(full, exp: Experiment, seed: int):
    """The dataset of one experiment with its own split (bound-only experiments drop dissociating runs)."""
    from ..datasets import make_splits

    if not exp.bound_only:
        return full
    ds = full.without_dissociating()
    counts = [len(full.splits[k]) for k in SPLITS]
    ds.splits = make_splits(ds.n_trajectories, counts, seed=seed + 1)
    return ds


def run_study(
    preset: str | Preset,
    output,
    *,
    seed: int = 0,
    workers: int | None = None,
    data_dir=None,
    log: Callable[[str], None] = print,
    progress_factory=None,
) -> dict:
    """Run the five-experiment study (or resume it) and write the report.

    Parameters
    ----------
    preset : "quick", "paper" or a :class:`Preset`
    output : path-like
        Folder for every stage's output (created if missing).
    seed : int
        Seed of trajectory generation, splits and training.
    workers : int, optional
        Worker processes for trajectory generation (default: all cores).
    data_dir : path-like, optional
        Where the generated datasets live (default ``OUTPUT/data``); reused when present.
    log : callable(str)
        Where progress lines go.
    progress_factory : callable(description, total) -> context manager yielding update(completed=...), optional

    Returns
    -------
    dict
        The results (also written to ``results.json``).
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r}; presets are {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    data = Path(data_dir) if data_dir is not None else out / "data"
    if data.exists() and not data.is_dir():
        raise InputError(f"the data folder {data} exists and is not a folder")
    manifest = _check_manifest(out, preset, seed, data_dir)
    for d in (out, data, out / "models", out / "eval"):
        d.mkdir(parents=True, exist_ok=True)
    if not (out / MANIFEST).exists():
        from ..datasets import atomic_path

        with atomic_path(out / MANIFEST) as tmp:
            tmp.write_text(json.dumps(manifest, indent=2))

    t0 = time.perf_counter()
    reused = 0
    datasets = {}
    for mol in ("nmm", "c2h4", "cs2"):
        path = data / f"{mol}.h5"
        reused += path.exists()
        datasets[mol] = _dataset_stage(mol, preset, path, seed, workers, log, progress_factory)

    results = {"preset": preset.name, "seed": seed, "experiments": {}}
    per_frame = {}
    for exp in EXPERIMENTS:
        ds = _experiment_dataset(datasets[exp.molecule], exp, seed)
        train, val, test = ds.split("train"), ds.split("val"), ds.split("test")
        entry = {"label": exp.label, "trajectories": {"train": train.n_trajectories, "val": val.n_trajectories, "test": test.n_trajectories}, "methods": {}}
        for method in ("nearest", "vrnn"):
            reused += any(p.exists() for p in _stage_paths(out, exp, method))
            ev = _method_stage(exp, method, preset, train, val, test, out, seed, log, progress_factory)
            entry["methods"][method] = ev["summary"]
            per_frame[(exp.key, method)] = ev
        # the simplest predictor, for scale: every frame answered with the training set's mean distances
        mean_R = np.nanmean(train.distances[train.mask], axis=0)
        entry["mean_predictor_abs_error"] = float(np.mean(np.abs(test.distances[test.mask] - mean_R)))
        m = entry["methods"]
        entry["winner"] = {
            k: ("vrnn" if m["vrnn"][k] < m["nearest"][k] else "nearest") for k in SCORES
        }
        results["experiments"][exp.key] = entry
        log(
            f"{exp.label:11s} RMSD sum baseline {m['nearest']['rmsd_sum']:9.1f}  VRNN {m['vrnn']['rmsd_sum']:9.1f} | "
            f"sym/traj {m['nearest']['rmsd_sym_traj_sum']:9.1f} / {m['vrnn']['rmsd_sym_traj_sum']:9.1f} | "
            f"sym/frame {m['nearest']['rmsd_sym_sum']:9.1f} / {m['vrnn']['rmsd_sym_sum']:9.1f} | "
            f"SSR {m['nearest']['ssr_sum']:9.3g} / {m['vrnn']['ssr_sum']:9.3g}"
        )
    results["wall_time_s"] = round(time.perf_counter() - t0, 1)
    results["reused_stages"] = int(reused)
    write_report(results, per_frame, datasets, out, seed=seed)
    return results


def _dataset_stage(mol, preset, path: Path, seed, workers, log, progress_factory):
    """Generate (or reuse) one molecule's trajectories and simulate their signals."""
    from ..datasets import read_dataset, write_dataset
    from ..scattering import q_grid, simulate_signals

    counts = preset.trajectories[mol]
    n = int(sum(counts))
    if path.exists():
        ds = read_dataset(path)
        if ds.n_trajectories != n:
            raise InputError(
                f"{path} holds {ds.n_trajectories} trajectories but the {preset.name} preset needs {n}; "
                "remove it or choose another --output/--data-dir"
            )
        if ds.molecule != mol:
            raise InputError(f"{path} holds {ds.molecule!r} trajectories, not {mol!r}; remove it or choose another --data-dir")
        sizes = tuple(len(ds.splits.get(k, ())) for k in SPLITS)
        if sizes != tuple(counts):
            raise InputError(
                f"{path} is split {'/'.join(map(str, sizes))} (train/val/test) but the {preset.name} preset needs "
                f"{'/'.join(map(str, counts))}; remove it or choose another --output/--data-dir"
            )
        if ds.has_signals:
            _check_protocol(ds, path)
            log(f"{mol}: reusing {path} ({n} trajectories, {int(ds.dissociated.sum())} dissociated)")
            return ds
    else:
        from ..dynamics import generate

        log(f"{mol}: generating {n} trajectories with GFN2-xTB ...")
        generate(mol, n, output=path, seed=seed, workers=workers, splits=counts, progress=_progress_cb(progress_factory, f"generate {mol}", n))
        ds = read_dataset(path)
    q = q_grid()
    dS, I_ref = simulate_signals(ds.symbols, ds.positions, ds.length, ds.time, q, inelastic=True, reference="first")
    ds = ds.with_signals(q, dS, I_ref, inelastic=True, reference="first", photons=None, irf_fs=None, seed=seed)
    write_dataset(ds, path, force=True)
    log(f"{mol}: {n} trajectories, {int(ds.dissociated.sum())} dissociated; signals on {len(q)} q points")
    return ds


def _check_protocol(ds, path: Path) -> None:
    """Refuse reused signals simulated otherwise than the study's protocol (default q grid, inelastic, first frame, exact)."""
    from ..scattering import q_grid

    q, a = q_grid(), ds.signal_attrs
    found = {
        "q grid": f"{len(ds.q)} points, {ds.q.min():.3g}-{ds.q.max():.3g} 1/Å",
        "inelastic": bool(a.get("inelastic", True)),
        "reference": str(a.get("reference", "first")),
        "photons": a.get("photons"),
        "irf_fs": a.get("irf_fs"),
    }
    wanted = {"q grid": f"{len(q)} points, {q.min():.3g}-{q.max():.3g} 1/Å", "inelastic": True, "reference": "first", "photons": None, "irf_fs": None}
    same_q = len(ds.q) == len(q) and np.allclose(ds.q, q, rtol=1e-9, atol=1e-12)
    diff = [f"{k} {found[k]} (the study uses {wanted[k]})" for k in wanted if (not same_q if k == "q grid" else found[k] != wanted[k])]
    if diff:
        raise InputError(f"{path} holds signals simulated otherwise than the study's: {'; '.join(diff)}; choose another --data-dir")


def _progress_cb(factory, description, total):
    """A callable(done) for library progress hooks; a no-op without a factory."""
    if factory is None:
        return None
    return _LazyProgress(factory, description, total)


class _LazyProgress:
    """Opens its progress bar on the first update and closes it at the last."""

    def __init__(self, factory, description, total):
        self.factory, self.description, self.total = factory, description, total
        self._cm = self._update = None

    def __call__(self, done, *args, **kwargs):
        if self._cm is None:
            self._cm = self.factory(self.description, self.total)
            self._update = self._cm.__enter__()
        self._update(completed=done)
        if done >= self.total:
            self.close()

    def close(self):
        """Close the bar if it is open."""
        if self._cm is not None:
            cm, self._cm = self._cm, None
            cm.__exit__(None, None, None)


def _vrnn_settings(preset: Preset, exp: Experiment, seed: int) -> dict:
    s = dict(preset.vrnn)
    s.update(preset.vrnn_by_experiment.get(exp.key, {}))
    s["seed"] = seed
    return s


def _stage_paths(out: Path, exp: Experiment, method: str) -> tuple[Path, Path]:
    """The model file and the evaluation file of one method in one experiment."""
    return out / "models" / f"{exp.key}-{method}.safetensors", out / "eval" / f"{exp.key}-{method}.npz"


def _method_stage(exp, method, preset, train, val, test, out: Path, seed, log, progress_factory) -> dict:
    """Train (or load) one method for one experiment, predict the test split, and score it."""
    from ..inversion import get_method, load_method
    from .metrics import evaluate

    model_path, eval_path = _stage_paths(out, exp, method)
    if eval_path.exists():
        with np.load(eval_path, allow_pickle=False) as z:
            ev = {k: z[k] for k in z.files}
        ev["summary"] = json.loads(str(ev.pop("summary_json")))
        if all(k in ev["summary"] for k in SCORES):
            return ev
        log(f"{exp.label}: {eval_path.name} predates the current metrics; scoring {method} again")
    if model_path.exists():
        model = load_method(model_path)
    else:
        settings = _vrnn_settings(preset, exp, seed) if method == "vrnn" else {}
        log(f"{exp.label}: training {method} on {train.n_trajectories} trajectories ...")
        t = time.perf_counter()
        model = get_method(method, **settings)
        bar = None
        if method == "vrnn":
            bar = _progress_cb(progress_factory, f"{exp.key} vrnn epochs", int(model.epochs))
        try:
            model.fit(train, val=val, **({} if bar is None else {"progress": bar}))
        finally:
            if bar is not None:
                bar.close()  # early stopping ends before the last epoch
        model.save(model_path)
        log(f"{exp.label}: {method} trained in {time.perf_counter() - t:.0f} s")
    pred = model.predict(test.dS, q=test.q, lengths=test.length)
    ev_obj = evaluate(pred.distances, test)
    summary = ev_obj.summary()
    if pred.std is not None:
        inside = np.abs(pred.distances - test.distances) <= 2 * pred.std
        summary["within_2sigma"] = float(inside[test.mask].mean())
    per_t = ev_obj.per_time_step()
    ev = dict(
        distances=pred.distances,
        std=pred.std if pred.std is not None else np.zeros((0,)),
        rmsd=ev_obj.rmsd,
        rmsd_sym=ev_obj.rmsd_sym,
        rmsd_sym_traj=ev_obj.rmsd_sym_traj,
        ssr=ev_obj.ssr,
        dS_pred=ev_obj.dS_pred,
        rmsd_t=per_t["rmsd"],
        rmsd_sym_t=per_t["rmsd_sym"],
        rmsd_sym_traj_t=per_t["rmsd_sym_traj"],
        ssr_t=per_t["ssr"],
        summary_json=np.array(json.dumps(summary)),
    )
    _atomic_savez(eval_path, **ev)
    ev["summary"] = summary
    return ev


# --------------------------------------------------------------------------- report


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 100 else f"{x:.0f}"


def results_markdown(results: dict) -> str:
    """The results table in Markdown (bold = the better method of each pair)."""
    rows = [
        "| experiment | train/val/test | RMSD sum (Å), labelled: baseline / VRNN | RMSD sum (Å), symmetry-aware per trajectory: baseline / VRNN "
        "| RMSD sum (Å), symmetry-aware per frame: baseline / VRNN | SSR sum: baseline / VRNN |",
        "|---|---|---|---|---|---|",
    ]
    for key, e in results["experiments"].items():
        m = e["methods"]
        cells = []
        for k in SCORES:
            a, b = m["nearest"][k], m["vrnn"][k]
            sa, sb = _fmt(a), _fmt(b)
            if e["winner"][k] == "vrnn":
                sb = f"**{sb}**"
            else:
                sa = f"**{sa}**"
            cells.append(f"{sa} / {sb}")
        t = e["trajectories"]
        rows.append(f"| {e['label']} | {t['train']}/{t['val']}/{t['test']} | " + " | ".join(cells) + " |")
    wins = {k: sum(e["winner"][k] == "vrnn" for e in results["experiments"].values()) for k in SCORES}
    n = len(results["experiments"])
    rows.append("")
    rows.append("| experiment | mean abs. distance error (Å): training mean / baseline / VRNN | true distances inside VRNN ±2σ |")
    rows.append("|---|---|---|")
    for e in results["experiments"].values():
        m = e["methods"]
        inside = m["vrnn"].get("within_2sigma")
        rows.append(
            f"| {e['label']} | {e.get('mean_predictor_abs_error', float('nan')):.3f} / {m['nearest']['abs_error_mean']:.3f} / "
            f"{m['vrnn']['abs_error_mean']:.3f} | {'-' if inside is None else f'{100 * inside:.0f} %'} |"
        )
    rows.append("")
    rows.append(
        f"VRNN wins: labelled RMSD {wins['rmsd_sum']}/{n}, symmetry-aware RMSD per trajectory {wins['rmsd_sym_traj_sum']}/{n} "
        f"and per frame {wins['rmsd_sym_sum']}/{n}, SSR {wins['ssr_sum']}/{n} "
        f"(preset `{results['preset']}`, seed {results['seed']}; this run took {results.get('wall_time_s', 0):.0f} s"
        + (f", reusing {results['reused_stages']} stages finished before it)." if results.get("reused_stages") else ").")
    )
    return "\n".join(rows) + "\n"


def write_report(results: dict, per_frame: dict, datasets: dict, out: Path, *, seed: int = 0) -> None:
    """Write results.json, results.md and the four figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..datasets import atomic_path
    from ..geometry import pair_indices
    from .figures import plot_distance_trace, plot_per_time_step, plot_rmsd_sums, plot_signals

    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(results_markdown(results))

    def save(fig, name):
        with atomic_path(out / name, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=130, format="png")
        plt.close(fig)

    keys = [e.key for e in EXPERIMENTS]
    labels = [results["experiments"][k]["label"] for k in keys]
    sums = {
        panel: {m: [results["experiments"][k]["methods"][m][field] for k in keys] for m in ("nearest", "vrnn")}
        for panel, field in (("labelled", "rmsd_sum"), ("per trajectory", "rmsd_sym_traj_sum"), ("per frame", "rmsd_sym_sum"))
    }
    titles = {
        "labelled": "atoms as labelled (the paper's)",
        "per trajectory": "equivalent atoms relabelled\nonce per trajectory",
        "per frame": "equivalent atoms relabelled\nin every frame",
    }
    save(plot_rmsd_sums(labels, sums, titles=titles), "fig2a.png")

    # Fig. 2b: the O-N distance along one NMM test trajectory
    nmm = _experiment_dataset(datasets["nmm"], EXPERIMENTS[0], seed).split("test")
    sym = nmm.symbols
    o, n = sym.index("O"), sym.index("N")
    i, j = pair_indices(len(sym))
    pair = int(np.flatnonzero((i == min(o, n)) & (j == max(o, n)))[0])
    traj = 0
    L = int(nmm.length[traj])
    t = nmm.time[:L]
    preds = {}
    for m in ("nearest", "vrnn"):
        ev = per_frame[("nmm", m)]
        std = ev["std"][traj, :L, pair] if ev["std"].size else None
        preds[m] = (ev["distances"][traj, :L, pair], std)
    save(plot_distance_trace(t, nmm.distances[traj, :L, pair], preds, pair_label="O–N"), "fig2b.png")

    # Fig. 2c: RMSD and SSR against time, NMM
    curves = {m: {"rmsd": per_frame[("nmm", m)]["rmsd_t"], "ssr": per_frame[("nmm", m)]["ssr_t"]} for m in ("nearest", "vrnn")}
    save(plot_per_time_step(nmm.time, curves, title="NMM test trajectories: error against time"), "fig2c.png")

    # signals: true ΔS beside the ΔS of each method's distances, one NMM test trajectory
    panels = {"measured ΔS (simulated truth)": nmm.dS[traj, :L]}
    for m, name in (("nearest", "from baseline distances"), ("vrnn", "from VRNN distances")):
        panels[name] = per_frame[("nmm", m)]["dS_pred"][traj, :L]
    save(plot_signals(t, nmm.q, panels, title="NMM test trajectory: ΔS(q, t) and its reconstruction"), "signals.png")
