"""`fourdthinker probe` (docs/inference.md#probe): table arithmetic by hand, verdict rules, and one end-to-end
run on a tiny preset over a 4-item JSONL benchmark."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from fourdthinker.data.records import BenchItem, Prediction
from fourdthinker.eval.commands_probe import probe
from fourdthinker.eval.evaluate import EvalResult
from fourdthinker.eval.probe import ProbeRow, answer_change_rate, probe_table, verdict

OPTS = {"A": "Pan Left", "B": "Pan Right", "C": "Tilt Up", "D": "Tilt Down"}


def _items(n):
    return {f"i{k}": BenchItem(id=f"i{k}", video="v", question="q?", options=OPTS, answer="A", subtask="camera", bench="t")
            for k in range(n)}


def _result(name, answers, steps=4):
    items = _items(len(answers))
    preds = {f"i{k}": Prediction(id=f"i{k}", raw_output="", parsed_answer=a, correct=a == "A", n_latent_steps=steps)
             for k, a in enumerate(answers)}
    return EvalResult(name, "t", items, [preds])


def test_answer_change_rate_hand_computed():
    assert answer_change_rate({"x": "A", "y": "B"}, {"x": "A", "y": None}) == 0.5
    assert answer_change_rate({"x": "A"}, {"y": "A"}) != answer_change_rate({"x": "A"}, {"y": "A"})  # nan: no common ids


def test_probe_table_hand_computed():
    # normal: 8 right of 10. zero: items 0-5 right, 6-7 now wrong (broken 2), 8 now right (fixed 1)
    normal = _result("n", ["A"] * 8 + ["B", "C"])
    zero = _result("z", ["A"] * 6 + ["B", "B", "A", "C"], steps=4)
    rows = {r.intervention: r for r in probe_table({"normal": normal, "zero": zero})}
    assert rows["normal"].accuracy == 0.8 and rows["normal"].n == 10
    z = rows["zero"]
    assert z.accuracy == 0.7 and (z.fixed, z.broken) == (1, 2)
    assert z.p_value == 1.0  # exact McNemar, b=2 c=1: 2 * (1 + 3) / 8 = 1.0
    assert z.answer_change_rate == 0.3  # items 6, 7, 8 changed
    assert z.ci95[0] <= 0.7 <= z.ci95[1]
    with pytest.raises(ValueError, match="normal"):
        probe_table({"zero": zero})


def test_verdict_rules():
    def row(kind, steps=4.0, p=1.0, fixed=0, broken=0):
        return ProbeRow(kind, 50, 0.5, (0.4, 0.6), fixed=fixed, broken=broken, p_value=p, mean_latent_steps=steps)

    relies, why = verdict([row("normal"), row("zero", p=0.001, broken=12, fixed=1), row("shuffle")])
    assert relies and "zero" in why
    relies, why = verdict([row("normal"), row("zero", p=0.3, broken=3, fixed=1), row("shuffle", p=0.8)])
    assert not relies and "does not drop" in why
    relies, why = verdict([row("normal"), row("zero", p=0.3), row("drop", p=0.001, broken=10)])
    assert not relies and "drop" in why and "not what is fed" in why
    relies, why = verdict([row("normal", steps=0.0), row("zero", p=0.001, broken=12)])
    assert not relies and "never opened" in why
    relies, why = verdict([row("normal"), row("zero", p=0.001, broken=1, fixed=12)])  # significant, but it helps
    assert not relies


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from PIL import Image

    d = tmp_path_factory.mktemp("probe")
    rng = np.random.default_rng(0)
    rows = []
    for k in range(4):
        (d / f"v{k}").mkdir()
        for f in range(2):
            Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)).save(d / f"v{k}" / f"{f}.png")
        rows.append({"id": f"q{k}", "video": f"v{k}", "question": "What is the camera movement?", "options": OPTS,
                     "answer": "ABCD"[k], "subtask": "camera"})
    (d / "bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_probe_end_to_end_on_tiny_preset(bench, tmp_path):
    app = typer.Typer(add_completion=False)
    app.command()(probe)
    out = tmp_path / "probe"
    args = ["--model", "qwen2.5-vl-tiny", "--bench", "jsonl", "--data", str(bench / "bench.jsonl"), "--out", str(out),
            "--max-new-tokens", "3", "--batch-size", "2", "--max-frames", "2"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    table = json.loads((out / "probe.json").read_text())
    kinds = [r["intervention"] for r in table["rows"]]
    assert kinds == ["normal", "zero", "noise", "shuffle", "pad", "drop"]
    assert all(r["n"] == 4 for r in table["rows"])
    normal = table["rows"][0]
    if normal["mean_latent_steps"] == 0:  # an untrained model does not open imagery blocks by itself
        assert not table["relies_on_imagery"] and "never opened" in table["verdict"]
    assert "| shuffle |" in (out / "probe.md").read_text()
    assert "verdict" in res.output and "latent probe" in res.output
    # the video probe (default: every frame intervention) with its own verdict
    assert sorted({r["frames"] for r in table["frame_rows"]}) == ["blank", "first", "normal", "reversed", "shuffled"]
    assert isinstance(table["uses_motion"], bool) and "video probe" in res.output
    assert "## Video probe" in (out / "probe.md").read_text()
    # resumable: a rerun answers nothing new and gives the same table
    res2 = CliRunner().invoke(app, args)
    assert res2.exit_code == 0 and json.loads((out / "probe.json").read_text())["rows"] == table["rows"]


def test_probe_bad_input(bench, tmp_path):
    app = typer.Typer(add_completion=False)
    app.command()(probe)
    res = CliRunner().invoke(app, ["--model", "qwen2.5-vl-tiny", "--bench", "jsonl", "--data", str(tmp_path / "nope.jsonl"),
                                   "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "error" in res.output
    res = CliRunner().invoke(app, ["--model", "qwen2.5-vl-tiny", "--bench", "jsonl", "--data", str(bench / "bench.jsonl"),
                                   "--out", str(tmp_path / "o"), "--latents", "bogus"])
    assert res.exit_code == 2 and "unknown latent intervention" in res.output


@pytest.mark.slow
def test_probe_on_dift_trained_tiny_model(tmp_path):
    """The acceptance check: a tiny model trained with DIFT on world-like data, probed end to end.
    Forced imagery blocks are not used: whatever the trained model does is what the table reports."""
    import torch

    from fourdthinker.eval.loaders import load_jsonl_bench
    from fourdthinker.eval.probe import probe_model
    from fourdthinker.latent.toy import make_toy_dift
    from fourdthinker.train.dift import DiftConfig, train_dift

    torch.set_num_threads(2)
    data = make_toy_dift(tmp_path / "toy", n=16, seed=3).parent
    run = train_dift(DiftConfig(data=str(data), model="qwen2.5-vl-tiny", out=str(tmp_path / "run"), max_steps=30,
                                lr=1e-3, warmup_steps=5, save_steps=1000, progress=False, l_ce=1.0))
    rows = [json.loads(x) for x in (data / "dift.jsonl").read_text().splitlines()][:8]
    import shutil

    for r in rows:  # one frame folder per item (the toy records list their frames explicitly)
        (data / f"v_{r['id']}").mkdir()
        for f in r["frames"]:
            shutil.copy(data / f, data / f"v_{r['id']}" / os.path.basename(f))
    bench = [{"id": r["id"], "video": f"v_{r['id']}", "question": r["question"], "options": r["options"],
              "answer": r["answer"], "subtask": r["task"]} for r in rows]
    (data / "bench.jsonl").write_text("".join(json.dumps(b) + "\n" for b in bench))
    loaded = load_jsonl_bench(data / "bench.jsonl")
    table, (relies, reason), _ = probe_model(str(run.out_dir), loaded, tmp_path / "probe", batch_size=4,
                                             max_new_tokens=48, max_frames=4, progress=False)
    assert [r.intervention for r in table] == ["normal", "zero", "noise", "shuffle", "pad", "drop"]
    assert all(r.n == 8 for r in table) and isinstance(relies, bool) and reason
    assert (tmp_path / "probe" / "probe.md").exists()
