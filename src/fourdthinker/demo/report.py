"""The demo's results: Table 3 layout, paired deltas with 95% CIs, HTML report and figures.

The demo's claim "DIFT + 4DRL beats base" is that the paired CI of its gain
(``fourdthinker.stats.paired_delta_ci``, re-exported here) excludes zero. Everything else reuses
``fourdthinker.eval`` (``table3``, ``write_report``, McNemar via ``paired_compare``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fourdthinker.names import slug
from fourdthinker.stats import paired_delta_ci

__all__ = ["paired_delta_ci", "plot_table3", "plot_training", "write_demo_report"]


def plot_table3(numbers: list[dict], path: Path, *, chance: float | None = 0.25, title: str = "") -> Path:
    """Horizontal bars of Avg. accuracy per training strategy with the 95% CI as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fourdthinker.plots import save_figure

    names = [r["strategy"] for r in numbers]
    acc = np.array([100 * r["accuracy"] for r in numbers])
    lo = np.array([100 * r["ci_lo"] for r in numbers])
    hi = np.array([100 * r["ci_hi"] for r in numbers])
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(names) + 1.4))
    y = np.arange(len(names))[::-1]
    colors = ["#9e9e9e" if n == "base" else "#d62728" if "DIFT" in n else "#1f77b4" for n in names]
    ax.barh(y, acc, xerr=[np.clip(acc - lo, 0, None), np.clip(hi - acc, 0, None)], color=colors, capsize=4, alpha=0.85)
    for yi, v, h in zip(y, acc, hi, strict=True):
        ax.text(max(v, h) + 1.5, yi, f"{v:.1f}", va="center", fontsize=9)
    if chance is not None:
        ax.axvline(100 * chance, ls="--", color="k", lw=1, label="chance (4 options)")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_yticks(y, names)
    ax.set_xlabel("Avg. accuracy on the held-out synthetic benchmark (%), 95% bootstrap CI")
    ax.set_xlim(0, max(100, float(np.nanmax(hi)) + 10) if len(hi) else 100)
    ax.set_title(title or "Table 3 layout: training strategies (tiny model, CPU)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def _read_jsonl(path: Path) -> list[dict]:
    from fourdthinker.io import read_jsonl

    return read_jsonl(path, tolerate_truncated_tail=True) if path.exists() else []


def plot_training(runs: Path, path: Path) -> Path | None:
    """Left: SFT loss per step (Raw QA, CoT, DIFT; DIFT's CE and cosine parts dashed; the DIFT
    curriculum's two stages end to end, a dotted line where the self-fed one starts). Right:
    GRPO mean reward per step of the RL runs (moving average over 5 steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fourdthinker.plots import save_figure

    sft = {"Raw QA SFT": "sft-raw-qa", "CoT SFT": "sft-cot", "DIFT": "dift"}
    from fourdthinker.demo.pipeline import (
        CURRICULUM_READ_STAGE,
        CURRICULUM_RL_ROW,
        CURRICULUM_ROW,
        CURRICULUM_STAGE,
    )

    rl = {"GRPO": "rl-grpo", "CoT SFT + GRPO": "rl-cot-grpo", "DIFT + 4DRL": "rl-4drl", CURRICULUM_RL_ROW: "rl-4drl-curriculum"}
    if not any((runs / d / "log.jsonl").exists() for d in sft.values()):
        return None
    has_rl = any(_read_jsonl(runs / d / "metrics.jsonl") for d in rl.values())
    if has_rl:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
    else:  # no RL stage has run yet: the SFT panel alone
        fig, a1 = plt.subplots(1, 1, figsize=(6, 3.8))
        a2 = None
    for name, d in sft.items():
        rows = [r for r in _read_jsonl(runs / d / "log.jsonl") if "loss" in r]
        if not rows:
            continue
        steps = [r["step"] for r in rows]
        key = "ce" if all("ce" in r for r in rows) else "loss"
        line, = a1.plot(steps, [r[key] for r in rows], label=f"{name} (text CE)", marker="o" if len(rows) < 10 else None)
        if name == "DIFT" and all("sim" in r for r in rows):
            a1.plot(steps, [r["sim"] for r in rows], ls="--", color=line.get_color(), label="DIFT L_sim (1 - cos)")
    read = [r for r in _read_jsonl(runs / CURRICULUM_READ_STAGE / "log.jsonl") if "loss" in r]
    chain = [r for r in _read_jsonl(runs / CURRICULUM_STAGE / "log.jsonl") if "loss" in r]
    if read:  # the curriculum's two stages end to end (its CE is on the answer alone: another scale)
        shift = read[-1]["step"]
        rows = read + [{**r, "step": r["step"] + shift} for r in chain]
        a1.plot([r["step"] for r in rows], [r.get("ce", r["loss"]) for r in rows], color="#9467bd",
                label=f"{CURRICULUM_ROW}, answer CE", marker="o" if len(rows) < 10 else None)
        if chain:
            a1.axvline(shift + 0.5, ls=":", color="#9467bd", lw=1)
    a1.set_xlabel("optimizer step")
    a1.set_ylabel("loss")
    a1.set_yscale("log")
    a1.set_title("SFT stages")
    a1.legend(fontsize=8)
    for name, d in rl.items() if a2 is not None else ():
        rows = _read_jsonl(runs / d / "metrics.jsonl")
        if not rows:
            continue
        r = np.array([m["reward_mean"] for m in rows], dtype=float)
        w = min(5, len(r))
        sm = np.convolve(r, np.ones(w) / w, mode="valid")
        a2.plot(np.arange(w, len(r) + 1), sm, label=name, marker="o" if len(sm) < 10 else None,
                color="#9467bd" if name == CURRICULUM_RL_ROW else None)  # the curriculum's colour in both panels
    if a2 is not None:
        a2.set_xlabel("GRPO step")
        a2.set_ylabel("mean reward (acc + 0.2 fmt), 5-step avg")
        a2.set_title("RL stages")
        if a2.lines:
            a2.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def write_demo_report(demo: Any, results: Mapping[str, Any], *, title: str = "fourdthinker demo") -> dict:
    """Write ``report/`` for the demo's results (row name -> ``EvalResult``) and return the
    headline numbers (also stored in ``report/summary.json``)."""
    from fourdthinker.eval.metrics import paired_compare
    from fourdthinker.eval.report import write_report
    from fourdthinker.eval.tables import table3
    from fourdthinker.io import atomic_write_json, atomic_write_text

    out = Path(demo.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not results:
        raise ValueError(f"{demo.evals}: no evaluation results to report")
    from fourdthinker.demo.pipeline import CURRICULUM_RL_ROW, CURRICULUM_ROW

    table = table3(results, order=list(demo.rows()))  # the paper's order, the curriculum's rows where the demo puts them
    atomic_write_text(out / "table3.md", table.to_markdown() + "\n")
    if hasattr(table, "to_csv"):
        atomic_write_text(out / "table3.csv", table.to_csv())
    first = next(iter(results.values()))
    subtask_of = {i: it.subtask for i, it in first.items.items()}
    paired = []
    pairs = [("base", n) for n in results if n != "base"] + [
        (b, "DIFT + 4DRL") for b in ("Raw QA SFT", "CoT SFT", "GRPO", "CoT SFT + GRPO", "DIFT") if b in results] + [
        (b, CURRICULUM_ROW) for b in ("CoT SFT", "DIFT")] + [  # vs the paper's recipe and the reasoning without imagery
        (b, CURRICULUM_RL_ROW) for b in (CURRICULUM_ROW, "DIFT + 4DRL")]
    for a_name, b_name in pairs:
        if a_name not in results or b_name not in results:
            continue
        a, b = results[a_name].correct(), results[b_name].correct()
        d, lo, hi = paired_delta_ci(a, b, subtask_of)
        pc = paired_compare(a, b, a_name, b_name)
        paired.append({"a": a_name, "b": b_name, "delta": d, "ci_lo": lo, "ci_hi": hi, "n": pc.n,
                       "fixed": len(pc.b_only), "broken": len(pc.a_only), "mcnemar_p": pc.p_value,
                       "ci_excludes_zero": bool(lo > 0 or hi < 0)})
    atomic_write_json(out / "paired.json", paired)
    plot_table3(table.numbers, out / "demo_table3.png")
    train_png = plot_training(Path(demo.runs), out / "demo_training.png")
    html = write_report(results, out, bench="synthetic", root=demo.world_bench, title=title, table=table,
                        span=demo.cfg.frame_span)
    gates = curriculum_gates(Path(demo.runs))
    _add_demo_section(Path(html), paired, [out / "demo_table3.png", train_png], gates)
    summary = {
        "rows": {r["strategy"]: {"accuracy": r["accuracy"], "ci": [r["ci_lo"], r["ci_hi"]], "n": r["n"]}
                 for r in table.numbers},
        "paired": paired, "report": str(html), "table3_png": str(out / "demo_table3.png"),
        "training_png": str(train_png) if train_png else None, "curriculum_gates": gates,
    }
    atomic_write_json(out / "summary.json", summary)
    return summary


def curriculum_gates(runs: Path) -> dict[str, dict]:
    """Where each read-out-gated curriculum stage stopped (``--curriculum-gate``): stage -> {rule,
    fired_at (None: ran to its cap), last check}; empty when no stage was gated."""
    import json

    out = {}
    from fourdthinker.demo.pipeline import CURRICULUM_READ_STAGE, CURRICULUM_STAGE

    for stage in (CURRICULUM_READ_STAGE, CURRICULUM_STAGE):
        f = runs / stage / "gate.json"
        if f.exists():
            g = json.loads(f.read_text(encoding="utf-8"))
            last = g["checks"][-1] if g.get("checks") else {}
            out[stage] = {"rule": g["stop_when"], "fired_at": g["fired_at"], "last_step": last.get("step"),
                          "last_check": last.get("why")}
    return out


def _add_demo_section(html_path: Path, paired: list[dict], pngs: list[Path | None], gates: dict) -> None:
    """Insert the paired gains (with CIs), where the gated curriculum stages stopped, and the demo
    figures into the eval report's HTML."""
    import base64
    import html as H

    from fourdthinker.io import atomic_write_text

    rows = "".join(
        f"<tr><td>{H.escape(r['b'])} vs {H.escape(r['a'])}</td><td>{100 * r['delta']:+.1f}</td>"
        f"<td>[{100 * r['ci_lo']:+.1f}, {100 * r['ci_hi']:+.1f}]</td><td>{r['fixed']}/{r['broken']}</td>"
        f"<td>{r['mcnemar_p']:.3g}</td></tr>" for r in paired)
    imgs = "".join(f'<img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" alt="{p.stem}">'
                   for p in pngs if p is not None and p.exists())
    section = ("<h2>Demo: paired gains (same items, paired stratified bootstrap 95% CI)</h2>"
               "<table><tr><th>B vs A</th><th>delta (pp)</th><th>95% CI</th><th>fixed/broken</th><th>McNemar p</th></tr>"
               f"{rows}</table><p class='caption'>The base row is a random-init model (it rarely answers in a parseable "
               "way), so compare with chance (25%) too.</p>" + _gate_html(gates) +
               "<h2>Demo figures</h2><div class='grid'>" + imgs + "</div>")
    text = html_path.read_text(encoding="utf-8")
    text = text.replace("</body>", section + "</body>", 1) if "</body>" in text else text + section
    atomic_write_text(html_path, text)


def _gate_html(gates: dict) -> str:
    import html as H

    if not gates:
        return ""

    def stopped(g: dict) -> str:
        return str(g["fired_at"]) if g["fired_at"] is not None else f"not met (cap {g['last_step']})"

    rows = "".join(f"<tr><td>{H.escape(stage)}</td><td>{H.escape(g['rule'])}</td><td>{stopped(g)}</td>"
                   f"<td>{H.escape(g['last_check'] or '')}</td></tr>" for stage, g in gates.items())
    return ("<h2>Curriculum: the read-out gate</h2><table><tr><th>stage</th><th>rule</th><th>stopped at step</th>"
            f"<th>last check (held-out camera records, %)</th></tr>{rows}</table>")


def print_summary(summary: dict, console=None) -> None:
    """Rich Table 3 + the paired deltas, then the headline figures (``name: value`` lines last)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    t = Table(title="Table 3 layout: training strategies (Avg. accuracy %, held-out synthetic benchmark)")
    for h in ("Training strategies", "Accuracy", "95% CI", "vs base", "n"):
        t.add_column(h, justify="left" if h == "Training strategies" else "right")
    base = summary["rows"].get("base", {}).get("accuracy")
    for name, r in summary["rows"].items():
        gain = "" if base is None or name == "base" else f"{100 * (r['accuracy'] - base):+.1f}"
        t.add_row(name, _pct(r["accuracy"]), f"[{_pct(r['ci'][0])}, {_pct(r['ci'][1])}]", gain, str(r["n"]))
    console.print(t)
    p = Table(title="Paired comparisons on the same items (delta of Avg., paired bootstrap 95% CI, McNemar)")
    for h in ("B vs A", "delta (pp)", "95% CI", "fixed/broken", "McNemar p"):
        p.add_column(h, justify="left" if h == "B vs A" else "right")
    for r in summary["paired"]:
        mark = " *" if r["ci_excludes_zero"] else ""
        p.add_row(f"{r['b']} vs {r['a']}", f"{100 * r['delta']:+.1f}{mark}", f"[{100 * r['ci_lo']:+.1f}, {100 * r['ci_hi']:+.1f}]",
                  f"{r['fixed']}/{r['broken']}", f"{r['mcnemar_p']:.3g}")
    console.print(p)
    console.print(f"report: {summary['report']}")
    for name, r in summary["rows"].items():
        console.print(f"{slug_key(name)}_acc: {_pct(r['accuracy'])}", highlight=False)
    from fourdthinker.demo.pipeline import CURRICULUM_ROW

    heads = {("CoT SFT", CURRICULUM_ROW): "dift_curriculum_minus_cot_sft_pp",
             ("DIFT", CURRICULUM_ROW): "dift_curriculum_minus_dift_pp", ("base", "DIFT + 4DRL"): "dift_4drl_minus_base_pp"}
    by_pair = {(r["a"], r["b"]): r for r in summary["paired"]}
    for pair, key in heads.items():  # the paper's headline gain last
        if pair in by_pair:
            r = by_pair[pair]
            console.print(f"{key}: {100 * r['delta']:+.1f} [{100 * r['ci_lo']:+.1f}, {100 * r['ci_hi']:+.1f}]",
                          highlight=False)


def slug_key(name: str) -> str:
    """'DIFT + 4DRL' -> 'dift_4drl' (headline figure names)."""
    return slug(name, "_")


def _pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"
