"""The ``gt`` segmenter: returns the synthetic world's own masks (``masks.npz``).

The prompt must name one of the clip's two objects (its ``name`` or ``description`` from
truth.json, case-insensitive, either containing the other); a prompt naming an object the clip does
not have raises :class:`SegmentationError` (what an oracle hallucinating an object looks like).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fourdthinker.segment.base import SegmentationError


def _norm(s: str) -> str:
    return " ".join(s.lower().replace("the ", " ").split())


class GTSegmenter:
    name = "gt"

    def segment(self, frames: list[np.ndarray], prompt: str, *, frame_indices: list[int], clip: Any = None) -> np.ndarray:
        truth = getattr(clip, "truth", None)
        if truth is None:
            raise SegmentationError("gt segmenter needs a world clip with truth.json and masks.npz")
        p = _norm(prompt)
        role = None
        for r, obj in (("static", truth.static_object), ("dynamic", truth.dynamic_object)):
            for cand in (obj.name, obj.description):
                c = _norm(cand)
                if c and (c == p or c in p or p in c):
                    role = r
                    break
            if role:
                break
        if role is None:
            raise SegmentationError(f"no object in clip {truth.clip_id} matches {prompt!r} "
                                    f"(has {truth.static_object.name!r}, {truth.dynamic_object.name!r})")
        masks = clip.masks_static if role == "static" else clip.masks_dynamic
        if masks is None:
            raise SegmentationError(f"clip {truth.clip_id} has no masks.npz")
        idx = np.asarray(frame_indices)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(masks)):
            raise SegmentationError(f"clip {truth.clip_id}: frame index {int(idx.max())} outside its {len(masks)} masks")
        out = np.asarray(masks[idx], dtype=bool)
        if frames and out.shape[1:] != frames[0].shape[:2]:
            raise SegmentationError(f"clip {truth.clip_id}: masks {out.shape[1:]} do not match frames {frames[0].shape[:2]}")
        return out
