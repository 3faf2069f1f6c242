"""Local model runners on a tiny real Qwen2.5-VL: latent decoder (batched == one by one, greedy is
deterministic, sampled seeds reproducible) and plain ``generate``."""

from __future__ import annotations

import pytest
import torch

from fourdthinker.eval import evaluate, load_benchmark
from fourdthinker.eval.runners import FatalRunnerError, make_runner
from fourdthinker.eval.runners.model import LatentModelRunner, PlainModelRunner


@pytest.fixture(scope="module")
def adapter():
    from fourdthinker.models import load

    torch.set_num_threads(2)
    return load("qwen2.5-vl-tiny")


@pytest.mark.slow  # 5 decodes of the tiny model: ~6 s each on a busy 2-core machine
def test_latent_runner_batched_equals_one_by_one(adapter, world_root):
    lr = load_benchmark("synthetic", world_root)
    items = lr.items[:2]
    r = LatentModelRunner("tiny", adapter=adapter, max_new_tokens=6, max_frames=2)
    batched = r.generate(items, lr.root, seed=0, do_sample=False)
    single = [r.generate([it], lr.root, seed=5, do_sample=False)[0] for it in items]  # greedy ignores the seed
    assert [o.text for o in batched] == [o.text for o in single]
    s1 = r.generate(items, lr.root, seed=1, do_sample=True)
    s1b = r.generate(items, lr.root, seed=1, do_sample=True)
    assert [o.text for o in s1] == [o.text for o in s1b]  # same seed, same samples


def test_plain_runner_evaluates(adapter, world_root, tmp_path):
    lr = load_benchmark("synthetic", world_root)
    r = PlainModelRunner("tiny-plain", adapter=adapter, max_new_tokens=6, max_frames=2, batch_size=2)
    res = evaluate(r, lr.items[:2], tmp_path, root=lr.root, progress=False)
    assert len(res.predictions) == 2 and not res.failed
    assert all(isinstance(p.raw_output, str) for p in res.predictions.values())


def test_bad_model_is_one_clear_error(world_root, tmp_path):
    lr = load_benchmark("synthetic", world_root)
    # a missing local folder is refused when the runner is made, before any item runs
    with pytest.raises(FileNotFoundError, match="/no/such/checkpoint: no such model folder"):
        make_runner("latent:/no/such/checkpoint")
    # a folder that exists but holds no loadable model fails the run once, not item by item
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    r = make_runner(f"latent:{bad}")
    with pytest.raises(FatalRunnerError, match="cannot load model"):
        evaluate(r, lr, tmp_path / "out", progress=False)


def test_auto_spec_picks_decoder_from_checkpoint(adapter, tmp_path):
    # a DIFT-style checkpoint (latent tokens in its tokenizer) -> latent decoder, found without loading it
    adapter.model.save_pretrained(tmp_path)
    adapter.processor.save_pretrained(tmp_path)
    r = make_runner(f"DIFT={tmp_path}")
    assert isinstance(r, LatentModelRunner) and r.name == "DIFT" and r._adapter is None
    assert r.adapter.latent_start_id is not None
    # a preset base model has no latent tokens -> plain generate
    assert isinstance(make_runner("qwen2.5-vl-tiny"), PlainModelRunner)


def test_eval_latents_option_reaches_the_runner():
    """`fourdthinker eval --latents X` builds a latent runner that feeds intervention X (docs/inference.md#latent-interventions)."""
    from fourdthinker.eval.runners import make_runner

    r = make_runner("latent:qwen2.5-vl-tiny", latents="zero", latent_norm=2.5)
    assert (r.latents, r.latent_norm) == ("zero", 2.5)
    assert r.settings()["latents"] == "zero"  # part of the resume key: other latents never reuse predictions
    with pytest.raises(ValueError, match="bogus"):
        make_runner("latent:qwen2.5-vl-tiny", latents="bogus")


def test_latent_runner_stores_latent_health_in_summary(adapter, world_root, tmp_path):
    """summary.json["latent_health"] = decode_health over every fed-back vector of the run (sums kept
    by the runner), merged with the earlier part on resume. The untrained tiny model is biased (a
    forward hook on its LM head) to open imagery blocks, so latent steps are actually fed."""
    import json

    from fourdthinker.latent.decode import latent_ids
    from fourdthinker.latent.health import mean_norm

    lr = load_benchmark("synthetic", world_root)
    start = latent_ids(adapter).start

    def open_imagery(_mod, _inp, out):
        out = out.clone()
        out[..., start] += 1e4
        return out

    hook = adapter.model.get_output_embeddings().register_forward_hook(open_imagery)
    try:
        r = LatentModelRunner("tiny", adapter=adapter, max_new_tokens=7, max_frames=2, batch_size=2)
        res = evaluate(r, lr.items[:2], tmp_path, root=lr.root, progress=False)
        h = json.loads((tmp_path / "summary.json").read_text())["latent_health"]
        assert h == res.latent_health
        assert h["n_latent"] == sum(p.n_latent_steps for p in res.predictions.values()) > 0
        assert h["latent_norm"] > 0 and h["embed_norm"] == pytest.approx(
            mean_norm(adapter.model.get_input_embeddings().weight[: len(adapter.tokenizer)]))  # padding rows excluded
        assert h["latent_over_embed"] == pytest.approx(h["latent_norm"] / h["embed_norm"])
        res2 = evaluate(r, lr.items[:3], tmp_path, root=lr.root, progress=False)  # resume: decodes 1 more item
        h2 = json.loads((tmp_path / "summary.json").read_text())["latent_health"]
        assert h2["n_latent"] == sum(p.n_latent_steps for p in res2.predictions.values()) > h["n_latent"]
        assert h2["latent_over_embed"] == pytest.approx(h2["latent_norm"] / h2["embed_norm"])
    finally:
        hook.remove()


def test_eval_prints_latent_health_line():
    """The line `fourdthinker eval` prints per latent model (print_decode_health on a rich console)."""
    from rich.console import Console

    from fourdthinker.latent.health import print_decode_health

    con = Console(record=True, width=200)
    stats = {"n_latent": 10, "latent_norm": 12.0, "embed_norm": 0.5, "latent_over_embed": 24.0}
    print_decode_health(con, stats, prefix="DIFT: ")
    text = con.export_text()
    assert "DIFT: latent health: 10 fed-back vectors, mean norm 12 vs token embeddings 0.5 (ratio 24)" in text
    assert "warning: DIFT: fed-back latents are 24x the token-embedding norm, outside [1/4, 4]" in text
    con = Console(record=True, width=200)
    print_decode_health(con, stats | {"latent_norm": 1.0, "latent_over_embed": 2.0})
    assert "(ratio 2)" in con.export_text() and "warning" not in con.export_text()
    print_decode_health(con, {"n_latent": 0, "embed_norm": 0.5})  # no latent step: nothing printed
    assert con.export_text().count("latent health") == 0
