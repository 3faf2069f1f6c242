"""`fourdthinker eval` end to end: a tiny real model (latent decoder) and the chance baseline on
the synthetic benchmark; resume; clear errors for bad input."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from fourdthinker.cli import app

runner = CliRunner()


def test_eval_tiny_model_on_synthetic_bench_then_resume(world_root, tmp_path):
    torch.set_num_threads(2)
    out = tmp_path / "reports"
    args = ["eval", "--model", "random", "--model", "tiny=latent:qwen2.5-vl-tiny", "--bench", "synthetic",
            "--data", str(world_root), "--out", str(out), "--max-new-tokens", "8", "--max-frames", "2",
            "--limit", "3", "--batch-size", "3"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    bench_dir = out / "synthetic"
    assert "Synthetic benchmark accuracy" in r.output and "tiny vs random" in r.output
    for f in ("table.md", "table.csv", "report.html", "comparisons.json", "plots/subtask_accuracy.png",
              "plots/confusion_tiny.png", "tiny/predictions.jsonl", "tiny/summary.json", "random/run.json"):
        assert (bench_dir / f).is_file(), f
    preds = [json.loads(x) for x in (bench_dir / "tiny" / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 3 and {p["subtask"] for p in preds} == {"camera", "direction"}
    assert all(isinstance(p["raw_output"], str) and p["latency_s"] > 0 for p in preds)
    summary = json.loads((bench_dir / "tiny" / "summary.json").read_text())
    assert summary["eval_count"] == 3 and summary["model"] == "tiny" and summary["failed"] == 0
    md = (bench_dir / "table.md").read_text()
    assert "| Methods | camera | direction | distance | speed | Avg. | 95% CI | n |" in md
    html = (bench_dir / "report.html").read_text()
    assert "data:image/png;base64," in html and "Confusion over options" in html and "Examples" in html
    # rerun: everything is done, nothing is appended (and the model is not even loaded)
    before = (bench_dir / "tiny" / "predictions.jsonl").read_text()
    r2 = runner.invoke(app, args + ["--no-html"])
    assert r2.exit_code == 0, r2.output
    assert (bench_dir / "tiny" / "predictions.jsonl").read_text() == before


def test_eval_cli_clear_errors(tmp_path, make):
    r = runner.invoke(app, ["eval", "--model", "random", "--bench", "dyn-bench", "--data", str(tmp_path / "nope"),
                            "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no such file or folder" in r.output
    root = make.dyn(tmp_path / "dyn")
    (root / "multi_json" / "davis" / "car-turn_qa.json").write_text(json.dumps([{"question": "q", "answer": "A"}]))
    r = runner.invoke(app, ["eval", "--model", "random", "--bench", "dyn-bench", "--data", str(root),
                            "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "missing field 'options'" in r.output
    (root / "multi_json" / "davis" / "car-turn_qa.json").unlink()
    r = runner.invoke(app, ["eval", "--model", "plain:/no/such/model", "--bench", "dyn-bench", "--data", str(root),
                            "--out", str(tmp_path / "o2")])
    assert r.exit_code == 2 and "/no/such/model: no such model folder" in r.output  # decided before any work
    r = runner.invoke(app, ["eval", "--help"])
    assert r.exit_code == 0 and "--samples" in r.output and "api:MODEL" in r.output


def test_eval_builds_uniform_options_and_windowed_frames_from_a_world(world_root, tmp_path):
    """--mcq-style uniform builds a world's questions with uniform distractors (the options the HTML
    examples show are those of build_synthetic_items(mcq_style="uniform")); --frame-span window runs
    (the examples' frame strips come from each item's window_s); bad values are refused before any work."""
    import html

    from fourdthinker.eval.synthetic import build_synthetic_items

    out = tmp_path / "o"
    r = runner.invoke(app, ["eval", "--model", "random", "--bench", "synthetic", "--data", str(world_root),
                            "--out", str(out), "--mcq-style", "uniform", "--frame-span", "window"])
    assert r.exit_code == 0, r.output
    page = (out / "synthetic" / "report.html").read_text()
    uniform, _ = build_synthetic_items(world_root, seed=0, mcq_style="uniform")
    paper, _ = build_synthetic_items(world_root, seed=0, mcq_style="paper")
    shown = [it for it in uniform if f"<b>{html.escape(it.id)}</b>" in page]
    assert shown, "the report shows examples"
    for it in shown:
        assert all(f"{k}. {html.escape(v)}" in page for k, v in it.options.items())
    assert any(u.options != p.options for u, p in zip(uniform, paper, strict=True))
    for bad, msg in ((["--mcq-style", "odd"], "--mcq-style must be one of paper|uniform, got 'odd'"),
                     (["--frame-span", "clip"], "--frame-span must be one of video|window, got 'clip'")):
        r = runner.invoke(app, ["eval", "--model", "random", "--bench", "synthetic", "--data", str(world_root),
                                "--out", str(tmp_path / "bad"), *bad])
        assert r.exit_code == 2 and msg in r.output, r.output
