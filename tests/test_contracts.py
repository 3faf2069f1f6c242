"""The root contracts and the one-of-each helpers: the old import paths still mean the same objects."""

from __future__ import annotations

import dataclasses

import pytest

from fourdthinker import qa, records
from fourdthinker.config import config_field
from fourdthinker.latent.blocks import DEFAULT_LATENT_SIZE, resolve_latent_size
from fourdthinker.names import slug


def test_old_paths_re_export_the_root_contracts():
    from fourdthinker.data import records as old_records
    from fourdthinker.eval import answers as old_answers
    from fourdthinker.latent import blocks
    from fourdthinker.models import base, tokenizer
    from fourdthinker.train import rewards

    assert old_records.DiftRecord is records.DiftRecord and old_records.BenchItem is records.BenchItem
    assert old_records.build_question_text is qa.build_question_text and old_records.IMAGERY is qa.IMAGERY
    assert old_answers.parse_answer is qa.parse_answer and old_answers.has_valid_format is qa.has_valid_format
    assert blocks.IMAGERY is qa.IMAGERY == records.IMAGERY == "<imagery>"
    assert tokenizer.LATENT_TOKENS is base.LATENT_TOKENS is qa.LATENT_TOKENS
    assert (rewards.LAT_S, rewards.LAT_E, rewards.LAT_PAD) == (base.LATENT_START, base.LATENT_END, base.LATENT_PAD)
    assert qa.LATENT_TOKENS == ("<|latent_start|>", "<|latent_end|>", "<|latent_pad|>")


def test_world_and_data_share_one_spatialvid_rule():
    from fourdthinker.data import camera as data_camera
    from fourdthinker.data import objects
    from fourdthinker.oracle import rule
    from fourdthinker.world import camera as world_camera
    from fourdthinker.world import spatialvid

    assert world_camera.spatialvid_instructions is data_camera.spatialvid_instructions is spatialvid.spatialvid_instructions
    assert data_camera.STAY == spatialvid.STAY == "Stay"
    assert objects.valid_dynamic_frames is rule.valid_dynamic_frames


@pytest.mark.parametrize(("args", "kw", "want"), [
    (("CoT SFT + GRPO",), {}, "cot-sft-grpo"),  # demo folder and stage names
    (("DIFT + 4DRL", "_"), {}, "dift_4drl"),  # demo headline keys
    (("DIFT=runs/dift v1.2", "_"), dict(lower=False, keep="._-", default="model"), "DIFT_runs_dift_v1.2"),  # eval files
    (("+++", "_"), dict(lower=False, keep="._-", default="model"), "model"),
    (("  ",), {}, ""),
])
def test_slug(args, kw, want):
    assert slug(*args, **kw) == want


def test_demo_and_eval_slugs_are_the_one_helper():
    from fourdthinker.demo import pipeline, report

    assert pipeline.slug is slug
    assert report.slug_key("CoT SFT + GRPO") == "cot_sft_grpo"


class _Cfg:
    def __init__(self, k):
        self.latent_size = k


class _Model:
    def __init__(self, k):
        self.config = _Cfg(k)


class _Adapter:
    """Stands in for the two attributes K resolution reads (``VLMAdapter.latent_size`` and
    ``.model.config``); the full adapter's ``latent_size`` property is covered in tests/models."""

    def __init__(self, own, config_k):
        self.latent_size, self.model = own, _Model(config_k)


def test_resolve_latent_size_order():
    assert resolve_latent_size(_Adapter(8, 2), 3) == 3  # asked for: wins
    assert resolve_latent_size(_Adapter(8, 2)) == 8  # the adapter's (DIFT wrote config.latent_size)
    assert resolve_latent_size(_Adapter(None, 2)) == 2  # the model config's
    assert resolve_latent_size(_Adapter(None, None)) == DEFAULT_LATENT_SIZE == 4
    assert resolve_latent_size(object(), default=6) == 6
    from fourdthinker.train.rl_step import model_latent_size  # 4DRL's K goes through the same rule

    assert model_latent_size(_Adapter(None, 2)) == 2 and model_latent_size(_Adapter(None, None)) == 4


def test_config_field_carries_help_and_metadata():
    @dataclasses.dataclass
    class C:
        a: int = config_field(3, "the a", cli="--a")

    (f,) = dataclasses.fields(C)
    assert C().a == 3 and f.metadata == {"help": "the a", "cli": "--a"}
    from fourdthinker.demo import config as demo_config
    from fourdthinker.train import rl_config

    assert demo_config._f is rl_config._f is config_field  # one helper for every stage config
    assert all(f.metadata.get("help") for f in dataclasses.fields(demo_config.DemoConfig))
    assert all(f.metadata.get("help") for f in dataclasses.fields(rl_config.RLConfig))
