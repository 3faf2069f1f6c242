"""`fourdthinker probe`: do the latents matter? (docs/inference.md#probe)

Thin recipe: load the benchmark -> ``eval.probe.probe_model`` (one resumable evaluation per latent
intervention) -> rich table + ``<out>/probe.md`` / ``probe.json``.
"""

from __future__ import annotations

import typer


def probe(
    model: str = typer.Option(..., "--model", "-m", help="Model with latent tokens: a trained run folder (runs/dift), a hub id or a tiny preset."),
    bench: str = typer.Option(..., "--bench", "-b", help="dsr-bench | dyn-bench | vlm4d | synthetic | jsonl"),
    data: str = typer.Option(..., "--data", "-d", help="Local benchmark path (as for `fourdthinker eval`)."),
    out: str = typer.Option("reports/probe", "--out", "-o", help="Output folder: one sub-folder per intervention, probe.md, probe.json. Rerun to resume."),
    latents: list[str] = typer.Option(None, "--latents", help="Interventions to run (repeatable); default all: normal zero noise shuffle pad drop."),
    frames: list[str] = typer.Option(None, "--frames", help="Video interventions to run (repeatable), with normal latents: normal first reversed shuffled blank (default all). Reports accuracy and the share of answers flipped to the opposite label per task, and whether the model uses the motion. --frames normal = none."),
    latent_size: int = typer.Option(None, "--latent-size", help="K latent steps per block (default: the model config's latent_size, else 4)."),
    latent_norm: float = typer.Option(None, "--latent-norm", help="Rescale fed-back states to this norm; 0 = never; default: the model's own setting (see `fourdthinker infer --latent-norm`)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Items decoded together (>= 2: 'shuffle' takes another item's latents)."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="Response budget, latent slots included."),
    max_frames: int = typer.Option(8, "--max-frames", help="Frames per video."),
    fps: float = typer.Option(1.0, "--fps", help="Video sampling rate (paper: 1 FPS)."),
    limit: int = typer.Option(None, "--limit", help="Only the first N items (smoke tests)."),
    seed: int = typer.Option(0, "--seed", help="Seed (the noise intervention)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard earlier predictions in the output folders."),
) -> None:
    """Run a benchmark under every latent intervention and report what changes.

    Same model, same items, same greedy decoder; only the vectors fed at latent positions change (zero vectors; Gaussian noise with the latents' norm; another item's latents; the <|latent_pad|> embedding; no imagery block at all). Prints accuracy with its 95% CI, paired flips vs normal with the exact McNemar p-value and the answer-change rate, then a verdict: a model whose accuracy does not drop under zero/shuffle is flagged as not relying on its imagery.

    Then the video probe (--frames; latents normal, only the frames change: the first frame repeated, reversed, shuffled, blank): per task the accuracy and the share of answers that flip to the true label's opposite (Moving Left <-> Moving Right, Pan Left <-> Pan Right), and a second verdict: a model whose accuracy does not drop with the first frame repeated is flagged as not using the motion.

    Example: fourdthinker probe --model runs/dift --bench synthetic --data data/world_test --out reports/probe
    """
    from rich.console import Console
    from rich.table import Table

    from fourdthinker.errors import require_out_dir, require_positive
    from fourdthinker.eval.loaders import BenchmarkFormatError, load_benchmark
    from fourdthinker.eval.probe import probe_model
    from fourdthinker.eval.runners import FatalRunnerError
    from fourdthinker.latent.interventions import INTERVENTIONS
    from fourdthinker.models.locate import resolve_model
    from fourdthinker.video.interventions import FRAME_INTERVENTIONS

    console = Console()
    for flag, v in (("--batch-size", batch_size), ("--max-new-tokens", max_new_tokens), ("--max-frames", max_frames),
                    ("--fps", fps), ("--limit", limit), ("--latent-size", latent_size)):
        require_positive(flag, v)
    require_out_dir(out, "--out")
    model = resolve_model(model)  # a run folder -> its final model; a missing path fails before any work
    try:
        loaded = load_benchmark(bench, data)
        if not loaded.items:
            raise ValueError(f"{data}: the benchmark has no usable items ({len(loaded.skipped)} skipped)")
        rows, (relies, reason), _ = probe_model(
            model, loaded, out, interventions=latents or INTERVENTIONS, batch_size=batch_size,
            max_new_tokens=max_new_tokens, max_frames=max_frames, fps=fps, latent_size=latent_size,
            latent_norm=latent_norm, seed=seed, limit=limit, overwrite=overwrite,
            frames=[f for f in (frames or FRAME_INTERVENTIONS) if f != "normal"])
    except (BenchmarkFormatError, FileNotFoundError, ValueError, FatalRunnerError) as e:
        console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None

    t = Table(title=f"latent probe: {model} on {bench}",
              caption="fix/brk: items fixed/broken vs normal; p: exact McNemar; chg: answers changed vs normal; "
                      "lat: latent steps per item")
    for c in ("latents", "n", "acc %", "95% CI", "fix", "brk", "p", "chg %", "lat"):
        t.add_column(c, justify="right" if c != "latents" else "left", no_wrap=True)
    for r in rows:
        ref = r.intervention == "normal"
        ci = "-" if r.ci95[0] != r.ci95[0] else f"{100 * r.ci95[0]:.1f}-{100 * r.ci95[1]:.1f}"
        t.add_row(r.intervention, str(r.n), "-" if r.accuracy != r.accuracy else f"{100 * r.accuracy:.1f}", ci,
                  "-" if ref else str(r.fixed), "-" if ref else str(r.broken), "-" if ref else f"{r.p_value:.3g}",
                  "-" if ref else f"{100 * r.answer_change_rate:.1f}", f"{r.mean_latent_steps:.1f}")
    console.print(t)
    style = "green" if relies else "bold yellow"
    console.print(f"[{style}]verdict: {'relies on its imagery' if relies else 'NOT shown to rely on its imagery'}[/] - {reason}",
                  soft_wrap=True)
    import json
    from pathlib import Path

    rep = json.loads((Path(out) / "probe.json").read_text(encoding="utf-8"))
    if "frame_rows" in rep:
        ft = Table(title=f"video probe: {model} on {bench}",
                   caption="opp %: answers equal to the true label's opposite (Moving Left <-> Moving Right ...), "
                           "over the items that have one among the options; p: exact McNemar vs normal frames")
        for c in ("frames", "task", "n", "acc %", "opp % (n)", "fix", "brk", "p"):
            ft.add_column(c, justify="left" if c in ("frames", "task") else "right", no_wrap=True)
        for r in rep["frame_rows"]:
            paired = r["task"] == "all" and r["frames"] != "normal"
            opp = "-" if r["opposite_share"] != r["opposite_share"] else f"{100 * r['opposite_share']:.1f}"
            ft.add_row(r["frames"], r["task"], str(r["n"]), f"{100 * r['accuracy']:.1f}", f"{opp} ({r['opposite_n']})",
                       str(r["fixed"]) if paired else "-", str(r["broken"]) if paired else "-",
                       f"{r['p_value']:.3g}" if paired else "-")
        console.print(ft)
        style = "green" if rep["uses_motion"] else "bold yellow"
        console.print(f"[{style}]verdict: {'uses the motion' if rep['uses_motion'] else 'NOT shown to use the motion'}[/] - "
                      f"{rep['motion_verdict']}", soft_wrap=True)
    else:
        console.print("verdict on motion: not tested (no --frames intervention run)")
    console.print(f"table: {out}/probe.md, {out}/probe.json", soft_wrap=True)
