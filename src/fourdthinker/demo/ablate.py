"""`fourdthinker ablate`: the layouts of the paper's Tables 4 and 5 on the embedded defaults.

Same world, data, benchmark and sizes as the demo (``demo.pipeline.Demo``); one model per variant:

* ``loss``        Table 4: Full (DIFT + 4DRL) | w/o L_sim | w/o L_ce (DIFT without that loss term,
                  then the same 4DRL) | w/o r_fmt | w/o r_acc (4DRL without that reward).
* ``reward``      Table 4, reward rows only: Full | w/o r_fmt | w/o r_acc.
* ``latent-size`` Table 5: DIFT with K = 1, 2, 4, 8, 16 latent vectors per imagery image.

Every variant is a resumable stage (``.stages/`` markers), like the demo. The world and the data
live one level up (``ablate_out/{world,data}``), shared by the three ablations. Outputs in
``ablate_out/<what>/report``:
``table4.md`` / ``table5.md``, ``ablation.json``, ``ablation.png``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fourdthinker.demo.config import DemoConfig
from fourdthinker.demo.pipeline import Demo, slug
from fourdthinker.demo.stages import Stage, console_progress, pin_config, run_stages

ABLATIONS = ("loss", "reward", "latent-size")
LATENT_SIZES = (1, 2, 4, 8, 16)


def _variants(what: str, sizes: tuple[int, ...]) -> list[tuple[str, list[tuple[str, Callable[[Demo], dict]]], str]]:
    """[(row name, [(stage name, fn(demo) -> summary), ...], stage holding the row's model)]."""
    dift = ("dift", lambda d: d.stage_sft("dift", "dift"))
    full = ("Full", [dift, ("rl-4drl", lambda d: d.stage_rl("4drl", "rl-4drl", "dift"))], "rl-4drl")
    no_fmt = ("w/o r_fmt", [dift, ("rl-4drl-no-fmt", lambda d: d.stage_rl("4drl", "rl-4drl-no-fmt", "dift", fmt_weight=0.0))],
              "rl-4drl-no-fmt")
    no_acc = ("w/o r_acc", [dift, ("rl-4drl-no-acc", lambda d: d.stage_rl("4drl", "rl-4drl-no-acc", "dift", acc_weight=0.0))],
              "rl-4drl-no-acc")
    if what == "reward":
        return [full, no_fmt, no_acc]
    if what == "loss":
        no_sim = ("w/o L_sim", [("dift-no-sim", lambda d: d.stage_sft("dift", "dift-no-sim", use_sim=False)),
                                ("rl-4drl-no-sim", lambda d: d.stage_rl("4drl", "rl-4drl-no-sim", "dift-no-sim"))],
                  "rl-4drl-no-sim")
        no_ce = ("w/o L_ce", [("dift-no-ce", lambda d: d.stage_sft("dift", "dift-no-ce", use_ce=False)),
                              ("rl-4drl-no-ce", lambda d: d.stage_rl("4drl", "rl-4drl-no-ce", "dift-no-ce"))],
                 "rl-4drl-no-ce")
        return [full, no_sim, no_ce, no_fmt, no_acc]
    if what == "latent-size":
        rows = []
        for k in sizes:
            name = "dift" if k == 4 else f"dift-k{k}"
            rows.append((str(k), [(name, _sft_k(name, k))], name))
        return rows
    raise ValueError(f"unknown ablation {what!r}; choose one of {ABLATIONS}")


def _sft_k(name: str, k: int) -> Callable[[Demo], dict]:
    return lambda d: d.stage_sft("dift", name, latent_size=k)


def ablation_stages(what: str, demo: Demo, sizes: tuple[int, ...] = LATENT_SIZES) -> tuple[list[Stage], list[str]]:
    """The shared demo stages (world, data, bench), each variant's training stages (deduplicated),
    one evaluation per row, and the table stage. Returns (stages, row names)."""
    base = [s for s in demo.stages() if s.name in ("world", "data", "bench")]
    seen = {s.name for s in base}
    train, evals, rows = [], [], []
    for row, steps, model_stage in _variants(what, sizes):
        rows.append(row)
        for name, fn in steps:
            if name not in seen:
                seen.add(name)
                train.append(Stage(name, f"Train {name}", _bind(fn, demo)))
        evals.append(Stage(f"eval-{slug(what)}-{slug(row)}", f"Evaluate: {row}",
                           _bind(demo.stage_eval, row, model_stage, slug(f"{what}-{row}"))))
    report = Stage("ablation-report", f"Ablation table ({what})", lambda: write_ablation_report(what, demo, rows))
    return base + train + evals + [report], rows


def _bind(fn: Callable, *args: Any) -> Callable[[], dict]:
    return lambda: fn(*args)


def write_ablation_report(what: str, demo: Demo, rows: list[str]) -> dict:
    """Table 4 (rows: component, accuracy, CI, vs Full) or Table 5 (one row: accuracy per size)."""
    from fourdthinker.eval.evaluate import load_result
    from fourdthinker.eval.tables import table3
    from fourdthinker.io import atomic_write_json, atomic_write_text

    items = demo.bench_items()
    results = {r: load_result(demo.evals / slug(f"{what}-{r}"), items, name=r) for r in rows}
    out = Path(demo.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    nums = {r: {"accuracy": res.avg(), "ci": list(res.ci()), "n": len(res.correct())} for r, res in results.items()}
    if what == "latent-size":
        header = "| Size | " + " | ".join(rows) + " |"
        line = "| Accuracy | " + " | ".join(f"{100 * nums[r]['accuracy']:.1f}" for r in rows) + " |"
        ci = "| 95% CI | " + " | ".join(f"[{100 * nums[r]['ci'][0]:.1f}, {100 * nums[r]['ci'][1]:.1f}]" for r in rows) + " |"
        md = ("**Table 5 layout: DIFT accuracy (%) by latent size K**\n\n" + header + "\n|---|" + "---|" * len(rows)
              + "\n" + line + "\n" + ci + "\n")
        name = "table5.md"
    else:
        t = table3(results, order=rows, baseline="Full", title="Table 4 layout: loss & reward components (Avg. accuracy %)")
        t.header[0] = "Loss & reward components"
        md = t.to_markdown() + "\n"
        name = "table4.md"
    atomic_write_text(out / name, md)
    _plot(nums, rows, out / f"ablation_{slug(what)}.png", what)
    summary = {"what": what, "rows": nums, "table": str(out / name), "figure": str(out / f"ablation_{slug(what)}.png")}
    atomic_write_json(out / f"ablation_{slug(what)}.json", summary)
    return summary


def _plot(nums: dict, rows: list[str], path: Path, what: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from fourdthinker.plots import save_figure

    acc = np.array([100 * nums[r]["accuracy"] for r in rows])
    lo = np.array([100 * nums[r]["ci"][0] for r in rows])
    hi = np.array([100 * nums[r]["ci"][1] for r in rows])
    fig, ax = plt.subplots(figsize=(6, 3.4))
    x = np.arange(len(rows))
    ax.bar(x, acc, yerr=[np.clip(acc - lo, 0, None), np.clip(hi - acc, 0, None)], capsize=4,
           color="#d62728" if what != "latent-size" else "#1f77b4", alpha=0.8)
    ax.axhline(25, ls="--", color="k", lw=1, label="chance (4 options)")
    ax.set_ylim(0, max(40.0, float(np.nanmax(hi)) + 10) if len(hi) else 100)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_xticks(x, rows if what != "latent-size" else [f"K={r}" for r in rows])
    ax.set_ylabel("Avg. accuracy (%), 95% CI")
    ax.set_title({"latent-size": "Table 5 layout: latent size", "loss": "Table 4 layout: loss & reward components",
                  "reward": "Table 4 layout: reward components"}[what], fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def run_ablation(what: str, cfg: DemoConfig, out: str | Path, *, console=None, quick: bool = False,
                 progress: bool = True, sizes: tuple[int, ...] | None = None) -> dict[str, dict]:
    """Run (or resume) one ablation into ``out``; prints the table; returns ``{stage: summary}``."""
    from rich.console import Console
    from rich.markdown import Markdown

    if what not in ABLATIONS:
        raise ValueError(f"unknown ablation {what!r}; choose one of {ABLATIONS}")
    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = sizes or ((1, 4) if quick else LATENT_SIZES)
    pin_config(out, {"kind": f"ablate-{what}", "sizes": list(sizes), **cfg.to_dict()}, defaults=type(cfg)().to_dict())
    demo = Demo(cfg, out, progress=progress, shared=out.parent)  # world + data shared by the ablations
    stages, _ = ablation_stages(what, demo, sizes)
    on_start, on_done = console_progress(console, stages)
    res = run_stages(out, stages, on_start=on_start, on_done=on_done)
    rep = res["ablation-report"]
    console.print(Markdown(Path(rep["table"]).read_text(encoding="utf-8")))
    console.print(f"figure: {rep['figure']}")
    for r, v in rep["rows"].items():
        key = "".join(c if c.isalnum() else "_" for c in r.lower()).strip("_")
        console.print(f"{slug(what).replace('-', '_')}_{key}_acc: {100 * v['accuracy']:.1f}", highlight=False)
    return res
