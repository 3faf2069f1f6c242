"""Every prompt the ``openai`` oracle sends, in one module (paper App. A, B and F).

The paper's figures 3-11 are not in its text; these prompts restate their rules: App. A's
landmark criteria, Fig. 4's four consistency criteria (identity, mask consistency, mask quality,
visibility), Fig. 5's per-frame validity, and Fig. 10/11's CoT flow with the overlays framed as
the model's own mental imagery and, for objects, a camera-compensation step. Structured outputs
use JSON schemas (``response_format = {"type": "json_schema", ...}``).
"""

from __future__ import annotations

SYSTEM = "You are a careful annotator of camera and object motion in videos. Follow the output format exactly."

LANDMARKS = """These are {n} frames sampled uniformly (1 per second) from one video.
Select exactly one STATIC object and one DYNAMIC object.

Static object:
- must be stationary throughout the entire video (e.g. a traffic sign, a building);
- visually salient, occupying a reasonable area; avoid small or occluded objects;
- present in most frames without prolonged absence;
- prefer central objects (they show the camera-induced displacement best).

Dynamic object:
- must exhibit clear, non-trivial motion (e.g. the walking person wearing a red shirt);
- visually distinguishable from the background and other moving things;
- trackable in at least 50% of the video;
- if several qualify, the most prominent.

For each give a short `name` and a one-line visual `description` that a text-prompted segmenter can
find (e.g. "the red car on the left lane"). Answer with JSON only."""

LANDMARKS_SCHEMA = {
    "name": "landmarks",
    "strict": True,
    "schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["static_object", "dynamic_object"],
        "properties": {
            k: {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "description"],
                "properties": {"name": {"type": "string"}, "description": {"type": "string"}},
            }
            for k in ("static_object", "dynamic_object")
        },
    },
}

STATIC_CHECK = """The {n} images are frames of one video in which the static object "{name}" ({description})
is highlighted with a translucent RED mask. Check all four criteria across the whole set:
1. Object identity: the mask covers the same physical object in every frame (no identity drift).
2. Mask consistency: the mask follows the object's shape and extent consistently over time.
3. Mask quality: the mask covers the object tightly, without large leaks onto other things.
4. Object visibility: the object is visible (not fully occluded) in each frame.
Answer with JSON: consistent = true only if all four hold; reason = one short sentence."""

STATIC_CHECK_SCHEMA = {
    "name": "static_check",
    "strict": True,
    "schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["consistent", "reason"],
        "properties": {"consistent": {"type": "boolean"}, "reason": {"type": "string"}},
    },
}

DYNAMIC_CHECK = """The {n} images (indices 0..{last}) are frames of one video in which the moving object "{name}"
({description}) is highlighted with a translucent RED mask. For EACH frame decide whether the mask
covers that same object well (right identity, tight, object visible). Return JSON with
is_any_dynamic (the object really moves), valid_frame_indices (the indices that pass) and
object_description (one line)."""

DYNAMIC_CHECK_SCHEMA = {
    "name": "dynamic_check",
    "strict": True,
    "schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["is_any_dynamic", "valid_frame_indices", "object_description"],
        "properties": {
            "is_any_dynamic": {"type": "boolean"},
            "valid_frame_indices": {"type": "array", "items": {"type": "integer"}},
            "object_description": {"type": "string"},
        },
    },
}

_COT_RULES = """Write the reasoning a careful viewer would think, in this flow:
temporal localisation -> scene context -> strategy (which landmark to watch and why) -> visualisation
-> analysis -> conclusion. The {k} highlighted images after the video frames are YOUR OWN MENTAL
IMAGERY: refer to them with exactly {k} placeholders `<imagery>`, one per image, in chronological
order, never reused, all inside the think block. {extra}Name the motion in words before the answer.
Output exactly: <think> ... </think><answer>X</answer> where X is the single option letter. Do not
put any answer tag inside the think block. The correct answer is {letter} ({text}); the
measurements below come from the masks: {facts}"""

CAMERA_COT = """Question: {question}
Options:
{options}

The static landmark is "{static}". """ + _COT_RULES

OBJECT_COT = """Question: {question}
Options:
{options}

The moving object is "{dynamic}". """ + _COT_RULES

CAMERA_EXTRA = "The landmark is static, so its apparent displacement between the images is caused by the camera alone (Eq. 3). "
OBJECT_EXTRA = ("Include a camera-compensation step: say how the camera itself moves and what apparent motion that "
                "alone causes, and remove it before judging the object's own motion. ")
