"""A self-contained HTML report of one benchmark, several models side by side.

Contents: the paper-layout table (with CIs), a per-subtask bar chart (matplotlib), one confusion
matrix over options per model (gold letter x parsed letter, plus "none" for unparsed answers),
paired comparisons against the first model (flips, McNemar p), what was skipped or quarantined and
why, and example items with each model's reasoning and the frames strip the models saw (plus any
imagery images a prediction lists). PNGs are written beside the HTML and embedded in it (base64),
so the single file can be mailed around.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from fourdthinker.eval.metrics import confusion_matrix, paired_compare
from fourdthinker.eval.tables import TableData, bench_table
from fourdthinker.io import atomic_write_text
from fourdthinker.names import slug

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:24px}h2{font-size:19px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}
.caption{color:#666;font-size:12px}.item{border:1px solid #ddd;border-radius:6px;padding:10px 14px;margin:12px 0}
.ok{color:#1a7f37;font-weight:600}.bad{color:#c62828;font-weight:600}.gold{font-weight:700}
pre{white-space:pre-wrap;background:#f7f7f7;padding:8px;border-radius:4px;font-size:12px;max-height:220px;overflow:auto}
img{max-width:100%}.grid{display:flex;flex-wrap:wrap;gap:12px}.grid img{max-width:380px}
"""


def _b64_png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _table_html(t: TableData) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in t.rows)
    cap = f'<div class="caption">{html.escape(t.caption)}</div>' if t.caption else ""
    return f"<p><b>{html.escape(t.title)}</b></p><table><tr>{head}</tr>{rows}</table>{cap}"


def plot_subtask_bars(results: Mapping[str, object], columns: list[str], path: Path) -> Path:
    """Grouped bars: accuracy (%) per subtask and Avg., one colour per model; Avg. has its 95% CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fourdthinker.plots import save_figure

    names = list(results)
    cols = [*columns, "Avg."]
    x = np.arange(len(cols))
    w = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(cols) * max(1, len(names)) ** 0.5 + 2), 3.8), dpi=110)
    for k, n in enumerate(names):
        r = results[n]
        acc = r.subtask_accuracy()
        vals = [100 * acc.get(c, np.nan) for c in columns] + [100 * r.avg()]
        lo, hi = r.ci()
        err = np.full((2, len(cols)), np.nan)
        err[:, -1] = [100 * (r.avg() - lo), 100 * (hi - r.avg())]
        bars = ax.bar(x + (k - (len(names) - 1) / 2) * w, vals, w, label=n, yerr=err, capsize=3)
        ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.0f}" for v in vals], fontsize=6, padding=1)
    ax.axhline(25, color="#888", lw=0.8, ls="--", label="chance (4 options)")
    ax.set_xticks(x, cols, rotation=30 if len(cols) > 6 else 0, ha="right" if len(cols) > 6 else "center")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, ncol=min(4, len(names) + 1), loc="upper left", frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_confusion(result, path: Path) -> Path:
    """Gold option letter (rows) x parsed answer (columns, "none" = unparsed), counts annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fourdthinker.plots import save_figure

    preds = result.predictions
    ids = [i for i in preds if i in result.items]
    m = confusion_matrix([result.items[i].answer for i in ids], [preds[i].parsed_answer for i in ids])
    fig, ax = plt.subplots(figsize=(3.9, 3.3), dpi=110)
    ax.imshow(m, cmap="Blues")
    cols = ["A", "B", "C", "D", "none"]
    ax.set_xticks(range(5), cols)
    ax.set_yticks(range(4), cols[:4])
    ax.set_xlabel("model's answer")
    ax.set_ylabel("gold answer")
    top = m.max() if m.size else 0
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=9, color="white" if top and v > top / 2 else "black")
    ax.set_title(result.name, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def frames_strip(frames: list[np.ndarray], height: int = 96) -> bytes:
    """Frames side by side at a common height, as PNG bytes."""
    from PIL import Image

    ims = []
    for f in frames:
        im = Image.fromarray(np.asarray(f)).convert("RGB")
        ims.append(im.resize((max(1, round(im.width * height / im.height)), height)))
    strip = Image.new("RGB", (sum(i.width for i in ims) + 4 * (len(ims) - 1), height), "white")
    x = 0
    for im in ims:
        strip.paste(im, (x, 0))
        x += im.width + 4
    buf = io.BytesIO()
    strip.save(buf, format="PNG")
    return buf.getvalue()


def _pick_examples(first, n: int) -> list[str]:
    """Up to n item ids: alternate wrong / right answers of the first model, spread over subtasks."""
    preds = first.predictions
    by_sub: dict[str, list[str]] = {}
    for i in sorted(preds):
        if i in first.items:
            by_sub.setdefault(first.items[i].subtask, []).append(i)
    picked: list[str] = []
    want_wrong = True
    while len(picked) < n and any(by_sub.values()):
        for s in list(by_sub):
            pool = by_sub[s]
            if not pool:
                continue
            match = [i for i in pool if preds[i].correct != want_wrong] or pool
            picked.append(match[0])
            pool.remove(match[0])
            want_wrong = not want_wrong
            if len(picked) >= n:
                break
    return picked


def _example_html(iid: str, results: Mapping[str, object], root: Path | None, max_frames: int,
                  span: str = "video") -> str:
    first = next(iter(results.values()))
    it = first.items[iid]
    opts = "".join(
        f'<li class="{"gold" if k == it.answer else ""}">{k}. {html.escape(v)}{" ✓" if k == it.answer else ""}</li>'
        for k, v in it.options.items())
    parts = [f'<div class="item"><div><b>{html.escape(iid)}</b> · {html.escape(it.subtask)}</div>',
             f"<p>{html.escape(it.question)}</p><ul>{opts}</ul>"]
    if root is not None:
        try:
            from fourdthinker.models.inputs import FrameSettings, record_frames

            png = frames_strip(record_frames(it, root, FrameSettings(max_frames=max_frames, span=span),
                                               allow_absolute=True))
            parts.append(f'<div class="caption">frames the model sees</div><img src="data:image/png;base64,'
                         f'{base64.b64encode(png).decode()}">')
        except Exception as e:  # noqa: BLE001 - a report never dies on one unreadable video
            parts.append(f'<div class="caption">(frames unavailable: {html.escape(str(e))})</div>')
    for name, r in results.items():
        p = r.predictions.get(iid)
        if p is None:
            parts.append(f"<p><b>{html.escape(name)}</b>: no prediction</p>")
            continue
        cls, mark = ("ok", "correct") if p.correct else ("bad", "wrong")
        parts.append(f'<p><b>{html.escape(name)}</b>: answered <b>{p.parsed_answer or "none"}</b> '
                     f'<span class="{cls}">{mark}</span> · {p.n_latent_steps} latent steps · {p.latency_s:.2f} s</p>')
        parts.append(f"<pre>{html.escape(p.raw_output[:2000])}</pre>")
        imagery = getattr(p, "imagery", None) or []
        imgs = [Path(q) for q in imagery if Path(q).is_file()]
        if imgs:
            from PIL import Image

            png = frames_strip([np.asarray(Image.open(q).convert("RGB")) for q in imgs])
            parts.append(f'<div class="caption">imagery</div><img src="data:image/png;base64,{base64.b64encode(png).decode()}">')
    parts.append("</div>")
    return "".join(parts)


def write_report(results: Mapping[str, object], out_dir: str | os.PathLike, *, bench: str | None = None,
                 root: str | os.PathLike | None = None, title: str | None = None, n_examples: int = 6,
                 max_frames: int = 6, table: TableData | None = None, span: str = "video") -> Path:
    """Write ``out_dir/report.html`` (+ ``out_dir/plots/*.png``) for ``results`` (name -> EvalResult).
    ``span``: the frame span the examples' frame strips are drawn from (``models.inputs.FrameSettings``)."""
    out_dir = Path(out_dir)
    plots = out_dir / "plots"
    if not results:
        raise ValueError("write_report: no results to report")
    first = next(iter(results.values()))
    bench = bench or first.bench
    per_subtask = bench_table(results, bench)  # the bars always show subtasks, whatever ``table`` shows
    table = table or per_subtask
    columns = [h for h in per_subtask.header[1:] if h not in ("Avg.", "95% CI", "n")]
    body = [f"<h1>{html.escape(title or f'fourdthinker eval · {bench}')}</h1>", _table_html(table)]
    bars = plot_subtask_bars(results, columns, plots / "subtask_accuracy.png")
    body.append(f'<h2>Accuracy per subtask</h2><img src="{_b64_png(bars)}" alt="per-subtask accuracy">')
    body.append('<h2>Confusion over options</h2><div class="grid">')
    for name, r in results.items():
        p = plot_confusion(r, plots / f"confusion_{slug(name, '_', lower=False, keep='._-', default='model')}.png")
        body.append(f'<img src="{_b64_png(p)}" alt="confusion matrix {html.escape(name)}">')
    body.append("</div>")
    names = list(results)
    if len(names) > 1:
        body.append("<h2>Paired comparisons (McNemar exact test)</h2><ul>")
        for n in names[1:]:
            pc = paired_compare(results[names[0]].correct(), results[n].correct(), names[0], n)
            body.append(f"<li>{html.escape(pc.summary())}</li>")
        body.append("</ul>")
    body.append("<h2>Skipped and failed items</h2><ul>")
    for name, r in results.items():
        s = r.summary()
        skip = f" {s['skip_reasons']}" if s["skipped"] else ""
        fail = f" {s['failure_reasons']}" if s["failed"] else ""
        body.append(f"<li>{html.escape(name)}: {s['eval_count']} scored, {s['skipped']} skipped by the loader"
                    f"{html.escape(skip)}, {s['failed']} quarantined{html.escape(fail)}</li>")
        for w in r.warnings:
            body.append(f"<li class='bad'>{html.escape(w)}</li>")
    body.append("</ul><h2>Examples</h2>")
    for iid in _pick_examples(first, n_examples):
        body.append(_example_html(iid, results, Path(root) if root else None, max_frames, span))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(bench)} report</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>")
    path = out_dir / "report.html"
    atomic_write_text(path, page)
    return path
