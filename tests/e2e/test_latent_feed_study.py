"""scripts/latent_feed_study.py: the confirmation benchmark (--confirm-clips) on fresh items."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "latent_feed_study.py"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1] / "src")}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=850)  # inside the test's own 900 s


@pytest.mark.parametrize(("world", "seed"), [([], "0"), ([], "1000"), (["--seed", "3"], "3"), (["--seed", "3"], "1003")])
def test_confirm_seed_must_differ_from_the_training_and_benchmark_worlds(tmp_path, world, seed):
    """--seed moves the training world (seed) and the benchmark world (seed + 1000) with it."""
    r = _run("--quick", *world, "--confirm-clips", "2", "--confirm-seed", seed, "--out", str(tmp_path / "s"), cwd=tmp_path)
    assert r.returncode == 2
    assert f"--confirm-seed {seed} is the training or the benchmark world's seed" in r.stderr
    assert not (tmp_path / "s").exists()  # refused before anything is written


@pytest.mark.timeout(900)
def test_quick_study_with_a_confirmation_benchmark(tmp_path):
    """Pipeline check at the demo's quick sizes (~40 s on 2 cores): the confirmation world is fresh
    (its own seed, its own clips), every model is probed on all its items, and confirm/study.md is
    written from them."""
    r = _run("--quick", "--variants", "target", "--confirm-clips", "3", "--out", "s", cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = tmp_path / "s"
    world = json.loads((out / ".stages" / "confirm-world.json").read_text())
    assert world["seed"] == 2000 and world["clips"] == 3, world
    bench = (out / "confirm" / "world" / "bench.jsonl").read_text().splitlines()
    assert len(bench) == world["items"] > 0
    truth = [json.loads((w / "clip_00000" / "truth.json").read_text()) for w in (out / "confirm" / "world", out / "world" / "bench")]
    assert truth[0] != truth[1]  # another seed, other scenes
    table = json.loads((out / "confirm" / "study.json").read_text())
    assert {row["model"] for row in table["rows"]} == {"DIFT target", "CoT SFT", "Raw QA SFT"}
    assert all(row["n"] == len(bench) for row in table["rows"])
    dift = next(row for row in table["rows"] if row["model"] == "DIFT target")
    assert {"zero", "shuffle", "frames-first", "frames-reversed"} <= set(dift)
    assert "confirm_goal_reached: " in r.stdout


def test_every_variant_is_dift_config_fields():
    """Every variant's keys are DiftConfig fields (or the study's own: init, tasks)."""
    import importlib.util
    from dataclasses import fields

    from fourdthinker.train.dift_config import DiftConfig

    spec = importlib.util.spec_from_file_location("latent_feed_study", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert {"target-bn-ans-cam-self-long-s2", "target-bn-ans-nosim-cam-s3"} <= set(mod.VARIANTS)
    for v in mod.VARIANTS.values():
        assert set(v) - {"init", "tasks"} <= {x.name for x in fields(DiftConfig)}, v
        assert v.get("init") is None or v["init"] in mod.VARIANTS, v
    # `demo --dift-curriculum` trains what the study measured
    from fourdthinker.demo.config import DemoConfig
    from fourdthinker.demo.pipeline import CURRICULUM_READ, CURRICULUM_SELF, CURRICULUM_TASKS

    read, chain = mod.VARIANTS["target-bn-ans-nosim-cam"], mod.VARIANTS["target-bn-ans-cam-self-long"]
    assert {k: read[k] for k in CURRICULUM_READ} == CURRICULUM_READ and read["tasks"] == CURRICULUM_TASKS
    assert {k: chain[k] for k in CURRICULUM_SELF} == CURRICULUM_SELF and chain["lr"] == DemoConfig().curriculum_lr
    assert DemoConfig(sft_steps=1500).curriculum_steps() == (read["max_steps"], chain["max_steps"])
    # ... and with --curriculum-gate, what the study variants that reached the goal measured: the read-out stage
    # gated at the lower lr, then the self-fed stage ungated for a fixed 1,500 steps
    read, chain = mod.VARIANTS["gate-read-slow"], mod.VARIANTS["self1500-slow"]
    assert chain["init"] == "gate-read-slow" and read["stop_when"] == "readout" and chain["stop_when"] == "none"
    gated = DemoConfig(sft_steps=1500, curriculum_gate=True)
    assert gated.curriculum_steps() == (read["max_steps"], chain["max_steps"]) and read["lr"] == chain["lr"] == gated.curriculum_lr
    assert round(read["max_steps"] * 3 / 40) == read["warmup_steps"] and read["max_steps"] // 12 == read["gate_every"]
    assert max(1, min(10, chain["max_steps"] // 10)) == chain["warmup_steps"]
