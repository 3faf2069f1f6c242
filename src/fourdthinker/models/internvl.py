"""InternVL3.5 adapter (HF-format, stock ``InternVLForConditionalGeneration``) and its tiny preset.

Video frames are fed the InternVL way: each frame is one image tile of ``image_size`` pixels,
written into the prompt as ``FrameN: <img><IMG_CONTEXT>*n</img>`` by the stock processor.
The LM is a plain Qwen2/Qwen3 decoder with 1-D RoPE, so positions are ``[B, L]`` (pad-aware
``cumsum(mask) - 1``). Latent targets come from ``vision_tower`` + pixel shuffle +
``multi_modal_projector`` (``get_image_features(...).pooler_output``): the LM-space vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fourdthinker.models.base import FamilyInfo, ImageLike, VLMAdapter, to_pil
from fourdthinker.models.qwen2_5_vl import unwrap


class InternVLAdapter(VLMAdapter):
    info = FamilyInfo(family="internvl", mrope=False)

    @property
    def core(self):
        return unwrap(self.model).model

    @property
    def image_token_id(self) -> int:
        return int(unwrap(self.model).config.image_token_id)

    def encode_one(self, frames: Sequence[ImageLike], text: str, fps: float | None = None) -> dict[str, Any]:
        if len(frames) == 0:
            raise ValueError("encode_one: no video frames")
        vid = [to_pil(f, what=f"frame {i}") for i, f in enumerate(frames)]
        out = self.processor(text=[self.prompt_text(text)], videos=[vid], return_tensors="pt", do_sample_frames=False)
        return dict(out)

    def visual_kwargs(self, batch: dict[str, Any]) -> dict[str, Any]:
        if batch.get("pixel_values") is None:
            return {}
        return {"pixel_values": batch["pixel_values"].to(self.device, self.dtype)}

    @torch.no_grad()
    def visual_features(self, batch):
        if batch.get("pixel_values") is None:
            return None, None
        vo = self.core.get_image_features(pixel_values=batch["pixel_values"].to(self.device, self.dtype),
                                          return_dict=True)
        feats = vo.pooler_output  # [n_tiles, n_tok, D]
        return feats.reshape(-1, feats.shape[-1]), batch["input_ids"] == self.image_token_id

    @torch.no_grad()
    def image_embeddings(self, images: Sequence[ImageLike]) -> list[torch.Tensor]:
        if len(images) == 0:
            return []
        pils = [to_pil(im, what=f"imagery image {i}") for i, im in enumerate(images)]
        ip = self.processor.image_processor
        px = ip(images=pils, crop_to_patches=False, return_tensors="pt")
        vo = self.core.get_image_features(pixel_values=px["pixel_values"].to(self.device, self.dtype),
                                          return_dict=True)
        return [e.detach() for e in vo.pooler_output]  # one tile per image (no crop): [n_tok, D] each

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        sd = {f"model.vision_tower.{k}": v for k, v in self.core.vision_tower.state_dict().items()}
        sd.update({f"model.multi_modal_projector.{k}": v for k, v in self.core.multi_modal_projector.state_dict().items()})
        return sd

    def freeze_visual(self) -> list[str]:
        names = []
        for prefix, mod in (("model.vision_tower", self.core.vision_tower),
                            ("model.multi_modal_projector", self.core.multi_modal_projector)):
            for n, p in mod.named_parameters():
                p.requires_grad_(False)
                names.append(f"{prefix}.{n}")
            mod.eval()
        return names


TINY_SIZE = 112  # one 112x112 tile per frame/overlay -> 8x8 patches -> pixel shuffle 0.5 -> 16 tokens


def build_tiny(out_dir: str | Path, seed: int = 0) -> Path:
    """Random-init tiny InternVL (real class, Qwen2 LM) + offline tokenizer + stock processor."""
    from transformers import (
        AutoTokenizer,
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
    )
    from transformers.models.internvl.video_processing_internvl import InternVLVideoProcessor

    from fourdthinker.models.base import padded_vocab_size
    from fourdthinker.models.tokenizer import cached_tokenizer_dir

    tok = AutoTokenizer.from_pretrained(cached_tokenizer_dir("internvl"))
    ID = tok.convert_tokens_to_ids
    H = 256
    n_tok = (TINY_SIZE // 14) ** 2 // 4
    cfg = InternVLConfig(
        vision_config=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                           image_size=[TINY_SIZE, TINY_SIZE], patch_size=[14, 14]),
        text_config=dict(model_type="qwen2", vocab_size=padded_vocab_size(len(tok)), hidden_size=H, intermediate_size=512,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, bos_token_id=ID("<|endoftext|>"), eos_token_id=ID("<|im_end|>"),
                         pad_token_id=ID("<|endoftext|>"), tie_word_embeddings=False),
        image_token_id=ID("<IMG_CONTEXT>"), image_seq_length=n_tok, downsample_ratio=0.5,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(cfg)
    model.generation_config.eos_token_id = [ID("<|im_end|>")]
    model.generation_config.pad_token_id = ID("<|endoftext|>")
    size = {"height": TINY_SIZE, "width": TINY_SIZE}
    ip = GotOcr2ImageProcessor(size=size, crop_to_patches=False)
    vp = InternVLVideoProcessor(size=size, do_sample_frames=False)
    proc = InternVLProcessor(image_processor=ip, tokenizer=tok, video_processor=vp, image_seq_length=n_tok,
                             chat_template=tok.chat_template)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    proc.save_pretrained(out_dir)
    return out_dir
