"""Camera conventions, SpatialVID's rule on every one of the 12 motions, and the renderer's geometry."""

import math

import numpy as np
import pytest

from fourdthinker.labels import CAMERA_MOTIONS
from fourdthinker.world.camera import (
    apply_motion,
    intrinsics,
    look_rotation,
    make_c2w,
    project,
    spatialvid_instructions,
)
from fourdthinker.world.render import DYNAMIC_ID, GROUND_ID, SKY_ID, Environment, Primitive, render


def test_intrinsics_and_projection_by_hand():
    K = intrinsics(200, 100, 90.0)  # f = (200/2) / tan(45 deg) = 100
    assert np.allclose(K, [[100, 0, 100], [0, 100, 50], [0, 0, 1]])
    R = look_rotation([0.0, 0.0, 1.0])  # looking along world +z, upright
    assert np.allclose(R @ [1, 0, 0], [-1, 0, 0]), "camera x (right) is world -x when looking along +z (y up)"
    assert np.allclose(R @ [0, 1, 0], [0, -1, 0]), "camera y points down"
    c2w = make_c2w(R, np.array([0.0, 1.0, 0.0]))
    # world (-1, 2, 4): camera frame (x, y, z) = (1, -1, 4) -> u = 100*1/4 + 100 = 125, v = 100*(-1)/4 + 50 = 25
    uv, z = project(np.array([[-1.0, 2.0, 4.0]]), c2w, K)
    assert np.allclose(uv, [[125, 25]]) and np.allclose(z, [4])


@pytest.mark.parametrize("label", CAMERA_MOTIONS)
def test_spatialvid_rule_recovers_each_motion(label):
    """One second of pure motion at 8 fps from a tilted, yawed start pose; SpatialVID's rule says
    exactly ``label`` on every 2-frame step (0.15 m or 1.5 deg per step vs thresholds 0.02 / 0.5 deg)."""
    R0 = look_rotation([math.sin(0.7), -0.2, math.cos(0.7)])
    c0 = np.array([1.0, 2.0, -3.0])
    rate = 0.6 if label.startswith("Move") else math.radians(6.0)
    poses = [make_c2w(*apply_motion(R0, c0, label, rate * f / 8)) for f in range(9)]
    assert spatialvid_instructions(np.stack(poses), interval=2) == [[label]] * 4
    # and with SpatialVID's EMA smoothing (alpha 0.1), the steps still carry the label
    assert all(s == [label] for s in spatialvid_instructions(np.stack(poses), interval=1, alpha=0.5)[1:])


def test_motion_signs_in_the_image():
    """Pan Left moves a centred world point to the right in the image; Tilt Up moves it down;
    Move Forward makes it grow; Roll Clockwise turns image content counter-clockwise."""
    K = intrinsics(200, 200, 90.0)
    R0, c0 = look_rotation([0, 0, 1.0]), np.zeros(3)
    p = np.array([[0.0, 0.0, 5.0]])
    q = np.array([[-1.0, 0.0, 5.0]])  # right of centre in the image (camera x = -world x)

    def uv(label, amt, pts=p):
        return project(pts, make_c2w(*apply_motion(R0, c0, label, amt)), K)[0][0]

    assert uv("Pan Left", 0.1)[0] > 100 and uv("Pan Right", 0.1)[0] < 100
    assert uv("Tilt Up", 0.1)[1] > 100 and uv("Tilt Down", 0.1)[1] < 100
    assert uv("Move Left", 0.5)[0] > 100 and uv("Move Up", 0.5)[1] > 100
    # roll CW (camera clockwise seen from behind): a point right of centre goes up in the image,
    # i.e. the content turns counter-clockwise (image y points down)
    assert uv("Roll Clockwise", 0.2, q)[1] < 100 and uv("Roll Counter-clockwise", 0.2, q)[1] > 100
    d0 = np.linalg.norm(project(q, make_c2w(R0, c0), K)[0][0] - 100)
    assert np.linalg.norm(uv("Move Forward", 1.0, q) - 100) > d0 > np.linalg.norm(uv("Move Backward", 1.0, q) - 100)


def test_render_sphere_by_hand():
    """A sphere of radius 1 at depth 10 straight ahead: its silhouette radius is f * r / sqrt(d^2 - r^2)
    = 100 / sqrt(99) = 10.05 px around the principal point; ids give the mask exactly."""
    W = H = 101
    K = intrinsics(W, H, 2 * math.degrees(math.atan(50.5 / 100)))  # f = 100
    c2w = make_c2w(look_rotation([0, 0, 1.0]), np.array([0.0, 5.0, 0.0]))
    env = Environment((90, 90, 90), (60, 60, 60), (50, 80, 200), (200, 200, 220), (80, 80, 80),
                      sun=np.array([0.0, 1.0, 0.0]))
    ball = Primitive("sphere", np.array([0.0, 5.0, 10.0]), (1.0,), (250, 200, 40), DYNAMIC_ID)
    rgb, ids, depth = render(c2w, K, W, H, [ball], env)
    mask = ids == DYNAMIC_ID
    ys, xs = np.nonzero(mask)
    assert abs(xs.mean() + 0.5 - K[0, 2]) < 0.01 and abs(ys.mean() + 0.5 - K[1, 2]) < 0.01
    expected_area = math.pi * (100 / math.sqrt(99)) ** 2  # ~317 px
    assert abs(mask.sum() - expected_area) / expected_area < 0.05, mask.sum()
    assert depth[50, 50] == pytest.approx(9.0)  # front of the sphere, camera z-depth
    assert ids[0, 50] == SKY_ID and ids[100, 50] == GROUND_ID  # camera at height 5 looking level
    assert rgb.dtype == np.uint8 and rgb.shape == (H, W, 3)


def test_render_occlusion_nearest_wins():
    W = H = 64
    K = intrinsics(W, H, 60.0)
    c2w = make_c2w(look_rotation([0, 0, 1.0]), np.array([0.0, 2.0, 0.0]))
    env = Environment((90, 90, 90), (60, 60, 60), (50, 80, 200), (200, 200, 220), (80, 80, 80),
                      sun=np.array([0.0, 1.0, 0.0]))
    far = Primitive("box", np.array([0.0, 2.0, 10.0]), (1.0, 1.0, 1.0), (0, 0, 255), 2)
    near = Primitive("cylinder", np.array([0.0, 2.0, 5.0]), (0.3, 0.5), (255, 255, 0), 3)
    _, ids, _ = render(c2w, K, W, H, [far, near], env)
    assert ids[32, 32] == 3 and (ids == 2).sum() > 0, "the near cylinder hides the box's centre"
    _, ids2, _ = render(c2w, K, W, H, [near, far], env)
    assert np.array_equal(ids, ids2), "draw order must not matter (z-buffer)"
