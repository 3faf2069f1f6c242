"""The synthetic 4D world: procedurally generated clips with exact truth.

``generate_world(out_dir, n_videos, seed)`` writes clip folders (contract in ``world.truth``);
``load_clip(clip_dir)`` reads one back. Geometry conventions: ``world.camera``; label rules:
``world.motion``; renderer: ``world.render``; one clip: ``world.clipgen``.
"""

from fourdthinker.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["ClipData", "ClipError", "is_complete_clip", "load_clip"], "fourdthinker.world.clip"),
    "WorldConfig": "fourdthinker.world.config",
    **dict.fromkeys(["generate_world", "label_distribution", "print_label_table", "write_clip"],
                    "fourdthinker.world.generate"),
    **dict.fromkeys(["ClipMeta", "ClipTruth"], "fourdthinker.world.truth"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
