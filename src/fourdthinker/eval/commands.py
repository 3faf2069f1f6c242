"""`fourdthinker eval`: run models on a benchmark and write tables and an HTML report.

Thin recipe: load the benchmark -> for each ``--model``: build its runner, ``evaluate`` (resumable)
-> paper-layout table (rich + Markdown + CSV), paired comparisons, HTML report.
Heavy libraries (torch, transformers) are imported inside the runners, only when a model needs them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fourdthinker.cli_config import config_command, option
from fourdthinker.eval.config import EvalConfig
from fourdthinker.names import slug


def _slug(name: str) -> str:
    """A model row's output folder name: ``DIFT=runs/dift`` -> ``DIFT_runs_dift`` (the one slug helper)."""
    return slug(name, "_", lower=False, keep="._-", default="model")


def _eval(config: str | None = None, overwrite: bool = False, **flags) -> None:
    """Evaluate models on DSR-Bench, Dyn-Bench, VLM4D or the synthetic benchmark.

    Prints the paper-layout table (Table 1 for DSR-Bench, Table 2 for Dyn-Bench) with 95% bootstrap CIs and compares every model with the first (McNemar exact test). Writes OUT/BENCH/: table.md, table.csv, comparisons.json, report.html, and one folder per model (predictions.jsonl, summary.json). Rerun the same command to resume: finished items are skipped. Latent models also get a 'latent health' line (mean norm of the fed-back latents vs the token embeddings; stored as latent_health in summary.json).

    Example: fourdthinker eval --model random --model qwen2.5-vl-tiny --bench synthetic --data data/world_test --out reports
    """
    from rich.console import Console

    from fourdthinker.cli_config import config_from_flags

    # Errors (bad input, a model that cannot load, an endpoint that is down) reach the CLI's one
    # error boundary (fourdthinker.cli): one line `error: <what> — <fix>`, exit code 2. The numbers
    # are checked against the bounds declared on EvalConfig's fields (eval/config.py).
    c = config_from_flags(EvalConfig, config, flags)
    _run(Console(), list(c.model), c.bench, c.data, c.out, samples=c.samples, seed=c.seed, temperature=c.temperature,
         top_p=c.top_p, max_new_tokens=c.max_new_tokens, max_frames=c.max_frames, fps=c.fps, batch_size=c.batch_size,
         limit=c.limit, video_root=c.video_root, api_base=c.api_base, api_key_env=c.api_key_env,
         concurrency=c.concurrency, retries=c.retries, baseline=c.baseline, html=c.html, overwrite=overwrite,
         latents=c.latents, latent_norm=c.latent_norm, max_pixels=c.max_pixels or None,
         prefix_sharing=c.prefix_sharing, frames=c.frames, span=c.frame_span, mcq_style=c.mcq_style)


eval_cmd = config_command(EvalConfig, _eval, name="eval", doc=_eval.__doc__, extra=[
    option("overwrite", bool, False, "--overwrite", help="Discard earlier predictions in the output folders."),
])


def check_model_spec(spec: str, *, api_base: str | None, api_key_env: str) -> None:
    """A ``--model`` spec that cannot run fails here, before the benchmark loads: a missing local
    folder or an unreachable hub id (``models.locate.resolve_model``), an API model without its key."""
    import os

    from fourdthinker.eval.runners import split_spec

    _, target = split_spec(spec)
    if target == "random":
        return
    if target.startswith("api:"):
        from fourdthinker.endpoints import require_api_key

        require_api_key(api_key_env, api_base or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",
                        "--api-key-env")
        return
    from fourdthinker.models.locate import resolve_model

    resolve_model(target.split(":", 1)[1] if target.startswith(("plain:", "latent:")) else target)


def _run(console, models: list[str], bench: str, data: str, out: str, *, samples: int, seed: int, temperature: float,
         top_p: float, max_new_tokens: int, max_frames: int, fps: float, batch_size: int, limit: int | None,
         video_root: str | None, api_base: str | None, api_key_env: str, concurrency: int, retries: int,
         baseline: str | None, html: bool, overwrite: bool, latents: str = "normal",
         latent_norm: float | None = None, max_pixels: int | None = 448 * 448, prefix_sharing: bool = True,
         frames: str = "normal", span: str | None = None, mcq_style: str = "paper") -> None:
    from fourdthinker.errors import UserError, require_out_dir
    from fourdthinker.eval.evaluate import evaluate
    from fourdthinker.eval.loaders import load_benchmark
    from fourdthinker.eval.metrics import paired_compare
    from fourdthinker.eval.runners import make_runner, split_spec
    from fourdthinker.eval.tables import bench_table
    from fourdthinker.io import atomic_write_json, atomic_write_text, write_jsonl

    # Everything checked before any work (and before anything is written under --out); the numbers
    # were checked by EvalConfig.
    require_out_dir(out, "--out")
    # data-parallel (accelerate launch / torchrun): evaluate() shards the items; only rank 0 prints and writes
    main = int(os.environ.get("RANK", "0") or 0) == 0
    if not main:
        console.quiet = True
    names = [split_spec(m)[0] for m in models]
    if len(set(names)) != len(names):
        raise UserError(f"two --model entries share the name {next(n for n in names if names.count(n) > 1)!r}",
                        "name them NAME=SPEC")
    slugs = [_slug(n) for n in names]
    for i, sl in enumerate(slugs):
        if slugs.index(sl) != i:
            raise UserError(f"--model names {names[slugs.index(sl)]!r} and {names[i]!r} share the output folder {sl!r}",
                            "give the rows names that differ in letters or digits, not only in spaces or symbols")
    for spec in models:
        check_model_spec(spec, api_base=api_base, api_key_env=api_key_env)
    kw = {"video_root": video_root} if video_root and bench == "dsr-bench" else {}
    if bench == "synthetic":
        kw["mcq_style"] = mcq_style  # used when --data is a world folder (the items are built now)
    lr = load_benchmark(bench, data, **kw)
    bench = lr.bench
    bench_out = Path(out) / bench
    bench_out.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]{bench}[/bold]: {len(lr.items)} items from {lr.root}"
                  + (f", {len(lr.skipped)} skipped {lr.skip_reasons()}" if lr.skipped else ""), highlight=False)
    if lr.skipped and main:
        write_jsonl(bench_out / "skipped.jsonl", lr.skipped)
    if not lr.items:
        raise ValueError(f"{data}: no usable items in this benchmark (see {bench_out / 'skipped.jsonl'})")
    results = {}
    shown_span = span  # the report's frame strips: --frame-span, else a local model's own span
    for spec in models:
        runner = make_runner(spec, api_base=api_base, api_key_env=api_key_env, concurrency=concurrency,
                             cache_dir=Path(out) / "api_cache", batch_size=batch_size, max_new_tokens=max_new_tokens,
                             max_frames=max_frames, fps=fps, max_pixels=max_pixels, temperature=temperature, top_p=top_p, retries=retries,
                             latents=latents, latent_norm=latent_norm, prefix_sharing=prefix_sharing, frames=frames,
                             span=span)
        res = evaluate(runner, lr.items, bench_out / _slug(runner.name), root=lr.root, bench=bench, samples=samples,
                       seed=seed, skipped=lr.skipped, overwrite=overwrite, limit=limit)
        n_answered = sum(len(r) for r in res.runs) if hasattr(res, "runs") else None
        if res.failed and n_answered == 0:
            first = res.failed[0].get("reason", "")
            raise UserError(f"{runner.name}: every item failed ({len(res.failed)}; first: {first})",
                            f"see {res.out_dir / 'quarantine.jsonl'}, fix the cause and rerun the same command")
        for w in res.warnings:
            console.print(f"[yellow]warning:[/yellow] {w}", highlight=False)
        if res.latent_health and res.latent_health.get("n_latent"):
            from fourdthinker.latent.health import print_decode_health

            print_decode_health(console, res.latent_health, latents=latents, prefix=f"{runner.name}: ")
        if res.failed:
            console.print(f"[yellow]{runner.name}: {len(res.failed)} item(s) quarantined[/yellow] "
                          f"{res.summary()['failure_reasons']} -> {res.out_dir / 'quarantine.jsonl'}", highlight=False)
        results[runner.name] = res
        shown_span = shown_span or getattr(runner, "span", None)
    if not main:
        return
    table = bench_table(results, bench, baseline=baseline or (names[0] if len(names) > 1 else None))
    console.print(table.to_rich())
    atomic_write_text(bench_out / "table.md", table.to_markdown())
    atomic_write_text(bench_out / "table.csv", table.to_csv())
    comps = []
    for n in names[1:]:
        pc = paired_compare(results[names[0]].correct(), results[n].correct(), names[0], n)
        console.print(pc.summary(), highlight=False)
        comps.append({"a": pc.name_a, "b": pc.name_b, "n": pc.n, "delta": pc.delta, "p_value": pc.p_value,
                      "fixed": pc.b_only, "broken": pc.a_only})
    if comps:
        atomic_write_json(bench_out / "comparisons.json", comps)
    written = [bench_out / "table.md", bench_out / "table.csv"]
    if html:
        from fourdthinker.eval.report import write_report

        written.append(write_report(results, bench_out, bench=bench, root=lr.root, table=table,
                                    span=shown_span or "video"))
    console.print("wrote " + ", ".join(str(p) for p in written), highlight=False)
    console.print(json.dumps({n: round(100 * r.avg(), 1) for n, r in results.items()}), highlight=False)
