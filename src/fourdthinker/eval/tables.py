"""The paper's table layouts, several models side by side, as rich / Markdown / CSV.

* Table 1 (DSR-Bench): ``Models | A.Dis .. A.DirP | R.Dis .. R.DirP | N-Temp | Avg.``
* Table 2 (Dyn-Bench): ``Methods | Inter-Obj | Obj-Scene | Cam-Obj | Avg.``
* Table 3 (training strategies): ``Training strategies | Accuracy`` (+ 95% CI), rows in the
  paper's order: base, Raw QA SFT, CoT SFT, DIFT, GRPO, CoT SFT + GRPO, DIFT + 4DRL.
* VLM4D (``real | synthetic``) and the synthetic benchmark (``camera | direction | distance | speed``)
  use the same shape.

Values are accuracies in percent with one decimal, as in the paper; "Avg." is the mean over
subtasks, with its 95% bootstrap CI in brackets, and the gain over a baseline row in parentheses.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fourdthinker.eval.loaders import DSR_SUBTASKS, DYN_AXES

TABLE1_COLUMNS: tuple[str, ...] = tuple(DSR_SUBTASKS.values())
TABLE2_COLUMNS: tuple[str, ...] = tuple(DYN_AXES.values())
VLM4D_COLUMNS: tuple[str, ...] = ("real", "synthetic")
SYNTHETIC_COLUMNS: tuple[str, ...] = ("camera", "direction", "distance", "speed")
TABLE3_ROWS: tuple[str, ...] = ("base", "Raw QA SFT", "CoT SFT", "DIFT", "GRPO", "CoT SFT + GRPO", "DIFT + 4DRL")

COLUMNS_BY_BENCH: dict[str, tuple[str, ...]] = {
    "dsr-bench": TABLE1_COLUMNS, "dyn-bench": TABLE2_COLUMNS, "vlm4d": VLM4D_COLUMNS, "synthetic": SYNTHETIC_COLUMNS,
}
TITLES = {
    "dsr-bench": "Table 1 layout: DSR-Bench accuracy (%) per subtask",
    "dyn-bench": "Table 2 layout: Dyn-Bench accuracy (%) per axis",
    "vlm4d": "VLM4D accuracy (%)",
    "synthetic": "Synthetic benchmark accuracy (%) per task",
}


def pct(x: float) -> str:
    """0.3418 -> '34.2'; NaN (no items) -> '-'."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


@dataclass
class TableData:
    """A rendered-agnostic table: header, string cells, and the raw numbers for CSV."""

    title: str
    header: list[str]
    rows: list[list[str]]
    numbers: list[dict] = field(default_factory=list)  # one dict per row, for CSV
    caption: str = ""

    def to_markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.caption:
            lines += ["", self.caption]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        buf = io.StringIO()
        if not self.numbers:
            return buf.getvalue()
        keys = list(self.numbers[0])
        for n in self.numbers[1:]:
            keys += [k for k in n if k not in keys]
        w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        w.writerows(self.numbers)
        return buf.getvalue()

    def to_rich(self):
        from rich.table import Table

        t = Table(title=self.title, caption=self.caption or None, show_lines=False)
        for i, h in enumerate(self.header):
            if i == 0:  # model names wrap; numbers never do
                t.add_column(h, justify="left", overflow="fold", min_width=8)
            else:
                width = max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h)
                t.add_column(h, justify="right", no_wrap=True, min_width=width)
        for r in self.rows:
            t.add_row(*r)
        return t


def bench_table(results: Mapping[str, object], bench: str | None = None, *, columns: Sequence[str] | None = None,
                baseline: str | None = None, ci: bool = True, title: str | None = None) -> TableData:
    """One row per model (``results``: name -> ``EvalResult``), one column per subtask, then Avg.

    Subtasks outside the layout's columns (another benchmark's) are appended at the end so nothing
    is silently dropped. ``baseline`` names the row that gains are measured against."""
    res = list(results.items())
    bench = bench or (res[0][1].bench if res else "unknown")
    cols = list(columns or COLUMNS_BY_BENCH.get(bench, ()))
    for _, r in res:
        cols += [s for s in sorted(r.by_subtask()) if s not in cols]
    first = "Models" if bench == "dsr-bench" else "Methods"
    header = [first, *cols, "Avg."] + (["95% CI"] if ci else []) + ["n"]
    base_avg = results[baseline].avg() if baseline and baseline in results else None
    rows, numbers = [], []
    for name, r in res:
        acc = r.subtask_accuracy()
        avg = r.avg()
        avg_s = pct(avg)
        if len(r.runs) > 1:
            avg_s += f" ± {100 * r.spread()['std']:.1f}"
        if base_avg is not None and name != baseline and not math.isnan(avg):
            avg_s += f" ({100 * (avg - base_avg):+.1f})"
        row = [name, *[pct(acc.get(c, float("nan"))) for c in cols], avg_s]
        num = {"model": name, **{c: acc.get(c, float("nan")) for c in cols}, "avg": avg}
        if ci:
            lo, hi = r.ci()
            row.append(f"[{pct(lo)}, {pct(hi)}]")
            num |= {"avg_ci_lo": lo, "avg_ci_hi": hi}
        n = len(r.correct())
        row.append(str(n))
        num |= {"n": n, "micro_accuracy": r.micro()}
        if len(r.runs) > 1:
            sp = r.spread()
            num |= {"seeds": sp["n"], "avg_seed_mean": sp["mean"], "avg_seed_std": sp["std"]}
        rows.append(row)
        numbers.append(num)
    caption = "Avg. = mean over subtasks; CI = 95% stratified bootstrap of Avg. over items; n = items scored."
    spreads = [(name, r.spread()) for name, r in res if len(r.runs) > 1]
    if spreads:
        caption += (" Sampled runs: cells are means over seeds, ± = std of Avg. across seeds ("
                    + "; ".join(f"{n}: {s['n']} seeds, min {pct(s['min'])}, max {pct(s['max'])}" for n, s in spreads) + ").")
    return TableData(title or TITLES.get(bench, f"{bench} accuracy (%)"), header, rows, numbers, caption)


def table3(results: Mapping[str, object], *, order: Sequence[str] = TABLE3_ROWS, baseline: str | None = "base",
           title: str = "Table 3 layout: training strategies (Avg. accuracy %)") -> TableData:
    """Table 3: one row per training strategy (``results``: strategy -> ``EvalResult``), in the
    paper's order (names not in ``order`` follow in the given order), with the 95% CI of Avg. and
    the gain over ``baseline``."""
    names = [n for n in order if n in results] + [n for n in results if n not in order]
    base = results[baseline].avg() if baseline in results else None
    rows, numbers = [], []
    for n in names:
        r = results[n]
        avg = r.avg()
        lo, hi = r.ci()
        gain = "" if base is None or n == baseline or math.isnan(avg) else f"{100 * (avg - base):+.1f}"
        rows.append([n, pct(avg), f"[{pct(lo)}, {pct(hi)}]", gain, str(len(r.correct()))])
        numbers.append({"strategy": n, "accuracy": avg, "ci_lo": lo, "ci_hi": hi, "n": len(r.correct())})
    return TableData(title, ["Training strategies", "Accuracy", "95% CI", f"vs {baseline}", "n"], rows, numbers,
                     "Accuracy = Avg. (mean over subtasks); CI = 95% stratified bootstrap.")


def print_table(table: TableData) -> None:
    from rich.console import Console

    Console().print(table.to_rich())
