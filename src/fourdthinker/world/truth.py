"""The clip-folder contract of the synthetic 4D world (DESIGN.md "Clip folder").

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
  ``labels.CAMERA_MOTIONS`` in the camera's own frame (Move Forward = +z_cam translation,
  Pan Left = yaw turning the view to the left, Tilt Up = pitch raising the view,
  Roll Clockwise = image content appears to rotate counter-clockwise... see world.camera for the
  exact sign conventions, which follow SpatialVID's get_instructions.py).
* object ``direction``: displacement of the dynamic object over its active interval expressed in
  the camera frame of the interval's first frame (camera motion removed); toward/away when the
  depth component dominates, else the 8-way in-image direction; Stationary when it barely moves.
* object ``distance``: change of the camera-to-object distance over the active interval.
* object ``speed``: the shape of the object's world speed profile over the active interval.
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
