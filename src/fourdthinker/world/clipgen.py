"""Make one clip: sample a scene for the planned labels, simulate camera and object, render, check.

``make_clip(seed, index, config)`` is a pure function of its arguments (see ``scene`` for the
randomness). It tries scene draws until every guarantee holds, then returns arrays + truth:

* every camera segment is one pure motion at a rate far above SpatialVID's thresholds; between
  and around segments the camera holds or drifts below them (SpatialVID would say "Stay");
* the object's active interval (whole seconds, >= 4 s) lies in such a hold/drift block;
* the landmark's 3-D centre is visible (projects onto a landmark pixel) in **every** frame and its
  mask has >= ``min_object_pixels``; the moving object's mask has >= ``min_object_pixels`` in every
  frame of its active interval;
* the object labels recomputed from the final trajectory with ``world.motion`` rules equal the plan.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from fourdthinker.world import motion as M
from fourdthinker.world.camera import (
    MOTIONS,
    apply_motion,
    intrinsics,
    look_rotation,
    make_c2w,
    project,
    rot_axis,
)
from fourdthinker.world.config import WorldConfig
from fourdthinker.world.render import DYNAMIC_ID, STATIC_ID, Environment, Primitive, pixel_rays_cam, render
from fourdthinker.world.scene import (
    DRIFT_RATE_DEG,
    DYNAMIC_COLORS,
    DYNAMIC_SHAPES,
    GROUNDS,
    PALETTE,
    PAN_TILT_RATE_DEG,
    ROLL_RATE_DEG,
    STATIC_COLORS,
    STATIC_SHAPES,
    TRANSLATION_TOTAL_M,
    label_plan,
)

MAX_ATTEMPTS = 400


class SceneSamplingError(RuntimeError):
    """No scene satisfying every guarantee was found within the attempt budget."""


@dataclass
class ClipResult:
    frames: np.ndarray  # [N, H, W, 3] uint8
    c2w: np.ndarray  # [N, 4, 4]
    K: np.ndarray  # [N, 3, 3]
    masks_static: np.ndarray  # [N, H, W] bool
    masks_dynamic: np.ndarray  # [N, H, W] bool
    truth: dict
    meta: dict
    attempts: int


def _timeline(seed: int, index: int, cfg: WorldConfig):
    rng = np.random.default_rng([seed, index])
    for _ in range(1000):
        n = int(rng.integers(1, cfg.max_segments + 1))
        seg = [int(rng.integers(cfg.segment_s[0], cfg.segment_s[1] + 1)) for _ in range(n)]
        m = int(rng.integers(cfg.window_s[0], cfg.window_s[1] + 1))
        slot = int(rng.integers(0, n + 1))
        total = sum(seg) + m
        if cfg.duration_s[0] <= total <= cfg.duration_s[1]:
            return seg, m, slot
    raise ValueError(f"WorldConfig: cannot fit segments {cfg.segment_s} and window {cfg.window_s} "
                     f"into duration {cfg.duration_s}")


def _camera_poses(R0, c0, blocks, fps, rng):
    """blocks: list of (kind, label_or_None, seconds). Returns c2w [N,4,4] and per-block rates."""
    poses = [make_c2w(R0, c0)]
    R, c = R0, c0
    rates = []
    for kind, label, secs in blocks:
        nfr = secs * fps
        if kind == "segment":
            mk = MOTIONS[label][0]
            if mk == "t":
                rate = rng.uniform(*TRANSLATION_TOTAL_M) / secs
            elif label.startswith("Roll"):
                rate = math.radians(rng.uniform(*ROLL_RATE_DEG))
            else:
                rate = math.radians(rng.uniform(*PAN_TILT_RATE_DEG))
            rates.append(rate)
            for f in range(1, nfr + 1):
                Rf, cf = apply_motion(R, c, label, rate * f / fps)
                poses.append(make_c2w(Rf, cf))
            R, c = apply_motion(R, c, label, rate * secs)
        else:  # hold / drift: slow pan + tilt, below SpatialVID's per-step threshold
            if rng.random() < 0.3:
                yaw_r = pitch_r = 0.0
            else:
                yaw_r = math.radians(rng.uniform(-DRIFT_RATE_DEG, DRIFT_RATE_DEG))
                pitch_r = math.radians(rng.uniform(-DRIFT_RATE_DEG, DRIFT_RATE_DEG)) * 0.5
            rates.append((yaw_r, pitch_r))
            for f in range(1, nfr + 1):
                tau = f / fps
                poses.append(make_c2w(R @ rot_axis(1, yaw_r * tau) @ rot_axis(0, pitch_r * tau), c))
            R = R @ rot_axis(1, yaw_r * secs) @ rot_axis(0, pitch_r * secs)
    return np.stack(poses), rates


def _lateral_dir(label: str, rng) -> np.ndarray:
    ang = math.radians(M.SECTOR_OF[label] + rng.uniform(-12, 12))
    dx, up = math.cos(ang), math.sin(ang)
    return np.array([dx, -up, rng.uniform(-0.08, 0.08)])  # camera frame: y is down


def _bound_radius(p: Primitive) -> float:
    if p.kind == "sphere":
        return p.size[0]
    if p.kind == "box":
        return float(np.linalg.norm(p.size))
    return float(math.hypot(p.size[0], p.size[1]))


def _occludes(c2w, K, occ_centres, occ_r, target, *, pad_px=3.0):
    """Per-frame: does a sphere of radius occ_r at occ_centres [N,3] (nearer than ``target`` [N,3])
    cover target's projection? Conservative (bounding spheres)."""
    bad = np.zeros(len(c2w), bool)
    for i in range(len(c2w)):
        uv, z = project(np.stack([occ_centres[i], target[i]]), c2w[i], K)
        if z[0] <= 0.05 or z[0] > z[1]:
            continue
        r_px = K[0, 0] * occ_r / z[0]
        bad[i] = np.linalg.norm(uv[0] - uv[1]) < r_px + pad_px
    return bad


def make_clip(seed: int, index: int, cfg: WorldConfig | None = None, *, _slot: int | None = None) -> ClipResult:
    """Generate clip ``index`` of the world with ``seed`` (see the module docstring).

    When no scene of the drawn timeline passes every check (e.g. the object's window comes after
    a Move Down + Roll that leave no room for a rising object), the same labels are drawn again
    with the object's window first, before the camera has moved: every (seed, index) makes a clip
    (tested on seeds 0-30 x 16 clips), and the result still depends only on (seed, index, settings)."""
    cfg = cfg or WorldConfig()
    W, H, fps = cfg.width, cfg.height, cfg.fps
    seg_lens, m, slot = _timeline(seed, index, cfg)
    if _slot is not None:
        slot = _slot
    plan = label_plan(seed, index, len(seg_lens))
    blocks: list[tuple[str, str | None, int]] = [("segment", lab, s) for lab, s in zip(plan.camera, seg_lens, strict=True)]
    blocks.insert(slot, ("window", None, m))
    total_s = sum(b[2] for b in blocks)
    N = total_s * fps + 1
    Kmat = intrinsics(W, H, cfg.fov_deg)
    f_px = Kmat[0, 0]
    rays = pixel_rays_cam(W, H, Kmat)
    ws = sum(b[2] for b in blocks[:slot])  # window start (s)
    fs, fe = ws * fps, (ws + m) * fps  # active interval frames (inclusive end)
    margin = 0.06 * W
    reasons: Counter[str] = Counter()  # why scene draws were rejected
    for attempt in range(MAX_ATTEMPTS):
        rng = np.random.default_rng([seed, index, attempt])
        # ---- environment and landmark
        ga, gb, sky_top, sky_hor, hill = GROUNDS[int(rng.integers(len(GROUNDS)))]
        sun = np.array([rng.uniform(-0.6, 0.6), rng.uniform(0.8, 1.3), rng.uniform(-0.6, 0.6)])
        env = Environment(ga, gb, sky_top, sky_hor, hill, sun / np.linalg.norm(sun),
                          hill_phase=tuple(rng.uniform(0, 2 * math.pi, 3)), tile=float(rng.uniform(0.9, 1.4)),
                          tile_seed=int(rng.integers(1 << 30)))
        dyn_color = DYNAMIC_COLORS[int(rng.integers(len(DYNAMIC_COLORS)))]
        st_color = [c for c in STATIC_COLORS if c != dyn_color][int(rng.integers(len(STATIC_COLORS) - 1))]
        st_shape = list(STATIC_SHAPES)[int(rng.integers(2))]
        yaw0 = rng.uniform(0, 2 * math.pi)
        h_cam = rng.uniform(2.2, 2.6)
        c0 = np.array([rng.uniform(-4, 4), h_cam, rng.uniform(-4, 4)])
        fwd_h = np.array([math.sin(yaw0), 0.0, math.cos(yaw0)])
        right_h = np.cross(fwd_h, [0.0, 1.0, 0.0])
        side = 1.0 if rng.random() < 0.5 else -1.0
        dist_l = rng.uniform(6.5, 8.5)
        if st_shape == "box":
            st_size = (rng.uniform(0.4, 0.6), rng.uniform(0.55, 0.8), rng.uniform(0.4, 0.6))
        else:
            st_size = (rng.uniform(0.35, 0.5), rng.uniform(0.6, 0.9))
        lm_c = c0 + fwd_h * dist_l + right_h * side * rng.uniform(0.7, 1.4)
        lm_c[1] = st_size[1]
        landmark = Primitive(st_shape, lm_c, st_size, PALETTE[st_color], STATIC_ID, yaw=float(rng.uniform(0, math.pi)))
        # camera looks roughly at the landmark's row, slightly off
        look = lm_c + np.array([0.0, rng.uniform(-0.3, 0.3), 0.0]) - c0
        look = look - right_h * (right_h @ look) * rng.uniform(0.3, 1.0)
        R0 = look_rotation(look)
        c2w, rates = _camera_poses(R0, c0, blocks, fps, rng)
        Ks = np.repeat(Kmat[None], N, axis=0)
        # ---- cheap check: landmark centre well inside the image, in front, camera above ground
        uv_l = np.array([project(lm_c[None], c2w[i], Kmat)[0][0] for i in range(N)])
        z_l = np.array([project(lm_c[None], c2w[i], Kmat)[1][0] for i in range(N)])
        if (z_l < 2.5).any() or (uv_l[:, 0] < margin).any() or (uv_l[:, 0] > W - margin).any() \
                or (uv_l[:, 1] < margin).any() or (uv_l[:, 1] > H - margin).any() or (c2w[:, 1, 3] < 0.5).any():
            reasons["landmark leaves the view"] += 1
            continue
        # ---- dynamic object path, planned in the camera frame of the window's first frame
        Rw, cw = c2w[fs, :3, :3], c2w[fs, :3, 3]
        dshape = list(DYNAMIC_SHAPES)[int(rng.integers(3))]
        if dshape == "sphere":
            dsize = (rng.uniform(0.42, 0.52),)
        elif dshape == "box":
            s = rng.uniform(0.36, 0.44)
            dsize = (s, s, s)
        else:
            dsize = (rng.uniform(0.36, 0.44), rng.uniform(0.4, 0.5))
        extent = dsize[0] if dshape == "sphere" else dsize[1]
        z_m = rng.uniform(3.6, 5.0)
        lm_u = uv_l[fs, 0]
        u_c = rng.uniform(0.28, 0.46) * W if lm_u > W / 2 else rng.uniform(0.54, 0.72) * W
        x_m = (u_c - Kmat[0, 2]) * z_m / f_px
        if plan.direction == "Stationary":
            d_cam = np.zeros(3)
        elif plan.direction in ("Moving Toward Camera", "Moving Away from Camera"):
            mag = rng.uniform(2.0, 2.6)
            lat = rng.uniform(0, 0.12) * mag
            a = rng.uniform(0, 2 * math.pi)
            d_cam = np.array([lat * math.cos(a), lat * math.sin(a), -mag if "Toward" in plan.direction else mag])
        else:
            # the image is 4:3, so vertical-ish paths are kept shorter to stay in view
            span = {"Moving Up": (1.1, 1.5), "Moving Down": (1.1, 1.5), "Moving Left": (1.3, 1.9),
                    "Moving Right": (1.3, 1.9)}.get(plan.direction, (1.3, 1.7))
            d_cam = _lateral_dir(plan.direction, rng) * rng.uniform(*span)
        # mid-path height in the world: clear of the ground over the whole path, then its camera y
        rise = abs((Rw @ d_cam)[1]) / 2
        y_m = (rng.uniform(0.35, 0.65) * H - Kmat[1, 2]) * z_m / f_px  # aim near the middle row ...
        h_mid = cw[1] + Rw[1] @ np.array([x_m, y_m, z_m])
        h_mid = max(h_mid, extent + 0.1 + rise + rng.uniform(0.0, 0.3))  # ... unless that is too low
        y_m = (h_mid - cw[1] - Rw[1, 0] * x_m - Rw[1, 2] * z_m) / Rw[1, 1]
        mid_cam = np.array([x_m, y_m, z_m])
        if plan.direction not in ("Stationary", "Moving Toward Camera", "Moving Away from Camera"):
            # in-plane motion: choose the small depth component that keeps the camera distance
            # constant (mid . d = 0 -> |start| = |end|), plus a little noise
            d_cam[2] = -(x_m * d_cam[0] + y_m * d_cam[1]) / z_m + rng.uniform(-0.01, 0.01)
        d_w = Rw @ d_cam
        start = cw + Rw @ (mid_cam - d_cam / 2)
        end = start + d_w
        if min(start[1], end[1]) - extent < 0.05:
            reasons["object would go below the ground"] += 1
            continue
        r_dist = M.distance_change(start, end, cw)
        try:
            dist_lab = M.distance_label(r_dist)
        except ValueError:
            reasons["distance change in the undefined band"] += 1
            continue
        moving = plan.direction != "Stationary"
        if moving and ("Toward" in plan.direction or "Away" in plan.direction):
            ok = abs(r_dist) > 0.25
        else:
            ok = abs(r_dist) < 0.04
        if not ok:
            reasons["distance change too close to a threshold"] += 1
            continue
        if np.linalg.norm(lm_c - (start + end) / 2) < 2.0 or np.linalg.norm(lm_c - start) < 1.5 \
                or np.linalg.norm(lm_c - end) < 1.5:
            reasons["object path too close to the landmark"] += 1
            continue
        # trajectory
        if moving:
            knots = M.speed_knots(plan.speed, m, rng)
        else:
            knots = np.ones(m)
        tau = (np.arange(N) - fs) / fps
        frac = M.progress_curve(knots, tau) if moving else np.zeros(N)
        traj = start[None] + frac[:, None] * d_w[None]  # [N, 3]
        # label re-check from the trajectory itself
        disp_cam = Rw.T @ (traj[fe] - traj[fs])
        per_sec = np.linalg.norm(np.diff(traj[fs:fe + 1:fps], axis=0), axis=1)
        speed_lab = M.speed_label(per_sec) if moving else "Maintaining a Constant Speed"
        if M.direction_label(disp_cam) != plan.direction or (moving and speed_lab != plan.speed):
            reasons["labels from the trajectory differ from the plan"] += 1
            continue
        # object visible (centre inside the image with margin, in front) through the active interval
        uv_o = np.array([project(traj[i][None], c2w[i], Kmat)[0][0] for i in range(fs, fe + 1)])
        z_o = np.array([project(traj[i][None], c2w[i], Kmat)[1][0] for i in range(fs, fe + 1)])
        r_px = f_px * extent / z_o
        if (z_o < 1.8).any() or (uv_o[:, 0] < r_px * 0.6).any() or (uv_o[:, 0] > W - r_px * 0.6).any() \
                or (uv_o[:, 1] < r_px * 0.6).any() or (uv_o[:, 1] > H - r_px * 0.6).any():
            reasons["object leaves the view"] += 1
            continue
        dyn_r = _bound_radius(Primitive(dshape, start, dsize, (0, 0, 0), 0))
        lm_track = np.repeat(lm_c[None], N, axis=0)
        if _occludes(c2w, Kmat, traj, dyn_r, lm_track).any():
            reasons["object hides the landmark centre"] += 1
            continue
        # ---- distractors (dropped individually when in the way)
        n_d = int(rng.integers(cfg.n_distractors[0], cfg.n_distractors[1] + 1))
        taken = {dyn_color, st_color}
        prims = [landmark]
        cams = c2w[:, :3, 3]
        for _ in range(n_d):
            for _try in range(20):
                kind = ["sphere", "box", "cylinder"][int(rng.integers(3))]
                col = [c for c in PALETTE if c not in taken][int(rng.integers(len(PALETTE) - len(taken)))]
                sz = rng.uniform(0.25, 0.7)
                size = (sz,) if kind == "sphere" else ((sz, rng.uniform(0.3, 0.9), rng.uniform(0.25, 0.7))
                                                      if kind == "box" else (sz, rng.uniform(0.3, 1.0)))
                dist = rng.uniform(3.0, 16.0)
                ang = rng.uniform(-0.7, 0.7)
                pos = c0 + (fwd_h * math.cos(ang) + right_h * math.sin(ang)) * dist
                pos[1] = size[0] if kind == "sphere" else size[1]
                if kind == "sphere" and rng.random() < 0.3:
                    pos[1] += rng.uniform(0.2, 1.0)
                p = Primitive(kind, pos, size, PALETTE[col], 4 + len(prims), yaw=float(rng.uniform(0, math.pi)))
                br = _bound_radius(p)
                if np.min(np.linalg.norm(cams - pos, axis=1)) < br + 1.5 or np.linalg.norm(pos - lm_c) < br + 1.5:
                    continue
                if np.min(np.linalg.norm(traj - pos, axis=1)) < br + dyn_r + 0.4:
                    continue
                rep = np.repeat(pos[None], N, axis=0)
                if _occludes(c2w, Kmat, rep, br, lm_track, pad_px=4).any():
                    continue
                if _occludes(c2w[fs:fe + 1], Kmat, rep[fs:fe + 1], br, traj[fs:fe + 1], pad_px=-f_px * extent / 8).any():
                    continue
                prims.append(p)
                taken.add(col)
                break
        dynamic = Primitive(dshape, start.copy(), dsize, PALETTE[dyn_color], DYNAMIC_ID, yaw=float(rng.uniform(0, math.pi)))
        prims.append(dynamic)
        # ---- render and check the exact guarantees
        frames = np.empty((N, H, W, 3), np.uint8)
        ms = np.empty((N, H, W), bool)
        md = np.empty((N, H, W), bool)
        ui = np.floor(uv_l).astype(int).clip(0, [W - 1, H - 1])
        failed = ""
        for i in range(N):  # check every frame as it is rendered: a bad scene is dropped early
            dynamic.center = traj[i]
            rgb, ids, _ = render(c2w[i], Kmat, W, H, prims, env, rays)
            frames[i], ms[i], md[i] = rgb, ids == STATIC_ID, ids == DYNAMIC_ID
            if not ms[i, ui[i, 1], ui[i, 0]]:
                failed = "landmark centre not visible on every frame (render check)"
            elif ms[i].sum() < cfg.min_pixels:
                failed = "landmark too small"
            elif fs <= i <= fe and md[i].sum() < cfg.min_pixels:
                failed = "object too small or hidden during its active interval (render check)"
            if failed:
                break
        if failed:
            reasons[failed] += 1
            continue
        break
    else:
        if slot != 0:
            return make_clip(seed, index, cfg, _slot=0)
        raise SceneSamplingError(f"clip {index} (seed {seed}): no valid scene in {MAX_ATTEMPTS} attempts "
                                 f"(rejections: {dict(reasons.most_common(3))})")

    clip_id = f"clip_{index:05d}"
    shape_word = DYNAMIC_SHAPES[dshape]
    where = "floating above the ground" if min(traj[:, 1]) - extent > 0.15 else "on the ground"
    segs, t = [], 0
    for kind, label, secs in blocks:
        if kind == "segment":
            segs.append(dict(start_frame=t * fps, end_frame=(t + secs) * fps, start_s=float(t), end_s=float(t + secs),
                             label=label))
        t += secs
    truth = dict(
        clip_id=clip_id,
        static_object=dict(name=f"{st_color} {STATIC_SHAPES[st_shape]}",
                           description=f"a large {st_color} {STATIC_SHAPES[st_shape]} standing on the ground",
                           shape=st_shape, color=list(PALETTE[st_color]), size=float(max(st_size)),
                           center=[float(x) for x in lm_c], dims=[float(x) for x in st_size]),
        dynamic_object=dict(name=f"{dyn_color} {shape_word}",
                            description=f"a small {dyn_color} {shape_word} {where} that moves on its own",
                            shape=dshape, color=list(PALETTE[dyn_color]), size=float(extent),
                            center=[float(x) for x in traj[0]], dims=[float(x) for x in dsize],
                            trajectory=[[round(float(x), 6) for x in p] for p in traj]),
        camera_segments=segs,
        object_motion=dict(active_start_frame=int(fs), active_end_frame=int(fe), direction=plan.direction,
                           distance=dist_lab, speed=speed_lab, speed_defined=bool(moving),
                           displacement_cam=[float(x) for x in disp_cam], distance_change=float(r_dist),
                           speeds_per_second=[float(x) for x in per_sec], active_start_s=float(ws),
                           active_end_s=float(ws + m)),
        n_distractors=len(prims) - 2,
        attempts=attempt + 1,
        rejections=dict(reasons),
    )
    meta = dict(clip_id=clip_id, fps=float(fps), width=W, height=H, n_frames=N, duration_s=N / fps,
                source="synthetic", codec=cfg.codec, seed=seed, index=index, fov_deg=cfg.fov_deg)
    return ClipResult(frames, c2w, Ks, ms, md, truth, meta, attempt + 1)
