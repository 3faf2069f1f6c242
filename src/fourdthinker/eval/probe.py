"""Do the latents matter? Run one benchmark under every latent intervention (docs/inference.md#probe).

For each intervention (``fourdthinker.latent.interventions``: normal, zero, noise, shuffle, pad,
drop) the same model answers the same items with the same greedy decoder; only the vectors fed at
latent positions change. Per intervention the table reports:

* accuracy and its 95% bootstrap CI (``metrics.bootstrap_ci``, micro over items);
* paired flips vs ``normal`` (items fixed / broken) and the exact McNemar p-value
  (``metrics.paired_compare``);
* the answer-change rate: the fraction of common items whose parsed answer differs from ``normal``'s
  (sensitive even when accuracy does not move, e.g. on an untrained model).

Verdict: the model is flagged as NOT relying on its imagery when neither ``zero`` nor ``shuffle``
lowers accuracy significantly (McNemar p < 0.05 with more items broken than fixed), or when it
never opened a latent block under ``normal`` (then no intervention can matter).

Each intervention is one resumable ``evaluate`` run in ``<out>/<intervention>/``; the table is
written to ``<out>/probe.md`` and ``<out>/probe.json``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fourdthinker.eval.runners.model import LatentModelRunner
from fourdthinker.latent.interventions import INTERVENTIONS, check_intervention

__all__ = ["InterventionRunner", "ProbeRow", "answer_change_rate", "probe_model", "probe_table", "verdict"]

ALPHA = 0.05


# The runner that feeds an intervention is the ordinary latent runner with ``latents=``/``latent_norm=``
# (the same option `fourdthinker eval --latents` uses); the name stays for callers of this module.
InterventionRunner = LatentModelRunner


@dataclass
class ProbeRow:
    intervention: str
    n: int
    accuracy: float
    ci95: tuple[float, float]
    fixed: int = 0  # items right under this intervention, wrong under normal
    broken: int = 0  # items right under normal, wrong under this intervention
    p_value: float = 1.0
    answer_change_rate: float = 0.0
    mean_latent_steps: float = 0.0
    failed: int = 0
    notes: list[str] = field(default_factory=list)


def answer_change_rate(a: dict, b: dict) -> float:
    """Fraction of common item ids whose parsed answers differ (None counts as an answer).

    >>> answer_change_rate({"x": "A", "y": "B"}, {"x": "A", "y": "C", "z": "D"})
    0.5
    """
    common = sorted(set(a) & set(b))
    if not common:
        return float("nan")
    return sum(a[i] != b[i] for i in common) / len(common)


def probe_table(results: dict) -> list[ProbeRow]:
    """Rows of the probe table from ``{intervention: EvalResult}`` (``normal`` must be present)."""
    from fourdthinker.eval.metrics import paired_compare

    if "normal" not in results:
        raise ValueError("the probe table needs the 'normal' run as the reference")
    ref = results["normal"]
    ref_ans = {i: p.parsed_answer for i, p in ref.predictions.items()}
    rows = []
    for kind, res in results.items():
        preds = res.predictions
        correct = res.correct()
        acc = res.micro() if correct else float("nan")
        ci = res.ci(statistic="micro", n_boot=1000) if correct else (float("nan"), float("nan"))
        row = ProbeRow(kind, len(correct), acc, (float(ci[0]), float(ci[1])), failed=len(res.failed),
                       mean_latent_steps=(sum(p.n_latent_steps for p in preds.values()) / len(preds)) if preds else 0.0)
        if kind != "normal":
            cmp = paired_compare(ref.correct(), correct, "normal", kind)
            row.fixed, row.broken, row.p_value = len(cmp.b_only), len(cmp.a_only), cmp.p_value
            row.answer_change_rate = answer_change_rate(ref_ans, {i: p.parsed_answer for i, p in preds.items()})
        rows.append(row)
    return rows


def verdict(rows: Sequence[ProbeRow]) -> tuple[bool, str]:
    """(relies_on_imagery, one-line reason) from the probe table."""
    by = {r.intervention: r for r in rows}
    normal = by.get("normal")
    if normal is None or normal.n == 0:
        return False, "no scored items under 'normal'"
    if normal.mean_latent_steps == 0:
        return False, "the model never opened an imagery block under 'normal': its answers cannot depend on latents"
    hurt = [k for k in ("zero", "shuffle") if k in by and by[k].p_value < ALPHA and by[k].broken > by[k].fixed]
    if hurt:
        return True, f"accuracy drops significantly under {', '.join(hurt)} (McNemar p < {ALPHA})"
    tested = [k for k in ("zero", "shuffle") if k in by]
    if not tested:
        return False, "neither 'zero' nor 'shuffle' was run"
    why = f"accuracy does not drop significantly under {' or '.join(tested)} (McNemar p >= {ALPHA} or no net loss)"
    d = by.get("drop")
    if d is not None and d.p_value < ALPHA and d.broken > d.fixed:
        why += "; removing the blocks ('drop') does hurt: the model needs the imagery slots, not what is fed in them"
    return False, why


def probe_model(model: str, loaded, out_dir: str | os.PathLike, *, interventions: Sequence[str] = INTERVENTIONS,
                adapter=None, batch_size: int = 4, max_new_tokens: int = 256, max_frames: int = 8, fps: float = 1.0,
                latent_size: int | None = None, latent_norm: float | None = None, seed: int = 0,
                limit: int | None = None, progress: bool = True, overwrite: bool = False,
                frames: Sequence[str] = ()):
    """Evaluate ``model`` on ``loaded`` (a ``LoadResult``) under each latent intervention, then
    (``frames``, video interventions with normal latents) under each frame intervention.

    Returns ``(rows, (relies, reason), results)``; writes ``<out>/probe.json`` and ``probe.md``.
    With ``frames`` the returned ``results`` also hold ``frames-<kind>`` entries and probe.json /
    probe.md the video table and its verdict (``eval.video_probe``)."""
    from fourdthinker.eval.evaluate import evaluate
    from fourdthinker.io import atomic_write_json, atomic_write_text

    kinds = [check_intervention(k) for k in interventions]
    if "normal" not in kinds:
        kinds = ["normal", *kinds]
    if "shuffle" in kinds and batch_size < 2:
        raise ValueError("--latents shuffle needs --batch-size >= 2 (it feeds another item's latent state)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for kind in kinds:
        runner = InterventionRunner(model, latents=kind, latent_norm=latent_norm, adapter=adapter, batch_size=batch_size,
                                    max_new_tokens=max_new_tokens, max_frames=max_frames, fps=fps, latent_size=latent_size)
        if adapter is None:
            adapter = runner.adapter  # load once, share with the other interventions
        results[kind] = evaluate(runner, loaded, out / kind, name=f"{model} ({kind})", seed=seed, limit=limit,
                                 progress=progress, overwrite=overwrite)
    rows = probe_table(results)
    relies, reason = verdict(rows)
    report = {"model": model, "bench": loaded.bench, "relies_on_imagery": relies, "verdict": reason,
              "rows": [asdict(r) for r in rows]}
    md = to_markdown(rows, model, loaded.bench, relies, reason)
    if frames:
        from fourdthinker.eval import video_probe
        from fourdthinker.video.interventions import check_frames

        fres = {"normal": results["normal"]}
        for kind in [check_frames(k) for k in frames if k != "normal"]:
            runner = InterventionRunner(model, latent_norm=latent_norm, adapter=adapter, batch_size=batch_size,
                                        max_new_tokens=max_new_tokens, max_frames=max_frames, fps=fps,
                                        latent_size=latent_size, frames=kind)
            fres[kind] = results[f"frames-{kind}"] = evaluate(
                runner, loaded, out / f"frames-{kind}", name=f"{model} (frames {kind})", seed=seed, limit=limit,
                progress=progress, overwrite=overwrite)
        frows = video_probe.frames_table(fres)
        uses, why = video_probe.motion_verdict(frows)
        report |= {"uses_motion": uses, "motion_verdict": why, "frame_rows": [asdict(r) for r in frows]}
        md += "\n" + video_probe.to_markdown(frows, model, loaded.bench, uses, why)
    atomic_write_json(out / "probe.json", report)
    atomic_write_text(out / "probe.md", md)
    return rows, (relies, reason), results


def _fmt(x: float, pct: bool = True) -> str:
    if x != x:  # nan
        return "-"
    return f"{100 * x:.1f}" if pct else f"{x:.3g}"


def to_markdown(rows: Sequence[ProbeRow], model: str, bench: str, relies: bool, reason: str) -> str:
    head = ("| latents | n | accuracy % | 95% CI | fixed | broken | McNemar p | answers changed % | latent steps/item |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r.intervention} | {r.n} | {_fmt(r.accuracy)} | {_fmt(r.ci95[0])}-{_fmt(r.ci95[1])} | "
        f"{'-' if r.intervention == 'normal' else r.fixed} | {'-' if r.intervention == 'normal' else r.broken} | "
        f"{'-' if r.intervention == 'normal' else _fmt(r.p_value, pct=False)} | "
        f"{'-' if r.intervention == 'normal' else _fmt(r.answer_change_rate)} | {r.mean_latent_steps:.1f} |\n"
        for r in rows
    )
    flag = "relies on its imagery" if relies else "NOT shown to rely on its imagery"
    return f"## Latent probe: {model} on {bench}\n\n{head}{body}\n**Verdict: {flag}.** {reason}.\n"
