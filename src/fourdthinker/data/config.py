"""Settings of ``fourdthinker data build`` (one dataclass; every field has a default and a help string)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class BuildConfig:
    fps: float = field(default=1.0, metadata={"help": "Frame sampling rate (paper: 1 FPS). Masks, overlays and questions live on these frames."})
    camera_labels: str = field(default="auto", metadata={
        "help": "auto | poses | frames. poses: SpatialVID's rule on the clip's camera poses (exact on the world); "
                "frames: estimate camera motion from the pixels (raw videos). auto = poses when present."})
    camera_fps: float = field(default=2.0, metadata={
        "help": "Frame rate for --camera-labels frames (default 2: thresholds were tuned for 0.5 s steps). Higher = finer bounds "
                "but less parallax per step to tell a translation from a rotation."})
    min_segment_s: float = field(default=2.0, metadata={"help": "Shortest camera segment that gets a question (needs two 1-FPS frames)."})
    k_object: int = field(default=4, metadata={"help": "Overlays per object question (first and last of the active interval always)."})
    min_active_frames: int = field(default=4, metadata={"help": "Fewest valid dynamic-object frames for object questions (speed needs >= 4)."})
    oracle: str = field(default="rule", metadata={"help": "rule (offline, world truth) | openai (any OpenAI-compatible endpoint)."})
    segmenter: str = field(default="gt", metadata={"help": "gt (world masks) | sam3 (needs --sam3-model)."})
    sam3_model: str | None = field(default=None, metadata={"help": "SAM3 weights: local folder or hub id (facebook/sam3)."})
    max_regen: int = field(default=3, metadata={"help": "CoT regenerations after a validator failure before the sample is dropped (App. F: 3)."})
    seed: int = field(default=0, metadata={"help": "Seed for option order and template choice. Same seed, same dataset."})
    oracle_base_url: str | None = None
    oracle_model: str | None = None
    oracle_api_key_env: str = "OPENAI_API_KEY"
    price_in: float = 0.0
    price_out: float = 0.0
    link_video: bool = field(default=True, metadata={"help": "Hard-link (else copy) each clip's video into the dataset."})

    def __post_init__(self) -> None:
        if self.camera_labels not in ("auto", "poses", "frames"):
            raise ValueError(f"camera_labels must be auto|poses|frames, got {self.camera_labels!r}")
        if self.fps <= 0 or self.camera_fps <= 0:
            raise ValueError("fps and camera_fps must be > 0")
        if self.k_object < 2:
            raise ValueError(f"k_object must be >= 2 (first and last frame), got {self.k_object}")
        if self.min_active_frames < 3:
            raise ValueError(f"min_active_frames must be >= 3, got {self.min_active_frames}")

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> dict:
        """The settings that change the output (a rerun with other values must not mix shards)."""
        d = self.to_dict()
        for k in ("price_in", "price_out", "oracle_api_key_env", "link_video"):
            d.pop(k)
        return d
