"""VLM adapters: one file per family, one protocol (``base.VLMAdapter``), one entry point ``load``.

>>> ad = load("qwen2.5-vl-tiny")          # doctest: +SKIP  (random-init tiny real class, offline)
>>> ad = load("Qwen/Qwen2.5-VL-3B-Instruct", dtype="bfloat16", attn_implementation="sdpa")  # doctest: +SKIP

Preset names build random-initialised configs of the real classes (deterministic, seed 0) with a
tokenizer the package trains offline, saved once under ``~/.cache/fourdthinker/presets``
(``FOURDTHINKER_CACHE``) and then loaded with stock ``from_pretrained`` like any checkpoint: three
tiny ones (one per family), ``qwen2.5-vl-tiny-deep`` (the tiny Qwen2.5-VL with 4 LM layers) and
``qwen2.5-vl-3b-shallow`` (Qwen2.5-VL-3B's widths, 2 + 2 layers).
Their vocabularies are padded past the tokenizer like the real checkpoints' (docs/models.md).
Any other string is a hub id or local folder; the family comes from ``config.model_type``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from fourdthinker.lazy import lazy_exports

if TYPE_CHECKING:
    from fourdthinker.models.base import VLMAdapter

# ``VLMAdapter`` (models/base.py, which imports torch) loads on first use: ``PRESETS`` and
# ``preset_dir`` stay import-cheap.
__getattr__, __dir__ = lazy_exports(__name__, {"VLMAdapter": "fourdthinker.models.base"})

PRESET_VERSION = 3  # 3: padded vocabularies (embedding rows > len(tokenizer)), like the real checkpoints
PRESETS = {
    "qwen2.5-vl-tiny": "qwen2_5_vl",
    # the tiny one with 4 LM layers (same widths and vision tower): the latent study's deeper text stack
    "qwen2.5-vl-tiny-deep": "qwen2_5_vl",
    "qwen3-vl-tiny": "qwen3_vl",
    "internvl3.5-tiny": "internvl",
    # full-width, shallow: Qwen2.5-VL-3B's widths and 151,936-row vocabulary, 2 LM layers + 2 vision
    # blocks (~0.54 B params, ~2.2 GB in fp32). For scale benchmarks and slow tests (docs/models.md).
    "qwen2.5-vl-3b-shallow": "qwen2_5_vl",
}
_MODEL_TYPE_TO_FAMILY = {"qwen2_5_vl": "qwen2_5_vl", "qwen3_vl": "qwen3_vl", "internvl": "internvl"}


def _adapter_class(family: str) -> type[VLMAdapter]:
    if family == "qwen2_5_vl":
        from fourdthinker.models.qwen2_5_vl import Qwen25VLAdapter

        return Qwen25VLAdapter
    if family == "qwen3_vl":
        from fourdthinker.models.qwen3_vl import Qwen3VLAdapter

        return Qwen3VLAdapter
    if family == "internvl":
        from fourdthinker.models.internvl import InternVLAdapter

        return InternVLAdapter
    raise ValueError(f"unsupported VLM family {family!r}; supported: {sorted(set(_MODEL_TYPE_TO_FAMILY))}")


def _builder(name: str):
    """The function that builds preset ``name`` into a folder."""
    if name == "qwen2.5-vl-3b-shallow":
        from fourdthinker.models.qwen2_5_vl import build_3b_shallow

        return build_3b_shallow
    if name == "qwen2.5-vl-tiny-deep":
        from fourdthinker.models.qwen2_5_vl import build_tiny_deep

        return build_tiny_deep
    family = PRESETS[name]
    if family == "qwen2_5_vl":
        from fourdthinker.models.qwen2_5_vl import build_tiny
    elif family == "qwen3_vl":
        from fourdthinker.models.qwen3_vl import build_tiny
    else:
        from fourdthinker.models.internvl import build_tiny
    return build_tiny


def preset_dir(name: str) -> Path:
    """HF folder of a preset, built (deterministically, offline) on first use and cached."""
    from fourdthinker.models.tokenizer import TOKENIZER_VERSION, cache_root

    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}")
    d = cache_root() / "presets" / f"{name}-v{PRESET_VERSION}.{TOKENIZER_VERSION}"
    if (d / "config.json").exists():
        return d
    tmp = d.with_name(d.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    _builder(name)(tmp)
    try:
        os.replace(tmp, d)
    except OSError:  # built concurrently by another process
        shutil.rmtree(tmp, ignore_errors=True)
    return d


def detect_family(path_or_id: str, *, trust_remote_code: bool = False) -> str:
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(path_or_id, trust_remote_code=trust_remote_code)
    fam = _MODEL_TYPE_TO_FAMILY.get(cfg.model_type)
    if fam is None:
        raise ValueError(
            f"{path_or_id}: model_type {cfg.model_type!r} is not supported; "
            f"supported: {sorted(_MODEL_TYPE_TO_FAMILY)} (Qwen2.5-VL, Qwen3-VL, HF-format InternVL)"
        )
    return fam


def load(name_or_path: str, *, dtype: str = "float32", attn_implementation: str = "sdpa", device: str = "cpu",
         trust_remote_code: bool = False, add_latent_tokens: bool = True, allow_pickle: bool | None = None) -> VLMAdapter:
    """Load a VLM as a :class:`VLMAdapter`.

    ``name_or_path``: a preset (``qwen2.5-vl-tiny``, ``qwen3-vl-tiny``, ``internvl3.5-tiny``,
    ``qwen2.5-vl-3b-shallow``), a
    hub id or a local folder; a run folder resolves to its final model and a missing local path or
    an unreachable hub fails at once (``models.locate.resolve_model``). ``dtype``: ``float32`` |
    ``bfloat16`` | ``float16``. ``add_latent_tokens``: add the three latent tokens (no-op when the
    checkpoint has them). Weights load as safetensors only unless ``allow_pickle`` (default: the
    ``--allow-pickle`` flag, ``FOURDTHINKER_ALLOW_PICKLE``)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from transformers.utils import logging as hf_logging

    from fourdthinker.models.locate import allow_pickle_default, resolve_model

    hf_logging.disable_progress_bar()

    allow = allow_pickle_default() if allow_pickle is None else allow_pickle
    is_preset = name_or_path in PRESETS
    path = str(preset_dir(name_or_path)) if is_preset else resolve_model(name_or_path, allow_pickle=allow)
    fam = detect_family(path, trust_remote_code=trust_remote_code)
    td = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(dtype)
    if td is None:
        raise ValueError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}")
    model = AutoModelForImageTextToText.from_pretrained(
        path, dtype=td, attn_implementation=attn_implementation, trust_remote_code=trust_remote_code,
        use_safetensors=None if allow else True,
    ).to(device)
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    ad = _adapter_class(fam)(model, processor, name=name_or_path)
    if add_latent_tokens:
        ad.add_latent_tokens()
    model.eval()
    return ad


__all__ = ["PRESETS", "VLMAdapter", "load", "preset_dir", "detect_family"]
