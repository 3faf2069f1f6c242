"""Render one record as a PNG: sampled frames, overlay imagery, question, options and reasoning."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from fourdthinker.io import read_jsonl, resolve_inside


def find_record(data: str | Path, record_id: str) -> tuple[dict, Path]:
    """The record ``record_id`` from ``data/dift.jsonl`` (or ``data`` itself if it is a JSONL file)."""
    from pydantic import ValidationError

    from fourdthinker.data.records import DiftRecord
    from fourdthinker.errors import UserValueError, validation_reason
    from fourdthinker.io import check_unique_ids

    p = Path(data)
    f = p if p.is_file() else p / "dift.jsonl"
    rows = read_jsonl(f)
    check_unique_ids(rows, f)
    for line, r in enumerate(rows, 1):
        if isinstance(r, dict) and r.get("id") == record_id:
            try:  # a record with a missing/invalid field: one line naming it, not a KeyError later
                DiftRecord.model_validate(r)
            except ValidationError as e:
                raise UserValueError(f"{f}:{line}: record {record_id!r} is invalid ({validation_reason(e)})",
                                     "fix the record or rebuild the data with `fourdthinker data build`") from None
            for rel in [*(r.get("frames") or []), *(r.get("imagery") or [])]:
                resolve_inside(f.parent, rel)  # record paths stay inside the dataset root
            return r, f.parent
    raise KeyError(f"{f}: no record with id {record_id!r}")


def _load(root: Path, rel: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(resolve_inside(root, rel)).convert("RGB"))


def render_record(rec: dict, root: Path, out: str | Path, max_frames: int = 8) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fourdthinker.plots import save_figure

    frames = rec.get("frames") or []
    if len(frames) > max_frames:
        idx = np.round(np.linspace(0, len(frames) - 1, max_frames)).astype(int)
        frames = [frames[i] for i in idx]
    imgs = rec.get("imagery") or []
    ncol = max(len(frames), len(imgs), 1)
    times = rec.get("meta", {}).get("times_s") or [None] * len(imgs)
    opts = "\n".join(f"{'*' if k == rec['answer'] else ' '} {k}. {v}" for k, v in rec["options"].items())
    wrapped = textwrap.wrap(rec.get("reasoning", ""), width=int(24 * ncol) or 100)
    text_h = 0.16 * (len(wrapped) + 9)  # inches: header, question, 4 options, blank lines, reasoning
    fig = plt.figure(figsize=(2.1 * ncol, 3.4 + text_h))
    gs = fig.add_gridspec(3, ncol, height_ratios=[1.7, 1.7, text_h])
    for j, fr in enumerate(frames):
        ax = fig.add_subplot(gs[0, j])
        ax.imshow(_load(root, fr))
        stem = Path(fr).stem
        fps = rec.get("frames_fps") or 1.0
        ax.set_title(f"frame @ {int(stem) / fps:.0f}s" if stem.isdigit() else stem, fontsize=7)
        ax.axis("off")
    for j, im in enumerate(imgs):
        ax = fig.add_subplot(gs[1, j])
        ax.imshow(_load(root, im))
        t = times[j] if j < len(times) else None
        ax.set_title(f"<imagery> {j + 1}" + (f" @ {t:.0f}s" if t is not None else ""), fontsize=8, color="darkred")
        ax.axis("off")
    ax = fig.add_subplot(gs[2, :])
    ax.axis("off")
    body = f"[{rec['task']}] {rec['id']}\n\nQ: {rec['question']}\n{opts}\n\n" + "\n".join(wrapped)
    ax.text(0, 1, body, va="top", ha="left", family="monospace", fontsize=8, wrap=True)
    fig.tight_layout()
    return save_figure(fig, out, dpi=90)
