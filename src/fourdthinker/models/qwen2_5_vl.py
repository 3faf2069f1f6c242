"""Qwen2.5-VL adapter (stock ``Qwen2_5_VLForConditionalGeneration``) and its tiny preset.

Video frames go through the stock ``Qwen2VLVideoProcessor`` (patch 14, temporal patch 2, merge 2);
positions are 3-D M-RoPE from the stock ``get_rope_index``, which needs ``mm_token_type_ids``
(0 text, 1 image, 2 video): without them the model silently falls back to 1-D positions
(transformers 5.x behaviour). We always compute positions ourselves and pass them explicitly.
Latent targets come from ``model.visual`` (ViT + PatchMerger): the vectors the LM sees for an image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fourdthinker.models.base import FamilyInfo, ImageLike, VLMAdapter, to_pil


def unwrap(model):
    """The stock ``*ForConditionalGeneration`` under PEFT/accelerate wrappers."""
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return getattr(model, "module", model)


def video_metadata(n_frames: int, fps: float):
    from transformers.video_utils import VideoMetadata

    return VideoMetadata(total_num_frames=n_frames, fps=fps, frames_indices=list(range(n_frames)))


class Qwen25VLAdapter(VLMAdapter):
    """Qwen2.5-VL. Also the base of the Qwen3-VL adapter (same processor/M-RoPE protocol)."""

    info = FamilyInfo(family="qwen2_5_vl", mrope=True)
    frames_fps: float = 1.0  # frames are sampled at 1 FPS (docs/method.md#frames); sets temporal M-RoPE spacing

    @property
    def core(self):
        """The stock ``Qwen2_5_VLModel`` (holds ``visual``, ``language_model``, ``get_rope_index``)."""
        return unwrap(self.model).model

    @property
    def image_token_id(self) -> int:
        return int(unwrap(self.model).config.image_token_id)

    @property
    def video_token_id(self) -> int:
        return int(unwrap(self.model).config.video_token_id)

    def encode_one(self, frames: Sequence[ImageLike], text: str, fps: float | None = None) -> dict[str, Any]:
        if len(frames) == 0:
            raise ValueError("encode_one: no video frames")
        vid = [to_pil(f, what=f"frame {i}") for i, f in enumerate(frames)]
        out = self.processor(
            text=[self.prompt_text(text)],
            videos=[vid],
            video_metadata=[video_metadata(len(vid), fps or self.frames_fps)],
            return_tensors="pt",
            do_sample_frames=False,
            cap_pixels_per_frame=True,
        )
        out.pop("video_metadata", None)
        return dict(out)

    def visual_kwargs(self, batch: dict[str, Any]) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        for k in ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts", "pixel_values", "image_grid_thw"):
            if batch.get(k) is not None:
                v = batch[k].to(self.device)
                kw[k] = v.to(self.dtype) if v.is_floating_point() and k.startswith("pixel") else v
        return kw

    def mm_token_type_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """0 text, 1 image, 2 video per token (latent and response tokens are text)."""
        t = torch.zeros_like(input_ids, dtype=torch.int32)
        t[input_ids == self.image_token_id] = 1
        t[input_ids == self.video_token_id] = 2
        return t

    def position_ids(self, batch, input_ids=None, attention_mask=None) -> torch.Tensor:
        ids = batch["input_ids"] if input_ids is None else input_ids
        mask = batch["attention_mask"] if attention_mask is None else attention_mask
        kw = {}
        if batch.get("second_per_grid_ts") is not None and self.info.family == "qwen2_5_vl":
            kw["second_per_grid_ts"] = batch["second_per_grid_ts"]
        pos, _ = self.core.get_rope_index(
            ids,
            self.mm_token_type_ids(ids),
            image_grid_thw=batch.get("image_grid_thw"),
            video_grid_thw=batch.get("video_grid_thw"),
            attention_mask=mask,
            **kw,
        )
        return pos  # [3, B, L]

    @torch.no_grad()
    def visual_features(self, batch):
        if batch.get("pixel_values_videos") is None:
            return None, None
        vo = self.core.get_video_features(
            batch["pixel_values_videos"].to(self.device, self.dtype), batch["video_grid_thw"].to(self.device),
            return_dict=True,
        )
        return torch.cat(list(vo.pooler_output), 0), batch["input_ids"] == self.video_token_id

    def overlay_size(self) -> dict[str, int]:
        ip = self.processor.image_processor
        size = dict(ip.size.items()) if hasattr(ip.size, "items") else vars(ip.size)
        longest = size.get("longest_edge") or getattr(ip, "max_pixels", None) or self.overlay_max_pixels
        shortest = size.get("shortest_edge") or getattr(ip, "min_pixels", None) or 56 * 56
        return {"shortest_edge": int(shortest), "longest_edge": int(min(longest, self.overlay_max_pixels))}

    @torch.no_grad()
    def image_embeddings(self, images: Sequence[ImageLike]) -> list[torch.Tensor]:
        if len(images) == 0:
            return []
        pils = [to_pil(im, what=f"imagery image {i}") for i, im in enumerate(images)]
        px = self.processor.image_processor(images=pils, size=self.overlay_size(), return_tensors="pt")
        vo = self.core.get_image_features(
            px["pixel_values"].to(self.device, self.dtype), px["image_grid_thw"].to(self.device), return_dict=True
        )
        return [e.detach() for e in vo.pooler_output]

    @torch.no_grad()
    def pair_embeddings(self, pairs: Sequence[tuple[ImageLike, ImageLike]]) -> list[torch.Tensor]:
        """Each (a, b) as one 2-frame clip: the image processor's patches of ``a`` fill the first slot
        of the temporal patch and those of ``b`` the second (it repeats a lone image over both, so
        (a, a) is exactly ``image_embeddings([a])``). Both images must have the same size."""
        if len(pairs) == 0:
            return []
        ip = self.processor.image_processor
        t, c, ps = int(ip.temporal_patch_size), 3, int(ip.patch_size)
        if t != 2:
            raise NotImplementedError(f"pair targets need a temporal patch of 2 frames; this processor's is {t}")
        px = []
        for slot in range(2):
            pils = [to_pil(pr[slot], what=f"imagery pair {i} image {slot}") for i, pr in enumerate(pairs)]
            px.append(ip(images=pils, size=self.overlay_size(), return_tensors="pt"))
        if not torch.equal(px[0]["image_grid_thw"], px[1]["image_grid_thw"]):
            raise ValueError("pair targets: the two images of a pair differ in size "
                             f"({px[0]['image_grid_thw'].tolist()} vs {px[1]['image_grid_thw'].tolist()} patches)")
        a, b = (x["pixel_values"].view(-1, c, t, ps, ps) for x in px)  # each row: (channel, time, patch, patch)
        both = torch.cat([a[:, :, :1], b[:, :, 1:]], 2).reshape(px[0]["pixel_values"].shape)
        vo = self.core.get_image_features(both.to(self.device, self.dtype), px[0]["image_grid_thw"].to(self.device),
                                          return_dict=True)
        return [e.detach() for e in vo.pooler_output]

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        return {f"model.visual.{k}": v for k, v in self.core.visual.state_dict().items()}

    def freeze_visual(self) -> list[str]:
        names = []
        for n, p in self.core.visual.named_parameters():
            p.requires_grad_(False)
            names.append(f"model.visual.{n}")
        self.core.visual.eval()
        return names


# ---------------------------------------------------------------------- tiny preset
TINY_TEXT = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=4096)
TINY_FRAME_PIXELS = 112 * 112  # frames and overlays -> 8x8 patches -> 16 LM tokens per image


def _save_random_init(out_dir: str | Path, seed: int, *, text: dict, vision: dict, tie: bool, image_kw: dict,
                      video_kw: dict, dtype: torch.dtype | None = None) -> Path:
    """The one builder behind both presets: a random-init ``Qwen2_5_VLForConditionalGeneration`` of
    ``text``/``vision`` config (vocabulary size in ``text``), the package's offline tokenizer, stock
    image/video processors, saved as an HF folder. Deterministic for a given ``seed``."""
    from transformers import (
        AutoTokenizer,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    from fourdthinker.models.tokenizer import cached_tokenizer_dir

    tok = AutoTokenizer.from_pretrained(cached_tokenizer_dir("qwen2_5_vl"))
    ID = tok.convert_tokens_to_ids
    cfg = Qwen2_5_VLConfig(
        text_config=dict(**text, bos_token_id=ID("<|endoftext|>"), eos_token_id=ID("<|im_end|>"),
                         pad_token_id=ID("<|endoftext|>")),
        vision_config=vision,
        image_token_id=ID("<|image_pad|>"), video_token_id=ID("<|video_pad|>"),
        vision_start_token_id=ID("<|vision_start|>"), vision_end_token_id=ID("<|vision_end|>"),
        tie_word_embeddings=tie,
    )
    torch.manual_seed(seed)
    if dtype is None:
        model = Qwen2_5_VLForConditionalGeneration(cfg)
    else:  # e.g. bf16: init in the saved dtype, half the RAM
        model = Qwen2_5_VLForConditionalGeneration._from_config(cfg, dtype=dtype)
    model.generation_config.eos_token_id = [ID("<|im_end|>")]
    model.generation_config.pad_token_id = ID("<|endoftext|>")
    kw = dict(patch_size=14, merge_size=2, temporal_patch_size=2)
    ip = Qwen2VLImageProcessor(**image_kw, **kw)
    vp = Qwen2VLVideoProcessor(do_sample_frames=False, **video_kw, **kw)
    proc = Qwen2_5_VLProcessor(image_processor=ip, tokenizer=tok, video_processor=vp, chat_template=tok.chat_template)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    proc.save_pretrained(out_dir)
    return out_dir


def build_tiny(out_dir: str | Path, seed: int = 0, layers: int = TINY_TEXT["num_hidden_layers"]) -> Path:
    """Random-init tiny Qwen2.5-VL (real class) + offline tokenizer + stock processor, saved as an
    HF folder. Deterministic for a given ``seed``. ``layers``: LM depth (the tiny preset's 2; the
    ``-deep`` preset's 4, same widths and vision tower)."""
    from transformers import AutoTokenizer

    from fourdthinker.models.base import padded_vocab_size
    from fourdthinker.models.tokenizer import cached_tokenizer_dir

    n_tok = len(AutoTokenizer.from_pretrained(cached_tokenizer_dir("qwen2_5_vl")))
    head_dim = TINY_TEXT["hidden_size"] // TINY_TEXT["num_attention_heads"]
    half = head_dim // 2
    sec = [half // 4, 3 * half // 8, half - half // 4 - 3 * half // 8]
    text = dict(TINY_TEXT, num_hidden_layers=layers, vocab_size=padded_vocab_size(n_tok),
                rope_parameters=dict(rope_type="default", rope_theta=1e4, mrope_section=sec))
    vision = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=TINY_TEXT["hidden_size"],
                  patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                  fullatt_block_indexes=[1], tokens_per_second=2)
    return _save_random_init(out_dir, seed, text=text, vision=vision, tie=False,
                             image_kw=dict(min_pixels=28 * 28, max_pixels=TINY_FRAME_PIXELS),
                             video_kw=dict(size={"shortest_edge": 28 * 28, "longest_edge": TINY_FRAME_PIXELS * 64}))


def build_tiny_deep(out_dir: str | Path, seed: int = 0) -> Path:
    """The tiny preset with 4 LM layers instead of 2 (``qwen2.5-vl-tiny-deep``): more hops between
    the latent slots and the answer, at about twice the text compute."""
    return build_tiny(out_dir, seed, layers=4)


# ---------------------------------------------------------------------- full-width shallow preset
# Qwen2.5-VL-3B-Instruct's config.json (hub revision of 2025), every width kept, depth cut to 2 + 2:
# real tensor shapes (hidden 2048, 151,936-row tied vocabulary, 1280-wide ViT) on a CPU, for the
# scale benchmarks and the slow full-width test. Random init; the tokenizer is the package's
# offline one (a few hundred tokens), so the embedding matrix is padded to the real 151,936 rows --
# the same padded-vocabulary situation as the real checkpoint (151,665 tokens in 151,936 rows).
QWEN25_VL_3B_TEXT = dict(hidden_size=2048, intermediate_size=11008, num_attention_heads=16, num_key_value_heads=2,
                         hidden_act="silu", rms_norm_eps=1e-6, max_position_embeddings=128000,
                         max_window_layers=70, sliding_window=32768, use_sliding_window=False)
QWEN25_VL_3B_VOCAB = 151_936
QWEN25_VL_3B_ROPE = dict(rope_type="default", rope_theta=1_000_000.0, mrope_section=[16, 24, 24])
QWEN25_VL_3B_VISION = dict(hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048, hidden_act="silu",
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                           tokens_per_second=2)
SHALLOW_LM_LAYERS = 2
SHALLOW_VISION_BLOCKS = 2
# the real preprocessor_config.json's image pixel bounds (video: the stock video processor's)
QWEN25_VL_IMAGE_PIXELS = dict(min_pixels=3136, max_pixels=12_845_056)
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def build_3b_shallow(out_dir: str | Path, seed: int = 0) -> Path:
    """Random-init Qwen2.5-VL with the 3B's widths, heads, KV heads, intermediate sizes, tied
    151,936-row vocabulary and 1280-wide vision tower, but 2 LM layers and 2 vision blocks
    (~0.54 B parameters). Saved in bf16 like the real checkpoint (~1.1 GB on disk; ``load`` upcasts
    to the requested dtype). Deterministic for a given ``seed``."""
    from transformers import AutoTokenizer

    from fourdthinker.models.tokenizer import cached_tokenizer_dir

    n_tok = len(AutoTokenizer.from_pretrained(cached_tokenizer_dir("qwen2_5_vl")))
    if n_tok + 3 > QWEN25_VL_3B_VOCAB:  # pragma: no cover - the offline tokenizer is tiny
        raise ValueError(f"offline tokenizer ({n_tok} tokens) does not fit the 3B vocabulary")
    # the last real block index of a 2-block tower does full attention (the 3B: blocks 7, 15, 23, 31)
    vision = dict(**QWEN25_VL_3B_VISION, depth=SHALLOW_VISION_BLOCKS, fullatt_block_indexes=[SHALLOW_VISION_BLOCKS - 1])
    text = dict(**QWEN25_VL_3B_TEXT, num_hidden_layers=SHALLOW_LM_LAYERS, vocab_size=QWEN25_VL_3B_VOCAB,
                rope_parameters=QWEN25_VL_3B_ROPE, tie_word_embeddings=True)
    clip = dict(image_mean=CLIP_MEAN, image_std=CLIP_STD)
    return _save_random_init(out_dir, seed, text=text, vision=vision, tie=True, dtype=torch.bfloat16,
                             image_kw={**QWEN25_VL_IMAGE_PIXELS, **clip}, video_kw=clip)
