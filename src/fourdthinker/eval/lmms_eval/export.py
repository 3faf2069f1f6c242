"""Write a ready-to-run lmms-eval task folder for a fourdthinker benchmark.

    python -m fourdthinker.eval.lmms_eval.export --bench synthetic --data data/world_test --out lmms_tasks
    lmms_eval --include_path lmms_tasks/fourdthinker_synthetic --tasks fourdthinker_synthetic \\
              --model fourdthinker --model_args pretrained=runs/rl

The folder holds the task YAML (its data path filled in), ``utils.py`` and ``docs.jsonl`` (one doc
per item, absolute video paths, so the harness needs no knowledge of the benchmark's layout).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import typer

HERE = Path(__file__).parent
TEMPLATE = HERE / "fourdthinker_synthetic.yaml"


def export_task(result, out_dir: str | os.PathLike, *, task: str = "fourdthinker_synthetic") -> Path:
    """``result``: a ``LoadResult`` (any benchmark). Returns the task folder."""
    from fourdthinker.io import atomic_write_text, resolve_inside, write_jsonl

    folder = Path(out_dir) / task
    folder.mkdir(parents=True, exist_ok=True)
    docs = []
    for it in result.items:
        video = Path(it.video) if os.path.isabs(it.video) else resolve_inside(result.root, it.video)
        docs.append({"id": it.id, "video_path": str(video), "question": it.question, "options": it.options,
                     "answer": it.answer, "subtask": it.subtask, "bench": it.bench})
    docs_path = folder / "docs.jsonl"
    write_jsonl(docs_path, docs)
    yaml_text = TEMPLATE.read_text().replace("__DOCS_JSONL__", json.dumps(str(docs_path.resolve())))
    yaml_text = yaml_text.replace("task: fourdthinker_synthetic", f"task: {task}")
    atomic_write_text(folder / f"{task}.yaml", yaml_text)
    shutil.copyfile(HERE / "utils.py", folder / "utils.py")
    return folder


def main(
    data: str = typer.Option(..., "--data", help="Benchmark path (as for `fourdthinker eval --data`)."),
    out: str = typer.Option(..., "--out", help="Folder to write the task folder into."),
    bench: str = typer.Option("synthetic", "--bench", help="dsr-bench | dyn-bench | vlm4d | synthetic | jsonl"),
) -> None:
    """Write an lmms-eval task folder (YAML + utils.py + docs.jsonl) for a benchmark."""
    from fourdthinker.eval.loaders import load_benchmark

    lr = load_benchmark(bench, data)
    folder = export_task(lr, out, task=f"fourdthinker_{bench.replace('-', '_')}")
    typer.echo(f"wrote {folder} ({len(lr.items)} docs); run: lmms_eval --include_path {folder} --tasks {folder.name}")


if __name__ == "__main__":  # pragma: no cover
    typer.run(main)
