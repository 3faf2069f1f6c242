"""Video I/O: probe, sample at a target FPS (seek or one sequential pass), cap to a pixel budget,
overlay masks (Eq. 1, docs/method.md#eq-1), write clips, contact sheets. Every bad file raises a ``VideoError``
subclass whose message is one line naming the file."""

from fourdthinker.video.errors import (
    CorruptVideoError,
    EmptyVideoError,
    NoVideoStreamError,
    UnsupportedCodecError,
    VideoError,
    VideoNotFoundError,
)
from fourdthinker.video.overlay import BLUE, RED, cap_pixels, capped_size, overlay
from fourdthinker.video.probe import VideoInfo, probe
from fourdthinker.video.sample import SampledFrames, sample_frames, sample_frames_naive, target_times
from fourdthinker.video.sheet import contact_sheet, save_png
from fourdthinker.video.write import write_video

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
