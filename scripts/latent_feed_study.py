"""The latent-feed study (docs/latent_feed_study.md): does DIFT's imagery carry information?

On the demo's world, data and benchmark (``fourdthinker demo``; same settings, same seed) this
trains the DIFT variants of ``train dift --latent-feed target|self|mixed`` (each optionally with
``--feed-norm``, with ``--imagery-bottleneck``: the ``-bn`` variants, with ``--sim-loss infonce``: the
``-nce`` variants, with ``--conclusion-weight``: the ``-cw`` variants) next to the demo's CoT SFT and Raw QA SFT, then for every model:

* accuracy ("Avg." over subtasks, 95% stratified bootstrap CI);
* paired gain vs CoT SFT and vs DIFT ``target`` (paired stratified bootstrap CI, McNemar p);
* the latent probe: accuracy drop under ``zero`` and ``shuffle`` latents, McNemar p;
* the video probe: drop with the ``first`` frame repeated (p), share of answers flipped to the
  true label's opposite under ``reversed`` frames (vs normal).

Every stage is resumable (``<out>/.stages``). ``--demo DIR`` reuses a finished demo folder's
world/data/benchmark and its trained models (runs/sft-cot, runs/sft-raw-qa, runs/dift) instead of
training them again (not with ``--model``: another starting VLM trains every model anew).
``--quick`` uses the demo's quick sizes (a pipeline check: nothing learns).

    PYTHONPATH=src nice -n 10 python scripts/latent_feed_study.py --out study_out --variants target self mixed
    PYTHONPATH=src python scripts/latent_feed_study.py --demo demo_uniform --mcq-style uniform --out study_uniform

(``demo_uniform``: ``fourdthinker demo --mcq-style uniform --out demo_uniform``, a benchmark whose
options do not reveal the answer.)

``--confirm-clips N`` then probes every model again on a fresh benchmark of N clips (about 2N
items) from a world of another seed (``--confirm-seed``, default the demo's seed + 2000), written to
``<out>/confirm/``: a variant chosen for its drops on the first benchmark is tested on items that
played no part in choosing it, and with enough items for drops of a few points to be told from noise.

Ends with ``study.md`` / ``study.json`` in ``--out`` (``confirm/study.md`` too with ``--confirm-clips``)
and headline lines ``name: value``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

VARIANTS = {
    "target": {"latent_feed": "target"},
    "self": {"latent_feed": "self"},
    "mixed": {"latent_feed": "mixed"},
    "target-norm": {"latent_feed": "target", "feed_norm": True},
    "self-norm": {"latent_feed": "self", "feed_norm": True},
    "mixed-norm": {"latent_feed": "mixed", "feed_norm": True},
    # the DIFT target model trained on with its own states fed back (closing the loop after teacher
    # forcing): 300 steps at lr 3e-4, starting from the variant named by "init" (listed before it)
    "target-self": {"latent_feed": "self", "max_steps": 300, "lr": 3e-4, "warmup_steps": 10, "init": "target"},
    # the imagery bottleneck (latent/bottleneck.py): the video reaches the answer only through the slots
    "target-bn": {"latent_feed": "target", "imagery_bottleneck": True},
    "self-bn": {"latent_feed": "self", "imagery_bottleneck": True},
    "target-bn-self": {"latent_feed": "self", "imagery_bottleneck": True, "max_steps": 300, "lr": 3e-4,
                       "warmup_steps": 10, "init": "target-bn"},
    "mixed-bn": {"latent_feed": "mixed", "imagery_bottleneck": True},
    # the bottleneck trained twice as long: target-bn's model, 1,500 more steps (a warm restart of the schedule)
    "target-bn-more": {"latent_feed": "target", "imagery_bottleneck": True, "init": "target-bn"},
    # the bottleneck trained by the answer alone (no similarity loss): can the latent chain carry the motion at all?
    "self-bn-nosim": {"latent_feed": "self", "imagery_bottleneck": True, "use_sim": False},
    # the bottleneck with the label weighted up: the conclusion after the last block (and the answer)
    # at 10x the CE weight of the other tokens, the similarity loss at 0.1
    "self-bn-cw": {"latent_feed": "self", "imagery_bottleneck": True, "conclusion_weight": 10.0, "l_sim": 0.1},
    "target-cw": {"latent_feed": "target", "conclusion_weight": 10.0, "l_sim": 0.1},
    # the bottleneck with one latent per encoder token (K = 12, the tokens of a run F imagery image: no
    # pooling, so each slot's target keeps where things are in the image)
    "target-bn-k12": {"latent_feed": "target", "imagery_bottleneck": True, "latent_size": 12},
    "target-k12": {"latent_feed": "target", "latent_size": 12},
    # targets that hold the motion (train dift --latent-target pair): each imagery image encoded with the one
    # before it through the temporal patch, under the bottleneck, one latent per token or pooled to 4
    "target-bn-k12-pair": {"latent_feed": "target", "imagery_bottleneck": True, "latent_size": 12, "latent_target": "pair"},
    "target-bn-pair": {"latent_feed": "target", "imagery_bottleneck": True, "latent_target": "pair"},
    # the whole text loss on the answer (train dift --response imagery-answer): the response is only the
    # imagery blocks and the answer, at L_ce weight 1, under the bottleneck; K = 4 and K = 12
    "target-bn-ans": {"latent_feed": "target", "imagery_bottleneck": True, "response": "imagery-answer", "l_ce": 1.0},
    "target-bn-k12-ans": {"latent_feed": "target", "imagery_bottleneck": True, "latent_size": 12,
                          "response": "imagery-answer", "l_ce": 1.0},
    # ... and self-fed: the answer's loss reaches the <|latent_start|> row that reads the frames through the
    # chain of fed vectors, as at inference (video -> slots -> answer, trained end to end)
    "self-bn-ans": {"latent_feed": "self", "imagery_bottleneck": True, "response": "imagery-answer", "l_ce": 1.0},
    # in two stages: first the read-out alone (teacher-forced z, the answer's loss only: no similarity loss, which
    # kept target-bn-ans from learning to read its latents), then the chain that feeds it (self-fed, both losses)
    "target-bn-ans-nosim": {"latent_feed": "target", "imagery_bottleneck": True, "response": "imagery-answer",
                            "l_ce": 1.0, "use_sim": False},
    # a curriculum: the read-out first learnt on the camera records alone (400 steps; on all tasks at once it is
    # not learnt), then the self-fed chain on all tasks
    "target-bn-ans-nosim-cam": {"latent_feed": "target", "imagery_bottleneck": True, "response": "imagery-answer",
                                "l_ce": 1.0, "use_sim": False, "tasks": ("camera",), "max_steps": 400, "warmup_steps": 30},
    "target-bn-ans-cam-self": {"latent_feed": "self", "imagery_bottleneck": True, "response": "imagery-answer",
                               "l_ce": 1.0, "max_steps": 500, "lr": 3e-4, "warmup_steps": 10,
                               "init": "target-bn-ans-nosim-cam"},
    "target-bn-ans-cam-self-long": {"latent_feed": "self", "imagery_bottleneck": True, "response": "imagery-answer",
                                    "l_ce": 1.0, "max_steps": 1500, "lr": 3e-4, "warmup_steps": 10,
                                    "init": "target-bn-ans-nosim-cam"},
    # the same two stages at another training seed (is the curriculum a lucky draw?)
    "target-bn-ans-nosim-cam-s1": {"latent_feed": "target", "imagery_bottleneck": True, "response": "imagery-answer",
                                   "l_ce": 1.0, "use_sim": False, "tasks": ("camera",), "max_steps": 400,
                                   "warmup_steps": 30, "seed": 1},
    "target-bn-ans-cam-self-long-s1": {"latent_feed": "self", "imagery_bottleneck": True, "response": "imagery-answer",
                                       "l_ce": 1.0, "max_steps": 1500, "lr": 3e-4, "warmup_steps": 10, "seed": 1,
                                       "init": "target-bn-ans-nosim-cam-s1"},
}
# ... and at training seeds 2 and 3 (the -s2 / -s3 pairs), built from the seed-1 pair
for _seed in (2, 3):
    VARIANTS[f"target-bn-ans-nosim-cam-s{_seed}"] = {**VARIANTS["target-bn-ans-nosim-cam-s1"], "seed": _seed}
    VARIANTS[f"target-bn-ans-cam-self-long-s{_seed}"] = {**VARIANTS["target-bn-ans-cam-self-long-s1"], "seed": _seed,
                                                         "init": f"target-bn-ans-nosim-cam-s{_seed}"}
# the read-out stage three times as long (1,200 steps, ~3 epochs of the camera records): at seed 2 the 400-step
# read-out did not form (teacher-forced 26.5 % on camera records, chance 25 %); seed 0 has no suffix
for _seed in (0, 1, 2, 3):
    _sfx = f"-s{_seed}" if _seed else ""
    VARIANTS[f"target-bn-ans-nosim-cam1200{_sfx}"] = {**VARIANTS["target-bn-ans-nosim-cam-s1"], "seed": _seed,
                                                      "max_steps": 1200, "warmup_steps": 90}
    VARIANTS[f"target-bn-ans-cam1200-self-long{_sfx}"] = {**VARIANTS["target-bn-ans-cam-self-long-s1"], "seed": _seed,
                                                          "init": f"target-bn-ans-nosim-cam1200{_sfx}"}
# 1,500 more self-fed steps for seed 2's chain (did the chain need longer?)
VARIANTS["target-bn-ans-cam1200-self-long-more-s2"] = {**VARIANTS["target-bn-ans-cam1200-self-long-s2"],
                                                       "init": "target-bn-ans-cam1200-self-long-s2"}
# both curriculum stages stopped by the read-out gate (train dift --stop-when) instead of a fixed step count: the
# read-out stage (cap 1,200 steps) until the answer fed z beats the answer fed zeros on 300 held-out camera records,
# then the self-fed stage (cap 3,000) until the self-fed read-out is level with the target-fed one
for _seed in (0, 1, 2, 3):
    _sfx = f"-s{_seed}" if _seed else ""
    VARIANTS[f"gate-read{_sfx}"] = {**VARIANTS["target-bn-ans-nosim-cam1200-s1"], "seed": _seed, "stop_when": "readout",
                                    "gate_every": 100}
    VARIANTS[f"gate-self{_sfx}"] = {**VARIANTS["target-bn-ans-cam-self-long-s1"], "seed": _seed, "max_steps": 3000,
                                    "stop_when": "self-level", "gate_every": 250, "init": f"gate-read{_sfx}"}
    # the read-out stage at a third of the lr, with twice the cap (at lr 1e-3 the read-out grew through the whole
    # cosine decay, and a restart at 1e-3 erased it), and the self-fed stage from it
    VARIANTS[f"gate-read-slow{_sfx}"] = {**VARIANTS[f"gate-read{_sfx}"], "lr": 3e-4, "max_steps": 2400,
                                         "warmup_steps": 180, "gate_every": 200}
    VARIANTS[f"gate-self-slow{_sfx}"] = {**VARIANTS[f"gate-self{_sfx}"], "init": f"gate-read-slow{_sfx}"}
    # the self-fed stage from the lower-lr read-out ungated, for the 1,500 steps that reached the goal at seed 0
    # (the self-level gate looks at the camera records alone, and can stop before the other tasks are learnt)
    VARIANTS[f"self1500-slow{_sfx}"] = {**VARIANTS[f"gate-self-slow{_sfx}"], "stop_when": "none", "max_steps": 1500}
    # a fixed 1,200-step read-out stage (gate-read's cap) at lr 3e-4, checked every 100 steps by a gate that
    # cannot fire (a 101-point margin): does the read-out last to the end of a fixed schedule?
    VARIANTS[f"read-slow-trace{_sfx}"] = {**VARIANTS[f"gate-read{_sfx}"], "lr": 3e-4, "gate_margin": 101.0}
    # ... and the 1,500 self-fed steps from it (is a longer-trained read-out a better start for the chain?)
    VARIANTS[f"self1500-trace{_sfx}"] = {**VARIANTS[f"self1500-slow{_sfx}"], "init": f"read-slow-trace{_sfx}"}
VARIANTS |= {
    "target-bn-ans-nosim-self": {"latent_feed": "self", "imagery_bottleneck": True, "response": "imagery-answer",
                                 "l_ce": 1.0, "max_steps": 500, "lr": 3e-4, "warmup_steps": 10,
                                 "init": "target-bn-ans-nosim"},
    # the contrastive similarity loss (train dift --sim-loss infonce) instead of Eq. 9's cosine
    "target-nce": {"latent_feed": "target", "sim_loss": "infonce"},
    "target-bn-nce": {"latent_feed": "target", "imagery_bottleneck": True, "sim_loss": "infonce"},
    "self-bn-nce": {"latent_feed": "self", "imagery_bottleneck": True, "sim_loss": "infonce"},
}
LATENT_PROBE = ["normal", "zero", "shuffle"]
FRAME_PROBE = ["first", "reversed"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="study_out")
    ap.add_argument("--demo", default=None, help="a finished `fourdthinker demo --out DIR` folder to reuse")
    ap.add_argument("--quick", action="store_true", help="the demo's quick sizes (pipeline check)")
    ap.add_argument("--variants", nargs="+", default=["target", "self", "mixed"], choices=list(VARIANTS))
    ap.add_argument("--sft-steps", type=int, default=None, help="override the demo's SFT steps (all models alike)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N benchmark items")
    from fourdthinker.data.mcq import MCQ_STYLES

    ap.add_argument("--mcq-style", default=None, choices=MCQ_STYLES,
                    help="the demo's distractor style (give the one the --demo folder was made with)")
    from fourdthinker.models.inputs import SPANS

    ap.add_argument("--frame-span", default=None, choices=SPANS,
                    help="frames over the whole clip (video, the demo's default) or the question's window")
    ap.add_argument("--train-clips", type=int, default=None, help="the demo's training clips (give the --demo folder's)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (the demo's 2)")
    ap.add_argument("--model", default=None,
                    help="the VLM every model starts from (default: the demo's qwen2.5-vl-tiny; e.g. qwen2.5-vl-tiny-deep, "
                         "4 LM layers). With --demo, its world and data are shared but its trained models are not reused")
    ap.add_argument("--no-raw-qa", action="store_true",
                    help="leave out the Raw QA SFT model (the benchmark check; not needed to compare DIFT variants)")
    ap.add_argument("--confirm-clips", type=int, default=0,
                    help="also probe every model on a fresh benchmark of this many clips (~2 items each), in <out>/confirm")
    ap.add_argument("--seed", type=int, default=None,
                    help="the demo's seed (default 0): the training world's; the benchmark's is seed + 1000, and the "
                         "models without a seed of their own (CoT SFT, Raw QA SFT) train with it")
    ap.add_argument("--confirm-seed", type=int, default=None,
                    help="seed of the confirmation world (default: the demo's seed + 2000; the benchmark's is seed + 1000)")
    a = ap.parse_args()
    for v in a.variants:
        init = VARIANTS[v].get("init")
        if init and (init not in a.variants or a.variants.index(init) > a.variants.index(v)):
            ap.error(f"--variants {v} fine-tunes the DIFT {init} model: list {init} before it")

    import torch
    from rich.console import Console

    from fourdthinker.demo.config import preset
    from fourdthinker.demo.pipeline import Demo
    from fourdthinker.demo.stages import Stage, console_progress, pin_config, run_stages

    cfg = preset(a.quick)
    if a.sft_steps:
        cfg = cfg.with_overrides(sft_steps=a.sft_steps)
    for key in ("mcq_style", "frame_span", "train_clips", "threads", "model"):
        if getattr(a, key):
            cfg = cfg.with_overrides(**{key: getattr(a, key)})
    if a.seed is not None:
        cfg = cfg.with_overrides(seed=a.seed)
    confirm_seed = cfg.seed + 2000 if a.confirm_seed is None else a.confirm_seed
    if confirm_seed in (cfg.seed, cfg.seed + 1000):
        ap.error(f"--confirm-seed {confirm_seed} is the training or the benchmark world's seed: the items would not be fresh")
    if a.confirm_clips < 0:
        ap.error(f"--confirm-clips must be >= 0, got {a.confirm_clips}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    pin_config(out, {"kind": "latent-feed-study", "quick": a.quick, **cfg.to_dict()}, defaults=type(cfg)().to_dict())
    demo = Demo(cfg, out, progress=False, shared=a.demo)
    torch.set_num_threads(cfg.threads)
    reuse = Path(a.demo) / "runs" if a.demo and not a.model else None  # the demo's models start from its model

    def model_dir(stage: str) -> str:
        if reuse is not None and (reuse / stage / "config.json").exists():
            return str(reuse / stage)
        return str(out / "runs" / stage)

    stages = []
    if a.demo is None:
        stages += [Stage("world", "world", demo.stage_world), Stage("data", "data", demo.stage_data),
                   Stage("bench", "bench", demo.stage_bench)]
    # DIFT first: a partial run then already answers the study's question for the paper's variant
    models = {**{f"DIFT {v}": f"dift-{v}" for v in a.variants}, "CoT SFT": "sft-cot"}
    if not a.no_raw_qa:
        models["Raw QA SFT"] = "sft-raw-qa"
    train: dict[str, Stage] = {}
    for name, stage in models.items():
        if reuse is not None and (reuse / stage / "config.json").exists():
            continue
        if stage == "dift-target" and reuse is not None and (reuse / "dift" / "config.json").exists():
            models[name] = "dift"  # the demo's DIFT is the paper's (target) feed
            continue
        if stage.startswith("dift-"):
            over = dict(VARIANTS[stage[5:]])
            init = over.pop("init", None)
            if init:
                over["model"] = model_dir(models[f"DIFT {init}"])  # resolved now: the init is trained earlier
            tasks = over.pop("tasks", None)

            def run_variant(s=stage, o=over, tasks=tasks):
                if tasks:
                    from fourdthinker.demo.records import task_records

                    o = {**o, "data": str(task_records(demo.data / "demo_dift.jsonl", tasks))}
                return demo.stage_sft("dift", s, **o)

            train[name] = Stage(stage, name, run_variant)
        else:
            train[name] = Stage(stage, name, lambda s=stage: demo.stage_sft(s[4:], s))

    confirm = out / "confirm"

    def confirm_world() -> dict:
        from fourdthinker.eval.synthetic import load_synthetic_bench, write_bench_jsonl
        from fourdthinker.world import generate_world

        clips = generate_world(confirm / "world", a.confirm_clips, seed=confirm_seed, workers=cfg.workers,
                               config=demo.world_config(), progress=False)
        res = load_synthetic_bench(confirm / "world", seed=cfg.seed, mcq_style=cfg.mcq_style)
        write_bench_jsonl(res)
        return {"clips": len(clips), "seed": confirm_seed, "items": len(res.items), "skipped": len(res.skipped)}

    def probe(name: str, stage: str, bench: Path, probe_root: Path) -> dict:
        from fourdthinker.eval.loaders import load_benchmark
        from fourdthinker.eval.probe import probe_model

        loaded = load_benchmark("synthetic", bench / "bench.jsonl")
        dift = name.startswith("DIFT")
        latents = LATENT_PROBE if dift else ["normal"]
        frames = FRAME_PROBE if dift else ["first", "reversed", "shuffled", "blank"]
        if name == "CoT SFT":
            frames = []
        rows, (relies, why), _ = probe_model(model_dir(stage), loaded, probe_root / stage, interventions=latents,
                                             frames=frames, batch_size=cfg.eval_batch, max_new_tokens=cfg.eval_max_new_tokens,
                                             max_frames=cfg.max_frames, limit=a.limit, progress=False)
        return {"relies_on_imagery": relies, "verdict": why}

    for name, stage in models.items():  # each model's probe right after its training: partial runs tell something
        if name in train:
            stages.append(train[name])
        stages.append(Stage(f"probe-{stage}", f"probe {name}",
                            lambda n=name, s=stage: probe(n, s, demo.world_bench, out / "probe")))
    if a.confirm_clips:
        stages.append(Stage("confirm-world", f"confirmation benchmark ({a.confirm_clips} clips)", confirm_world))
        stages += [Stage(f"confirm-{stage}", f"probe {name} (confirmation)",
                         lambda n=name, s=stage: probe(n, s, confirm / "world", confirm / "probe"))
                   for name, stage in models.items()]
    on_start, on_done = console_progress(Console(), stages)
    run_stages(out, stages, on_start=on_start, on_done=on_done)
    head = write_table(out, demo.bench_items(), models, model_dir)["headline"]  # always rebuilt from the probe folders
    print((out / "study.md").read_text(encoding="utf-8"))
    if a.confirm_clips:
        from fourdthinker.eval.synthetic import load_synthetic_bench

        items = load_synthetic_bench(confirm / "world" / "bench.jsonl").items
        conf = write_table(confirm, items, models, model_dir)["headline"]
        print((confirm / "study.md").read_text(encoding="utf-8"))
        head.update({f"confirm_{k}": v for k, v in conf.items()})
    for k, v in head.items():
        print(f"{k}: {v}")


def write_table(out: Path, items, models: dict[str, str], model_dir) -> dict:
    """study.md / study.json in ``out`` from the probe folders ``out/probe/<stage>/<kind>`` on the
    benchmark ``items`` (pure reading; rerun to refresh)."""
    from fourdthinker.demo.report import paired_delta_ci
    from fourdthinker.eval.evaluate import load_result
    from fourdthinker.eval.metrics import paired_compare
    from fourdthinker.io import atomic_write_json, atomic_write_text

    subtask_of = {it.id: it.subtask for it in items}

    def result(stage: str, kind: str):
        d = out / "probe" / stage / kind
        return load_result(d, items) if (d / "summary.json").exists() else None

    def pct(x: float | None) -> str:
        return "-" if x is None or x != x else f"{100 * x:.1f}"

    ref = {"CoT SFT": result("sft-cot", "normal"), "DIFT target": result(models.get("DIFT target", "dift-target"), "normal")}
    rows, head = [], {}
    for name, stage in models.items():
        normal = result(stage, "normal")
        if normal is None:
            continue
        c = normal.correct()
        lo, hi = normal.ci()
        row = {"model": name, "n": len(c), "avg": normal.avg(), "ci": [lo, hi]}
        for rname, r in ref.items():
            if r is not None and rname != name:
                d, dlo, dhi = paired_delta_ci(r.correct(), c, subtask_of)
                row[f"vs {rname}"] = {"delta": d, "ci": [dlo, dhi], "p": paired_compare(r.correct(), c).p_value}
        for kind in ("zero", "shuffle", "frames-first", "frames-reversed", "frames-blank"):
            r = result(stage, kind)
            if r is None:
                continue
            pc = paired_compare(c, r.correct())
            row[kind] = {"drop": normal.micro() - r.micro(), "p": pc.p_value, "broken": len(pc.a_only), "fixed": len(pc.b_only)}
        probe = json.loads((out / "probe" / stage / "probe.json").read_text(encoding="utf-8"))
        row["uses_imagery"] = probe["relies_on_imagery"] if name.startswith("DIFT") else None
        row["latent_steps"] = next((r["mean_latent_steps"] for r in probe["rows"] if r["intervention"] == "normal"), None)
        row["uses_motion"] = probe.get("uses_motion")
        opp = {r["frames"]: r for r in probe.get("frame_rows", []) if r["task"] == "all"}
        if "reversed" in opp:
            row["opposite"] = {"normal": opp["normal"]["opposite_share"], "reversed": opp["reversed"]["opposite_share"]}
        log = Path(model_dir(stage)) / "log.jsonl"
        steps = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []
        row["final_cos"] = steps[-1].get("cos") if steps else None
        rows.append(row)
        head[f"avg_{stage}"] = round(100 * row["avg"], 1)

    cot = next((r for r in rows if r["model"] == "CoT SFT"), None)

    def goal(r: dict) -> bool:
        sig = all(k in r and r[k]["p"] < 0.05 and r[k]["broken"] > r[k]["fixed"] for k in ("zero", "shuffle"))
        return bool(r["model"].startswith("DIFT") and sig and cot is not None and r["avg"] >= cot["avg"])

    def cell(r: dict, k: str, what: str = "drop") -> str:
        if k not in r:
            return "-"
        v = r[k]
        return f"{pct(v[what])} (p {v['p']:.2g})"

    def delta(r: dict, k: str) -> str:
        if k not in r:
            return "-"
        v = r[k]
        return f"{100 * v['delta']:+.1f} [{100 * v['ci'][0]:+.1f}, {100 * v['ci'][1]:+.1f}]"

    md = ["| model | n | Avg. % [95% CI] | vs CoT SFT (paired) | vs DIFT target (paired) | zero drop | shuffle drop "
          "| first-frame drop | reversed: opposite % (normal) | latent steps/item | cos(h, z) last step | goal |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        opp = r.get("opposite")
        cos = "-" if r["final_cos"] is None else f"{r['final_cos']:.2f}"
        md.append(f"| {r['model']} | {r['n']} | {pct(r['avg'])} [{pct(r['ci'][0])}, {pct(r['ci'][1])}] | "
                  f"{delta(r, 'vs CoT SFT')} | {delta(r, 'vs DIFT target')} | {cell(r, 'zero')} | {cell(r, 'shuffle')} | "
                  f"{cell(r, 'frames-first')} | "
                  f"{pct(opp['reversed']) + ' (' + pct(opp['normal']) + ')' if opp else '-'} | "
                  f"{'-' if not r['latent_steps'] else round(r['latent_steps'], 1)} | {cos} | "
                  f"{'yes' if goal(r) else '-'} |")
    reached = [r["model"] for r in rows if goal(r)]
    md.append("")
    md.append(f"Goal (a DIFT model whose accuracy drops under both zero and shuffle latents with McNemar p < 0.05 and "
              f"that is at least level with CoT SFT): {'reached by ' + ', '.join(reached) if reached else 'not reached'}.")
    text = "\n".join(md) + "\n"
    atomic_write_text(out / "study.md", text)
    atomic_write_json(out / "study.json", {"rows": rows, "goal_reached_by": reached})
    head["goal_reached"] = int(bool(reached))
    return {"headline": head}


if __name__ == "__main__":
    main()
