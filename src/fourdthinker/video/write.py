"""Write RGB frames to a video file with PyAV (H.264 via libx264, or MPEG-4 part 2)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from fourdthinker.io import atomic_path

CODECS = {"h264": "libx264", "libx264": "libx264", "mpeg4": "mpeg4"}


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float,
    codec: str = "h264",
    *,
    gop: int | None = None,
    crf: int = 18,
    preset: str = "veryfast",
    threads: int | None = None,
) -> Path:
    """Encode ``frames`` ([H, W, 3] uint8 RGB, all the same size, even H and W) to ``path``.

    ``codec``: ``"h264"`` (libx264, yuv420p, constant quality ``crf``) or ``"mpeg4"``.
    ``gop``: keyframe interval in frames (``None`` = the encoder's default, 250 for x264); a short
    GOP makes seeking cheap (see ``video.sample``). Frames are streamed, never all held in memory.
    Written atomically (temp file + rename). Returns the path.
    """
    import av

    path = Path(path)
    if codec not in CODECS:
        raise ValueError(f"{path}: unsupported codec {codec!r}; choose one of {sorted(set(CODECS))}")
    if not fps or fps <= 0:
        raise ValueError(f"{path}: fps must be > 0, got {fps}")
    rate = Fraction(fps).limit_denominator(1001)
    n = 0
    fmt = "mp4" if path.suffix in ("", ".mp4") else None
    with atomic_path(path, suffix=path.suffix or ".mp4") as tmp, av.open(str(tmp), mode="w", format=fmt) as out:
        stream = None
        for frame in frames:
            frame = np.asarray(frame)
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"{path}: frame {n} must be [H, W, 3] uint8, got {frame.shape} {frame.dtype}")
            if stream is None:
                h, w = frame.shape[:2]
                if h % 2 or w % 2:
                    raise ValueError(f"{path}: frame size {w}x{h} must be even for yuv420p")
                stream = out.add_stream(CODECS[codec], rate=rate)
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                opts: dict[str, str] = {}
                if CODECS[codec] == "libx264":
                    opts = {"crf": str(crf), "preset": preset}
                else:
                    stream.bit_rate = max(400_000, int(w * h * float(rate) * 0.5))  # ~0.5 bit/pixel
                if gop is not None:
                    stream.codec_context.gop_size = int(gop)
                    if CODECS[codec] == "libx264":
                        opts.update({"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"})
                if threads is not None:
                    stream.codec_context.thread_count = threads
                stream.options = opts
            elif frame.shape[:2] != (stream.height, stream.width):
                raise ValueError(f"{path}: frame {n} has size {frame.shape[:2]}, expected "
                                 f"{(stream.height, stream.width)}")
            for pkt in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(pkt)
            n += 1
        if stream is None:
            raise ValueError(f"{path}: no frames to write")
        for pkt in stream.encode():
            out.mux(pkt)
    path.chmod(0o644)  # temp files are created 0600
    return path
