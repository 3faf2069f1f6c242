"""Segmenters: text-prompted video masks (gt | sam3)."""

from fourdthinker.segment.base import SegmentationError, Segmenter, make_segmenter

__all__ = ["SegmentationError", "Segmenter", "make_segmenter"]
