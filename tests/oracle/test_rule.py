"""The offline rule oracle: deterministic, varied phrasing, valid CoT for every task, compensation step."""

from fourdthinker.data.validate import validate_cot
from fourdthinker.oracle import CotRequest
from fourdthinker.oracle.rule import RuleOracle

OPTS = {"A": "Moving Left", "B": "Moving Right", "C": "Moving Up", "D": "Stationary"}


def _req(task, rid="c_00", n=4, attempt=0):
    facts = {"static": "blue tower", "dynamic": "red ball", "camera": "the camera performs pan left",
             "camera_shift_words": "right", "observation": "After compensation its centre moves right.",
             "shift_dx": 12.0, "shift_dy": 0.0, "shift_words": "right", "reason": "Everything slides right together.",
             "bbox": "[1, 2, 30, 40]"}
    opts = {"A": "Pan Left", "B": "Pan Right", "C": "Move Left", "D": "Tilt Up"} if task == "camera" else OPTS
    ans = ("A", "Pan Left") if task == "camera" else ("B", "Moving Right")
    return CotRequest(rid, task, "q?", opts, ans[0], ans[1], [float(k) for k in range(n)], facts, attempt=attempt)


def test_every_task_valid_and_deterministic():
    o = RuleOracle(seed=0)
    for task, n in (("camera", 2), ("camera", 3), ("direction", 4), ("bbox", 3), ("distance", 4), ("speed", 5)):
        text = o.write_cot(_req(task, n=n))
        ok, why = validate_cot(text, _req(task, n=n).options, n, expected=_req(task).answer)
        assert ok, (task, n, why, text)
        assert text == RuleOracle(seed=0).write_cot(_req(task, n=n)), "same seed, same text"
    obj = o.write_cot(_req("direction"))
    assert "camera" in obj.lower() and "moves to the right" in obj, "compensation step and the motion in words"
    assert "object in the box [1, 2, 30, 40]" in o.write_cot(_req("bbox"))


def test_templates_vary_across_records():
    o = RuleOracle(seed=0)
    texts = {o.write_cot(_req("camera", rid=f"clip_{i}")) for i in range(12)}
    assert len(texts) >= 4, "phrasing should vary between records"
