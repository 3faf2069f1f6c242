"""The segmenter protocol: text-prompted video object tracking (docs/method.md#masks).

``segment(frames, prompt, *, frame_indices, clip) -> [N, H, W] bool`` — one mask per given
frame, for the single object the prompt describes (empty where it is not visible).
Backends: ``gt`` (the synthetic world's masks; the default offline path) and ``sam3``
(transformers' ``Sam3VideoModel`` + ``Sam3VideoProcessor``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


class SegmentationError(RuntimeError):
    """The segmenter could not produce masks for the prompt (unknown object, no masks on disk)."""


@runtime_checkable
class Segmenter(Protocol):
    name: str

    def segment(self, frames: list[np.ndarray], prompt: str, *, frame_indices: list[int], clip: Any = None) -> np.ndarray: ...


def make_segmenter(name: str, **kw: Any) -> Segmenter:
    if name == "gt":
        from fourdthinker.segment.gt import GTSegmenter

        return GTSegmenter()
    if name == "sam3":
        from fourdthinker.segment.sam3 import Sam3Segmenter

        return Sam3Segmenter(**kw)
    raise ValueError(f"unknown segmenter {name!r}; choose 'gt' (world masks) or 'sam3'")
