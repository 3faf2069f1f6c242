"""The ``sam3`` segmenter: text-prompted video tracking with transformers' SAM3 video classes.

``Sam3VideoProcessor.init_video_session`` -> ``add_text_prompt(description)`` ->
``Sam3VideoModel.propagate_in_video_iterator`` -> ``postprocess_outputs`` per frame. SAM3 may
find several instances of the prompt; we keep the one with the highest summed score over the
frames (the landmark is one object), empty masks where it is not tracked.

Weights: ``model_path`` is a local folder or a hub id (``facebook/sam3``), loaded with
``from_pretrained`` (safetensors; no remote code). :func:`build_tiny_sam3` builds the tiny
random-init model (a config known to run on transformers 5.x) so tests exercise the real code path offline (its
masks are meaningless, only their shapes are).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Sam3Segmenter:
    name = "sam3"

    def __init__(self, model_path: str | None = None, *, model: Any = None, processor: Any = None,
                 device: str = "cpu", dtype: str = "float32") -> None:
        self.model_path = model_path
        self.device, self.dtype = device, dtype
        self._model, self._proc = model, processor
        if model is None and model_path is None:
            raise ValueError("sam3 segmenter: give --sam3-model (a local folder or hub id such as facebook/sam3)")

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import Sam3VideoModel, Sam3VideoProcessor

        self._proc = Sam3VideoProcessor.from_pretrained(self.model_path)
        from fourdthinker.io import allow_pickle_default

        self._model = Sam3VideoModel.from_pretrained(  # safetensors only unless --allow-pickle (docs/errors.md)
            self.model_path, dtype=getattr(torch, self.dtype),
            use_safetensors=None if allow_pickle_default() else True).to(self.device).eval()

    def __getstate__(self) -> dict:  # worker processes load their own copy
        d = dict(self.__dict__)
        if self.model_path is not None:
            d["_model"] = d["_proc"] = None
        return d

    def segment(self, frames: list[np.ndarray], prompt: str, *, frame_indices: list[int] | None = None, clip: Any = None) -> np.ndarray:
        import torch

        self._load()
        if not frames:
            raise ValueError("sam3 segmenter: no frames")
        h, w = frames[0].shape[:2]
        sess = self._proc.init_video_session(video=list(frames), inference_device=self.device, dtype=getattr(torch, self.dtype))
        sess = self._proc.add_text_prompt(sess, prompt)
        per_frame: dict[int, dict] = {}
        with torch.no_grad():
            for out in self._model.propagate_in_video_iterator(inference_session=sess, max_frame_num_to_track=len(frames)):
                pp = self._proc.postprocess_outputs(sess, out)
                per_frame[int(out.frame_idx)] = pp
        score: dict[int, float] = {}
        for pp in per_frame.values():
            for oid, s in zip(pp["object_ids"].tolist(), pp["scores"].tolist(), strict=False):
                score[oid] = score.get(oid, 0.0) + float(s)
        masks = np.zeros((len(frames), h, w), dtype=bool)
        if not score:
            return masks
        best = max(score, key=lambda k: score[k])
        for t, pp in per_frame.items():
            ids = pp["object_ids"].tolist()
            if best in ids and 0 <= t < len(frames):
                masks[t] = pp["masks"][ids.index(best)].cpu().numpy().astype(bool)
        return masks


def build_tiny_sam3(seed: int = 0, image_size: int = 112):
    """(model, processor) of a tiny random-init SAM3 video model (a config probed to
    run on transformers 5.x; its pitfalls are commented inline). For tests and offline demos only."""
    import torch
    from transformers import (
        CLIPTokenizer,
        Sam3Config,
        Sam3ImageProcessor,
        Sam3TrackerVideoConfig,
        Sam3VideoConfig,
        Sam3VideoModel,
        Sam3VideoProcessor,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor

    torch.manual_seed(seed)
    B, D, S, P = 64, 128, image_size, 14
    vis = dict(backbone_config=dict(model_type="sam3_vit_model", hidden_size=B, intermediate_size=2 * B, num_hidden_layers=2,
                                    num_attention_heads=2, image_size=S, patch_size=P, window_size=4, global_attn_indexes=[1],
                                    pretrain_image_size=S),
               fpn_hidden_size=D, backbone_feature_sizes=[[4 * S // P] * 2, [2 * S // P] * 2, [S // P] * 2])
    det = Sam3Config(
        vision_config=vis,
        text_config=dict(vocab_size=1024, hidden_size=D, intermediate_size=2 * D, projection_dim=D, num_hidden_layers=2,
                         num_attention_heads=2, bos_token_id=0, eos_token_id=1, pad_token_id=1),
        geometry_encoder_config=dict(hidden_size=D, num_layers=1, num_attention_heads=2, intermediate_size=2 * D),
        detr_encoder_config=dict(hidden_size=D, num_layers=1, num_attention_heads=2, intermediate_size=2 * D),
        detr_decoder_config=dict(hidden_size=D, num_layers=1, num_attention_heads=2, intermediate_size=2 * D, num_queries=10),
        mask_decoder_config=dict(hidden_size=D, num_attention_heads=2))
    trk = Sam3TrackerVideoConfig(
        vision_config=vis, image_size=S,
        prompt_encoder_config=dict(hidden_size=D, image_size=S, patch_size=P, mask_input_channels=8),
        mask_decoder_config=dict(hidden_size=D, mlp_dim=2 * D, num_attention_heads=2, iou_head_hidden_dim=D),
        num_maskmem=3, memory_attention_hidden_size=D, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=2 * D, memory_encoder_hidden_size=D, memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=D, memory_fuser_num_layers=1, memory_fuser_embed_dim=D, memory_fuser_intermediate_dim=2 * D)
    cfg = Sam3VideoConfig(detector_config=det, tracker_config=trk, low_res_mask_size=4 * S // P, score_threshold_detection=0.0,
                          new_det_thresh=0.0, det_nms_thresh=0.0, hotstart_delay=0, max_num_objects=3)
    model = Sam3VideoModel(cfg).eval()
    with torch.no_grad():  # random weights: force "object present" so masks survive post-processing
        model.tracker_model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(5.0)
    b2u = bytes_to_unicode()
    specials = ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(specials + list(b2u.values()) + [c + "</w>" for c in b2u.values()])}
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    ip = Sam3ImageProcessor(size={"height": S, "width": S}, mask_size={"height": 4 * S // P, "width": 4 * S // P})
    vp = Sam2VideoVideoProcessor(size={"height": S, "width": S})
    return model, Sam3VideoProcessor(image_processor=ip, video_processor=vp, tokenizer=tok)
