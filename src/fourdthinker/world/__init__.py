"""The synthetic 4D world: procedurally generated clips with exact truth.

``generate_world(out_dir, n_videos, seed)`` writes clip folders (contract in ``world.truth``);
``load_clip(clip_dir)`` reads one back. Geometry conventions: ``world.camera``; label rules:
``world.motion``; renderer: ``world.render``; one clip: ``world.clipgen``.
"""

from fourdthinker.world.clip import ClipData, ClipError, is_complete_clip, load_clip
from fourdthinker.world.config import WorldConfig
from fourdthinker.world.generate import generate_world, label_distribution, print_label_table, write_clip
from fourdthinker.world.truth import ClipMeta, ClipTruth

__all__ = [
    "ClipData",
    "ClipError",
    "ClipMeta",
    "ClipTruth",
    "WorldConfig",
    "generate_world",
    "is_complete_clip",
    "label_distribution",
    "load_clip",
    "print_label_table",
    "write_clip",
]
