"""`fourdthinker train dift` CLI errors and the shipped configs (accelerate/DeepSpeed/YAML) parse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fourdthinker.cli import app
from fourdthinker.train.dift import DiftConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_cli_missing_data_is_a_clear_error(tmp_path):
    r = CliRunner().invoke(app, ["train", "dift", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "no dift.jsonl" in r.output


def test_cli_bad_flags(tmp_path):
    (tmp_path / "dift.jsonl").write_text("")  # the data check comes first; these flags fail after it
    r = CliRunner().invoke(app, ["train", "dift", "--data", str(tmp_path), "--mode", "nonsense"])
    assert r.exit_code == 2 and "mode must be one of" in r.output
    r = CliRunner().invoke(app, ["train", "dift", "--data", str(tmp_path), "--no-ce", "--no-sim"])
    assert r.exit_code == 2 and "no loss" in r.output


def test_yaml_config_and_overrides(tmp_path):
    cfg = DiftConfig.from_yaml(CONFIGS / "dift_qwen2.5vl3b_paper.yaml", data="d", lr=2e-5)
    assert cfg.latent_size == 4 and cfg.l_ce == 0.1 and cfg.l_sim == 1.0 and cfg.epochs == 1
    assert cfg.lr == 2e-5 and cfg.data == "d"  # CLI overrides YAML
    assert DiftConfig.from_yaml(CONFIGS / "dift_tiny.yaml").model == "qwen2.5-vl-tiny"
    bad = tmp_path / "bad.yaml"
    bad.write_text("latent_sise: 4\n")
    with pytest.raises(ValueError, match="unknown DiftConfig fields"):
        DiftConfig.from_yaml(bad)


@pytest.mark.parametrize("z", [2, 3])
def test_deepspeed_and_accelerate_configs_parse(z):
    ds = json.loads((CONFIGS / f"ds_zero{z}.json").read_text())
    assert ds["zero_optimization"]["stage"] == z
    acc = yaml.safe_load((CONFIGS / f"accelerate_zero{z}.yaml").read_text())
    assert acc["distributed_type"] == "DEEPSPEED"
    assert (CONFIGS.parent / acc["deepspeed_config"]["deepspeed_config_file"]).exists()
    from transformers import TrainingArguments

    try:
        import deepspeed  # noqa: F401
    except ImportError:
        pytest.skip("deepspeed not installed: the HF DeepSpeed config check needs it")
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    c = HfTrainerDeepSpeedConfig(str(CONFIGS / f"ds_zero{z}.json"))
    assert c.is_zero2() == (z == 2) and c.is_zero3() == (z == 3)
    del TrainingArguments


def test_cli_health_flags_reach_the_config(tmp_path, monkeypatch):
    """--health-heldout/--health-every/--health-factor land in DiftConfig (flags beat the YAML)."""
    import fourdthinker.train.dift as dift_mod

    seen = []

    def capture(cfg):  # stands in for the (minutes-long) training run; the config is the real one
        cfg.validate()
        seen.append(cfg)
        raise ValueError("captured")

    monkeypatch.setattr(dift_mod, "train_dift", capture)
    (tmp_path / "dift.jsonl").write_text("")  # the command checks the data file exists before training
    args = ["train", "dift", "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    r = CliRunner().invoke(app, [*args, "--health-heldout", "3", "--health-every", "5", "--health-factor", "2.5"])
    assert r.exit_code == 2 and "captured" in r.output, r.output
    assert (seen[-1].health_heldout, seen[-1].health_every, seen[-1].health_factor) == (3, 5, 2.5)
    r = CliRunner().invoke(app, args)  # no flags: DiftConfig's defaults
    d = DiftConfig()
    assert (seen[-1].health_heldout, seen[-1].health_every, seen[-1].health_factor) == (
        d.health_heldout, d.health_every, d.health_factor)
    yml = tmp_path / "c.yaml"
    yml.write_text("health_every: 7\nhealth_factor: 3.0\n")
    r = CliRunner().invoke(app, [*args, "--config", str(yml), "--health-factor", "6"])
    assert (seen[-1].health_every, seen[-1].health_factor) == (7, 6.0)  # YAML kept, flag overrides
    assert len(seen) == 3


@pytest.mark.parametrize(("flag", "value", "msg"), [("--health-factor", "1", "health_factor must be > 1"),
                                                    ("--health-factor", "0.5", "health_factor must be > 1"),
                                                    ("--health-heldout", "-1", "greater than or equal")])
def test_cli_bad_health_flags(tmp_path, flag, value, msg):
    (tmp_path / "dift.jsonl").write_text("")  # the data check comes first; these flags fail after it
    r = CliRunner().invoke(app, ["train", "dift", "--data", str(tmp_path), flag, value])
    assert r.exit_code == 2 and msg in r.output, r.output
    assert "Traceback" not in r.output
