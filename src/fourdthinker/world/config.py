"""Settings of the synthetic 4D world (one dataclass; every field has a default and says its trade-off)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class WorldConfig:
    width: int = field(default=192, metadata={"help": "Frame width in pixels (even). Bigger = slower render, larger masks."})
    height: int = field(default=144, metadata={"help": "Frame height in pixels (even)."})
    fps: int = field(default=8, metadata={"help": "Video frame rate. Integer so that whole seconds fall on frames "
                                                 "(the 1-FPS sampler then hits segment boundaries exactly)."})
    fov_deg: float = field(default=60.0, metadata={"help": "Horizontal field of view of the pinhole camera."})
    duration_s: tuple[float, float] = field(default=(6.0, 15.0), metadata={
        "help": "Allowed clip length (s). A clip = 1-3 camera segments + one object window; lengths are drawn "
                "to fit inside this range."})
    segment_s: tuple[int, int] = field(default=(2, 3), metadata={
        "help": "Camera-segment length range in whole seconds (>= 2 so 1-FPS sampling sees both ends)."})
    window_s: tuple[int, int] = field(default=(4, 6), metadata={
        "help": "Object active-interval length range in whole seconds (>= 4 so 1-FPS samples show a speed profile)."})
    max_segments: int = field(default=3, metadata={"help": "Camera segments per clip are 1..max_segments."})
    n_distractors: tuple[int, int] = field(default=(3, 6), metadata={"help": "Distractor shapes per scene."})
    codec: str = field(default="h264", metadata={"help": "h264 (libx264) or mpeg4."})
    crf: int = field(default=16, metadata={"help": "x264 constant quality (lower = better, larger files)."})
    min_object_pixels: int | None = field(default=None, metadata={
        "help": "The dynamic object's visible area must be at least this many pixels in every frame of its "
                "active interval (and the landmark's in every frame); scenes failing this are re-drawn. "
                "None = 300 at 192x144, scaled with the frame area."})

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2 or self.width < 32 or self.height < 32:
            raise ValueError(f"WorldConfig: width/height must be even and >= 32, got {self.width}x{self.height}")
        if self.fps < 2:
            raise ValueError(f"WorldConfig: fps must be >= 2, got {self.fps}")
        if self.segment_s[0] < 2 or self.segment_s[1] < self.segment_s[0]:
            raise ValueError(f"WorldConfig: segment_s must be (lo>=2, hi>=lo), got {self.segment_s}")
        if self.window_s[0] < 4 or self.window_s[1] < self.window_s[0]:
            raise ValueError(f"WorldConfig: window_s must be (lo>=4, hi>=lo), got {self.window_s}")
        if not 1 <= self.max_segments <= 3:
            raise ValueError(f"WorldConfig: max_segments must be 1..3, got {self.max_segments}")
        lo = self.segment_s[0] + self.window_s[0]
        if self.duration_s[1] < lo:
            raise ValueError(f"WorldConfig: duration_s max {self.duration_s[1]} is shorter than the shortest clip ({lo} s)")
        if self.codec not in ("h264", "mpeg4"):
            raise ValueError(f"WorldConfig: codec must be h264 or mpeg4, got {self.codec!r}")

    @property
    def min_pixels(self) -> int:
        if self.min_object_pixels is not None:
            return int(self.min_object_pixels)
        return max(30, int(round(300 * self.width * self.height / (192 * 144))))

    def to_dict(self) -> dict:
        return asdict(self)
