"""Video interventions (``--frames``): each changes only the frames; the video probe's table and
verdict by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fourdthinker.data.records import BenchItem, Prediction
from fourdthinker.eval.evaluate import EvalResult
from fourdthinker.eval.video_probe import frames_table, motion_verdict, opposite_share
from fourdthinker.video.interventions import FRAME_INTERVENTIONS, intervene_frames, opposite_label

OPTS = {"A": "Moving Left", "B": "Moving Right", "C": "Stationary", "D": "Moving Up"}


def _frames(n=5):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (8, 10, 3), dtype=np.uint8) for _ in range(n)]


def test_each_intervention_keeps_count_shape_and_dtype():
    f = _frames()
    for kind in FRAME_INTERVENTIONS:
        g = intervene_frames(f, kind, key="item-1")
        assert len(g) == len(f) and all(x.shape == f[0].shape and x.dtype == np.uint8 for x in g), kind
    assert all(np.array_equal(a, b) for a, b in zip(intervene_frames(f, "normal"), f, strict=True))
    assert all(np.array_equal(x, f[0]) for x in intervene_frames(f, "first"))
    assert all(np.array_equal(a, b) for a, b in zip(intervene_frames(f, "reversed"), f[::-1], strict=True))
    assert all(not x.any() for x in intervene_frames(f, "blank"))
    sh = intervene_frames(f, "shuffled", key="item-1")
    order = [next(i for i, x in enumerate(f) if np.array_equal(x, y)) for y in sh]
    assert sorted(order) == list(range(5)) and order != list(range(5))
    assert [x.tobytes() for x in sh] == [x.tobytes() for x in intervene_frames(f, "shuffled", key="item-1")]  # seeded
    assert [x.tobytes() for x in intervene_frames(f[:2], "shuffled", key="k")] == [f[1].tobytes(), f[0].tobytes()]
    with pytest.raises(ValueError, match="unknown frame intervention"):
        intervene_frames(f, "mirror")


def test_runner_batches_differ_only_in_pixels(tmp_path):
    """The encoded prompts under each intervention: same ids, mask and grid, other pixel values."""
    from PIL import Image

    from fourdthinker.eval.runners.model import LatentModelRunner

    rng = np.random.default_rng(1)
    (tmp_path / "v").mkdir()
    for k in range(4):
        Image.fromarray(rng.integers(0, 255, (56, 56, 3), dtype=np.uint8)).save(tmp_path / "v" / f"{k}.png")
    item = BenchItem(id="q", video="v", question="Where does it move?", options=OPTS, answer="A", subtask="direction",
                     bench="t")
    base = LatentModelRunner("qwen2.5-vl-tiny", max_frames=4)
    ref = base._batch([item], tmp_path)
    for kind in FRAME_INTERVENTIONS[1:]:
        r = LatentModelRunner("qwen2.5-vl-tiny", adapter=base.adapter, max_frames=4, frames=kind)
        b = r._batch([item], tmp_path)
        assert set(b) == set(ref)
        for k, v in ref.items():
            if k.startswith("pixel_values"):
                assert v.shape == b[k].shape and not np.allclose(v.numpy(), b[k].numpy()), kind
            else:
                assert np.array_equal(np.asarray(v), np.asarray(b[k])), (kind, k)
        assert r.settings()["frames"] == kind
    assert "frames" not in base.settings()  # normal runs keep their old manifest (resumable)


def _result(answers, name="m"):
    items = {f"i{k}": BenchItem(id=f"i{k}", video="v", question="q?", options=OPTS, answer=t, subtask=s, bench="t")
             for k, (t, s, _) in enumerate(answers)}
    preds = {f"i{k}": Prediction(id=f"i{k}", raw_output="", parsed_answer=a, correct=a == t)
             for k, (t, _, a) in enumerate(answers)}
    return EvalResult(name, "t", items, [preds])


def test_opposite_share_and_table_by_hand():
    assert opposite_label("Moving Left") == "Moving Right" and opposite_label("Stationary") is None
    # truth A (Left; opposite B present), truth C (Stationary: no opposite) -> only the A items count
    normal = _result([("A", "direction", "A"), ("A", "direction", "A"), ("C", "direction", "C"), ("A", "camera", "A")])
    rev = _result([("A", "direction", "B"), ("A", "direction", "A"), ("C", "direction", "C"), ("A", "camera", "B")])
    n, share = opposite_share(rev.items, {i: p.parsed_answer for i, p in rev.predictions.items()})
    assert (n, share) == (3, pytest.approx(2 / 3))
    rows = {(r.frames, r.task): r for r in frames_table({"normal": normal, "reversed": rev})}
    assert rows[("normal", "all")].accuracy == 1.0 and rows[("normal", "all")].opposite_share == 0.0
    r = rows[("reversed", "all")]
    assert (r.n, r.accuracy, r.broken, r.fixed) == (4, 0.5, 2, 0)
    assert rows[("reversed", "direction")].opposite_share == pytest.approx(0.5)
    assert rows[("reversed", "camera")].opposite_share == 1.0
    with pytest.raises(ValueError, match="normal"):
        frames_table({"reversed": rev})


def test_motion_verdict_rules():
    right = [("A", "direction", "A")] * 12
    normal = _result(right)
    first_bad = _result([("A", "direction", "B")] * 10 + [("A", "direction", "A")] * 2)
    uses, why = motion_verdict(frames_table({"normal": normal, "first": first_bad}))
    assert uses and "first" in why
    uses, why = motion_verdict(frames_table({"normal": normal, "first": _result(right)}))
    assert not uses and "does not drop" in why
    uses, why = motion_verdict(frames_table({"normal": normal, "reversed": first_bad}))
    assert not uses and "neither" in why
    uses, why = motion_verdict(frames_table({"normal": normal, "blank": first_bad, "reversed": first_bad}))
    assert uses and "blank" in why and "opposite answer" in why
    json.dumps([r.__dict__ for r in frames_table({"normal": normal, "first": first_bad})])  # JSON-safe rows
