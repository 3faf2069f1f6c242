"""A small pure-numpy ray caster: exact perspective, exact per-pixel occlusion, exact masks.

Each pixel's ray (through the pixel centre) is intersected with the ground plane y = 0 and every
primitive (sphere, yaw-rotated box, vertical cylinder); the nearest hit wins (a z-buffer by
construction). The returned id buffer gives the masks: a mask is exactly the visible pixels of
one object. Rays are ``d = R K^-1 [u+0.5, v+0.5, 1]``, so the hit parameter ``t`` *is* the camera
z-depth. Shading: Lambert + ambient with one sun, a vertical blob shadow under each object, fog
toward the horizon; the sky is a gradient with a hill silhouette that depends on the azimuth (so
pans and tilts are visible even against the sky).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SKY_ID, GROUND_ID, STATIC_ID, DYNAMIC_ID = 0, 1, 2, 3
NEAR = 0.05


@dataclass
class Primitive:
    kind: str  # "sphere" | "box" | "cylinder"
    center: np.ndarray  # [3] world (volume centre)
    size: tuple[float, ...]  # sphere (r,), box (hx, hy, hz), cylinder (r, half_height)
    color: tuple[int, int, int]
    obj_id: int
    yaw: float = 0.0  # boxes only, radians about world y

    def footprint(self) -> float:
        """Radius of the blob shadow on the ground."""
        if self.kind == "box":
            return float(np.hypot(self.size[0], self.size[2]))
        return float(self.size[0])

    def bottom(self) -> float:
        return float(self.center[1] - (self.size[0] if self.kind == "sphere" else self.size[1]))


@dataclass
class Environment:
    ground_a: tuple[int, int, int]
    ground_b: tuple[int, int, int]
    sky_top: tuple[int, int, int]
    sky_horizon: tuple[int, int, int]
    hill: tuple[int, int, int]
    sun: np.ndarray  # [3] unit vector toward the sun
    hill_phase: tuple[float, float, float] = (0.0, 0.0, 0.0)
    tile: float = 1.0
    tile_seed: int = 0
    ambient: float = 0.45
    fog_dist: float = 45.0
    extra: dict = field(default_factory=dict)


def pixel_rays_cam(width: int, height: int, K: np.ndarray) -> np.ndarray:
    """Camera-frame ray directions [H, W, 3] through pixel centres, with z = 1."""
    u = (np.arange(width) + 0.5 - K[0, 2]) / K[0, 0]
    v = (np.arange(height) + 0.5 - K[1, 2]) / K[1, 1]
    uu, vv = np.meshgrid(u, v)
    return np.stack([uu, vv, np.ones_like(uu)], axis=-1)


def _hash01(ix: np.ndarray, iz: np.ndarray, seed: int) -> np.ndarray:
    h = (ix.astype(np.int64) * 73856093) ^ (iz.astype(np.int64) * 19349663) ^ (seed * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h ^ (h >> 16)) & 0xFFFF).astype(np.float64) / 65535.0


def _intersect(p: Primitive, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray hits of one primitive: (t [P] with inf for a miss, normal [P, 3] world)."""
    P = d.shape[0]
    t = np.full(P, np.inf)
    n = np.zeros((P, 3))
    oc = o - p.center  # [3]
    if p.kind == "sphere":
        r = p.size[0]
        a = np.einsum("ij,ij->i", d, d)
        b = 2.0 * d @ oc
        c = oc @ oc - r * r
        disc = b * b - 4 * a * c
        ok = disc >= 0
        tt = (-b[ok] - np.sqrt(disc[ok])) / (2 * a[ok])
        hit = np.zeros(P, bool)
        hit[ok] = tt > NEAR
        t[hit] = tt[tt > NEAR]
        n[hit] = (o + t[hit, None] * d[hit] - p.center) / r
        return t, n
    if p.kind == "box":
        cy, sy = np.cos(p.yaw), np.sin(p.yaw)
        Rb = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])  # box-to-world
        ol = oc @ Rb  # [3]
        dl = d @ Rb  # [P, 3]
        h = np.asarray(p.size)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / dl
            t1 = (-h - ol) * inv
            t2 = (h - ol) * inv
        tn = np.minimum(t1, t2)
        tf = np.maximum(t1, t2)
        tn = np.nan_to_num(tn, nan=-np.inf)
        tf = np.nan_to_num(tf, nan=np.inf)
        tmin = tn.max(axis=1)
        tmax = tf.min(axis=1)
        hit = (tmax >= tmin) & (tmin > NEAR)
        t[hit] = tmin[hit]
        ax = tn.argmax(axis=1)
        nl = np.zeros((P, 3))
        nl[np.arange(P), ax] = -np.sign(dl[np.arange(P), ax])
        n[hit] = nl[hit] @ Rb.T
        return t, n
    # vertical cylinder
    r, hh = p.size
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = 2 * (oc[0] * d[:, 0] + oc[2] * d[:, 2])
    c = oc[0] ** 2 + oc[2] ** 2 - r * r
    disc = b * b - 4 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        ts = (-b - np.sqrt(np.where(disc >= 0, disc, np.nan))) / (2 * a)
    ys = oc[1] + ts * d[:, 1]
    side = (disc >= 0) & (ts > NEAR) & (np.abs(ys) <= hh)
    t[side] = ts[side]
    n[side] = np.stack([oc[0] + ts[side] * d[side, 0], np.zeros(side.sum()), oc[2] + ts[side] * d[side, 2]], 1) / r
    for yc, ny in ((hh, 1.0), (-hh, -1.0)):
        with np.errstate(divide="ignore", invalid="ignore"):
            tc = (yc - oc[1]) / d[:, 1]
        xc, zc = oc[0] + tc * d[:, 0], oc[2] + tc * d[:, 2]
        cap = (tc > NEAR) & (xc * xc + zc * zc <= r * r) & (tc < t)
        t[cap] = tc[cap]
        n[cap] = (0.0, ny, 0.0)
    return t, n


def _screen_bbox(p: Primitive, c2w: np.ndarray, K: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """Flat pixel indices of the screen box that must contain the primitive (culling), an empty
    array when it is off screen, or None when the camera is too close to bound it."""
    if p.kind == "sphere":
        r = p.size[0]
    elif p.kind == "box":
        r = float(np.linalg.norm(p.size))
    else:
        r = float(np.hypot(p.size[0], p.size[1]))
    pc = (p.center - c2w[:3, 3]) @ c2w[:3, :3]  # camera frame
    z = pc[2]
    if z - r <= NEAR * 4:
        return None if np.linalg.norm(pc) <= r + 1.0 or z > -r else np.empty(0, np.int64)
    # conservative: the sphere's projection lies within centre +- f r / (z - r)
    rad_u = K[0, 0] * r / (z - r) * 1.05 + 1
    rad_v = K[1, 1] * r / (z - r) * 1.05 + 1
    u, v = K[0, 0] * pc[0] / z + K[0, 2], K[1, 1] * pc[1] / z + K[1, 2]
    # perspective widens off-axis: also cover the projections of the extreme points
    us = K[0, 0] * (pc[0] + np.array([-r, r])) / (z - r) + K[0, 2]
    vs = K[1, 1] * (pc[1] + np.array([-r, r])) / (z - r) + K[1, 2]
    u0 = int(max(0, np.floor(min(u - rad_u, us.min(), K[0, 0] * (pc[0] - r) / (z + r) + K[0, 2])) - 1))
    u1 = int(min(width, np.ceil(max(u + rad_u, us.max(), K[0, 0] * (pc[0] + r) / (z + r) + K[0, 2])) + 2))
    v0 = int(max(0, np.floor(min(v - rad_v, vs.min(), K[1, 1] * (pc[1] - r) / (z + r) + K[1, 2])) - 1))
    v1 = int(min(height, np.ceil(max(v + rad_v, vs.max(), K[1, 1] * (pc[1] + r) / (z + r) + K[1, 2])) + 2))
    if u0 >= u1 or v0 >= v1:
        return np.empty(0, np.int64)
    return (np.arange(v0, v1)[:, None] * width + np.arange(u0, u1)[None, :]).ravel()


def render(
    c2w: np.ndarray, K: np.ndarray, width: int, height: int, prims: list[Primitive], env: Environment,
    rays_cam: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one frame -> (rgb [H, W, 3] uint8, ids [H, W] int16, depth [H, W] float64 (inf = sky))."""
    if rays_cam is None:
        rays_cam = pixel_rays_cam(width, height, K)
    R, o = c2w[:3, :3], c2w[:3, 3]
    d = rays_cam.reshape(-1, 3) @ R.T  # [P, 3] world directions, camera z = 1
    P = d.shape[0]
    depth = np.full(P, np.inf)
    ids = np.full(P, SKY_ID, dtype=np.int16)
    normal = np.zeros((P, 3))
    color = np.zeros((P, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        tg = -o[1] / d[:, 1]
    g = (d[:, 1] < 0) & (tg > NEAR)
    depth[g] = tg[g]
    ids[g] = GROUND_ID
    for p in prims:
        idx = _screen_bbox(p, c2w, K, width, height)
        if idx is None:
            t, n = _intersect(p, o, d)
            closer = t < depth
            depth[closer] = t[closer]
            ids[closer] = p.obj_id
            normal[closer] = n[closer]
            color[closer] = p.color
        elif idx.size:
            t, n = _intersect(p, o, d[idx])
            closer = t < depth[idx]
            sel = idx[closer]
            depth[sel] = t[closer]
            ids[sel] = p.obj_id
            normal[sel] = n[closer]
            color[sel] = p.color
    # objects: Lambert + ambient
    obj = ids >= STATIC_ID
    lam = np.clip(normal[obj] @ env.sun, 0.0, 1.0)
    color[obj] *= (env.ambient + (1 - env.ambient) * lam)[:, None]
    # ground: checker tiles with per-tile tint, blob shadows, fog
    gm = ids == GROUND_ID
    hp = o + depth[gm, None] * d[gm]  # [G, 3]
    ix, iz = np.floor(hp[:, 0] / env.tile), np.floor(hp[:, 2] / env.tile)
    parity = ((ix + iz) % 2).astype(bool)
    base = np.where(parity[:, None], np.asarray(env.ground_a, float), np.asarray(env.ground_b, float))
    tint = 0.82 + 0.36 * _hash01(ix, iz, env.tile_seed)
    gcol = base * tint[:, None]
    gpos = np.full(P, -1, dtype=np.int64)  # pixel -> row in the ground arrays
    gpos[gm] = np.arange(int(gm.sum()))
    for p in prims:  # blob shadow, only on the ground pixels of the footprint's screen box
        r = p.footprint() * 1.15
        disc = Primitive("sphere", np.array([p.center[0], 0.0, p.center[2]]), (r * 1.2,), p.color, -1)
        idx = _screen_bbox(disc, c2w, K, width, height)
        rows = gpos if idx is None else gpos[idx]
        rows = rows[rows >= 0]
        if not rows.size:
            continue
        dist = np.hypot(hp[rows, 0] - p.center[0], hp[rows, 2] - p.center[2])
        strength = 0.45 * np.exp(-max(p.bottom(), 0.0) / 1.5)
        gcol[rows] *= (1.0 - strength * np.clip(1.2 - dist / r, 0.0, 1.0)).clip(0.0, 1.0)[:, None]
    fog = 1.0 - np.exp(-depth[gm] * np.linalg.norm(d[gm], axis=1) / env.fog_dist)
    color[gm] = gcol * (1 - fog[:, None]) + np.asarray(env.sky_horizon, float) * fog[:, None]
    # sky + hills
    sm = ids == SKY_ID
    ds = d[sm] / np.linalg.norm(d[sm], axis=1, keepdims=True)
    elev = np.arcsin(np.clip(ds[:, 1], -1, 1))
    az = np.arctan2(ds[:, 0], ds[:, 2])
    a1, a2, a3 = env.hill_phase
    hill_h = 0.035 + 0.03 * np.sin(3 * az + a1) + 0.018 * np.sin(7 * az + a2) + 0.008 * np.sin(17 * az + a3)
    k = np.clip(elev / 0.6, 0, 1)[:, None]
    sky = np.asarray(env.sky_horizon, float) * (1 - k) + np.asarray(env.sky_top, float) * k
    hills = elev < hill_h
    shade = 0.8 + 0.4 * np.clip((hill_h - elev) / 0.08, 0, 1)
    sky[hills] = np.asarray(env.hill, float) * shade[hills, None]
    color[sm] = sky
    rgb = np.clip(color, 0, 255).astype(np.uint8).reshape(height, width, 3)
    return rgb, ids.reshape(height, width), depth.reshape(height, width)
