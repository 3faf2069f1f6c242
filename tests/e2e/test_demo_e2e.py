"""End-to-end: `fourdthinker demo --quick` killed mid-run, rerun, resumes and finishes.

The quick demo runs every stage (world, data build, benchmark, 3 SFT runs, 3 RL runs, 7
evaluations, report) at the smallest sizes; it checks the wiring, not learning. The full demo
(learning: DIFT + 4DRL beats base with a paired CI excluding zero) is the slow test below.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fourdthinker.cli import app
from fourdthinker.demo.pipeline import ROWS


def _wait_for(path, proc, timeout: float) -> None:
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"demo exited with {proc.returncode} before {path.name} appeared:\n{out[-3000:]}")
        if time.time() - t0 > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.3)


def test_quick_demo_killed_resumes_and_finishes(tmp_path):
    out = tmp_path / "demo"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "fourdthinker.cli", "demo", "--quick", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    marker = out / ".stages" / "data.json"
    _wait_for(marker, proc, timeout=600)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the demo and any worker processes
    proc.wait(timeout=60)
    # markers only: a kill while a marker is written leaves its hidden temp file (.<name>.json.XXXX.json)
    done_before = {p.name: p.stat().st_mtime_ns for p in (out / ".stages").glob("*.json") if not p.name.startswith(".")}
    assert {"world.json", "data.json"} <= set(done_before), done_before

    res = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output[-3000:]
    for name in done_before:  # finished stages were skipped, not redone
        assert f"{name[:-5]}: done earlier" in res.output, res.output[:2000]
        assert (out / ".stages" / name).stat().st_mtime_ns == done_before[name], f"{name} was rewritten"
    assert "✓ world" not in res.output

    summary = json.loads((out / "report" / "summary.json").read_text())
    assert list(summary["rows"]) == list(ROWS), summary["rows"].keys()
    n_items = len((out / "world" / "bench" / "bench.jsonl").read_text().splitlines())
    assert n_items > 0 and all(r["n"] == n_items for r in summary["rows"].values()), summary["rows"]
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["ci"][0] <= r["accuracy"] <= r["ci"][1] for r in summary["rows"].values())
    report = (out / "report" / "report.html").read_text()
    assert "Table 3" in report and "DIFT + 4DRL" in report
    for png in ("demo_table3.png", "demo_training.png"):
        assert (out / "report" / png).stat().st_size > 5000, png
    md = (out / "report" / "table3.md").read_text()
    assert all(f"| {row} |" in md for row in ROWS), md
    # headline figures come last, one `name: value` per line
    last = [ln for ln in res.output.strip().splitlines() if ln.strip()][-8:]
    assert all(": " in ln for ln in last) and last[-1].startswith("dift_4drl_minus_base_pp: "), last

    # a rerun with other settings into the same folder is refused with a one-line error
    res2 = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert res2.exit_code == 2 and "different configuration" in res2.output


@pytest.fixture(scope="module")
def full_demo(tmp_path_factory):
    from fourdthinker.demo.config import FULL
    from fourdthinker.demo.pipeline import run_demo

    return run_demo(FULL, tmp_path_factory.mktemp("demo") / "full", kind="full")


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the full demo (~18 min here) runs in the first test's fixture setup
def test_full_demo_beats_base(full_demo):
    """Issue criterion: DIFT + 4DRL beats the base model, paired 95% CI of the gain above zero."""
    paired = {(p["a"], p["b"]): p for p in full_demo["report"]["paired"]}
    gain = paired[("base", "DIFT + 4DRL")]
    assert gain["ci_lo"] > 0, gain


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_full_demo_learns_the_visual_task(full_demo):
    """Not only the format: the best SFT row's 95% CI lies above chance (25%, four options; the
    benchmark's labels are balanced per task, so label priors do not get there). With the demo's
    paper-style options this is reached through the option sets, not the motion (an options-only
    rule scores 70%; docs/results.md): the motion itself is learnt only with more data and the
    question's window (docs/latent_feed_study.md)."""
    rows = full_demo["report"]["rows"]
    assert max(rows[r]["ci"][0] for r in ("Raw QA SFT", "CoT SFT", "DIFT")) > 0.25, rows


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.xfail(reason="measured with the defaults: DIFT + 4DRL 30.3% [21.6, 39.6]; its CI includes chance "
                          "(docs/results.md, run C)", strict=False)
def test_full_demo_beats_chance(full_demo):
    """The stronger bar: DIFT + 4DRL's whole 95% CI above chance (25%, four options)."""
    assert full_demo["report"]["rows"]["DIFT + 4DRL"]["ci"][0] > 0.25, full_demo["report"]["rows"]


def test_quick_curriculum_trains_both_stages_and_evaluates_its_row(tmp_path):
    """`dift_curriculum` at quick size: the first stage trains on the camera records only, teacher-forced
    under the bottleneck with the answer's loss alone; the second starts from its model, self-fed; the
    row is evaluated with the bottleneck the model's config asks for, and 4DRL runs from it (wiring, not
    learning). With the read-out gate on: the first stage holds out camera records and checks them (one
    record can never pass the gate, so it runs to its cap); the second runs its fixed steps ungated."""
    from fourdthinker.demo.config import QUICK
    from fourdthinker.demo.pipeline import CURRICULUM_ROW, Demo
    from fourdthinker.demo.stages import run_stages

    demo = Demo(QUICK.with_overrides(dift_curriculum=True, curriculum_gate=True), tmp_path, progress=False)
    keep = {"world", "data", "bench", "dift-curriculum-read", "dift-curriculum", "eval-dift-curriculum",
            "rl-4drl-curriculum"}
    done = run_stages(tmp_path, [s for s in demo.stages() if s.name in keep])
    assert set(done) == keep
    read, chain = tmp_path / "runs" / "dift-curriculum-read", tmp_path / "runs" / "dift-curriculum"
    read_cfg = json.loads((read / "dift_config.json").read_text())
    cam = [json.loads(x) for x in Path(read_cfg["data"]).read_text().splitlines()]
    assert read_cfg["data"].endswith("demo_dift.camera.jsonl") and cam and {r["task"] for r in cam} == {"camera"}
    assert (read_cfg["latent_feed"], read_cfg["use_sim"], read_cfg["max_steps"]) == ("target", False, demo.cfg.curriculum_steps()[0])
    assert read_cfg["lr"] == QUICK.curriculum_lr != QUICK.sft_lr  # gated: the read-out stage at the lower lr too
    gate = json.loads((read / "gate.json").read_text())  # only the first stage is gated
    assert gate["stop_when"] == "readout" and gate["records"] == 1 and not (chain / "gate.json").exists()
    assert [done[s]["steps"] for s in ("dift-curriculum-read", "dift-curriculum")] == list(demo.cfg.curriculum_steps())
    assert gate["fired_at"] is None and gate["checks"]
    chain_cfg = json.loads((chain / "dift_config.json").read_text())
    assert chain_cfg["model"] == str(read) and chain_cfg["latent_feed"] == "self" and chain_cfg["use_sim"]
    assert chain_cfg["data"].endswith("demo_dift.jsonl") and chain_cfg["lr"] == QUICK.curriculum_lr
    model_cfg = json.loads((chain / "config.json").read_text())
    assert model_cfg["imagery_bottleneck"] and model_cfg["dift_response"] == "imagery-answer"
    assert model_cfg["latent_feed"] == "self"
    assert done["eval-dift-curriculum"]["n"] > 0 and demo.load_results([CURRICULUM_ROW])
    # 4DRL from it runs (rollouts and replay under its bottleneck) and keeps the setting
    assert done["rl-4drl-curriculum"]["steps"] == QUICK.rl_steps
    rl_cfg = json.loads((tmp_path / "runs" / "rl-4drl-curriculum" / "final" / "config.json").read_text())
    assert rl_cfg["imagery_bottleneck"] and rl_cfg["dift_response"] == "imagery-answer"
