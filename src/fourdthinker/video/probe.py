"""Probe a video file: size, frame rate, frame count, duration, codec, keyframe spacing.

The keyframe interval is estimated by *demuxing* (no decoding) the packets of the first
``scan_s`` seconds and taking the median gap between keyframe packets; the sampler uses it to
choose between seeking and one sequential pass (see ``video.sample``).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from fourdthinker.video.errors import (
    CorruptVideoError,
    EmptyVideoError,
    NoVideoStreamError,
    UnsupportedCodecError,
    VideoNotFoundError,
)


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float
    n_frames: int
    duration_s: float
    width: int
    height: int
    codec: str
    keyframe_interval_s: float
    """Median spacing of keyframes in seconds (== duration when only one keyframe was seen)."""
    has_audio: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def check_file(path: str | os.PathLike) -> Path:
    """Existence / non-empty checks shared by every reader; raises the matching ``VideoError``."""
    p = Path(path)
    if not p.exists():
        raise VideoNotFoundError(p, "no such file")
    if not p.is_file():
        raise VideoNotFoundError(p, "not a regular file")
    if p.stat().st_size == 0:
        raise EmptyVideoError(p, "file is empty (0 bytes)")
    return p


def open_video(path: str | os.PathLike):
    """Open a container and return ``(container, video_stream)`` after every sanity check.

    Raises ``VideoNotFoundError``, ``EmptyVideoError``, ``CorruptVideoError``,
    ``NoVideoStreamError`` or ``UnsupportedCodecError``; the caller closes the container.
    """
    import av

    p = check_file(path)
    try:
        container = av.open(str(p), mode="r")
    except av.error.FFmpegError as e:  # InvalidDataError, "moov atom not found", ...
        raise CorruptVideoError(p, f"cannot parse container ({type(e).__name__}: {e.strerror or e})") from None
    except (OSError, ValueError) as e:
        raise CorruptVideoError(p, f"cannot open ({e})") from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams at all"]
        container.close()
        raise NoVideoStreamError(p, f"no video stream (found: {', '.join(kinds)})")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    name = getattr(ctx, "name", None) if ctx is not None else None
    if ctx is None or not name or name == "none":
        tag = getattr(stream, "codec_tag", "") or "?"
        container.close()
        raise UnsupportedCodecError(p, f"video codec not supported by this FFmpeg build (tag {tag!r})")
    if not ctx.width or not ctx.height:
        container.close()
        raise CorruptVideoError(p, "video stream has no frame size (damaged header)")
    return container, stream


def _fps(stream) -> float:
    for rate in (stream.average_rate, stream.base_rate, stream.guessed_rate):
        if rate:
            return float(rate)
    return 0.0


def probe(path: str | os.PathLike, *, scan_s: float = 30.0) -> VideoInfo:
    """Describe a video without decoding it. See the module docstring for the keyframe estimate."""
    container, stream = open_video(path)
    try:
        fps = _fps(stream)
        tb = float(stream.time_base) if stream.time_base else 0.0
        duration = 0.0
        if stream.duration and tb:
            duration = float(stream.duration * tb)
        elif container.duration:
            duration = container.duration / 1_000_000
        n_frames = int(stream.frames or 0)
        if not n_frames and duration and fps:
            n_frames = int(round(duration * fps))
        if not duration and n_frames and fps:
            duration = n_frames / fps
        start = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0

        key_times: list[float] = []
        try:
            for pkt in container.demux(stream):
                if pkt.pts is None or not pkt.size:
                    continue
                t = float(pkt.pts * tb) - start
                if pkt.is_keyframe:
                    key_times.append(t)
                if t > scan_s and len(key_times) >= 2:
                    break
        except Exception:  # noqa: BLE001 - a damaged tail only weakens the estimate
            pass
        if len(key_times) >= 2:
            gaps = sorted(b - a for a, b in zip(key_times, key_times[1:], strict=False) if b > a)
            kint = gaps[len(gaps) // 2] if gaps else max(duration, 1e-9)
        else:
            kint = max(duration, 1e-9)
        return VideoInfo(
            path=str(path),
            fps=fps,
            n_frames=n_frames,
            duration_s=duration,
            width=int(stream.codec_context.width),
            height=int(stream.codec_context.height),
            codec=str(stream.codec_context.name),
            keyframe_interval_s=float(kint),
            has_audio=bool(container.streams.audio),
        )
    finally:
        container.close()
