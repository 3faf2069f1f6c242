"""SAM3 segmenter on the tiny random-init video model (real classes, no mocks)."""

import numpy as np
import torch

from fourdthinker.segment.sam3 import Sam3Segmenter, build_tiny_sam3


def test_sam3_tiny_text_prompted_tracking():
    torch.set_num_threads(2)
    model, proc = build_tiny_sam3(seed=0)
    seg = Sam3Segmenter(model=model, processor=proc)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(4)]
    masks = seg.segment(frames, "red cube", frame_indices=[0, 1, 2, 3])
    assert masks.shape == (4, 48, 64) and masks.dtype == bool
    # the forced object score makes the random tracker report a non-empty object
    assert masks.any(), "tiny SAM3 returned only empty masks"
