"""The condition tables and figure of the study's report: every method and variant per noise level and mismatch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .conditions import CONDITIONS
from .presets import SCORE_NAMES, SCORES, method_label
from .shared_fit import FITTED, RELATIVE_WIDTH

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Short names of the scores, for the figure's panel titles.
_SHORT = {
    "rmsd_sum": "RMSD sum, labelled (Å)",
    "rmsd_sym_traj_sum": "sym. RMSD per traj. (Å)",
    "rmsd_sym_sum": "sym. RMSD per frame (Å)",
    "ssr_sum": "SSR sum",
}

#: The score the head-to-head summary counts (the issue's goal: symmetry-aware RMSD per frame).
HEAD_TO_HEAD = "rmsd_sym_sum"


def variant_label(name: str) -> str:
    """How tables and figures call a variant: the method's label, with "+ signal fit" for the fitted one."""
    if name.endswith(FITTED):
        return method_label(name[: -len(FITTED)]) + " + signal fit"
    return method_label(name)


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def _conditions_of(results: dict) -> list[str]:
    keys = dict.fromkeys(k for e in results["experiments"].values() for k in e.get("conditions", {}))
    return [k for k in CONDITIONS if k in keys]


def head_to_head(c: dict, method: str, score: str = HEAD_TO_HEAD) -> str | None:
    """ "win", "loss" or "tie": ``method``'s best variant against the best variant of every other method, beyond the spread.

    None when only one method is there. The spreads are the variants' (zero with one seed).
    """
    m, spread = c["methods"], c.get("spread", {})
    mine = [v for v in m if v.removesuffix(FITTED) == method]
    others = [v for v in m if v.removesuffix(FITTED) != method]
    if not mine or not others:
        return None
    a = min(mine, key=lambda v: m[v][score])
    b = min(others, key=lambda v: m[v][score])
    gap = m[b][score] - m[a][score]
    threshold = spread.get(a, {}).get(score, 0.0) + spread.get(b, {}).get(score, 0.0)
    return "win" if gap > threshold else "loss" if -gap > threshold else "tie"


def conditions_markdown(results: dict) -> list[str]:
    """Rows of Markdown: per score, a table of every variant per (experiment, condition); then the head-to-head counts."""
    keys = _conditions_of(results)
    if not keys:
        return []
    exps = [e for e in results["experiments"].values() if "conditions" in e]
    variants = list(dict.fromkeys(v for e in exps for c in e["conditions"].values() for v in c["methods"]))
    methods = list(dict.fromkeys(v.removesuffix(FITTED) for v in variants))
    several = "seeds" in results
    rows = [
        "",
        "## Every method with the same tools, under noise and forward-model mismatch",
        "",
        'Each method as itself (no signal fit; the VRNN\'s own is switched off) and "+ signal fit": the shared '
        "signal fit (MAP in geometry space, continuation in time), prior centred on the method's answer with its own σ, "
        f"or σ = {RELATIVE_WIDTH:g} × R for a method without one; every fit told the condition's true noise σ "
        "(noise-free: its stated floor). Noise: Gaussian, σ of ΔS per q bin and frame, drawn once per level and seed, "
        "the same for every method. Scores against the truth (SSR: against the clean ΔS)."
        + (
            " Mean ± spread over the seeds (a method without a training seed: over the noise draws); "
            "bold: the winner beyond the spread."
            if several
            else " One seed: no spread; bold: the smallest."
        ),
    ]
    for score in SCORES:
        rows += [
            "",
            f"### {SCORE_NAMES[score]}",
            "",
            "| experiment | condition | " + " | ".join(variant_label(v) for v in variants) + " | winner |",
            "|---|---|" + "---|" * (len(variants) + 1),
        ]
        for e in exps:
            for k in keys:
                if k not in e["conditions"]:
                    continue
                c = e["conditions"][k]
                cells = []
                for v in variants:
                    if v not in c["methods"]:
                        cells.append("-")
                        continue
                    text = _fmt(c["methods"][v][score]) + (f" ± {_fmt(c['spread'][v][score])}" if several else "")
                    cells.append(f"**{text}**" if v == c["winner"][score] else text)
                win = c["winner"][score]
                verdict = (
                    variant_label(win) if win is not None else "tie: " + ", ".join(variant_label(x) for x in c["tied"][score])
                )
                rows.append(f"| {e['label']} | {c['label']} | " + " | ".join(cells) + f" | {verdict} |")
    covered = [
        v for v in variants if any("within_2sigma" in c["methods"].get(v, {}) for e in exps for c in e["conditions"].values())
    ]
    if covered:
        rows += [
            "",
            "### True distances inside ±2σ (every pair and frame; the goal is 80-98 %)",
            "",
            "| experiment | condition | " + " | ".join(variant_label(v) for v in covered) + " |",
            "|---|---|" + "---|" * len(covered),
        ]
        for e in exps:
            for k in keys:
                c = e["conditions"].get(k)
                if c is None:
                    continue
                cells = [
                    f"{100 * c['methods'][v]['within_2sigma']:.0f} %" if "within_2sigma" in c["methods"].get(v, {}) else "-"
                    for v in covered
                ]
                rows.append(f"| {e['label']} | {c['label']} | " + " | ".join(cells) + " |")
    rows += [
        "",
        f"### Head to head: each method's better variant against the best other method's, {SCORE_NAMES[HEAD_TO_HEAD]}",
        "",
        "Wins / ties / losses over the experiments"
        + (" (beyond the spread)" if several else " (one seed: any difference counts)")
        + ".",
        "",
        "| condition | " + " | ".join(method_label(m) for m in methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for k in keys:
        cells = []
        for m in methods:
            got = [head_to_head(e["conditions"][k], m) for e in exps if k in e["conditions"]]
            cells.append(f"{got.count('win')} / {got.count('tie')} / {got.count('loss')}")
        rows.append(f"| {CONDITIONS[k].label} | " + " | ".join(cells) + " |")
    return rows


def transfer_conditions_markdown(results: dict, score: str = "transfer_error", source: str = "sharc") -> list[str]:
    """Rows of Markdown: the transfer to one source's foreign runs (the SHARC runs by default) under each noise level, every variant, winner beyond the spread."""
    from .transfer import runs_name

    scored = [e for e in results["experiments"].values() if e.get("transfer", {}).get(source, {}).get("conditions")]
    if not scored:
        return []
    several = "seeds" in results
    keys = [k for k in CONDITIONS if any(k in e["transfer"][source]["conditions"] for e in scored)]
    variants = list(dict.fromkeys(v for e in scored for c in e["transfer"][source]["conditions"].values() for v in c["methods"]))
    rows = [
        "",
        f"Transfer under noise: the {runs_name(source)}' signals (made with each model's spec) with the noise of each level, "
        "drawn once per level and seed, the same for every method; each method as itself and with the shared signal "
        "fit, as in the tables below; the same score (Å, three significant digits)."
        + (
            " Mean ± spread over the seeds (a method without a training seed: over the draws); bold: the winner beyond the spread."
            if several
            else " One seed; bold: the smallest."
        ),
    ]
    for k in keys:
        rows += [
            "",
            f"| {CONDITIONS[k].label}: experiment | " + " | ".join(variant_label(v) for v in variants) + " | winner |",
            "|---|" + "---|" * (len(variants) + 1),
        ]
        for e in scored:
            c = e["transfer"][source]["conditions"].get(k)
            if c is None:
                continue
            cells = []
            for v in variants:
                if v not in c["methods"]:
                    cells.append("-")
                    continue
                text = f"{c['methods'][v][score]:.3g}" + (f" ± {c['spread'][v][score]:.2g}" if several else "")
                cells.append(f"**{text}**" if v == c["winner"][score] else text)
            win = c["winner"][score]
            verdict = variant_label(win) if win is not None else "tie: " + ", ".join(variant_label(x) for x in c["tied"][score])
            rows.append(f"| {e['label']} | " + " | ".join(cells) + f" | {verdict} |")
    return rows


def conditions_figure(results: dict) -> Figure | None:
    """Each score against the noise level (the noise-free and noise conditions), per experiment; None without them."""
    from ..figures import plot_noise_ladder

    keys = [k for k in _conditions_of(results) if CONDITIONS[k].mismatch is None]
    if len(keys) < 2:
        return None
    exps = [e for e in results["experiments"].values() if "conditions" in e]
    levels = [CONDITIONS[k].noise for k in keys]
    several = "seeds" in results
    panels = {}
    for e in exps:
        for score in SCORES:
            lines = {}
            variants = dict.fromkeys(v for k in keys for v in e["conditions"][k]["methods"])
            for v in variants:
                mean = [e["conditions"][k]["methods"].get(v, {}).get(score, float("nan")) for k in keys]
                spread = [e["conditions"][k]["spread"].get(v, {}).get(score, float("nan")) for k in keys] if several else None
                lines[variant_label(v)] = (mean, spread)
            panels[f"{e['label']}: {_SHORT.get(score, score)}"] = lines
    seeds = f"mean ± spread over {len(results['seeds'])} seeds" if several else f"seed {results['seed']}"
    return plot_noise_ladder(
        levels, panels, ncols=len(SCORES), title=f"Scores against noise (sums over the test frames; {seeds})"
    )
