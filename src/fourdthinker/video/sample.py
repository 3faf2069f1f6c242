"""Sample frames from a video at a target FPS (default 1, as in the paper), fast and in bounded memory.

Which frames: targets are ``t_k = k / fps`` for ``k = 0, 1, ...`` up to the last frame's time; each
target takes the video frame *nearest* to it (the first frame whose timestamp is >= t_k - half a
frame period). ``frame_indices`` are those frames' indices in the video (timestamp * video fps,
rounded), which is how the data pipeline picks the matching per-frame masks.

How (chosen per file from ``probe``'s keyframe spacing; ``method=`` forces one):

* ``"seek"`` when keyframes are at least as dense as the sampling interval
  (``keyframe_interval_s <= 1 / fps``): for each target, seek to the keyframe before it and decode
  only the few frames up to it. A target closer than one keyframe interval to the previous one is
  reached by decoding on instead of seeking (never worse than a seek).
* ``"sequential"`` otherwise (e.g. x264's default 250-frame GOP): one pass over the stream with
  threaded decoding (``thread_type = "AUTO"``), converting to RGB **only** the frames that are kept.
  Seeking would decode most of each GOP anyway.

Both paths keep only the sampled frames in memory (no list of all decoded frames), so memory is
bounded by ``max_frames`` x frame size regardless of the video's length. Both convert the same
decoded frame the same way, so their outputs are bit-identical (a test checks this).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from fourdthinker.video.errors import CorruptVideoError
from fourdthinker.video.overlay import capped_size
from fourdthinker.video.probe import VideoInfo, open_video, probe


@dataclass
class SampledFrames:
    frames: list[np.ndarray]
    """[H, W, 3] uint8 RGB, one per sample, in time order."""
    times_s: list[float]
    """Timestamp (s, from the stream start) of the video frame each sample came from."""
    frame_indices: list[int]
    """Index of that frame in the video (0-based); use it to pick per-frame masks."""
    target_times_s: list[float]
    info: VideoInfo
    method: str
    missing_times_s: list[float] = field(default_factory=list)
    """Targets the stream ended before reaching (a truncated file); empty for a healthy file."""

    def __len__(self) -> int:
        return len(self.frames)


def target_times(duration_s: float, video_fps: float, fps: float = 1.0, max_frames: int | None = None,
                 window: tuple[float, float] | None = None) -> list[float]:
    """``t_k = k / fps`` for every ``t_k`` at or before the last frame's time (``duration - 1/video_fps``).
    With ``window = (a, b)`` (seconds), only the span asked about: ``t_k = a + k / fps`` for every
    ``t_k <= min(b, last)``. With ``max_frames``, keep ``max_frames`` of them evenly spread
    (``linspace`` over the list, first and last always kept)."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    last = max(0.0, duration_s - (1.0 / video_fps if video_fps else 0.0))
    a = 0.0
    if window is not None:
        a, b = float(window[0]), float(window[1])
        if not 0.0 <= a < b:
            raise ValueError(f"window must be (start, end) seconds with 0 <= start < end, got {tuple(window)}")
        if a > last + 1e-6:
            raise ValueError(f"window starts at {a:g}s, after the video's last frame ({last:.2f}s)")
        last = min(last, b)
    n = int(math.floor((last - a) * fps + 1e-6)) + 1
    times = [a + k / fps for k in range(n)]
    if max_frames is not None:
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        if len(times) > max_frames:
            idx = np.unique(np.round(np.linspace(0, len(times) - 1, max_frames)).astype(int))
            times = [times[i] for i in idx]
    return times


def _to_rgb(frame, size_hw: tuple[int, int] | None) -> np.ndarray:
    if size_hw is None or (size_hw[0] == frame.height and size_hw[1] == frame.width):
        return frame.to_ndarray(format="rgb24")
    return frame.reformat(width=size_hw[1], height=size_hw[0], format="rgb24", interpolation="AREA").to_ndarray()


def sample_frames(
    path: str | os.PathLike,
    fps: float = 1.0,
    *,
    max_pixels: int | None = None,
    max_frames: int | None = None,
    method: str = "auto",
    window: tuple[float, float] | None = None,
) -> SampledFrames:
    """Sample ``path`` at ``fps`` frames per second (see the module docstring for which frames and
    how). ``max_pixels`` caps each frame's H*W keeping the aspect ratio (``overlay.capped_size``);
    ``max_frames`` spreads at most that many samples evenly over the video (over ``window = (a, b)``
    seconds when given: only that span is sampled, see ``target_times``). ``method``: ``"auto"``,
    ``"seek"`` or ``"sequential"``. Raises a ``VideoError`` subclass for a bad file."""
    if method not in ("auto", "seek", "sequential"):
        raise ValueError(f"method must be auto|seek|sequential, got {method!r}")
    info = probe(path)
    vfps = info.fps or 30.0
    targets = target_times(info.duration_s, vfps, fps, max_frames, window)
    size = capped_size(info.height, info.width, max_pixels) if max_pixels else None
    if method == "auto":
        interval = (targets[1] - targets[0]) if len(targets) > 1 else 1.0 / fps
        method = "seek" if info.keyframe_interval_s <= interval + 1e-6 else "sequential"
    import av

    container, stream = open_video(path)
    # frame threading pays on a long pass; after each seek its pipeline delay would cost extra
    # packets, so the seek path decodes with slice threads
    stream.thread_type = "AUTO" if method == "sequential" else "SLICE"
    tb = float(stream.time_base)
    start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
    tol = 0.5 / vfps
    out_frames: list[np.ndarray] = []
    out_times: list[float] = []
    out_idx: list[int] = []
    k = 0  # next target

    def take(frame, t: float) -> None:
        nonlocal k
        rgb = _to_rgb(frame, size)
        while k < len(targets) and t >= targets[k] - tol - 1e-9:
            out_frames.append(rgb)
            out_times.append(round(t, 6))
            out_idx.append(int(round(t * vfps)))
            k += 1

    try:
        if method == "sequential":
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = frame.pts * tb - start
                if t >= targets[k] - tol - 1e-9:
                    take(frame, t)
                    if k >= len(targets):
                        break
        else:
            cur_t = -math.inf
            decoder = None
            while k < len(targets):
                goal = targets[k]
                lo = goal - tol - 1e-9  # the first frame at or after lo is the one we want
                if decoder is None or goal - cur_t >= info.keyframe_interval_s:
                    # Seek to the keyframe at or before the goal itself (not before lo: when a
                    # keyframe sits exactly on the goal, that would cost a whole extra GOP).
                    container.seek(int((goal + start) / tb), stream=stream, backward=True, any_frame=False)
                    decoder = container.decode(stream)
                    first = next((f for f in decoder if f.pts is not None), None)
                    if first is None:
                        break
                    t0 = first.pts * tb - start
                    if t0 > lo and t0 - 1.0 / vfps >= lo:
                        # a frame of the previous GOP may lie in [lo, t0): seek from lo instead
                        container.seek(int((lo + start) / tb), stream=stream, backward=True, any_frame=False)
                        decoder = container.decode(stream)
                    elif t0 >= lo:
                        cur_t = t0
                        take(first, t0)
                        continue
                got = False
                for frame in decoder:
                    if frame.pts is None:
                        continue
                    t = frame.pts * tb - start
                    cur_t = t
                    if t >= lo:
                        take(frame, t)
                        got = True
                        break
                if not got:
                    break  # stream ended
    except av.error.FFmpegError as e:
        at = targets[k] if k < len(targets) else targets[-1]
        raise CorruptVideoError(path, f"decoding failed near t={at:.2f}s ({type(e).__name__}: {e.strerror or e})") from None
    finally:
        container.close()
    if not out_frames:
        raise CorruptVideoError(path, "no decodable video frame")
    missing = targets[k:]
    if missing and info.duration_s - out_times[-1] > 1.0 / fps + 2.0 / vfps:
        # The header promises more than the stream holds (a cut file whose index is at the
        # front parses fine, then ends early): refuse it rather than return part of the video.
        raise CorruptVideoError(path, f"truncated: the stream ends near t={out_times[-1]:.2f}s but the header says "
                                      f"{info.duration_s:.2f}s ({len(missing)} of {len(targets)} samples missing)")
    return SampledFrames(
        frames=out_frames,
        times_s=out_times,
        frame_indices=out_idx,
        target_times_s=targets,
        info=info,
        method=method,
        missing_times_s=targets[k:],
    )


def sample_frames_naive(path: str | os.PathLike, fps: float = 1.0) -> SampledFrames:
    """Reference implementation (benchmarks and tests only): decode every frame with default
    settings, convert every frame to RGB, keep them all, then pick the nearest frame per target.
    Memory grows with the video's length: do not use on long videos."""
    info = probe(path)
    vfps = info.fps or 30.0
    targets = target_times(info.duration_s, vfps, fps)
    container, stream = open_video(path)
    tb = float(stream.time_base)
    start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
    try:
        decoded = [(f.pts * tb - start, f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    finally:
        container.close()
    tol = 0.5 / vfps
    frames, times, idx = [], [], []
    j = 0
    for goal in targets:
        while j < len(decoded) and decoded[j][0] < goal - tol - 1e-9:
            j += 1
        if j == len(decoded):
            break
        t, rgb = decoded[j]
        frames.append(rgb)
        times.append(round(t, 6))
        idx.append(int(round(t * vfps)))
    return SampledFrames(frames, times, idx, targets, info, "naive", targets[len(frames):])
