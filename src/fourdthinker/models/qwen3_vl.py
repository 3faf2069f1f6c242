"""Qwen3-VL adapter (stock ``Qwen3VLForConditionalGeneration``) and its tiny preset.

Same protocol as Qwen2.5-VL (M-RoPE via ``get_rope_index`` + ``mm_token_type_ids``), with the
Qwen3 differences: patch 16, per-frame timestamps written into the prompt by the processor
(``<t seconds>``; needs video metadata, which we pass), interleaved M-RoPE, and DeepStack (visual
features also injected into early LM layers) — which is why training/prefill go through the
model's own forward with the pixel values (``VLMAdapter.forward(batch, ...)``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from fourdthinker.models.base import FamilyInfo
from fourdthinker.models.qwen2_5_vl import Qwen25VLAdapter


class Qwen3VLAdapter(Qwen25VLAdapter):
    info = FamilyInfo(family="qwen3_vl", mrope=True)


TINY_TEXT = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=64, max_position_embeddings=4096)
TINY_FRAME_PIXELS = 128 * 128  # patch 16, merge 2 -> multiples of 32


def build_tiny(out_dir: str | Path, seed: int = 0) -> Path:
    """Random-init tiny Qwen3-VL (real class) + offline tokenizer + stock processor, saved as an HF folder."""
    from transformers import (
        AutoTokenizer,
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
    )
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    from fourdthinker.models.base import padded_vocab_size
    from fourdthinker.models.tokenizer import cached_tokenizer_dir

    tok = AutoTokenizer.from_pretrained(cached_tokenizer_dir("qwen3_vl"))
    ID = tok.convert_tokens_to_ids
    H = TINY_TEXT["hidden_size"]
    half = TINY_TEXT["head_dim"] // 2
    sec = [half // 2, half // 4, half - half // 2 - half // 4]
    cfg = Qwen3VLConfig(
        text_config=dict(**TINY_TEXT, vocab_size=padded_vocab_size(len(tok)),
                         rope_parameters=dict(rope_type="default", rope_theta=1e4, mrope_section=sec,
                                              mrope_interleaved=True),
                         bos_token_id=ID("<|endoftext|>"), eos_token_id=ID("<|im_end|>"), pad_token_id=ID("<|endoftext|>")),
        vision_config=dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=H,
                           patch_size=16, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=64,
                           deepstack_visual_indexes=[0, 1]),
        image_token_id=ID("<|image_pad|>"), video_token_id=ID("<|video_pad|>"),
        vision_start_token_id=ID("<|vision_start|>"), vision_end_token_id=ID("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(cfg)
    model.generation_config.eos_token_id = [ID("<|im_end|>")]
    model.generation_config.pad_token_id = ID("<|endoftext|>")
    kw = dict(patch_size=16, merge_size=2, temporal_patch_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    ip = Qwen2VLImageProcessor(min_pixels=32 * 32, max_pixels=TINY_FRAME_PIXELS, **kw)
    vp = Qwen3VLVideoProcessor(size={"shortest_edge": 32 * 32, "longest_edge": TINY_FRAME_PIXELS * 64},
                               do_sample_frames=False, **kw)
    proc = Qwen3VLProcessor(image_processor=ip, tokenizer=tok, video_processor=vp, chat_template=tok.chat_template)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    proc.save_pretrained(out_dir)
    return out_dir
