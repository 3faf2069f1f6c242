"""Settings of the synthetic 4D world (one dataclass; every field has a default and says its trade-off)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fourdthinker.config import config_field as _f
from fourdthinker.config import field_problems


@dataclass(frozen=True)
class WorldConfig:
    width: int = _f(192, "Frame width in pixels (even, >= 32). Bigger = slower render, larger masks.")
    height: int = _f(144, "Frame height in pixels (even, >= 32).")
    fps: int = _f(8, "Video frame rate. Integer so that whole seconds fall on frames (the 1-FPS sampler then hits "
                     "segment boundaries exactly).", ge=2)
    fov_deg: float = _f(60.0, "Horizontal field of view of the pinhole camera.", gt=0)
    duration_s: tuple[float, float] = _f((6.0, 15.0), "Allowed clip length (s). A clip = 1-3 camera segments + one "
                                                      "object window; lengths are drawn to fit inside this range.")
    segment_s: tuple[int, int] = _f((2, 3), "Camera-segment length range in whole seconds (>= 2 so 1-FPS sampling "
                                            "sees both ends).")
    window_s: tuple[int, int] = _f((4, 6), "Object active-interval length range in whole seconds (>= 4 so 1-FPS "
                                           "samples show a speed profile).")
    max_segments: int = _f(3, "Camera segments per clip are 1..max_segments (at most 3).", gt=0)
    n_distractors: tuple[int, int] = _f((3, 6), "Distractor shapes per scene (a range).")
    codec: str = _f("h264", "h264 (libx264) or mpeg4.")
    crf: int = _f(16, "x264 constant quality (lower = better, larger files).", ge=0)
    min_object_pixels: int | None = _f(None, "The dynamic object's visible area must be at least this many pixels in "
                                             "every frame of its active interval (and the landmark's in every frame); "
                                             "scenes failing this are re-drawn. Unset = 300 at 192x144, scaled with "
                                             "the frame area.", gt=0)

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2 or self.width < 32 or self.height < 32:
            raise ValueError(f"WorldConfig: width/height must be even and >= 32, got {self.width}x{self.height}")
        problems = field_problems(self)  # the bounds declared on the fields (gt= / ge=)
        if problems:
            raise ValueError("WorldConfig: " + "; ".join(problems))
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
