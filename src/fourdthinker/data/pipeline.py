"""One clip -> validated DIFT + RL records (docs/method.md#data-pipeline, end to end). The runner calls :func:`process_clip`.

Steps (each a small function; filters return ``(keep, reason)`` and the reasons are counted):

1. ``sample``        frames at ``cfg.fps`` (1 FPS), their video-frame indices and times;
2. ``landmarks``     oracle picks one static + one dynamic object (App. A);
3. ``masks``         segmenter tracks each from its description (empty everywhere -> clip quarantined);
4. ``overlays``      Eq. 1 on every sampled frame (red, a = 0.4);
5. ``consistency``   Eq. 2: static overlays all-or-nothing; dynamic per-frame validity -> active interval;
6. ``camera labels`` segments from poses (SpatialVID rule) or frames (OpenCV); Eq. 3 shift check;
7. ``object labels`` direction / distance / speed from the compensated mask track (``objects.py``);
8. ``mcq``           4 options, related distractors, balanced seeded answer slot (``mcq.py``);
9. ``cot``           oracle writes the imagery CoT; validator (App. F) with up to 3 regenerations;
10. ``records``      DiftRecord + RLRecord (pydantic-validated), PNGs written by the caller.

Output layout of one clip inside the dataset root (all record paths are relative to the root):
``clips/<clip>/video.mp4`` (hard link or copy), ``clips/<clip>/frames/<k>.png`` (the sampled
frames, listed in each record's ``frames``), ``clips/<clip>/img/<record>_<k>.png`` (overlays,
one per ``<imagery>``), ``clips/<clip>/{dift,rl}.jsonl``, ``labels.json`` (derived labels, for the
audit) and ``done.json`` (the commit marker).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fourdthinker.data import camera as cam
from fourdthinker.data import objects as obj
from fourdthinker.data.config import BuildConfig
from fourdthinker.data.mcq import build_mcq, clip_offset
from fourdthinker.data.sources import Clip
from fourdthinker.data.validate import validate_cot
from fourdthinker.oracle.base import CotRequest, Oracle
from fourdthinker.records import DiftRecord, RLRecord
from fourdthinker.segment.base import Segmenter

QUESTION_TEMPLATES: dict[str, tuple[str, ...]] = {
    "camera": (
        "How does the camera move between {ts:.0f}s and {te:.0f}s?",
        "From {ts:.0f}s to {te:.0f}s, which camera motion takes place?",
        "What is the camera doing between {ts:.0f}s and {te:.0f}s?",
        "Between {ts:.0f}s and {te:.0f}s, how is the camera moving?",
    ),
    "direction": (
        "In which direction does the {d} move between {ts:.0f}s and {te:.0f}s, as seen from the camera?",
        "From the camera's point of view, how does the {d} move from {ts:.0f}s to {te:.0f}s?",
        "Which way is the {d} heading between {ts:.0f}s and {te:.0f}s, relative to the camera?",
    ),
    "bbox": (
        "The object inside the box {box} at {ts:.0f}s: which direction does it move until {te:.0f}s, as seen from the camera?",
        "Consider the object located at {box} (x1, y1, x2, y2 in pixels) at {ts:.0f}s. How does it move up to {te:.0f}s?",
        "Between {ts:.0f}s and {te:.0f}s, where does the object in the region {box} move, relative to the camera?",
    ),
    "distance": (
        "How does the distance between the camera and the {d} change from {ts:.0f}s to {te:.0f}s?",
        "Between {ts:.0f}s and {te:.0f}s, does the {d} get closer to or farther from the camera?",
        "From {ts:.0f}s to {te:.0f}s, how does the {d}'s distance to the camera evolve?",
    ),
    "speed": (
        "How does the speed of the {d} change between {ts:.0f}s and {te:.0f}s?",
        "Describe how the {d}'s speed varies from {ts:.0f}s to {te:.0f}s.",
        "Between {ts:.0f}s and {te:.0f}s, what happens to the {d}'s speed?",
    ),
}

CAMERA_REASON: dict[str, str] = {
    "Move Forward": "The landmark grows and drifts outward from the image centre, with nearer things growing faster, a sign of the camera advancing.",
    "Move Backward": "The landmark shrinks and drifts toward the image centre, a sign of the camera backing away.",
    "Move Left": "Near things slide right faster than far ones (parallax), so the camera translates left rather than turning.",
    "Move Right": "Near things slide left faster than far ones (parallax), so the camera translates right rather than turning.",
    "Move Up": "Near things slide down faster than far ones (parallax), so the camera rises rather than tilting.",
    "Move Down": "Near things slide up faster than far ones (parallax), so the camera descends rather than tilting.",
    "Pan Left": "Everything slides right together, near and far alike (no parallax), so the camera turns rather than translates.",
    "Pan Right": "Everything slides left together, near and far alike (no parallax), so the camera turns rather than translates.",
    "Tilt Up": "Everything slides down together without parallax, so the view turns upward.",
    "Tilt Down": "Everything slides up together without parallax, so the view turns downward.",
    "Roll Clockwise": "The whole scene rotates counter-clockwise around the image centre, so the camera rolls clockwise.",
    "Roll Counter-clockwise": "The whole scene rotates clockwise around the image centre, so the camera rolls counter-clockwise.",
}


class ClipSkip(Exception):
    """The whole clip cannot produce records (quarantined with this one-line reason)."""


@dataclass
class ImageOut:
    rel: str  # path relative to the dataset root
    image: np.ndarray


@dataclass
class ClipResult:
    clip_id: str
    dift: list[dict] = field(default_factory=list)
    rl: list[dict] = field(default_factory=list)
    images: list[ImageOut] = field(default_factory=list)
    labels: dict = field(default_factory=dict)
    drops: Counter = field(default_factory=Counter)


def _rng(*key: Any) -> random.Random:
    from fourdthinker.hashing import sha256_json

    return random.Random(int(sha256_json(list(key))[:12], 16))


def eq3_consistent(label: str, shift: tuple[float, float] | None, size_ratio: float | None, min_px: float = 2.0) -> tuple[bool, str]:
    """Eq. 3 as a check: the static landmark's apparent shift must not contradict the camera label.
    Pan/Move Left -> content moves right (dx > 0); Right -> dx < 0; Tilt/Move Up -> dy > 0;
    Down -> dy < 0; Forward -> grows; Backward -> shrinks; rolls are not checked. A contradiction
    larger than ``min_px`` pixels (or 5 % in size) fails."""
    if shift is None:
        return False, "eq3: static landmark not visible at a segment boundary"
    dx, dy = shift
    want = {"Pan Left": ("dx", 1), "Move Left": ("dx", 1), "Pan Right": ("dx", -1), "Move Right": ("dx", -1),
            "Tilt Up": ("dy", 1), "Move Up": ("dy", 1), "Tilt Down": ("dy", -1), "Move Down": ("dy", -1)}
    if label in want:
        comp, sign = want[label]
        v = dx if comp == "dx" else dy
        if v * sign < -min_px:
            return False, f"eq3: landmark shift contradicts {label}"
    elif size_ratio is not None and ((label == "Move Forward" and size_ratio < 0.95)
                                     or (label == "Move Backward" and size_ratio > 1.05)):
        return False, f"eq3: landmark size change contradicts {label}"
    return True, "ok"


def camera_segments(clip: Clip, cfg: BuildConfig, dyn_masks=None, dyn_frames=None) -> tuple[list[cam.CameraSegment], str]:
    """Step 6: segments in video-frame indices and the source used (``poses`` | ``frames``).

    For ``frames``, the dynamic object is masked out of the feature tracking: each camera frame
    excludes the union of the object's masks at the two 1-FPS samples around it (``dyn_masks``
    at video frames ``dyn_frames``), since the segmenter only ran on those."""
    mode = cfg.camera_labels
    if mode == "auto":
        mode = "poses" if clip.c2w is not None else "frames"
    if mode == "poses":
        if clip.c2w is None:
            raise ClipSkip("no camera poses (poses.npz/poses.npy) but --camera-labels poses; use --camera-labels frames")
        segs = cam.segments_from_poses(clip.c2w, min_len=2)
        pf = clip.pose_frames if clip.pose_frames is not None else np.arange(len(clip.c2w))
        if len(pf) != clip.n_frames or not np.array_equal(pf, np.arange(len(pf))):
            segs = [cam.CameraSegment(int(pf[s.start_frame]), int(pf[min(s.end_frame, len(pf)) - 1]) + 1, s.label) for s in segs]
        return segs, "poses"
    from fourdthinker.video import sample_frames

    sf = sample_frames(clip.video_path, fps=cfg.camera_fps)
    K = clip.K[0] if clip.K is not None else cam.default_intrinsics(clip.width, clip.height)
    min_len = max(2, int(round(cfg.min_segment_s * cfg.camera_fps / 2)))
    exclude = None
    if dyn_masks is not None and len(dyn_frames):
        df = np.asarray(dyn_frames)
        exclude = []
        for fi in sf.frame_indices:
            lo = max(int(np.searchsorted(df, fi, side="right")) - 1, 0)
            hi = min(lo + 1, len(df) - 1)
            exclude.append(dyn_masks[lo] | dyn_masks[hi])
    return cam.segments_from_frames(sf.frames, sf.frame_indices, K, min_len=min_len, exclude=exclude), "frames"


def process_clip(clip: Clip, cfg: BuildConfig, oracle: Oracle, segmenter: Segmenter) -> ClipResult:
    """Steps 1-10 for one clip. Raises :class:`ClipSkip` (or a loader/video error) for a bad clip."""
    from fourdthinker.video import overlay, sample_frames

    res = ClipResult(clip.clip_id)
    root = f"clips/{clip.clip_id}"
    # 1. sample
    sf = sample_frames(clip.video_path, fps=cfg.fps)
    frames, times, fidx = sf.frames, [float(t) for t in sf.times_s], list(sf.frame_indices)
    if len(frames) < 2:
        raise ClipSkip(f"only {len(frames)} frame(s) at {cfg.fps} FPS")
    frame_rel = [f"{root}/frames/{k:03d}.png" for k in range(len(frames))]
    res.images += [ImageOut(r, f) for r, f in zip(frame_rel, frames, strict=True)]
    video_rel = f"{root}/video{clip.video_path.suffix}"
    # 2. landmarks
    lm = oracle.select_landmarks(frames, clip=clip)
    # 3. masks
    ms = np.asarray(segmenter.segment(frames, lm.static.description, frame_indices=fidx, clip=clip), dtype=bool)
    md = np.asarray(segmenter.segment(frames, lm.dynamic.description, frame_indices=fidx, clip=clip), dtype=bool)
    if ms.shape[0] != len(frames) or md.shape[0] != len(frames):
        raise ClipSkip(f"segmenter returned {ms.shape[0]}/{md.shape[0]} masks for {len(frames)} frames")
    if not ms.any() and not md.any():
        raise ClipSkip(f"empty masks: segmenter found neither {lm.static.name!r} nor {lm.dynamic.name!r}")
    # 4. overlays (Eq. 1)
    ov_s = [overlay(f, m) for f, m in zip(frames, ms, strict=True)]
    ov_d = [overlay(f, m) for f, m in zip(frames, md, strict=True)]
    # 5. consistency (Eq. 2)
    static_ok, static_reason = oracle.verify_static(ov_s, lm.static, list(ms))
    valid = oracle.verify_dynamic(ov_d, lm.dynamic, list(md))
    active = obj.longest_run(sorted(valid))  # refined to the moving interval in step 7
    labels: dict[str, Any] = {"clip_id": clip.clip_id, "landmarks": {"static": lm.static.__dict__, "dynamic": lm.dynamic.__dict__},
                              "times_s": times, "frame_indices": fidx}
    items: list[dict] = []  # (task, label, facts, image refs) before MCQ/CoT

    # 6. camera
    if not static_ok:
        res.drops[f"consistency: {static_reason.split(':')[0]}"] += 1
        labels["camera_source"] = None
    else:
        segs, source = camera_segments(clip, cfg, md, fidx)
        labels["camera_source"] = source
        labels["camera_segments"] = [s.to_dict() for s in segs]
        for s in segs:
            if s.label == cam.STAY:
                continue
            ks = [k for k, fi in enumerate(fidx) if s.start_frame <= fi <= s.end_frame - 1]
            if len(ks) < 2 or times[ks[-1]] - times[ks[0]] < cfg.min_segment_s - 1e-6:
                res.drops["camera: segment too short"] += 1
                continue
            a, b = ks[0], ks[-1]
            shift = obj.centroid_shift(ms[a], ms[b])
            size_ratio = math.sqrt(ms[b].sum() / ms[a].sum()) if ms[a].sum() and ms[b].sum() else None
            ok, why = eq3_consistent(s.label, shift, size_ratio)
            if not ok:
                res.drops[why] += 1
                continue
            facts = {"static": lm.static.name, "shift_dx": round(shift[0], 1), "shift_dy": round(shift[1], 1),
                     "shift_words": obj.shift_words(*shift), "size_ratio": round(size_ratio, 3) if size_ratio else None,
                     "reason": CAMERA_REASON[s.label], "segment": s.to_dict()}
            items.append({"task": "camera", "label": s.label, "facts": facts, "ks": [a, b], "overlays": ov_s,
                          "ts": times[a], "te": times[b]})

    # 7. objects
    if "camera_segments" not in labels:  # the static check failed: still segment the camera for the objects
        try:
            labels["camera_segments"] = [s.to_dict() for s in camera_segments(clip, cfg, md, fidx)[0]]
        except ClipSkip:
            labels["camera_segments"] = []
    if len(active) < cfg.min_active_frames:
        res.drops["object: too few valid dynamic frames"] += 1
        labels["object"] = None
    else:
        homs = obj.background_homographies(frames, exclude=list(md))
        K = clip.K[0] if clip.K is not None else cam.default_intrinsics(clip.width, clip.height)
        track = obj.compensated_track(list(md), active, homs)
        moving_segs = [s for s in labels.get("camera_segments", []) if s["label"] != cam.STAY]
        still = [not any(min(s["end_frame"] - 1, fidx[b]) - max(s["start_frame"], fidx[a]) > 0 for s in moving_segs)
                 for a, b in zip(active, active[1:], strict=False)]
        chosen = obj.choose_active(active, obj.step_speeds(track, K), still, min_frames=cfg.min_active_frames)
        if len(chosen) >= 2 and chosen != active:
            active = chosen
            track = obj.compensated_track(list(md), active, homs)
        d_lab, d_info = obj.direction_label(track, K)
        r_lab, r_info = obj.distance_label(track, K)
        speeds = obj.step_speeds(track, K)
        # a speed profile needs two one-second steps: with fewer, only the speed question is dropped
        s_lab, s_info = obj.speed_label(speeds) if len(speeds) >= 2 else (None, {"speeds": list(speeds)})
        labels["object"] = {"active_frames": [fidx[k] for k in active], "direction": d_lab, "distance": r_lab,
                            "speed": s_lab, "direction_info": d_info, "distance_info": r_info, "speed_info": s_info,
                            "speeds": speeds, "camera_shift": track.camera_shift}
        ks = _spread(active, cfg.k_object)
        ts, te = times[active[0]], times[active[-1]]
        bx = obj.mask_bbox(md[active[0]])
        cam_words = _camera_words(labels.get("camera_segments", []), fidx[active[0]], fidx[active[-1]],
                                  drift_px=math.hypot(*track.camera_shift))
        base = {"dynamic": lm.dynamic.name, "camera": cam_words, "camera_shift_words": obj.shift_words(*track.camera_shift)}
        obs_dir = (f"After compensation its centre moves {obj.shift_words(d_info['dx_px'], d_info['dy_px'])} "
                   f"(dx {round(d_info['dx_px']):+d} px, dy {round(d_info['dy_px']):+d} px), and from its apparent size its depth "
                   f"changes by {d_info['dz']:+.2f} of its starting distance.")
        obs_dist = (f"Its apparent size changes by a factor {r_info['size_ratio']:.2f} from the first to the last image, "
                    f"so its distance to the camera changes by about {100 * r_info['r']:+.0f}%.")
        obs_speed = ("Measured second by second, it covers about "
                     + ", ".join(f"{x:.2f}" for x in speeds) + " (in units of its starting distance).")
        common = {"ks": ks, "overlays": ov_d, "ts": ts, "te": te}
        items.append({"task": "direction", "label": d_lab, "facts": base | {"observation": obs_dir}, **common})
        if bx is not None:
            box = f"[{bx[0]}, {bx[1]}, {bx[2]}, {bx[3]}]"
            items.append({"task": "bbox", "label": d_lab, "facts": base | {"observation": obs_dir, "bbox": box}, "box": box, **common})
        items.append({"task": "distance", "label": r_lab, "facts": base | {"observation": obs_dist}, **common})
        if d_lab == "Stationary":
            res.drops["speed: stationary object"] += 1
        elif s_lab is None:
            res.drops["speed: fewer than 2 one-second steps"] += 1
        else:
            items.append({"task": "speed", "label": s_lab, "facts": base | {"observation": obs_speed}, **common})
    res.labels = labels

    # 8-10. MCQ, CoT, records
    off = clip_offset(clip.clip_id, cfg.seed)
    for i, it in enumerate(items):
        task = it["task"]
        rid = f"{clip.clip_id}_{i:02d}_{task}"
        rng = _rng(cfg.seed, rid)
        options, letter = build_mcq(it["label"], task, position=off + i, rng=rng, style=cfg.mcq_style)
        q = rng.choice(QUESTION_TEMPLATES[task]).format(ts=it["ts"], te=it["te"], d=lm.dynamic.name, box=it.get("box", ""))
        ks = it["ks"]
        ims = [it["overlays"][k] for k in ks]
        req = CotRequest(record_id=rid, task=task, question=q, options=options, answer=letter, answer_text=it["label"],
                         times=[times[k] for k in ks], facts=it["facts"], overlays=ims, frames=frames)
        text, reason = None, ""
        for attempt in range(cfg.max_regen + 1):
            req.attempt = attempt
            cand = oracle.write_cot(req)
            ok, reason = validate_cot(cand, options, len(ks), req.times, expected=letter)
            if ok:
                text = cand
                break
        if text is None:
            res.drops[f"validator: {reason.split(':')[0]}"] += 1
            continue
        img_rel = [f"{root}/img/{rid}_{j}.png" for j in range(len(ks))]
        meta = {"times_s": req.times, "label_source": labels.get("camera_source") if task == "camera" else "masks",
                "static_object": lm.static.name, "dynamic_object": lm.dynamic.name, "start_s": it["ts"], "end_s": it["te"],
                "image_size": [int(frames[0].shape[1]), int(frames[0].shape[0])]}  # bbox coordinates live here
        if task == "camera":
            meta["segment"] = it["facts"]["segment"]
        rec = DiftRecord(id=rid, video=video_rel, frames=frame_rel, frames_fps=cfg.fps, question=q, options=options,
                         answer=letter, answer_text=it["label"], task=task, reasoning=text, imagery=img_rel,
                         source=clip.source, meta=meta, window_s=(it["ts"], it["te"]))
        rl = RLRecord(id=rid, video=video_rel, frames=frame_rel, question=q, options=options, answer=letter,
                      answer_text=it["label"], task=task, source=clip.source, window_s=(it["ts"], it["te"]))
        res.dift.append(rec.model_dump())
        res.rl.append(rl.model_dump())
        res.images += [ImageOut(r, im) for r, im in zip(img_rel, ims, strict=True)]
    return res


def _spread(active: list[int], k: int) -> list[int]:
    """k indices from ``active`` evenly spread, first and last always included."""
    if len(active) <= k:
        return list(active)
    pos = np.round(np.linspace(0, len(active) - 1, k)).astype(int)
    return [active[p] for p in pos]


def _camera_words(segs: list[dict], f0: int, f1: int, drift_px: float = 0.0) -> str:
    """What the camera does over video frames [f0, f1], from the derived segments (a camera with
    no labelled motion that still shifts the view by >= 3 px is said to drift)."""
    labs = []
    for s in segs:
        if s["end_frame"] - 1 > f0 and s["start_frame"] < f1 and s["label"] != cam.STAY and s["label"] not in labs:
            labs.append(s["label"])
    if not labs:
        return "the camera only drifts slightly" if drift_px >= 3.0 else "the camera holds still"
    return "the camera performs " + " then ".join(x.lower() for x in labs)
