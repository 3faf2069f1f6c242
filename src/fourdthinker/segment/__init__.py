"""Segmenters: text-prompted video masks (gt | sam3)."""

from fourdthinker.lazy import lazy_exports

__all__ = ["SegmentationError", "Segmenter", "make_segmenter"]
__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(__all__, "fourdthinker.segment.base"))
