"""The clip-folder contract of the synthetic 4D world (docs/world.md#clip-folder).

A clip folder holds::

    video.mp4     H.264 (or MPEG-4) via PyAV, ``meta.fps`` frames per second
    meta.json     ClipMeta
    poses.npz     c2w [N,4,4] float64 camera-to-world per video frame (OpenCV convention: x right,
                  y down, z forward), K [N,3,3] intrinsics per frame (pixels)
    masks.npz     static [N,H,W] bool, dynamic [N,H,W] bool: visible pixels of each object
                  (occlusion applied) per video frame
    truth.json    ClipTruth (world only)

World coordinates: right-handed, **y up**, ground plane y = 0. Frame index i is at time i / fps.
Camera-motion segments are in video-frame indices (end exclusive) and seconds.

Label definitions (what "truth" means; the data pipeline's derivations are audited against it):

* camera segment label: the single motion the camera performs in that segment, one of the 12
  ``labels.CAMERA_MOTIONS``, in the camera's own frame, at a constant rate (translations
  0.9-1.3 m per segment, pan/tilt 4-5 deg/s, roll 8-12 deg/s; segments are 2-3 whole seconds;
  SpatialVID's thresholds, 0.02 m and 0.5 deg per 2-frame step, are exceeded >= 2x on every step). Exact sign
  conventions in ``world.camera`` (SpatialVID's ``get_instructions.py``): Move Forward = +z_cam,
  Move Up = -y_cam, Pan Left = the view turns left, Tilt Up = the view turns up, Roll Clockwise =
  the camera turns clockwise as seen from behind it (image content turns counter-clockwise).
  Outside the segments the camera holds still or drifts (pan/tilt <= 0.6 deg/s: SpatialVID's rule
  says "Stay" there); those stretches are not segments.
* object ``direction``: displacement of the dynamic object over its active interval expressed in
  the camera frame of the interval's first frame (camera motion removed). Rules and thresholds:
  ``world.motion`` (Stationary < 0.05 m; Toward/Away when |dz| > 1.5 x in-plane; else 8 sectors
  of 45 deg of (dx, -dy)).
* object ``distance``: relative change r of the distance from the interval's first camera centre:
  r < -0.15 Toward, r > 0.15 Away, |r| < 0.05 Maintaining (``world.motion.distance_label``).
* object ``speed``: the shape of the per-second world speeds over the active interval
  (``world.motion.speed_label``). For a Stationary object ``speed_defined`` is False.
* the active interval starts and ends on whole seconds (``active_start_s``/``active_end_s``), and
  the camera only holds/drifts during it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fourdthinker.labels import CAMERA_MOTIONS, DIRECTIONS, DISTANCES, SPEEDS

TRUTH_SCHEMA_VERSION = 1


class ClipMeta(BaseModel):
    model_config = ConfigDict(extra="allow")

    clip_id: str
    fps: float
    width: int
    height: int
    n_frames: int
    duration_s: float
    source: str = "synthetic"
    codec: str = "h264"
    seed: int | None = None
    schema_version: int = TRUTH_SCHEMA_VERSION


class WorldObject(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(description="short noun phrase, e.g. 'red cube'")
    description: str = Field(description="one line a segmenter can be prompted with")
    shape: str
    color: list[int] = Field(description="RGB 0-255")
    size: float = Field(description="characteristic size in world units")
    center: list[float] = Field(description="3D centre at frame 0 (world)")


class DynamicObject(WorldObject):
    trajectory: list[list[float]] = Field(description="3D centre per video frame [N][3] (world)")


class CameraSegment(BaseModel):
    start_frame: int
    end_frame: int = Field(description="exclusive")
    start_s: float
    end_s: float
    label: str

    def model_post_init(self, __context) -> None:  # noqa: D401
        if self.label not in CAMERA_MOTIONS:
            raise ValueError(f"unknown camera label {self.label!r}")


class ObjectMotion(BaseModel):
    active_start_frame: int
    active_end_frame: int = Field(description="inclusive last frame of the active interval")
    direction: str
    distance: str
    speed: str
    speed_defined: bool = Field(True, description="False for a Stationary object (speed questions make no sense)")
    active_start_s: float | None = None
    active_end_s: float | None = None
    displacement_cam: list[float] | None = Field(None, description="(dx, dy, dz) in the first active frame's camera frame")
    distance_change: float | None = Field(None, description="relative camera-distance change r (world.motion)")
    speeds_per_second: list[float] | None = Field(None, description="mean world speed (m/s) in each whole second")

    def model_post_init(self, __context) -> None:
        for v, vocab in ((self.direction, DIRECTIONS), (self.distance, DISTANCES), (self.speed, SPEEDS)):
            if v not in vocab:
                raise ValueError(f"unknown object label {v!r}")


class ClipTruth(BaseModel):
    model_config = ConfigDict(extra="allow")

    clip_id: str
    static_object: WorldObject
    dynamic_object: DynamicObject
    camera_segments: list[CameraSegment]
    object_motion: ObjectMotion
    schema_version: int = TRUTH_SCHEMA_VERSION
