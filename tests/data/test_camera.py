"""Camera labels: the SpatialVID rule on hand-built poses, run merging, frames-only estimation."""

import math

import numpy as np
import pytest

from fourdthinker.data import camera as cam
from fourdthinker.labels import CAMERA_MOTIONS
from fourdthinker.world.camera import apply_motion, intrinsics, make_c2w


def _poses(label, n=9, amount=0.1):
    R, c = np.eye(3), np.zeros(3)
    return np.stack([make_c2w(*apply_motion(R, c, label, amount * i)) for i in range(n)])


@pytest.mark.parametrize("label", CAMERA_MOTIONS)
def test_relative_motion_signs_match_world_conventions(label):
    # every world motion (world.camera table) comes back as its own label under the dominant rule
    p = _poses(label, n=2, amount=0.05)
    m = cam.relative_motion(p[0], p[1])
    assert cam.dominant_motion(m, trans_th=0.01, rot_th_deg=0.5) == label, m


def test_relative_motion_hand_values():
    # Pan Right by 0.1 rad: yaw = +5.73 deg, no translation
    m = cam.relative_motion(*_poses("Pan Right", n=2, amount=0.1))
    assert math.isclose(m["yaw"], math.degrees(0.1), rel_tol=1e-9) and abs(m["tx"]) < 1e-12
    # Move Up by 0.3 m: y points down, so ty = -0.3
    m = cam.relative_motion(*_poses("Move Up", n=2, amount=0.3))
    assert math.isclose(m["ty"], -0.3, rel_tol=1e-9)


def test_spatialvid_step_commands_and_stay():
    m = {"tx": 0.0, "ty": 0.0, "tz": 0.05, "yaw": -1.0, "pitch": 0.1, "roll": 0.0}
    assert cam.spatialvid_step_commands(m, 0.02, 0.5) == ["Dolly In", "Pan Left"]
    assert cam.spatialvid_step_commands({k: 0.0 for k in m}, 0.02, 0.5) == ["Stay"]


def test_merge_runs_absorbs_short_runs():
    # steps: 4x Pan Left, 1x Stay (noise), 3x Pan Left, 4x Stay -> two segments over frames
    labels = ["Pan Left"] * 4 + ["Stay"] + ["Pan Left"] * 3 + ["Stay"] * 4
    segs = cam.merge_runs(labels, min_len=2)
    assert [(s.start_frame, s.end_frame, s.label) for s in segs] == [(0, 9, "Pan Left"), (8, 13, "Stay")]


def test_segments_from_poses_two_motions():
    a = _poses("Move Forward", n=9, amount=0.06)
    R, c = a[-1][:3, :3], a[-1][:3, 3]
    b = np.stack([make_c2w(*apply_motion(R, c, "Tilt Down", 0.02 * i)) for i in range(1, 9)])
    segs = cam.segments_from_poses(np.concatenate([a, b]))
    assert [s.label for s in segs] == ["Move Forward", "Tilt Down"]
    assert segs[0].start_frame == 0 and segs[-1].end_frame == 17


def test_spatialvid_w2c_roundtrip():
    from scipy.spatial.transform import Rotation

    c2w = _poses("Pan Left", n=3, amount=0.2)
    c2w[:, :3, 3] = [[1, 2, 3], [1, 2, 4], [0, 0, 0]]
    w2c = np.linalg.inv(c2w)
    rows = np.c_[w2c[:, :3, 3], Rotation.from_matrix(w2c[:, :3, :3]).as_quat()]
    np.testing.assert_allclose(cam.spatialvid_w2c_to_c2w(rows), c2w, atol=1e-12)
    with pytest.raises(ValueError, match="N x 7"):
        cam.spatialvid_w2c_to_c2w(np.zeros((3, 6)))


def test_parse_spatialvid_instructions():
    segs = cam.parse_spatialvid_instructions({"0->12": ["Dolly In"], "12->30": ["Dolly In", "Pan Left"],
                                              "30->47": ["Stay"], "47->60": ["Roll CW"]})
    assert [(s.start_frame, s.label) for s in segs] == [(0, "Move Forward"), (47, "Roll Clockwise")]
    with pytest.raises(ValueError, match="unknown motion"):
        cam.parse_spatialvid_instructions({"0->3": ["Fly Away"]})


def _textured(h=120, w=160, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 4, w // 4, 3), dtype=np.uint8)
    import cv2

    return cv2.resize(small, (w * 2, h * 2), interpolation=cv2.INTER_CUBIC)


def test_frames_estimation_pan_vs_shift():
    import cv2

    big = _textured()
    K = intrinsics(160, 120, 60.0)
    # a pure rotation: warp by K R^T K^-1 (camera turns right by 2 deg -> content moves left)
    R = np.array(make_c2w(*apply_motion(np.eye(3), np.zeros(3), "Pan Right", math.radians(2.0))))[:3, :3]
    a = big[60:180, 80:240].copy()
    H = K @ R.T @ np.linalg.inv(K)
    b = cv2.warpPerspective(a, H, (160, 120), borderMode=cv2.BORDER_REFLECT)
    m = cam.estimate_step_motion(a, b, K)
    assert cam.classify_frame_motion(m) == "Pan Right", m
    assert m["yaw"] == pytest.approx(2.0, abs=0.4)


@pytest.mark.parametrize("label", CAMERA_MOTIONS)
def test_spatialvid_motion_equals_relative_motion_on_one_axis(label):
    """SpatialVID's Euler angles (negated into our signs) agree with relative_motion for every pure
    motion, so one threshold rule (spatialvid_step_commands) serves both; world re-exports it."""
    from fourdthinker.world import camera as world_camera

    p = _poses(label, n=2, amount=0.05)
    a, b = cam.spatialvid_motion(p[0], p[1]), cam.relative_motion(p[0], p[1])
    assert a == pytest.approx(b, abs=1e-9)
    assert cam.spatialvid_step_commands(a, 0.02, 0.5) == [cam.CAMERA_TO_SPATIALVID[label]]
    assert world_camera.spatialvid_instructions is cam.spatialvid_instructions
    assert cam.spatialvid_instructions(_poses(label, n=5, amount=0.05), interval=2) == [[label]] * 2
