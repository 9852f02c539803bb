"""The study's report: results.json, the Markdown tables (results.md) and the figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...io import atomic_path
from .._style import save_figure, signal_names
from ..figures import choose_pair, plot_distance_trace, plot_per_time_step, plot_rmsd_sums, plot_signals
from . import presets
from .conditions_report import conditions_figure, conditions_markdown, transfer_conditions_markdown
from .presets import SCORE_NAMES, SCORES, Experiment, is_seeded, method_label
from .ranking import SPREAD, WIN_RULE
from .stages import experiment_dataset
from .transfer import TRANSFER_SCORE, runs_name, transfer_title

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def log_line(exp: Experiment, entry: dict) -> str:
    m = entry["methods"]
    names = " / ".join(method_label(k) for k in m)
    cells = [
        f"{short} " + " / ".join(f"{m[k][score]:9.4g}" for k in m)
        for score, short in zip(SCORES, ("RMSD sum", "sym/traj", "sym/frame", "SSR"), strict=True)
    ]
    return f"{exp.label:11s} {names}: " + " | ".join(cells)


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 100 else f"{x:.0f}"


def _methods_of(results: dict) -> list[str]:
    return list(dict.fromkeys(m for e in results["experiments"].values() for m in e["methods"]))


def _spread_caption(results: dict, methods: list[str]) -> str:
    """What the tables of a study over several seeds show, in one paragraph."""
    seeds = results["seeds"]
    once = [method_label(m) for m in methods if not is_seeded(m)]
    return (
        f"Each score: mean ± spread over {len(seeds)} training seeds ({seeds[0]}-{seeds[-1]}), on the datasets and splits of "
        f"seed {results['seed']}; the spread is the {SPREAD}"
        + (f" ({', '.join(once)}: no seed, trained once, spread 0)" if once else "")
        + f". Bold: the winner; {WIN_RULE}."
    )


def _pm(mean: float, spread: float | None) -> str:
    return _fmt(mean) if spread is None else f"{_fmt(mean)} ± {_fmt(spread)}"


def results_markdown(results: dict) -> str:
    """The results tables in Markdown, for any number of methods (bold: each score's winner).

    With several seeds (``results["seeds"]``) every score reads mean ± spread,
    a caption says which spread and when a method wins, and a score without a
    winner reads "tie (within spread)".
    """
    exps = results["experiments"]
    methods = _methods_of(results)
    names = " / ".join(method_label(m) for m in methods)
    several = "seeds" in results
    rows = [_spread_caption(results, methods), ""] if several else []

    def spread(e: dict, name: str, k: str) -> float | None:
        return e["spread"][name][k] if several else None

    rows += [
        "| experiment | train/val/test | " + " | ".join(f"{SCORE_NAMES[k]}: {names}" for k in SCORES) + " |",
        "|---|---|" + "---|" * len(SCORES),
    ]
    for e in exps.values():
        m = e["methods"]
        cells = []
        for k in SCORES:
            texts = ["-" if name not in m else _pm(m[name][k], spread(e, name, k)) for name in methods]
            cells.append(" / ".join(f"**{t}**" if name == e["winner"][k] else t for name, t in zip(methods, texts, strict=True)))
        t = e["trajectories"]
        rows.append(f"| {e['label']} | {t['train']}/{t['val']}/{t['test']} | " + " | ".join(cells) + " |")
    if len(methods) > 1:
        rows += [
            "",
            "| experiment | " + " | ".join(f"{SCORE_NAMES[k]}: winner, margin over the runner-up" for k in SCORES) + " |",
            "|---|" + "---|" * len(SCORES),
        ]
        for e in exps.values():
            cells = []
            for k in SCORES:
                win, runner, margin = e["winner"][k], e["runner_up"][k], e["margin"][k]
                lead = e["leader"][k] if several else win
                if runner is None:
                    cells.append(method_label(lead))
                    continue
                if several and win is None:
                    tied = ", ".join(method_label(x) for x in e["tied"][k])
                    cells.append(
                        f"tie (within spread): {tied}; {method_label(lead)} leads by {_fmt(margin)}, spread {_fmt(e['threshold'][k])}"
                    )
                    continue
                base = e["methods"][runner][k]
                pct = f" ({100 * margin / base:.0f} % of {method_label(runner)}'s)" if base > 0 else ""
                cells.append(
                    f"{method_label(win)} by {_fmt(margin)}{pct}" + (f" > spread {_fmt(e['threshold'][k])}" if several else "")
                )
            rows.append(f"| {e['label']} | " + " | ".join(cells) + " |")
    rows += [
        "",
        f"| experiment | mean abs. distance error (Å): training mean / {names} | true distances inside ±2σ |",
        "|---|---|---|",
    ]
    for e in exps.values():
        m = e["methods"]
        errors = " / ".join(
            "-"
            if name not in m
            else f"{m[name]['abs_error_mean']:.3f}" + (f" ± {e['spread'][name]['abs_error_mean']:.3f}" if several else "")
            for name in methods
        )
        inside = [
            f"{method_label(name)} {100 * m[name]['within_2sigma']:.0f} %"
            for name in methods
            if "within_2sigma" in m.get(name, {})
        ]
        rows.append(
            f"| {e['label']} | {e.get('mean_predictor_abs_error', float('nan')):.3f} / {errors} | {', '.join(inside) or '-'} |"
        )
    rows += _transfer_markdown(results, methods)
    n = len(exps)
    wins = []
    for name in methods:
        w = {k: sum(e["winner"][k] == name for e in exps.values()) for k in SCORES}
        wins.append(
            f"{method_label(name)} wins: labelled RMSD {w['rmsd_sum']}/{n}, symmetry-aware RMSD per trajectory "
            f"{w['rmsd_sym_traj_sum']}/{n} and per frame {w['rmsd_sym_sum']}/{n}, SSR {w['ssr_sum']}/{n}"
        )
    if several:
        ties = {k: sum(e["winner"][k] is None for e in exps.values()) for k in SCORES}
        wins.append(
            f"ties within spread: labelled RMSD {ties['rmsd_sum']}/{n}, symmetry-aware RMSD per trajectory "
            f"{ties['rmsd_sym_traj_sum']}/{n} and per frame {ties['rmsd_sym_sum']}/{n}, SSR {ties['ssr_sum']}/{n}"
        )
    seeds = f"seeds {results['seeds'][0]}-{results['seeds'][-1]}" if several else f"seed {results['seed']}"
    rows += [
        "",
        "; ".join(wins)
        + (
            f" (preset `{results['preset']}`, {seeds}; this run took {results.get('wall_time_s', 0):.0f} s"
            + (f", reusing {results['reused_stages']} stages finished before it)." if results.get("reused_stages") else ").")
        ),
    ]
    rows += conditions_markdown(results)
    return "\n".join(rows) + "\n"


def _transfer_markdown(results: dict, methods: list[str]) -> list[str]:
    """The transfer tables (rows of Markdown, empty without transfer scores), one per source of foreign runs (the SHARC
    runs, another dynamics model's): one row per experiment scored on them, one column per method, then the same under noise."""
    sources = dict.fromkeys(src for e in results["experiments"].values() for src in e.get("transfer", {}))
    return [row for source in sources for row in _source_markdown(results, methods, source)]


def _source_markdown(results: dict, methods: list[str], source: str) -> list[str]:
    scored = [e for e in results["experiments"].values() if source in e.get("transfer", {})]
    several = "seeds" in results
    rows = [
        "",
        f"{transfer_title(source)}: each model's mean over the runs of each run's mean error, over frames, of the atom-atom "
        "distances, with equivalent atoms relabelled in every frame."
        + (" Mean ± spread over the seeds, as above." if several else ""),
        "",
        f"| experiment | {runs_name(source)} | "
        + " | ".join(method_label(m) for m in methods)
        + " | winner, margin over the runner-up |",
        "|---|---|" + "---|" * (len(methods) + 1),
    ]
    k = TRANSFER_SCORE
    for e in scored:
        t = e["transfer"][source]
        gone = sum(t["dissociated"])
        runs = f"{t['runs']} ({t['runs'] - gone} bound" + (f", {gone} dissociating)" if gone else ")")
        cells = []
        for name in methods:
            if name not in t["methods"]:
                cells.append("-")
                continue
            text = f"{t['methods'][name][k]:.3f}" + (f" ± {t['spread'][name][k]:.3f}" if several else "")
            cells.append(f"**{text}**" if name == t["winner"][k] else text)
        win, runner, margin = t["winner"][k], t["runner_up"][k], t["margin"][k]
        if runner is None:
            verdict = method_label(t["leader"][k] if several else win)
        elif win is None:
            verdict = (
                f"tie (within spread): {', '.join(method_label(x) for x in t['tied'][k])}; {method_label(t['leader'][k])} "
                f"leads by {margin:.3f}, spread {t['threshold'][k]:.3f}"
            )
        else:
            verdict = f"{method_label(win)} by {margin:.3f} Å" + (f" > spread {t['threshold'][k]:.3f}" if several else "")
        rows.append(f"| {e['label']} | {runs} | " + " | ".join(cells) + f" | {verdict} |")
    return rows + transfer_conditions_markdown(results, k, source)


def write_report(results: dict, per_frame: dict, datasets: dict, out: Path, *, seed: int = 0) -> None:
    """Write results.json, results.md and the four figures (the first experiment shown in detail), and
    ``noise.png`` (each score against the noise level) when the study has noise conditions.

    With several seeds, fig2a shows the means over seeds with ± one standard
    deviation as error bars; fig2b, fig2c and signals.png show the models of
    the study's own seed (``per_frame``).
    """
    import matplotlib

    matplotlib.use("Agg")

    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(results_markdown(results))

    def save(fig: Figure, name: str) -> None:
        save_figure(fig, out / name)  # name.png (300 dpi) and name.pdf; closes the figure

    entries = results["experiments"]
    methods = _methods_of(results)
    keys = list(entries)
    labels = [entries[k]["label"] for k in keys]
    sums = {
        panel: {method_label(m): [entries[k]["methods"].get(m, {}).get(score, np.nan) for k in keys] for m in methods}
        for panel, score in (("labelled", "rmsd_sum"), ("per trajectory", "rmsd_sym_traj_sum"), ("per frame", "rmsd_sym_sum"))
    }
    titles = {
        "labelled": "atoms as labelled (the paper's)",
        "per trajectory": "equivalent atoms relabelled\nonce per trajectory",
        "per frame": "equivalent atoms relabelled\nin every frame",
    }
    errors = None
    if "seeds" in results:  # means over seeds, with their spread
        errors = {
            panel: {method_label(m): [entries[k]["spread"].get(m, {}).get(score, np.nan) for k in keys] for m in methods}
            for panel, score in (("labelled", "rmsd_sum"), ("per trajectory", "rmsd_sym_traj_sum"), ("per frame", "rmsd_sym_sum"))
        }
        titles = {p: f"{t} (mean ± std, {len(results['seeds'])} seeds)" for p, t in titles.items()}
    save(plot_rmsd_sums(labels, sums, errors=errors, titles=titles), "fig2a.png")
    ladder = conditions_figure(results)
    if ladder is not None:
        save(ladder, "noise.png")

    # the first experiment in detail: one distance along one test trajectory (Fig. 2b), errors against time
    # (Fig. 2c), and the signal against the signal of each method's distances
    exp = next(e for e in presets.EXPERIMENTS if e.key == keys[0])
    test = experiment_dataset(datasets[exp.dataset], exp, seed).split("test")
    shown = [m for m in methods if (exp.key, m) in per_frame]
    pair, pair_label = choose_pair(test.symbols, test.distances, exp.pair)
    traj = 0
    L = int(test.length[traj])
    t = test.time[:L]
    preds = {}
    for m in shown:
        ev = per_frame[(exp.key, m)]
        preds[method_label(m)] = (ev["distances"][traj, :L, pair], ev["std"][traj, :L, pair] if ev["std"].size else None)
    save(plot_distance_trace(t, test.distances[traj, :L, pair], preds, pair_label=pair_label), "fig2b.png")
    curves = {
        method_label(m): {"rmsd": per_frame[(exp.key, m)]["rmsd_t"], "ssr": per_frame[(exp.key, m)]["ssr_t"]} for m in shown
    }
    save(plot_per_time_step(test.time, curves, title=f"{exp.label} test trajectories: error against time"), "fig2c.png")
    assert test.dS is not None and test.q is not None  # the study's datasets carry their signals
    qn, sn = signal_names(exp.probe)
    panels = {f"measured {sn} (simulated truth)": test.dS[traj, :L]}
    for m in shown:
        panels[f"from {method_label(m)} distances"] = per_frame[(exp.key, m)]["dS_pred"][traj, :L]
    title = f"{exp.label} test trajectory: {sn}({qn}, t) and its reconstruction"
    save(plot_signals(t, test.q, panels, title=title, probe=exp.probe), "signals.png")
