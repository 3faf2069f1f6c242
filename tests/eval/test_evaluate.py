"""evaluate(): resume, truncated predictions, quarantine, duplicated ids, sampled seeds, tables."""

from __future__ import annotations

import json

import pytest

from fourdthinker.eval.evaluate import evaluate, load_result, read_predictions
from fourdthinker.eval.loaders import load_dyn_bench
from fourdthinker.eval.runners import RandomRunner
from fourdthinker.eval.runners.base import RunOutput
from fourdthinker.eval.tables import TABLE1_COLUMNS, TABLE2_COLUMNS, bench_table, table3
from fourdthinker.models.inputs import FrameSettings, record_frames


class FrameCountRunner:
    """Answers from what it sees: loads the frames (so a missing video fails), answers the gold
    letter for even-numbered items, counts the items it was asked about."""

    name = "frames"
    batch_size = 4

    def __init__(self):
        self.seen: list[str] = []

    def settings(self):
        return {"runner": "frames"}

    def generate(self, items, root, *, seed, do_sample):
        outs = []
        for it in items:
            frames = record_frames(it, root, FrameSettings(max_frames=2))
            self.seen.append(it.id)
            letter = it.answer if int(it.id.rsplit("/", 1)[1]) % 2 == 0 else "D"
            outs.append(RunOutput(text=f"<think>{len(frames)} frames</think><answer>{letter}</answer>"))
        return outs


def test_resume_skips_done_items_and_repairs_truncated_file(tmp_path, dyn_root):
    lr = load_dyn_bench(dyn_root)
    r = FrameCountRunner()
    res = evaluate(r, lr.items[:5], tmp_path, root=lr.root, progress=False)
    assert len(r.seen) == 5 and len(res.predictions) == 5
    pred_file = tmp_path / "predictions.jsonl"
    # simulate a kill mid-write: cut the last line in half
    text = pred_file.read_text()
    lines = text.splitlines()
    pred_file.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    r2 = FrameCountRunner()
    res2 = evaluate(r2, lr.items, tmp_path, root=lr.root, progress=False)
    # the 4 intact predictions are kept; the truncated one and the 7 new items are run
    assert r2.seen == [lr.items[4].id] + [it.id for it in lr.items[5:]]
    assert len(res2.predictions) == 12
    assert any("truncated last line dropped" in w for w in res2.warnings)
    assert len(read_predictions(pred_file)[0]) == 12 and not read_predictions(pred_file)[1]
    # scores: even ids right, odd ids wrong -> 6/12 and 1/2 in every axis
    assert res2.micro() == 0.5 and res2.subtask_accuracy() == {"Inter-Obj": 0.5, "Obj-Scene": 0.5, "Cam-Obj": 0.5}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["eval_count"] == 12 and summary["subtask_macro_avg"] == 0.5
    # a third run has nothing left to do
    r3 = FrameCountRunner()
    evaluate(r3, lr.items, tmp_path, root=lr.root, progress=False)
    assert r3.seen == []


def test_missing_video_is_quarantined_and_the_run_continues(tmp_path, dyn_root):
    lr = load_dyn_bench(dyn_root)
    # the frames disappear after loading (e.g. an unmounted disk): per-item failure, not a crash
    for p in (dyn_root / "frames" / "sintel" / "alley").iterdir():
        p.unlink()
    res = evaluate(FrameCountRunner(), lr.items, tmp_path, root=lr.root, progress=False)
    assert len(res.predictions) == 6 and len(res.failed) == 6
    assert all("MissingMediaError" in f["reason"] and "no frame images" in f["reason"] for f in res.failed)
    assert len((tmp_path / "quarantine.jsonl").read_text().splitlines()) == 6


def test_duplicated_ids_and_changed_settings_are_refused(tmp_path, dyn_root):
    lr = load_dyn_bench(dyn_root)
    with pytest.raises(ValueError, match="duplicated item id"):
        evaluate(RandomRunner(), [lr.items[0], lr.items[0]], tmp_path / "a", root=lr.root, progress=False)
    evaluate(RandomRunner(), lr.items, tmp_path / "b", root=lr.root, progress=False)
    with pytest.raises(ValueError, match="other settings .*samples"):
        evaluate(RandomRunner(), lr.items, tmp_path / "b", root=lr.root, samples=2, progress=False)


def test_sampled_seeds_spread_and_reload(tmp_path, dyn_root):
    lr = load_dyn_bench(dyn_root)
    res = evaluate(RandomRunner(), lr.items, tmp_path, root=lr.root, samples=3, seed=10, progress=False)
    assert res.seeds == [10, 11, 12] and len(res.runs) == 3
    per_seed = [res.avg(r) for r in range(3)]
    sp = res.spread()
    assert sp["mean"] == pytest.approx(sum(per_seed) / 3) and sp["n"] == 3
    assert res.avg() == pytest.approx(sp["mean"])  # seed-averaged item scores, all items in every run
    again = load_result(tmp_path, lr.items)
    assert again.seeds == [10, 11, 12] and [again.avg(r) for r in range(3)] == per_seed
    t = bench_table({"random": res}, "dyn-bench")
    assert "±" in t.rows[0][4] and "3 seeds" in t.caption


def test_table_layouts(tmp_path, dyn_root):
    lr = load_dyn_bench(dyn_root)
    a = evaluate(FrameCountRunner(), lr.items, tmp_path / "a", root=lr.root, progress=False)
    b = evaluate(RandomRunner(), lr.items, tmp_path / "b", root=lr.root, progress=False)
    t = bench_table({"frames": a, "random": b}, "dyn-bench", baseline="frames")
    assert t.header == ["Methods", *TABLE2_COLUMNS, "Avg.", "95% CI", "n"]
    assert t.rows[0][:5] == ["frames", "50.0", "50.0", "50.0", "50.0"]
    assert t.rows[1][4].endswith(f"({100 * (b.avg() - 0.5):+.1f})")
    md = t.to_markdown()
    assert "| Methods | Inter-Obj | Obj-Scene | Cam-Obj | Avg. | 95% CI | n |" in md and "| frames | 50.0 |" in md
    csv_lines = t.to_csv().splitlines()
    assert csv_lines[0].startswith("model,Inter-Obj,Obj-Scene,Cam-Obj,avg,avg_ci_lo,avg_ci_hi,n")
    assert csv_lines[1].startswith("frames,0.5,0.5,0.5,0.5,")
    assert len(TABLE1_COLUMNS) == 13 and TABLE1_COLUMNS[0] == "A.Dis" and TABLE1_COLUMNS[-1] == "N-Temp"
    t3 = table3({"DIFT + 4DRL": a, "base": b, "my extra": a})
    assert [r[0] for r in t3.rows] == ["base", "DIFT + 4DRL", "my extra"]
    assert t3.rows[1][1] == "50.0" and t3.rows[1][3] == f"{100 * (0.5 - b.avg()):+.1f}"
    assert t3.header[:2] == ["Training strategies", "Accuracy"]


def test_table1_layout_on_dsr_fixture(tmp_path, dsr_root):
    from fourdthinker.eval import load_benchmark

    lr = load_benchmark("dsr-bench", dsr_root)
    res = evaluate(RandomRunner(), lr, tmp_path, progress=False)
    t = bench_table({"random": res})
    assert t.title.startswith("Table 1 layout") and t.header[:14] == ["Models", *TABLE1_COLUMNS]
    # Avg. cell == mean of the 13 subtask cells (each subtask has 2 items here)
    cells = [float(c) for c in t.rows[0][1:14]]
    assert float(t.rows[0][14]) == pytest.approx(sum(cells) / 13, abs=0.06)


def test_report_shows_reasoning_and_imagery(tmp_path, dyn_root):
    import numpy as np
    from PIL import Image

    from fourdthinker.eval.report import write_report

    img = tmp_path / "imagery_0.png"
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(img)

    class ImageryRunner(FrameCountRunner):
        def generate(self, items, root, *, seed, do_sample):
            outs = super().generate(items, root, seed=seed, do_sample=do_sample)
            for o in outs:
                o.imagery = [str(img)]
                o.text = o.text.replace("frames</think>", "frames <imagery> the car moves left</think>")
            return outs

    lr = load_dyn_bench(dyn_root)
    res = evaluate(ImageryRunner(), lr, tmp_path / "run", progress=False)
    page = write_report({"imagery": res}, tmp_path / "rep", root=lr.root, n_examples=2).read_text()
    assert "the car moves left" in page and ">imagery<" in page and "frames the model sees" in page
    assert page.count("<div class=\"item\">") == 2


def test_report_bars_show_subtasks_even_with_a_custom_table(tmp_path, dsr_root, monkeypatch):
    """The demo passes its own Table 3 (columns Accuracy / vs base): the per-subtask bars must still
    be drawn over the benchmark's subtasks, not over that table's columns (a bug seen in the demo
    report)."""
    from fourdthinker.eval import load_benchmark, report
    from fourdthinker.eval.tables import TableData

    lr = load_benchmark("dsr-bench", dsr_root)
    res = evaluate(RandomRunner(), lr, tmp_path / "run", progress=False)
    seen = {}
    real = report.plot_subtask_bars

    def spy(results, columns, path):
        seen["columns"] = list(columns)
        return real(results, columns, path)

    monkeypatch.setattr(report, "plot_subtask_bars", spy)
    custom = TableData(title="Table 3 layout", header=["Training strategies", "Accuracy", "95% CI", "vs base", "n"],
                       rows=[["random", "25.0", "[0, 50]", "", "26"]])
    page = report.write_report({"random": res}, tmp_path / "rep", table=custom).read_text()
    assert seen["columns"][:13] == list(TABLE1_COLUMNS) and "vs base" not in seen["columns"]
    assert "Table 3 layout" in page
