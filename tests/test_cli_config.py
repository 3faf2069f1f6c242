"""The one config/CLI idiom (fourdthinker/cli_config.py): flags come from the config dataclass, every
field has help text, bounds are declared once on the field and checked on flags and on configs alike."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pytest
import typer
from typer.testing import CliRunner

from fourdthinker.cli_config import check_flags, config_command, config_from_flags, option
from fourdthinker.config import config_field, field_problems
from fourdthinker.data.config import BuildConfig
from fourdthinker.demo.config import QUICK, DemoConfig
from fourdthinker.errors import UserValueError
from fourdthinker.eval.config import EvalConfig, ProbeConfig
from fourdthinker.latent.config import InferConfig
from fourdthinker.train.dift_config import DiftConfig
from fourdthinker.train.rl_config import RLConfig
from fourdthinker.world.config import WorldConfig

CONFIGS = (DiftConfig, RLConfig, DemoConfig, WorldConfig, BuildConfig, EvalConfig, ProbeConfig, InferConfig)


@dataclass
class Toy:
    n: int = config_field(2, "How many.", gt=0)
    steps: int = config_field(-1, "Steps; -1 = all.", gt=0, allow=(-1,))
    rate: float = config_field(0.5, "A rate.", ge=0)
    full: bool = config_field(False, "LoRA or full.", flag="--lora/--full")
    on: bool = config_field(True, "Switch.")
    tags: tuple[str, ...] = config_field(("a", "b"), "Tags.")


def _app(seen: list) -> typer.Typer:
    def run(config=None, dry_run=False, **flags):
        seen.append((config_from_flags(Toy, config, flags), dry_run))

    app = typer.Typer()
    app.command()(config_command(Toy, run, name="toy", doc="Toy.", extra=[option("dry_run", bool, False, "--dry-run")]))
    app.command("other")(lambda: None)  # two commands: typer keeps the sub-command names
    return app


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_field_has_help(cls):
    missing = [f.name for f in fields(cls) if not f.metadata.get("help")]
    assert not missing, f"{cls.__name__} fields without help text: {missing}"


def test_flags_come_from_the_fields(tmp_path):
    seen = []
    app = _app(seen)
    r = CliRunner().invoke(app, ["toy", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for flag in ("--n", "--steps", "--rate", "--lora", "--full", "--on", "--no-on", "--tags", "--config", "--dry-run"):
        assert flag in r.output, flag
    assert "How many." in r.output and "default: 2" in r.output and "default: --full" in r.output
    r = CliRunner().invoke(app, ["toy", "--n", "3", "--lora", "--no-on", "--tags", "x", "--tags", "y", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert seen[-1] == (Toy(n=3, full=True, on=False, tags=("x", "y")), True)
    r = CliRunner().invoke(app, ["toy"])
    assert seen[-1] == (Toy(), False)  # no flag given: the dataclass defaults
    yml = tmp_path / "t.yaml"
    yml.write_text("n: 5\nrate: 0.25\ntags: [c]\n")
    r = CliRunner().invoke(app, ["toy", "--config", str(yml), "--n", "7"])
    assert r.exit_code == 0, r.output
    assert seen[-1][0] == Toy(n=7, rate=0.25, tags=("c",))  # defaults < YAML < flags


def test_bounds_are_declared_once():
    with pytest.raises(UserValueError, match=r"--n must be > 0, got 0 — pass --n with a value > 0"):
        check_flags(Toy, {"n": 0})
    with pytest.raises(UserValueError, match=r"--steps must be > 0 \(or -1\), got 0"):
        check_flags(Toy, {"steps": 0})
    check_flags(Toy, {"steps": -1, "n": None, "rate": 0.0})  # the sentinel, not given, the bound itself: fine
    assert field_problems(Toy(n=0, rate=-1.0)) == ["n must be > 0, got 0", "rate must be >= 0, got -1"]
    r = CliRunner().invoke(_app([]), ["toy", "--rate", "-1"])  # ge is also the flag's click range
    assert r.exit_code == 2 and "greater than or equal to 0" in r.output


def test_configs_check_their_declared_bounds():
    with pytest.raises(ValueError, match="lr must be >= 0"):
        RLConfig(lr=-1e-6)
    RLConfig(lr=0.0)  # allowed: every step runs, the weights stay (tests and benchmarks measure with it)
    with pytest.raises(ValueError, match="num_generations must be >= 2"):
        RLConfig(num_generations=1)
    with pytest.raises(ValueError, match="sft_steps must be > 0"):
        DemoConfig(sft_steps=0)
    with pytest.raises(ValueError, match="batch_size must be > 0"):
        DiftConfig(batch_size=0).validate()
    DiftConfig(max_steps=-1).validate()  # -1 = run epochs
    with pytest.raises(ValueError, match="crf must be >= 0"):
        WorldConfig(crf=-1)
    with pytest.raises(ValueError, match="camera_fps must be > 0"):
        BuildConfig(camera_fps=0)
    with pytest.raises(ValueError, match="top_p must be <= 1"):
        EvalConfig(top_p=1.5)
    # choices= declares the values a string field may take, checked the same way on flags and configs
    with pytest.raises(ValueError, match=r"mcq_style must be one of paper\|uniform, got 'odd'"):
        BuildConfig(mcq_style="odd")
    with pytest.raises(ValueError, match=r"frame_span must be one of video\|window, got 'clip'"):
        RLConfig(frame_span="clip")
    RLConfig(frame_span=None)  # unset: the init model's span
    with pytest.raises(UserValueError, match=r"--frame-span must be one of video\|window, got 'clip' — pass "
                                             r"--frame-span with a value one of video\|window"):
        check_flags(DiftConfig, {"frame_span": "clip"})


def test_required_fields():
    with pytest.raises(UserValueError, match=r"--model is required — give --model \(-m\)"):
        config_from_flags(ProbeConfig, None, {"bench": "jsonl", "data": "b.jsonl"})
    assert config_from_flags(EvalConfig, None, {"model": ["random"], "bench": "synthetic", "data": "d", "out": "o"}).model \
        == ("random",)


def test_preset_base():
    cfg = config_from_flags(DemoConfig, None, {"seed": 3, "sft_steps": None}, base=QUICK)
    assert cfg.train_clips == QUICK.train_clips and cfg.seed == 3 and cfg.sft_steps == QUICK.sft_steps
