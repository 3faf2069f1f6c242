"""``eval --samples N`` with prefix sharing: a latent model decodes an item's N samples together
from one prefill (``LatentModelRunner.plan_samples``), one prediction file per seed as before."""

from __future__ import annotations

import json

import pytest
import torch

from fourdthinker.eval import evaluate, load_benchmark
from fourdthinker.eval.runners.model import LatentModelRunner


@pytest.fixture(scope="module")
def adapter():
    from fourdthinker.models import load

    torch.set_num_threads(2)
    return load("qwen2.5-vl-tiny")


def test_sampled_eval_shares_one_prefill_per_item(adapter, world_root, tmp_path, monkeypatch):
    from fourdthinker.latent import decode

    lr = load_benchmark("synthetic", world_root)
    items = lr.items[:2]
    calls = []
    real = decode.latent_generate

    def spy(ad, batch, **kw):
        calls.append((batch["input_ids"].shape[0], kw.get("num_return_sequences", 1)))
        return real(ad, batch, **kw)

    monkeypatch.setattr(decode, "latent_generate", spy)
    r = LatentModelRunner("tiny", adapter=adapter, max_new_tokens=6, max_frames=2, batch_size=6, temperature=1.0)
    res = evaluate(r, items, tmp_path / "shared", root=lr.root, samples=3, seed=4, progress=False)
    assert calls == [(2, 3)]  # ONE decode: 2 prompts, 3 samples each
    assert len(res.runs) == 3 and all(len(run) == 2 for run in res.runs) and not res.failed
    # what was written is what one shared decode gives for that generator state
    batch = r._batch(items, lr.root)
    gen = torch.Generator().manual_seed(4 * 1_000_003 + 2 + 7919 * 3)
    with torch.no_grad():
        again = real(adapter, batch, max_new_tokens=6, do_sample=True, temperature=1.0, top_p=0.9, generator=gen,
                     num_return_sequences=3, options=[it.options for it in items for _ in range(3)])
    for j, s in enumerate((4, 5, 6)):
        rows = [json.loads(x) for x in (tmp_path / "shared" / f"predictions_seed{s}.jsonl").read_text().splitlines()]
        assert {p["id"]: p["raw_output"] for p in rows} == {it.id: again[i * 3 + j].text for i, it in enumerate(items)}

    # --no-prefix-sharing: one decode per seed (the reference path); the folder records how samples were drawn
    calls.clear()
    r2 = LatentModelRunner("tiny", adapter=adapter, max_new_tokens=6, max_frames=2, batch_size=6, temperature=1.0,
                           prefix_sharing=False)
    evaluate(r2, items, tmp_path / "plain", root=lr.root, samples=3, seed=4, progress=False)
    assert calls == [(2, 1)] * 3
    assert json.loads((tmp_path / "plain" / "run.json").read_text())["prefix_sharing"] is False
    with pytest.raises(ValueError, match="prefix_sharing"):
        evaluate(r, items, tmp_path / "plain", root=lr.root, samples=3, seed=4, progress=False)
