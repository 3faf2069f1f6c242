"""Video I/O: probe, sample at a target FPS (seek or one sequential pass), cap to a pixel budget,
overlay masks (Eq. 1, docs/method.md#eq-1), write clips, contact sheets. Every bad file raises a ``VideoError``
subclass whose message is one line naming the file."""

from fourdthinker.lazy import lazy_exports

_EXPORTS = {  # loaded on first use (fourdthinker.lazy)
    **dict.fromkeys(["CorruptVideoError", "EmptyVideoError", "NoVideoStreamError", "UnsupportedCodecError", "VideoError",
                     "VideoNotFoundError"], "fourdthinker.video.errors"),
    **dict.fromkeys(["BLUE", "RED", "cap_pixels", "capped_size", "overlay"], "fourdthinker.video.overlay"),
    **dict.fromkeys(["VideoInfo", "probe"], "fourdthinker.video.probe"),
    **dict.fromkeys(["SampledFrames", "sample_frames", "sample_frames_naive", "target_times"], "fourdthinker.video.sample"),
    **dict.fromkeys(["contact_sheet", "save_png"], "fourdthinker.video.sheet"),
    "write_video": "fourdthinker.video.write",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "BLUE",
    "RED",
    "CorruptVideoError",
    "EmptyVideoError",
    "NoVideoStreamError",
    "SampledFrames",
    "UnsupportedCodecError",
    "VideoError",
    "VideoInfo",
    "VideoNotFoundError",
    "cap_pixels",
    "capped_size",
    "contact_sheet",
    "overlay",
    "probe",
    "sample_frames",
    "sample_frames_naive",
    "save_png",
    "target_times",
    "write_video",
]
