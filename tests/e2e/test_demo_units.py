"""Fast checks of the demo's own pieces: stage resume, config pinning, record shaping, paired CI."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from fourdthinker.data.records import DiftRecord
from fourdthinker.demo.config import FULL, QUICK, DemoConfig
from fourdthinker.demo.records import answer_as_text, compact_cot, prepare_records, task_records
from fourdthinker.demo.report import paired_delta_ci, slug_key
from fourdthinker.demo.stages import ConfigMismatchError, Stage, marker_path, pin_config, run_stages
from fourdthinker.io import read_jsonl, write_jsonl

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

OPTS = {"A": "Pan Left", "B": "Tilt Up", "C": "Move Left", "D": "Pan Right"}


# ----------------------------------------------------------------------------- stages
def test_run_stages_skips_finished_and_resumes_after_failure(tmp_path):
    calls = []

    def ok(name):
        def fn():
            calls.append(name)
            return {"name": name}
        return fn

    def boom():
        calls.append("b")
        raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError):
        run_stages(tmp_path, [Stage("a", "A", ok("a")), Stage("b", "B", boom), Stage("c", "C", ok("c"))])
    assert calls == ["a", "b"]
    assert marker_path(tmp_path, "a").exists() and not marker_path(tmp_path, "b").exists()
    seen = []
    res = run_stages(tmp_path, [Stage("a", "A", ok("a")), Stage("b", "B", ok("b")), Stage("c", "C", ok("c"))],
                     on_done=lambda s, summary, skipped: seen.append((s.name, skipped)))
    assert calls == ["a", "b", "b", "c"], "stage a must not run again"
    assert seen == [("a", True), ("b", False), ("c", False)]
    assert res["a"]["name"] == "a" and res["c"]["elapsed_s"] >= 0 and "cpu_s" in res["c"]
    assert not list((tmp_path / ".stages").glob(".*")), "no temp files left beside the markers"


def test_run_stages_rejects_duplicate_names(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        run_stages(tmp_path, [Stage("a", "A", dict), Stage("a", "A", dict)])


def test_pin_config_refuses_other_settings(tmp_path):
    pin_config(tmp_path, {"kind": "quick", "seed": 0})
    pin_config(tmp_path, {"kind": "quick", "seed": 0})  # same settings: fine
    with pytest.raises(ConfigMismatchError, match=r"config.json.*differs in seed"):
        pin_config(tmp_path, {"kind": "quick", "seed": 1})
    # a setting added later (absent from the pinned file) at its default: the old folder resumes
    pin_config(tmp_path, {"kind": "quick", "seed": 0, "mcq_style": "paper"}, defaults={"mcq_style": "paper"})
    with pytest.raises(ConfigMismatchError, match=r"differs in mcq_style"):
        pin_config(tmp_path, {"kind": "quick", "seed": 0, "mcq_style": "uniform"}, defaults={"mcq_style": "paper"})


def test_config_presets_and_overrides():
    assert QUICK.train_clips < FULL.train_clips and QUICK.sft_steps < FULL.sft_steps
    assert FULL.with_overrides(seed=3).seed == 3
    with pytest.raises(ValueError, match="unknown settings"):
        FULL.with_overrides(nope=1)
    with pytest.raises(ValueError, match="answer_style"):
        DemoConfig(answer_style="emoji")
    assert json.loads(json.dumps(FULL.to_dict()))["tasks"] == list(FULL.tasks)


def test_demo_yaml_is_the_embedded_defaults():
    """configs/demo.yaml holds DemoConfig's defaults (so it cannot drift), has a launch-command header,
    and is what `fourdthinker demo --config configs/demo.yaml` runs with (--quick and flags on top)."""
    from fourdthinker.config import load_yaml_config
    from fourdthinker.demo.commands import _config

    path = CONFIGS / "demo.yaml"
    assert load_yaml_config(DemoConfig, path, {}, what="DemoConfig fields") == FULL == DemoConfig()
    raw = yaml.safe_load(path.read_text())
    assert list(raw) == [f.name for f in fields(DemoConfig)], "configs/demo.yaml: one key per field, in field order"
    header = [ln for ln in path.read_text().splitlines() if ln.startswith("#")]
    assert any("fourdthinker demo --config configs/demo.yaml" in ln for ln in header)
    assert _config(False, str(path), {}) == FULL
    assert _config(True, str(path), {}) == QUICK  # --quick over the file: the smallest sizes
    assert _config(True, str(path), {"seed": 5, "sft_steps": 7}) == QUICK.with_overrides(seed=5, sft_steps=7)


def test_configs_have_launch_headers():
    """Every training/demo YAML in configs/ starts with comments that include the command that uses it."""
    for path in sorted(CONFIGS.glob("*.yaml")):
        lines = path.read_text().splitlines()
        head = "\n".join(ln for ln in lines[: next(i for i, ln in enumerate(lines) if not ln.startswith("#"))])
        assert head and f"--config{'_file' if path.name.startswith('accelerate') else ''} configs/{path.name}" in head, path


# ----------------------------------------------------------------------------- records
def test_answer_as_text():
    assert answer_as_text("<think>t</think><answer>D</answer>", OPTS) == "<think>t</think><answer>Pan Right</answer>"
    assert answer_as_text("<think>t</think><answer> B. </answer>", OPTS) == "<think>t</think><answer>Tilt Up</answer>"
    assert answer_as_text("<think>t</think><answer>Move Left</answer>", OPTS).endswith("<answer>Move Left</answer>")
    with pytest.raises(ValueError, match="neither a letter"):
        answer_as_text("<think>t</think><answer>E</answer>", OPTS)
    with pytest.raises(ValueError, match="no <answer>"):
        answer_as_text("<think>t</think>", OPTS)


def test_compact_cot_keeps_imagery_sentences_and_conclusion():
    text = ("<think>Look at 0s to 3s. The crate at 0s <imagery> and at 3s <imagery> shifts up (about -30 px). "
            "Everything slides up together. So the camera tilts down: Tilt Down.</think><answer>D</answer>")
    out = compact_cot(text)
    assert out == ("<think>The crate at 0s <imagery> and at 3s <imagery> shifts up (about -30 px). "
                   "So the camera tilts down: Tilt Down.</think><answer>D</answer>")
    assert out.count("<imagery>") == text.count("<imagery>")
    assert compact_cot("<answer>A</answer>") == "<answer>A</answer>"


def _record(i: int, task: str = "camera", answer: str = "B") -> dict:
    return DiftRecord(id=f"r{i}", video="clips/c/video.mp4", question="How does the camera move?", options=OPTS,
                      answer=answer, task=task, imagery=["clips/c/img/0.png", "clips/c/img/1.png"],
                      reasoning=("<think>Intro. At 0s <imagery> then <imagery> later. Middle. "
                                 f"Thus {OPTS[answer]}.</think><answer>{answer}</answer>")).model_dump()


def test_prepare_records_writes_demo_files(tmp_path):
    rows = [_record(0), _record(1, "speed", "C"), _record(2, "bbox")]
    bad = _record(3)
    bad["reasoning"] = bad["reasoning"].replace("<answer>B</answer>", "<answer>Z</answer>")  # parser can't map it
    write_jsonl(tmp_path / "dift.jsonl", rows + [bad])
    write_jsonl(tmp_path / "rl.jsonl", [{k: r[k] for k in ("id", "video", "question", "options", "answer", "task")}
                                        for r in rows])
    counts = prepare_records(tmp_path, answer_style="text", cot="compact", tasks=("camera", "speed"))
    assert counts["dift"] == 2 and counts["rl"] == 2 and counts["by_task"] == {"camera": 1, "speed": 1}
    assert sum(counts["drops"].values()) == 1, counts
    out = read_jsonl(tmp_path / "demo_dift.jsonl")
    assert out[0]["reasoning"] == "<think>At 0s <imagery> then <imagery> later. Thus Tilt Up.</think><answer>Tilt Up</answer>"
    assert out[1]["reasoning"].endswith("<answer>Move Left</answer>")
    assert all(DiftRecord.model_validate(r) for r in out)


def test_prepare_records_rl_clip_split(tmp_path):
    """rl_clips=1: the last clip's questions go to RL only, the others to SFT only (no overlap)."""
    rows = []
    for c in range(3):
        for t in ("camera", "speed"):
            r = _record(len(rows), t)
            r["video"] = f"clips/c{c}/video.mp4"
            rows.append(r)
    write_jsonl(tmp_path / "dift.jsonl", rows)
    write_jsonl(tmp_path / "rl.jsonl", [{k: r[k] for k in ("id", "video", "question", "options", "answer", "task")}
                                        for r in rows])
    counts = prepare_records(tmp_path, rl_clips=1)
    assert (counts["dift"], counts["rl"], counts["rl_clips"]) == (4, 2, 1)
    assert {r["video"] for r in read_jsonl(tmp_path / "demo_rl.jsonl")} == {"clips/c2/video.mp4"}
    assert {r["video"] for r in read_jsonl(tmp_path / "demo_dift.jsonl")} == {"clips/c0/video.mp4", "clips/c1/video.mp4"}
    with pytest.raises(ValueError, match="leaves no SFT clips"):
        prepare_records(tmp_path, rl_clips=3)


def test_task_records_written_next_to_the_file_once_and_again_when_it_changes(tmp_path):
    """The curriculum's first stage reads the camera records: written next to the demo's file (where
    their relative paths resolve), once, and again when the file is rewritten."""
    import os

    f = tmp_path / "demo_dift.jsonl"
    write_jsonl(f, [{"id": f"r{i}", "task": t} for i, t in enumerate(["camera", "direction", "camera", "speed"])])
    sub = task_records(f, ("camera",))
    assert sub == tmp_path / "demo_dift.camera.jsonl"
    assert [r["id"] for r in read_jsonl(sub)] == ["r0", "r2"]
    before = sub.stat().st_mtime_ns
    assert task_records(f, ("camera",)) == sub and sub.stat().st_mtime_ns == before
    write_jsonl(f, [{"id": "n0", "task": "camera"}])
    os.utime(f, ns=(before + 10**9, before + 10**9))
    assert [r["id"] for r in read_jsonl(task_records(f, ("camera",)))] == ["n0"]
    with pytest.raises(ValueError, match=r"demo_dift.jsonl: no records of task\(s\) distance"):
        task_records(f, ("distance",))


def test_curriculum_adds_its_stages_and_row_after_dift(tmp_path):
    """dift_curriculum: two training stages after DIFT (read-out on camera records, then self-fed from
    it), the row 'DIFT (curriculum)' after 'DIFT' with its settings, and its 4DRL row last; off: the
    paper's seven rows."""
    from fourdthinker.demo.pipeline import (
        CURRICULUM_READ,
        CURRICULUM_RL_ROW,
        CURRICULUM_ROW,
        CURRICULUM_SELF,
        ROWS,
        Demo,
    )

    off = Demo(FULL, tmp_path)
    assert off.rows() == ROWS and not any(s.name.startswith("dift-curriculum") for s in off.stages())
    on = Demo(FULL.with_overrides(dift_curriculum=True, sft_steps=1500), tmp_path)
    names = [s.name for s in on.stages()]
    assert names.index("dift") < names.index("dift-curriculum-read") < names.index("dift-curriculum") < names.index("rl-grpo")
    assert list(on.rows())[3:5] == ["DIFT", CURRICULUM_ROW] and on.rows()[CURRICULUM_ROW] == "dift-curriculum"
    assert "eval-dift-curriculum" in names and names.index("rl-4drl") < names.index("rl-4drl-curriculum")
    assert list(on.rows())[-1] == CURRICULUM_RL_ROW and on.rows()[CURRICULUM_RL_ROW] == "rl-4drl-curriculum"
    assert on.cfg.curriculum_steps() == (400, 1500)  # run F's 400 + 1,500
    assert FULL.with_overrides(curriculum_read_steps=7, curriculum_self_steps=9).curriculum_steps() == (7, 9)
    assert on._curriculum_gate(1200) == {}  # fixed step counts unless curriculum_gate
    gated = Demo(FULL.with_overrides(dift_curriculum=True, curriculum_gate=True, sft_steps=1500), tmp_path)
    # stage 1's cap is 8/5 x sft_steps (at lr 3e-4 it fired at step 400 at each seed); stage 2 stays fixed
    assert gated.cfg.curriculum_steps() == (2400, 1500)
    assert gated._curriculum_gate(2400) == {"stop_when": "readout", "gate_task": "camera", "gate_records": 300,
                                            "gate_every": 200}
    assert CURRICULUM_READ["latent_feed"] == "target" and CURRICULUM_READ["use_sim"] is False
    assert CURRICULUM_SELF["latent_feed"] == "self" and "use_sim" not in CURRICULUM_SELF
    assert all(c["imagery_bottleneck"] and c["response"] == "imagery-answer" for c in (CURRICULUM_READ, CURRICULUM_SELF))


# ----------------------------------------------------------------------------- statistics
def test_paired_delta_ci_hand_computation():
    sub = {"x": "s", "y": "s"}
    # one subtask, per-item differences [1, 0]: delta 0.5; replicates 0 / 0.5 / 1 w.p. 1/4, 1/2, 1/4
    d, lo, hi = paired_delta_ci({"x": False, "y": True}, {"x": True, "y": True}, sub, n_boot=4000)
    assert d == pytest.approx(0.5) and lo == 0.0 and hi == 1.0
    # B right everywhere A is wrong: delta 1 with a degenerate CI [1, 1]
    d, lo, hi = paired_delta_ci({"x": False, "y": False}, {"x": True, "y": True}, sub)
    assert (d, lo, hi) == (1.0, 1.0, 1.0)


def test_paired_delta_ci_is_macro_over_subtasks():
    # subtask s: delta +1 (1 item); subtask t: delta 0 (3 items) -> macro delta 0.5 (micro would be 0.25)
    sub = {"a": "s", "b": "t", "c": "t", "d": "t"}
    a = {"a": False, "b": True, "c": False, "d": True}
    b = {"a": True, "b": True, "c": False, "d": True}
    d, lo, hi = paired_delta_ci(a, b, sub)
    assert d == pytest.approx(0.5) and lo == hi == pytest.approx(0.5)
    assert all(map(lambda v: v != v, paired_delta_ci({}, {}, {})))  # no common items -> NaNs


def test_slug_key():
    assert slug_key("DIFT + 4DRL") == "dift_4drl" and slug_key("CoT SFT + GRPO") == "cot_sft_grpo"


# ----------------------------------------------------------------------------- ablation recipes
def test_ablation_stage_plans(tmp_path):
    from fourdthinker.demo.ablate import ablation_stages
    from fourdthinker.demo.pipeline import Demo

    demo = Demo(QUICK, tmp_path, progress=False)
    stages, rows = ablation_stages("loss", demo)
    names = [s.name for s in stages]
    assert rows == ["Full", "w/o L_sim", "w/o L_ce", "w/o r_fmt", "w/o r_acc"]
    assert names[:3] == ["world", "data", "bench"] and names[-1] == "ablation-report"
    assert names.count("dift") == 1, "the shared DIFT model is trained once"
    assert {"dift-no-sim", "dift-no-ce", "rl-4drl", "rl-4drl-no-fmt", "rl-4drl-no-acc"} <= set(names)
    assert len(set(names)) == len(names)
    stages, rows = ablation_stages("latent-size", demo, (1, 4, 16))
    assert rows == ["1", "4", "16"] and [s.name for s in stages][3:6] == ["dift-k1", "dift", "dift-k16"]
    stages, rows = ablation_stages("reward", demo)
    assert rows == ["Full", "w/o r_fmt", "w/o r_acc"]
    with pytest.raises(ValueError, match="unknown ablation"):
        ablation_stages("dropout", demo)


def test_demo_frame_span_window_reaches_training_and_evaluation(tmp_path):
    """--frame-span window: the demo's records and benchmark items carry window_s, the SFT model is
    saved with frame_span=window and its evaluation samples the same span (run.json)."""
    import json

    from fourdthinker.demo.config import QUICK
    from fourdthinker.demo.pipeline import Demo

    cfg = QUICK.with_overrides(train_clips=4, rl_clips=1, bench_clips=2, sft_steps=1, frame_span="window")
    d = Demo(cfg, tmp_path, progress=False)
    d.stage_world()
    d.stage_data()
    d.stage_bench()
    recs = [json.loads(x) for x in (tmp_path / "data" / "demo_dift.jsonl").read_text().splitlines()]
    items = d.bench_items()
    assert recs and all(r["window_s"] == [r["meta"]["start_s"], r["meta"]["end_s"]] for r in recs)
    assert items and all(it.window_s is not None for it in items)
    d.stage_sft("raw-qa", "sft-raw-qa")
    assert json.loads((tmp_path / "runs" / "sft-raw-qa" / "config.json").read_text())["frame_span"] == "window"
    d.stage_eval("Raw QA SFT", "sft-raw-qa")
    run = json.loads((tmp_path / "eval" / "raw-qa-sft" / "run.json").read_text())
    assert run["runner"]["span"] == "window"


def test_report_says_where_the_gated_curriculum_stages_stopped(tmp_path):
    from fourdthinker.demo.report import _gate_html, curriculum_gates

    assert curriculum_gates(tmp_path) == {} and _gate_html({}) == ""  # not gated: no section
    for stage, fired, steps in (("dift-curriculum-read", 300, (100, 200, 300)), ("dift-curriculum", None, (250, 500))):
        (tmp_path / stage).mkdir()
        checks = [{"step": s, "why": f"check at {s}"} for s in steps]
        (tmp_path / stage / "gate.json").write_text(json.dumps({"stop_when": "x", "fired_at": fired, "checks": checks}))
    gates = curriculum_gates(tmp_path)
    assert gates["dift-curriculum-read"] == {"rule": "x", "fired_at": 300, "last_step": 300, "last_check": "check at 300"}
    assert gates["dift-curriculum"]["fired_at"] is None and gates["dift-curriculum"]["last_step"] == 500
    html = _gate_html(gates)
    assert "<td>300</td>" in html and "not met (cap 500)" in html and "check at 500" in html
