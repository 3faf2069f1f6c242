"""Object labels from hand-built mask trajectories (static camera: identity homographies)."""

import math

import numpy as np
import pytest

from fourdthinker.data import objects as obj


def _disk(h, w, cx, cy, r):
    yy, xx = np.mgrid[:h, :w]
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r


K = np.array([[140.0, 0, 80], [0, 140.0, 60], [0, 0, 1]])


def _track(cs, rs, h=120, w=160):
    masks = [_disk(h, w, cx, cy, r) for (cx, cy), r in zip(cs, rs, strict=True)]
    return obj.compensated_track(masks, list(range(len(masks))), None)


def test_centroid_and_shift_eq3():
    m = np.zeros((10, 10), bool)
    m[2:4, 2:6] = True  # x 2..5 -> 3.5, y 2..3 -> 2.5
    assert obj.mask_centroid(m) == (3.5, 2.5)
    m2 = np.zeros_like(m)
    m2[5:7, 1:5] = True  # (2.5, 5.5)
    assert obj.centroid_shift(m, m2) == (-1.0, 3.0)
    assert obj.centroid_shift(m, np.zeros_like(m)) is None
    assert obj.shift_words(-5, 0.2) == "left" and obj.shift_words(4, -4) == "up and to the right"


@pytest.mark.parametrize("dx,dy,want", [(40, 0, "Moving Right"), (-30, -30, "Moving Left-Up"), (0, 25, "Moving Down")])
def test_direction_lateral(dx, dy, want):
    t = _track([(60, 60), (60 + dx / 2, 60 + dy / 2), (60 + dx, 60 + dy)], [10, 10, 10])
    assert obj.direction_label(t, K)[0] == want


def test_direction_depth_and_stationary():
    # on the optical axis, radius 10 -> 20: size doubles, distance halves: dz = 0.5 - 1 = -0.5 (units of D_0)
    t = _track([(80, 60)] * 3, [10, 14, 20])
    lab, info = obj.direction_label(t, K)
    assert lab == "Moving Toward Camera" and info["dz"] == pytest.approx(-0.5, abs=0.03)
    assert obj.distance_label(t, K)[0] == "Moving Toward Camera"
    t = _track([(80, 60), (80.3, 60), (80.2, 60.1)], [10, 10, 10])
    assert obj.direction_label(t, K)[0] == "Stationary"
    assert obj.distance_label(t, K)[0] == "Maintaining Roughly the Same Distance"


def test_homography_compensation_removes_camera_shift():
    # camera pans: everything moves +10 px/step in x, the object too -> compensated it is still
    H = np.array([[1, 0, 10.0], [0, 1, 0], [0, 0, 1]])
    masks = [_disk(120, 200, 50 + 10 * k, 60, 10) for k in range(4)]
    t = obj.compensated_track(masks, [0, 1, 2, 3], [H, H, H])
    assert t.comp_centroids[-1][0] == pytest.approx(t.comp_centroids[0][0], abs=1e-6)
    assert t.camera_shift == pytest.approx((30.0, 0.0))
    assert obj.direction_label(t, K)[0] == "Stationary"


def test_h_area_scale_hand_value():
    # a uniform zoom by 2 quadruples areas
    assert obj.h_area_scale(np.diag([2.0, 2.0, 1.0]), 5, 7) == pytest.approx(4.0)


@pytest.mark.parametrize("speeds,want", [
    ([1, 1.02, 0.99, 1.01, 1.0], "Maintaining a Constant Speed"),
    ([0.4, 0.7, 1.0, 1.3, 1.6], "Speeding Up"),
    ([1.6, 1.3, 1.0, 0.7, 0.4], "Slowing Down"),
    ([0.5, 1.0, 1.5, 1.0, 0.5], "First Speeding Up Then Slowing Down"),
    ([1.5, 1.0, 0.5, 1.0, 1.5], "First Slowing Down Then Speeding Up"),
    ([0.5, 1.5, 0.5, 1.5, 0.5], "Moving at Varying Speeds"),
])
def test_speed_label_rules(speeds, want):
    assert obj.speed_label(speeds)[0] == want


def test_reconstruct_hand_values():
    # centre pixel -> bearing (0, 0, 1) at distance 1; a pixel 140 px right (45 deg off-axis) with the
    # size an object at distance 1 has there (s * cos^1.5(45deg) = s) is at distance 1 along (1, 0, 1)/sqrt2
    t = obj.Track([0, 1], [(80, 60), (220, 60)], [10.0, 10.0 / 0.5 ** 0.75], [(80, 60), (220, 60)], [10.0, 10.0 / 0.5 ** 0.75])
    P = obj.reconstruct(t, K)
    np.testing.assert_allclose(P, [[0, 0, 1], [2 ** -0.5, 0, 2 ** -0.5]], atol=1e-9)
    assert obj.step_speeds(t, K) == pytest.approx([np.linalg.norm(P[1] - P[0])])


def test_valid_frames_and_longest_run():
    m = [_disk(50, 50, 25, 25, 5), np.zeros((50, 50), bool), _disk(50, 50, 2, 25, 5), _disk(50, 50, 25, 25, 5)]
    assert obj.valid_dynamic_frames(m, border=1) == [0, 3]
    assert obj.valid_dynamic_frames(m) == [0, 2, 3]
    assert obj.longest_run([0, 2, 3, 4, 7, 8]) == [2, 3, 4]
    assert math.isclose(obj.mask_bbox(m[0])[0], 20)


def test_choose_active_prefers_camera_still_moving_run():
    frames = list(range(9))
    # steps 0-1: spurious motion while the camera translates; 2: rest; 3-6 real motion; 7: rest
    speeds = [0.2, 0.15, 0.001, 0.05, 0.1, 0.08, 0.06, 0.002]
    still = [False, False, True, True, True, True, True, True]
    assert obj.choose_active(frames, speeds, still) == [3, 4, 5, 6, 7]
    # a static object: motion only while the camera translates, calm while it holds -> the calm run
    speeds = [0.2, 0.15, 0.001, 0.002, 0.001, 0.003, 0.001, 0.002]
    assert obj.choose_active(frames, speeds, still) == [2, 3, 4, 5, 6, 7, 8]
