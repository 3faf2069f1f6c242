"""Settings of ``fourdthinker data build`` (one dataclass; every field has a default and a help string)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fourdthinker.config import config_field as _f
from fourdthinker.config import field_problems
from fourdthinker.data.mcq import MCQ_STYLES


@dataclass
class BuildConfig:
    fps: float = _f(1.0, "Frame sampling rate (paper: 1 FPS). Masks, overlays and questions live on these frames.", gt=0)
    camera_labels: str = _f("auto", "poses: SpatialVID's rule on the clip's camera poses (exact on the world); frames: "
                                    "estimate camera motion from the pixels (raw videos, no poses needed); auto: poses "
                                    "when present.", choices=("auto", "poses", "frames"))
    camera_fps: float = _f(2.0, "Frame rate for --camera-labels frames (default 2: thresholds were tuned for 0.5 s steps). "
                                "Higher = finer bounds but less parallax per step to tell a translation from a rotation.",
                           gt=0)
    min_segment_s: float = _f(2.0, "Shortest camera segment that gets a question (needs two 1-FPS frames).", gt=0)
    k_object: int = _f(4, "Overlays per object question (first and last of the active interval always; >= 2).")
    min_active_frames: int = _f(4, "Fewest valid dynamic-object frames for object questions (speed needs >= 4; >= 3).")
    oracle: str = _f("rule", "rule: offline, uses the world's truth for landmark names. openai: any OpenAI-compatible "
                             "endpoint (key from $OPENAI_API_KEY or --oracle-api-key-env).")
    segmenter: str = _f("gt", "gt: the world's masks. sam3: text-prompted SAM3 (--sam3-model).")
    sam3_model: str | None = _f(None, "SAM3 weights: local folder or hub id (facebook/sam3).")
    max_regen: int = _f(3, "CoT regenerations after a validator failure before the sample is dropped (App. F: 3).", ge=0)
    mcq_style: str = _f("paper", "Distractors: paper (the opposite motion, then the analogous one, then the rest: "
                                 "the paper's recipe, which lets the options reveal the answer) | uniform (drawn "
                                 "uniformly from the task's other labels). data/mcq.py.", choices=MCQ_STYLES)
    seed: int = _f(0, "Seed for option order and reasoning templates. Same seed, same dataset.")
    oracle_base_url: str | None = _f(None, "Oracle endpoint base URL, e.g. http://localhost:8000/v1 (unset: "
                                           "$FOURDTHINKER_ORACLE_BASE_URL or OpenAI's).")
    oracle_model: str | None = _f(None, "Oracle model name (unset: $FOURDTHINKER_ORACLE_MODEL or gpt-4.1).")
    oracle_api_key_env: str = _f("OPENAI_API_KEY", "NAME of the env var holding the oracle's key (the key itself is "
                                                   "never accepted as a flag, logged or cached).")
    price_in: float = _f(0.0, "USD per 1M prompt tokens, for the cost line of the summary.", ge=0)
    price_out: float = _f(0.0, "USD per 1M completion tokens.", ge=0)
    link_video: bool = _f(True, "Hard-link (else copy) each clip's video into the dataset.")

    def __post_init__(self) -> None:
        problems = field_problems(self)  # the bounds declared on the fields (gt= / ge= / choices=)
        if problems:
            raise ValueError("; ".join(problems))
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
