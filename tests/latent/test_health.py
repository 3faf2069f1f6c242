"""Latent health: hand-computed norm/cosine stats, the divergence warning, decoder-output stats,
and a quick DIFT run that logs the health fields and draws latent_health.png."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fourdthinker.latent.health import (
    HealthCallback,
    check_divergence,
    decode_health,
    latent_health,
    mean_norm,
    plot_health,
)

torch.set_num_threads(2)


def test_latent_health_hand_computed():
    pred = torch.tensor([[3.0, 4.0], [0.0, 2.0]])  # norms 5, 2 -> mean 3.5
    tgt = torch.tensor([[6.0, 8.0], [1.0, 0.0]])  # norms 10, 1 -> mean 5.5
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 2.0]])  # norms 1,1,0,2 -> mean 1.0
    s = latent_health(pred, tgt, emb)
    assert s["pred_norm"] == pytest.approx(3.5)
    assert s["target_norm"] == pytest.approx(5.5)
    assert s["embed_norm"] == pytest.approx(1.0)
    assert s["pred_over_target"] == pytest.approx(3.5 / 5.5)
    assert s["pred_over_embed"] == pytest.approx(3.5)
    assert s["target_over_embed"] == pytest.approx(5.5)
    # cos: row 0 parallel -> 1; row 1 (0,2) vs (1,0) orthogonal -> 0; mean 0.5
    assert s["cos"] == pytest.approx(0.5)
    # at inference there is no target: only the norms against the embeddings
    s2 = latent_health(pred, None, emb)
    assert set(s2) == {"pred_norm", "embed_norm", "pred_over_embed"}
    with pytest.raises(ValueError, match="differ"):
        latent_health(pred, tgt[:1], emb)
    with pytest.raises(ValueError, match="non-empty"):
        mean_norm(torch.zeros(0, 2))


def test_check_divergence_fires_outside_band_only():
    assert check_divergence({"pred_over_target": 4.0, "pred_over_embed": 0.25, "cos": 0.1}, factor=4.0) is None
    msg = check_divergence({"pred_over_target": 4.5, "target_over_embed": 1.0, "heldout_pred_over_embed": 0.2},
                           factor=4.0)
    assert msg is not None and "pred_over_target=4.5" in msg and "heldout_pred_over_embed=0.2" in msg
    assert "target_over_embed" not in msg.replace("heldout_pred_over_embed", "")
    assert check_divergence({"pred_over_target": None, "pred_norm": 100.0}) is None  # norms alone are not ratios
    with pytest.raises(ValueError, match="factor"):
        check_divergence({}, factor=1.0)


def test_decode_health_from_decoder_outputs():
    from fourdthinker.latent.decode import DecodeResult

    def res(lat):
        return DecodeResult(token_ids=[], is_latent=[], latent_inputs=lat, text="", answer=None, n_latent_steps=len(lat),
                            n_latent_blocks=0, latency_s=0.0, finished=True, stop_reason="eos")

    emb = torch.tensor([[2.0, 0.0], [0.0, 2.0]])  # mean norm 2
    rs = [res(torch.tensor([[0.0, 6.0]])), res(torch.zeros(0, 2)), res(torch.tensor([[6.0, 8.0], [0.0, 2.0]]))]
    s = decode_health(rs, emb)  # latent norms 6, 10, 2 -> mean 6
    assert s == {"n_latent": 3, "latent_norm": pytest.approx(6.0), "embed_norm": pytest.approx(2.0),
                 "latent_over_embed": pytest.approx(3.0)}
    assert check_divergence(s, factor=2.0) is not None and check_divergence(s, factor=4.0) is None
    assert decode_health([res(torch.zeros(0, 2))], emb) == {"n_latent": 0, "embed_norm": pytest.approx(2.0)}


class _FakeState:  # TrainerState's two fields the callback reads
    def __init__(self, step):
        self.global_step = step


def test_health_callback_warns_on_hand_made_divergence():
    """A real StatsTrainer-like recorder (the callback only needs record/_stats) whose step stats
    have fed-back norms 10x the targets: the warning fires once, every divergent step is kept."""
    from fourdthinker.train.trainer import StatsTrainer

    class Rec:  # StatsTrainer.record/pop_stats without building a Trainer
        record = StatsTrainer.record
        pop_stats = StatsTrainer.pop_stats

        def __init__(self):
            from collections import defaultdict

            self._stats = defaultdict(list)
            self.model = torch.nn.Linear(2, 2)

    tr = Rec()
    held = {"x": 1}
    cb = HealthCallback(lambda b: (None, {"cos": 0.9, "pred_norm": 1.0, "ce": 3.0}, None), held, every=2,
                        factor=4.0, progress=False)
    cb.trainer = tr
    tr.record({"pred_over_target": 10.0, "pred_norm": 10.0})
    with pytest.warns(RuntimeWarning, match="pred_over_target=10"):
        cb.on_step_end(None, _FakeState(1), None, model=tr.model)
    stats = tr.pop_stats()
    assert stats["heldout_cos"] == 0.9 and stats["heldout_pred_norm"] == 1.0 and "heldout_ce" not in stats
    assert tr.model.training, "the model goes back to train mode after the held-out forward"
    tr.record({"pred_over_target": 1.0})
    cb.on_step_end(None, _FakeState(2), None, model=tr.model)
    assert "heldout_cos" in tr.pop_stats()  # every=2
    tr.record({"pred_over_target": 0.1})
    cb.on_step_end(None, _FakeState(3), None, model=tr.model)
    assert "heldout_cos" not in tr.pop_stats()
    assert [s for s, _ in cb.messages] == [1, 3]


def test_plot_health_needs_health_rows(tmp_path):
    assert plot_health([{"step": 1, "loss": 1.0}], tmp_path / "a.png") is None
    rows = [{"step": i, "pred_norm": 1.0 + i, "target_norm": 2.0, "embed_norm": 0.5, "pred_over_target": (1.0 + i) / 2,
             "pred_over_embed": 2 * (1.0 + i), "target_over_embed": 4.0, "cos": 0.1 * i} for i in range(1, 6)]
    rows[1]["heldout_cos"] = 0.3
    p = plot_health(rows, tmp_path / "h.png", factor=4.0)
    assert p is not None and p.stat().st_size > 5000


def test_dift_run_logs_health_and_plots(tmp_path):
    """3 steps of qwen2.5-vl-tiny on 5 toy records, 1 held out (5 > 4 x 1): every row carries the norm
    stats, the held-out cosine is logged at steps 1 and 2 (every=2), the PNG is written."""
    from fourdthinker.latent.toy import make_toy_dift
    from fourdthinker.train.dift import DiftConfig, train_dift

    make_toy_dift(tmp_path / "toy", 5, size=56, n_frames=2)
    out = tmp_path / "run"
    cfg = DiftConfig(data=str(tmp_path / "toy"), out=str(out), model="qwen2.5-vl-tiny", lr=2e-3, warmup_steps=1,
                     batch_size=1, max_steps=3, save_steps=100, target_cache=str(tmp_path / "lt"), progress=False,
                     max_frames=2, health_heldout=1, health_every=2)
    res = train_dift(cfg)
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and res.n_heldout == 1 and res.n_samples == 5
    for r in rows:
        for k in ("pred_norm", "target_norm", "embed_norm", "pred_over_target", "pred_over_embed", "cos"):
            assert math.isfinite(r[k]) and r[k] > (0 if k != "cos" else -1), (k, r)
        assert r["pred_over_target"] == pytest.approx(r["pred_norm"] / r["target_norm"], rel=1e-3)
    assert [r["step"] for r in rows if "heldout_cos" in r] == [1, 2]
    assert all(-1 <= r["heldout_cos"] <= 1 for r in rows if "heldout_cos" in r)
    assert res.health_png == out / "latent_health.png" and res.health_png.stat().st_size > 5000
    assert (out / "loss.png").exists()


def test_decode_health_meter_sums_batches_like_one_concatenation():
    from fourdthinker.latent.health import DecodeHealthMeter

    a, b = torch.tensor([[3.0, 4.0]]), torch.tensor([[0.0, 1.0], [6.0, 8.0]])  # norms 5 | 1, 10 -> mean 16/3
    m = DecodeHealthMeter()
    m.add([a])
    m.add([torch.zeros(0, 2), b])
    s = m.stats(embed_norm=2.0)
    assert s == {"n_latent": 3, "latent_norm": pytest.approx(16 / 3), "embed_norm": 2.0,
                 "latent_over_embed": pytest.approx(8 / 3)}
    assert s == pytest.approx(decode_health([torch.cat([a, b])], torch.tensor([[2.0, 0.0]])))
    assert DecodeHealthMeter().stats(2.0) == {"n_latent": 0, "embed_norm": 2.0}


def test_decode_health_report_line_and_warning_band():
    from fourdthinker.latent.health import DEFAULT_FACTOR, decode_health_report

    base = {"n_latent": 4, "embed_norm": 2.0}
    line, warn = decode_health_report(base | {"latent_norm": 6.0, "latent_over_embed": 3.0})
    assert line == "latent health: 4 fed-back vectors, mean norm 6 vs token embeddings 2 (ratio 3)" and warn is None
    for r in (DEFAULT_FACTOR * 1.01, 1 / (DEFAULT_FACTOR * 1.01)):  # just outside [1/4, 4] on either side
        _, warn = decode_health_report(base | {"latent_norm": 2.0 * r, "latent_over_embed": r})
        assert warn is not None and "outside [1/4, 4]" in warn
    assert decode_health_report(base | {"latent_norm": 20.0, "latent_over_embed": 10.0}, warn=False)[1] is None
    assert decode_health_report(base | {"latent_norm": 20.0, "latent_over_embed": 10.0}, factor=20)[1] is None
    assert decode_health_report({"n_latent": 0, "embed_norm": 2.0}) == (None, None)


def test_mean_norm_chunked_equals_direct():
    from fourdthinker.latent import health

    x = torch.randn(health._CHUNK * 2 + 5, 3)
    assert mean_norm(x) == pytest.approx(float(x.norm(dim=-1).mean()), rel=1e-6)
