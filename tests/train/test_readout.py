"""train/readout.py: the read-out gate's stop rule against hand numbers, the held-out records it
picks, the answer span it scores, and ``train dift --stop-when`` on a tiny real model (the gate's
records never train, every check is logged, a met gate stops the run and the model is saved)."""

from __future__ import annotations

import json

import pytest

from fourdthinker.latent.toy import make_toy_dift
from fourdthinker.train import readout
from fourdthinker.train.dift import DiftConfig, train_dift
from fourdthinker.train.readout import answer_span, gate_decision, gate_indices


def _acc(**pattern: str) -> dict[str, list[bool]]:
    return {f: [c == "1" for c in s] for f, s in pattern.items()}


def test_gate_readout_by_hand():
    # target right on 8 of 10, zero on 0 of 10: +80 points; 8 discordant pairs all one way:
    # exact McNemar p = 2 * 0.5**8 = 0.0078 < 0.01 -> met
    met, why = gate_decision(_acc(target="1111111100", zero="0000000000"), "readout", margin=10, tolerance=3)
    assert met and why.startswith("met: target 80.0 vs zero 0.0 (+80.0 points, p 0.0078)")
    # 6 discordant pairs: p = 2 * 0.5**6 = 0.031 >= 0.01 -> not met, though 60 points clear the margin
    met, why = gate_decision(_acc(target="1111110000", zero="0000000000"), "readout", margin=10, tolerance=3)
    assert not met and "p 0.031" in why
    # significant but under the margin: 100 records, 12 vs 3 right, 9 discordant one way (p 0.0039)
    t, z = "1" * 12 + "0" * 88, "000000000111" + "0" * 88
    met, why = gate_decision(_acc(target=t, zero=z), "readout", margin=10, tolerance=3)
    assert not met and "+9.0 points" in why
    assert gate_decision(_acc(target=t, zero=z), "readout", margin=9, tolerance=3)[0]


def test_gate_self_level_by_hand():
    zero = "0" * 20
    # self 10/20 = 50, target 12/20 = 60, zero 0: 10 discordant (p 0.002); 50 >= 60 - 3? no
    acc = _acc(target="1" * 12 + "0" * 8, zero=zero, self="1" * 10 + "0" * 10)
    met, why = gate_decision(acc, "self-level", margin=10, tolerance=3)
    assert not met and "self 50.0 vs target 60.0" in why
    assert gate_decision(acc, "self-level", margin=10, tolerance=10)[0]  # within 10 points: level
    # level with the target but not read (self = zero): not met
    acc = _acc(target="1" * 2 + "0" * 18, zero="1" * 2 + "0" * 18, self="1" * 2 + "0" * 18)
    assert not gate_decision(acc, "self-level", margin=10, tolerance=3)[0]
    with pytest.raises(ValueError, match="same records"):
        gate_decision({"target": [True], "zero": [True, False], "self": [True]}, "self-level", margin=0, tolerance=0)
    with pytest.raises(ValueError, match="gate must be"):
        gate_decision(acc, "none", margin=0, tolerance=0)


def test_gate_indices():
    tasks = ["camera", "object", "camera", "camera", "object", "camera", "camera", "camera", "camera", "camera"]
    assert gate_indices(tasks, "camera", 2) == [8, 9]
    assert gate_indices(tasks + ["object"], "camera", 2) == [8, 9]
    assert gate_indices(tasks + ["object"], None, 2) == [9, 10]
    with pytest.raises(ValueError, match="only 8 .*needs at least 12"):
        gate_indices(tasks, "camera", 3)


def test_answer_span():
    from fourdthinker.models.testing import tiny

    tok = tiny("qwen2.5-vl-tiny").tokenizer
    row = tok("<|latent_end|></think><answer>Pan Left</answer><|im_end|>", add_special_tokens=False)["input_ids"]
    a, b = answer_span(tok, row, 0)
    assert tok.decode(row[a:b]) == "Pan Left"
    with pytest.raises(ValueError, match="no <answer>"):
        answer_span(tok, tok("<|latent_end|></think>", add_special_tokens=False)["input_ids"], 0)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    make_toy_dift(d, 10, size=56, n_frames=2)
    return d


def _cfg(toy, out, **kw) -> DiftConfig:
    base = dict(data=str(toy), out=str(out), model="qwen2.5-vl-tiny", lr=1e-3, warmup_steps=1, batch_size=2,
                save_steps=100, max_frames=2, target_cache=str(out.parent / "lt"), progress=False, health_heldout=0,
                response="imagery-answer", imagery_bottleneck=True, gate_records=2, gate_every=2)
    base.update(kw)
    return DiftConfig(**base)


def test_stop_when_needs_the_answer_response(toy, tmp_path):
    with pytest.raises(ValueError, match="--stop-when readout .*--response imagery-answer"):
        _cfg(toy, tmp_path / "r", response="reasoning", stop_when="readout").validate()


def test_stop_when_checks_held_out_records_to_the_cap(toy, tmp_path, monkeypatch):
    """Two held-out records can never give p < 0.01, so the gate is not met: the run goes to its
    cap, with a check every 2 steps and at the cap; the gate's records are never trained on."""
    from fourdthinker.train.collate import DiftDataset

    seen: list[int] = []
    orig = DiftDataset.__getitem__
    monkeypatch.setattr(DiftDataset, "__getitem__", lambda self, i: seen.append(i) or orig(self, i))
    res = train_dift(_cfg(toy, tmp_path / "cap", stop_when="self-level", max_steps=5))
    assert res.n_gate == 2 and res.gate_fired_at is None and len(res.losses) == 5
    assert seen and max(seen) <= 7  # items 8, 9 (the last two camera records) are the gate's
    gate = json.loads((tmp_path / "cap" / "gate.json").read_text())
    assert gate["stop_when"] == "self-level" and gate["fired_at"] is None and gate["records"] == 2
    assert [c["step"] for c in gate["checks"]] == [2, 4, 5] and not any(c["met"] for c in gate["checks"])
    assert all(set(c) >= {"target", "zero", "self", "why"} for c in gate["checks"])
    rows = [json.loads(x) for x in (tmp_path / "cap" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "readout_self" in r] == [2, 4, 5]
    assert all(0 <= r["readout_target"] <= 100 for r in rows if "readout_target" in r)


def test_a_met_gate_stops_and_saves(toy, tmp_path, monkeypatch):
    calls = []

    def met_second_time(acc, gate, **kw):  # the decision is tested by hand above; here: what a met gate does
        calls.append(sorted(acc))
        return len(calls) == 2, "met" if len(calls) == 2 else "not yet"

    monkeypatch.setattr(readout, "gate_decision", met_second_time)
    res = train_dift(_cfg(toy, tmp_path / "stop", stop_when="readout", max_steps=8))
    assert calls == [["target", "zero"]] * 2  # the readout gate compares target and zero feeds only
    assert res.gate_fired_at == 4 and len(res.losses) == 4
    gate = json.loads((tmp_path / "stop" / "gate.json").read_text())
    assert gate["fired_at"] == 4 and [c["met"] for c in gate["checks"]] == [False, True]
    cfg = json.loads((tmp_path / "stop" / "config.json").read_text())  # the model at step 4 is saved
    assert cfg["dift_response"] == "imagery-answer" and (tmp_path / "stop" / "model.safetensors").exists()


def test_resume_keeps_the_checks_up_to_the_checkpoint(tmp_path):
    """--resume from checkpoint-2: the checks after step 2 (and a gate that fired after it) are dropped,
    as those steps train again; a gate that fired at or before the checkpoint stops the run at once."""
    from transformers import TrainerControl, TrainerState

    from fourdthinker.train.readout import ReadoutGateCallback

    def cb(fired_at):
        checks = [{"step": s, "met": s == fired_at} for s in (1, 2, 3)]
        (tmp_path / "gate.json").write_text(json.dumps({"stop_when": "readout", "fired_at": fired_at, "checks": checks}))
        return ReadoutGateCallback(None, [], None, gate="readout", every=1, margin=10, tolerance=3, out=tmp_path)

    late = cb(3)
    late.on_train_begin(None, TrainerState(global_step=2), TrainerControl())
    assert [c["step"] for c in late.checks] == [1, 2] and late.fired_at is None
    early = cb(2)
    early.on_train_begin(None, TrainerState(global_step=2), TrainerControl())
    control = early.on_step_end(None, TrainerState(global_step=3, max_steps=9), TrainerControl())
    assert early.fired_at == 2 and control.should_training_stop
    other = ReadoutGateCallback(None, [], None, gate="self-level", every=1, margin=10, tolerance=3, out=tmp_path)
    assert other.checks == [] and other.fired_at is None  # another rule's gate.json is not resumed
