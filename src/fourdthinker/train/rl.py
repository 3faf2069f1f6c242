"""4DRL: GRPO with latent-recurrent rollouts (SPEC §5, Eq. 11-13). Python entry: ``train_rl(RLConfig)``.

One training step, exactly:

1. Take ``questions_per_step`` QA records (a seeded shuffle, epoch after epoch). Each becomes one
   prompt through the same frame sampling and prompt builder as DIFT and evaluation
   (``load_prompt_frames`` + ``build_question_text``), repeated G times (``num_generations``).
2. **Rollout**: all ``Q * G`` responses are sampled in ONE batch by the latent-recurrent decoder
   (``fourdthinker.latent.decode.latent_generate``; temperature/top-p as the reference rollout,
   1.0 / 0.9). Each response records its token ids, a per-token ``is_latent`` flag and the exact
   vectors fed at its latent slots.
3. **Rewards** (Eq. 11): ``acc_weight * accuracy + fmt_weight * format`` (``train/rewards.py``).
4. **Advantages** (Eq. 12): group-normalised (``train/grpo.py``; zero-variance groups -> 0, counted).
5. **Replay**: the policy (with grad), the rollout policy (``mu > 1`` only, no grad) and the frozen
   reference (``beta > 0``, no grad) each run ONE full forward over prompt + responses in which the
   latent slots receive the rollout's own latent vectors, detached (``replay_forward``). The
   reference code fed the ``<|latent_pad|>`` embedding there (REFERENCE.md §4): text tokens were
   scored under a context they were not sampled in. Log-probs use the rollout temperature.
6. **Loss** (Eq. 13, ``grpo_loss``) over the response's TEXT tokens only: prompt, padding and latent
   positions are masked out of both the surrogate and the KL. Latent positions are the fed slots
   plus the ``<|latent_end|>`` the decoder places (never sampled); ``<|latent_start|>`` is sampled by
   the policy but excluded by default like the reference (``score_latent_start`` includes it).
7. ``mu`` AdamW steps on this batch (grad-norm clip ``max_grad_norm``), then the next rollout.

The reference model is a frozen deep copy of the initial (DIFT) model. Baselines on the same
trainer (Table 3): ``mode="grpo"`` (vanilla GRPO from a base model, latent blocks disabled in the
rollout) and ``mode="cot-grpo"`` (init from a CoT-SFT checkpoint, latent blocks disabled).

Outputs in ``out/``: ``metrics.jsonl`` (one line per step: reward mean/std, accuracy, format rate,
KL, clip fraction, latent blocks per response, response length, zero-variance groups, timings),
``reward_curve.png``, ``rejected.jsonl`` (records refused before training, with the reason),
``samples.jsonl`` (a few rollouts per step), ``checkpoints/step-N/`` (safetensors model +
tokenizer/processor + ``trainer_state.json`` + optimizer), ``final/``. A rerun with the same ``out``
resumes from the last checkpoint.

Data-parallel (``accelerate launch --num_processes N -m fourdthinker.cli train rl ...``): the
loop runs under an ``accelerate.Accelerator``. Every process holds a full copy of the policy (and
of the reference); each step takes ``N * questions_per_step`` questions from the shared schedule
and process ``r`` rolls out, scores and replays questions ``[r*Q, (r+1)*Q)`` of them (so
``questions_per_step`` is PER PROCESS, as "8 per GPU" in the reference). Group advantages only
need a question's own G responses, so no rewards cross processes for them. After each backward
the gradients are averaged over processes (the replay calls the inner model, not the DDP
wrapper's ``forward``, so ``train_rl`` all-reduces them itself), then clipped and stepped
identically everywhere: the weights stay equal on all ranks. Metrics are gathered (per-response
values) or averaged (losses) across processes; only the main process writes files. With one
process everything is exactly the single-process loop. ``deepspeed`` (a DeepSpeed JSON, ZeRO stage 1
or 2): the model and optimiser become a DeepSpeed engine, which reduces (ZeRO-2: partitions) the
gradients, clips them (``gradient_clipping`` = ``max_grad_norm``) and steps; ZeRO-3 is refused
(rollouts need gathered weights). A DeepSpeed resume reloads the weights but restarts the optimiser.

Defaults follow the reference launch script (``train_4dthinker.sh``: lr 1e-6, G 8, beta 0.01,
reward weights 1.0/0.2, temperature 1.0, top-p 0.9); tiny CPU demos need a larger lr (1e-4 ..
1e-3), which is why every field is configurable (YAML + CLI).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fourdthinker.data.records import RLRecord, build_question_text
from fourdthinker.io import append_jsonl, atomic_write_json, read_jsonl, resolve_inside

__all__ = [
    "RLConfig",
    "RLResult",
    "load_rl_records",
    "load_prompt_frames",
    "response_logps",
    "rank_questions",
    "rollout",
    "text_token_mask",
    "train_rl",
]

MODES = ("4drl", "grpo", "cot-grpo")


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class RLConfig:
    """Every knob of `fourdthinker train rl` (YAML keys = field names; CLI flags override)."""

    data: str = _f("", "RL records: a JSONL file or a folder holding rl.jsonl ({id, video, question, options, answer, task}).")
    init: str = _f("qwen2.5-vl-tiny", "Initial policy: a DIFT checkpoint folder (4drl), a base model (grpo), a CoT-SFT checkpoint (cot-grpo), or a tiny preset name.")
    out: str = _f("runs/rl", "Output folder (metrics, curve, checkpoints). Rerunning with the same folder resumes.")
    mode: str = _f("4drl", "4drl: latent-recurrent rollouts (the paper). grpo / cot-grpo: Table 3 baselines, rollouts without latent blocks.")
    steps: int = _f(100, "Rollout+update steps. Each step samples questions_per_step x num_generations responses.")
    questions_per_step: int = _f(2, "Questions per rollout batch PER PROCESS (reference: 8 per GPU; N processes train on N x this many). More = steadier gradient, slower step.")
    num_generations: int = _f(8, "G, responses per question (reference 8). Bigger G = better advantage baseline, fewer zero-variance groups.")
    mu: int = _f(1, "Optimisation steps per rollout batch. 1 = on-policy (ratio 1, clipping inert, as the reference); >1 reuses rollouts and makes the clip matter.")
    lr: float = _f(1e-6, "AdamW learning rate (reference 1e-6 for 3B). Tiny CPU models need ~1e-4..1e-3 to move within minutes.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    max_grad_norm: float = _f(1.0, "Gradient-norm clip (0 = off).")
    beta: float = _f(0.01, "KL weight to the frozen init model (reference 0.01). 0 skips the reference forward (faster, no anchor).")
    kl: str = _f("k3", "KL estimator: k3 (non-negative, low variance; TRL default) or k1 (logp - ref; the reference code).")
    epsilon: float = _f(0.2, "Clip range: ratio clipped to [1-epsilon, 1+epsilon_high].")
    epsilon_high: float | None = _f(None, "Upper clip (DAPO's clip-higher); None = epsilon.")
    loss_type: str = _f("grpo", "grpo: mean over each response's text tokens, then over responses (reference). bnpo: one token mean. dr_grpo: sum / (B * T).")
    acc_weight: float = _f(1.0, "Weight of the accuracy reward (Table 4: 0 removes it).")
    fmt_weight: float = _f(0.2, "Weight of the format reward (reference 0.2; Table 4: 0 removes it).")
    temperature: float = _f(1.0, "Rollout sampling temperature (reference 1.0); also used to score log-probs.")
    top_p: float = _f(0.9, "Rollout nucleus sampling (reference 0.9).")
    max_new_tokens: int = _f(96, "Response budget per rollout, latent slots included (reference 8192 on GPUs).")
    latent_size: int | None = _f(None, "K latent steps per block; None = the model's own (set by DIFT), else 4.")
    max_latent_blocks: int | None = _f(None, "Cap on latent blocks per response (None = no cap). Forced to 0 in grpo/cot-grpo modes.")
    score_latent_start: bool = _f(False, "Include the sampled <|latent_start|> token in the loss (default: excluded with all latent positions, like the reference).")
    fps: float = _f(1.0, "Frame sampling rate for prompts (must match DIFT; 1 FPS in the paper).")
    max_frames: int | None = _f(16, "Cap on frames per prompt (evenly spread). Keep DIFT's value (16) so RL sees what DIFT saw.")
    max_pixels: int | None = _f(448 * 448, "Pixel cap per frame before the processor (DIFT's default 448*448).")
    lora: bool = _f(False, "Train LoRA adapters on the LM (train/trainer.apply_lora, merged on save) instead of all weights. "
                           "Checkpoints also keep the unmerged trainable tensors + optimiser, so a resume continues exactly.")
    lora_r: int = _f(16, "LoRA rank.")
    lora_alpha: int = _f(32, "LoRA alpha.")
    seed: int = _f(0, "Seed for record order, sampling and init.")
    save_every: int = _f(50, "Checkpoint every N steps (0 = only the final model).")
    samples_per_step: int = _f(2, "Rollouts written to samples.jsonl per step (to read what the model says).")
    threads: int = _f(2, "torch CPU threads.")
    probe_questions: int = _f(0, "Fixed questions scored before and after training with probe_samples sampled responses each "
                                 "(paired): the expected reward on the same questions, far less noisy than the per-step batch "
                                 "mean. 0 = off; costs 2 x probe_questions x probe_samples extra rollouts.")
    probe_samples: int = _f(8, "Sampled responses per probe question.")
    prefix_sharing: bool = _f(True, "Encode each question once (vision + prompt prefill) and share it by its G responses in the "
                                    "rollout and in every replay (policy, reference, rollout policy); the same samples and "
                                    "gradients as unshared, several times faster at real prompt lengths (docs/rl_speed.md). "
                                    "--no-prefix-sharing: every response re-reads its own copy of the prompt (the reference path).")
    deepspeed: str | None = _f(None, "DeepSpeed JSON (ZeRO stage 1 or 2, e.g. configs/ds_zero2.json); 'auto' values are filled "
                                     "from this config (gradient_clipping = max_grad_norm, micro batch 1, fp32 unless the "
                                     "file enables bf16/fp16). ZeRO-3 is refused. A resume restarts the optimiser state.")

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in MODES:
            problems.append(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.kl not in ("k3", "k1"):
            problems.append(f"kl must be k3 or k1, got {self.kl!r}")
        if self.loss_type not in ("grpo", "bnpo", "dr_grpo"):
            problems.append(f"loss_type must be grpo, bnpo or dr_grpo, got {self.loss_type!r}")
        if self.num_generations < 2:
            problems.append(f"num_generations must be >= 2 (group advantages need a group), got {self.num_generations}")
        if self.probe_questions < 0 or self.probe_samples < 1:
            problems.append(f"probe_questions must be >= 0 and probe_samples >= 1, got {self.probe_questions}, "
                            f"{self.probe_samples}")
        for name in ("steps", "questions_per_step", "mu", "max_new_tokens"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.temperature <= 0:
            problems.append(f"temperature must be > 0 (rollouts are sampled), got {self.temperature}")
        if problems:
            raise ValueError("RLConfig: " + "; ".join(problems))

    @property
    def latents_enabled(self) -> bool:
        return self.mode == "4drl"

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> RLConfig:
        """Fields from a YAML file, then ``overrides`` (CLI flags) on top; unknown keys are errors."""
        from fourdthinker.config import load_yaml_config

        return load_yaml_config(cls, path, overrides, what="RL config keys")


@dataclass
class RLResult:
    out: Path
    steps_done: int
    metrics: list[dict]
    final_dir: Path | None
    rejected: list[dict]
    curve_png: Path | None
    probe: dict | None = None  # expected reward before/after on fixed questions (probe_questions > 0)

    def reward_trend(self, window: int = 10) -> tuple[float, float]:
        """(mean reward of the first ``window`` steps, of the last ``window`` steps)."""
        r = [m["reward_mean"] for m in self.metrics]
        w = max(1, min(window, len(r) // 2 or 1))
        return sum(r[:w]) / w, sum(r[-w:]) / w


# ----------------------------------------------------------------------------- data


def load_rl_records(path: str | Path) -> tuple[list[RLRecord], Path, list[dict]]:
    """Read RL records, refusing bad ones BEFORE training: ``(records, dataset_root, rejected)``.

    A record is refused (with a one-line reason) when it is not JSON, fails the ``RLRecord``
    schema (missing/invalid ``answer``, answer not among the options, options not A-D, empty
    question), repeats an id, or names a video outside the dataset root or not on disk.
    Raises ``ValueError`` naming the file when nothing usable is left."""
    p = Path(path)
    if p.is_dir():
        cands = [p / "rl.jsonl", p / "records.jsonl"]
        found = [c for c in cands if c.exists()]
        if not found:
            raise ValueError(f"{p}: no rl.jsonl (or records.jsonl) in this folder")
        p = found[0]
    if not p.exists():
        raise ValueError(f"{p}: RL records file not found")
    root = p.parent
    rows: list[tuple[int, Any]] = []
    rejected: list[dict] = []
    with open(p, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append((i, json.loads(line)))
            except json.JSONDecodeError as e:
                rejected.append({"file": str(p), "line": i, "id": None, "reason": f"not JSON ({e.msg})"})
    from pydantic import ValidationError

    records: list[RLRecord] = []
    seen: set[str] = set()
    for i, row in rows:
        rid = row.get("id") if isinstance(row, dict) else None
        if not isinstance(row, dict):
            rejected.append({"file": str(p), "line": i, "id": None, "reason": "not a JSON object"})
            continue
        if row.get("answer") in (None, ""):
            rejected.append({"file": str(p), "line": i, "id": rid, "reason": "missing answer"})
            continue
        try:
            rec = RLRecord.model_validate(row)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err.get("loc", ()))
            rejected.append({"file": str(p), "line": i, "id": rid, "reason": f"{loc}: {err.get('msg')}".strip(": ")})
            continue
        if rec.id in seen:
            rejected.append({"file": str(p), "line": i, "id": rid, "reason": "duplicate id"})
            continue
        try:
            paths = [resolve_inside(root, fr) for fr in rec.frames] if rec.frames else [resolve_inside(root, rec.video)]
        except ValueError as e:
            rejected.append({"file": str(p), "line": i, "id": rid, "reason": str(e)})
            continue
        missing = [str(q) for q in paths if not q.exists()]
        if missing:
            rejected.append({"file": str(p), "line": i, "id": rid, "reason": f"video/frames not found: {missing[0]}"})
            continue
        seen.add(rec.id)
        records.append(rec)
    if not records:
        reasons = Counter(r["reason"] for r in rejected).most_common(3)
        raise ValueError(f"{p}: no usable RL records ({len(rejected)} refused; top reasons: {reasons})")
    return records, root, rejected


def load_prompt_frames(rec: RLRecord, root: Path, *, fps: float = 1.0, max_frames: int | None = 16,
                       max_pixels: int | None = 448 * 448) -> list:
    """Frames of a record's video through the ONE input builder DIFT and evaluation use
    (``fourdthinker.models.inputs.load_frames``: pre-extracted PNGs, a frame folder, or the video
    sampled at ``fps``; capped at ``max_frames`` evenly and ``max_pixels``)."""
    from fourdthinker.models.inputs import load_frames

    return load_frames(root, rec.video, rec.frames, fps=fps, max_frames=max_frames, max_pixels=max_pixels)


# ----------------------------------------------------------------------------- rollout + replay


def rollout(adapter, prompt_batch: dict, records: Sequence[RLRecord], cfg: RLConfig, generator=None, vision=None):
    """Sample ``len(records)`` responses in one batched latent-recurrent decode. Returns
    ``DecodeResult`` per record. ``prompt_batch`` either repeats each question G times (one row per
    record) or holds each question once (``len(records) / rows`` responses per row, from one
    prefill per question: prefix sharing). ``vision``: the batch's precomputed frozen-encoder
    features (``latent.prefix.encode_vision``), reused instead of running the encoder again."""
    import torch

    from fourdthinker.latent.decode import latent_generate

    adapter.model.eval()
    with torch.no_grad():
        return latent_generate(
            adapter,
            prompt_batch,
            latent_size=cfg.latent_size,
            max_new_tokens=cfg.max_new_tokens,
            do_sample=True,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_latent_blocks=cfg.max_latent_blocks if cfg.latents_enabled else 0,
            generator=generator,
            options=[r.options for r in records],
            num_return_sequences=_responses_per_row(prompt_batch, len(records)),
            vision=vision,
        )


def _responses_per_row(prompt_batch: dict, n_responses: int) -> int:
    rows = int(prompt_batch["input_ids"].shape[0])
    if n_responses % rows:
        raise ValueError(f"{n_responses} responses for {rows} prompt rows: need the same number per prompt")
    return n_responses // rows


def text_token_mask(response_ids, response_mask, latent_mask, latent_ids, *, score_latent_start: bool = False):
    """``[B, R]`` bool: True at response tokens the policy sampled as text (the loss positions).

    Excluded: padding (``response_mask == 0``), latent slots (``latent_mask``), the placed
    ``<|latent_end|>`` and, unless ``score_latent_start``, ``<|latent_start|>``; the latent pad id is
    excluded wherever it appears."""
    import torch

    m = response_mask.bool() & ~latent_mask.bool()
    drop = [latent_ids.end, latent_ids.pad] + ([] if score_latent_start else [latent_ids.start])
    return m & ~torch.isin(response_ids, torch.tensor(drop, device=response_ids.device))


def response_logps(adapter, prompt_batch: dict, results, *, grad: bool, temperature: float = 1.0, vision=None):
    """Per-token log-probs of each response under ``adapter.model``, replaying the exact rollout
    (latent slots get the rollout's vectors). Returns ``(logps [B, R], replay dict)``. A batch with
    fewer rows than ``results`` (each question once) is replayed with the prompt run once per
    question and shared by its responses (``latent.prefix.shared_prompt_replay``), with the step's
    precomputed frozen-encoder features ``vision`` when given."""
    from fourdthinker.latent.decode import replay_forward
    from fourdthinker.train.grpo import token_logps

    if _responses_per_row(prompt_batch, len(results)) > 1:
        from fourdthinker.latent.prefix import shared_prompt_replay

        rep = shared_prompt_replay(adapter, prompt_batch, results, grad=grad, vision=vision)
        return token_logps(rep["logits"], rep["response_ids"], temperature), rep
    rep = replay_forward(adapter, prompt_batch, results, grad=grad)
    L = int(rep["prompt_len"])
    R = rep["response_ids"].shape[1]
    logits = rep["logits"][:, L - 1 : L + R - 1]  # [B, R, V]: position L+i-1 predicts response token i
    return token_logps(logits, rep["response_ids"], temperature), rep


def _with_model(adapter, model):
    """A shallow copy of ``adapter`` driving another model (the frozen reference)."""
    other = copy.copy(adapter)
    other.model = model
    return other


# ----------------------------------------------------------------------------- trainer


class _Schedule:
    """Seeded epoch-by-epoch shuffle of record indices; position = step * questions_per_step."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed

    def take(self, start: int, k: int) -> list[int]:
        out = []
        for j in range(start, start + k):
            epoch, pos = divmod(j, self.n)
            order = list(range(self.n))
            random.Random(self.seed * 100_003 + epoch).shuffle(order)
            out.append(order[pos])
        return out


def rank_questions(sched: _Schedule, step: int, q: int, rank: int = 0, world: int = 1) -> list[int]:
    """Record indices process ``rank`` of ``world`` trains on at ``step`` (1-based): the step takes
    ``world * q`` consecutive schedule positions and each process gets its own block of ``q``, so
    the shares are disjoint and ``world == 1`` is the single-process schedule."""
    return sched.take((step - 1) * q * world, q * world)[rank * q : (rank + 1) * q]


def deepspeed_config(path: str | Path, max_grad_norm: float, world: int = 1) -> dict:
    """A DeepSpeed JSON (the files in configs/) made concrete for train rl: ``"auto"`` values are
    filled (gradient_clipping = ``max_grad_norm``, micro batch 1 per process, no accumulation,
    bf16/fp16 off). ZeRO-3 raises NotImplementedError (rollouts generate with the full weights)."""
    p = Path(path)
    try:
        ds = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{p}: not a readable DeepSpeed JSON ({e})") from None
    if not isinstance(ds, dict):
        raise ValueError(f"{p}: a DeepSpeed config must be a JSON object")
    stage = int((ds.get("zero_optimization") or {}).get("stage", 0))
    if stage >= 3:
        raise NotImplementedError(
            f"{p}: train rl under DeepSpeed ZeRO-3 is not implemented (rollouts and the latent replay need the "
            "gathered weights); use ZeRO stage 1/2 (configs/ds_zero2.json) or plain data-parallel with --lora")
    for k in ("bf16", "fp16"):
        if isinstance(ds.get(k), dict) and ds[k].get("enabled") == "auto":
            ds[k] = {**ds[k], "enabled": False}
    if ds.get("gradient_clipping", "auto") == "auto":
        ds["gradient_clipping"] = float(max_grad_norm)
    if ds.get("train_micro_batch_size_per_gpu", "auto") == "auto":
        ds["train_micro_batch_size_per_gpu"] = 1
    if ds.get("gradient_accumulation_steps", "auto") == "auto":
        ds["gradient_accumulation_steps"] = 1
    if ds.get("train_batch_size", "auto") == "auto":
        ds["train_batch_size"] = ds["train_micro_batch_size_per_gpu"] * ds["gradient_accumulation_steps"] * world
    return ds


def _make_accelerator(ds_path: str | None = None, max_grad_norm: float = 1.0):
    """The run's ``accelerate.Accelerator`` (launch settings come from ``accelerate launch`` / env).
    ``ds_path``: a DeepSpeed JSON (ZeRO 1/2) -> a ``DeepSpeedPlugin``; a DeepSpeed launch without
    it (accelerate config) is refused, as is ZeRO-3 (rollouts would need gathered weights)."""
    import os

    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedType

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if ds_path:
        from accelerate.utils import DeepSpeedPlugin

        if "WORLD_SIZE" not in os.environ:  # a plain `fourdthinker train rl --deepspeed`: one process
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            for k, v in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                         "MASTER_PORT": str(port)}.items():
                os.environ.setdefault(k, v)
        plugin = DeepSpeedPlugin(hf_ds_config=deepspeed_config(ds_path, max_grad_norm, world))
        acc = Accelerator(device_placement=False, deepspeed_plugin=plugin)
        if acc.distributed_type != DistributedType.DEEPSPEED:  # accelerate's state is a per-process singleton
            raise RuntimeError(f"--deepspeed {ds_path}: this process already set up accelerate as "
                               f"{acc.distributed_type}; run train rl --deepspeed in a fresh process")
        return acc
    # several processes without CUDA (torchrun / accelerate on CPU): gloo. One process: leave the
    # model where it was loaded (device_placement off), exactly the single-process loop.
    acc = Accelerator(device_placement=False, cpu=world > 1 and not torch.cuda.is_available())
    if world > 1 and acc.num_processes != world:
        raise ValueError(f"WORLD_SIZE={world} but accelerate set up {acc.num_processes} process(es) "
                         f"({acc.distributed_type}); launch with accelerate launch or torchrun")
    if acc.distributed_type == DistributedType.DEEPSPEED:
        raise NotImplementedError(
            "train rl under an accelerate DeepSpeed launch needs the DeepSpeed JSON passed as --deepspeed "
            "(ZeRO stage 1/2, e.g. configs/ds_zero2.json; ZeRO-3 is not implemented), or launch plain data-parallel: "
            "accelerate launch --multi_gpu --num_processes N -m fourdthinker.cli train rl ... (use --lora for big models)")
    return acc


def _allreduce_grads(acc, params: Sequence, bucket: int = 1 << 24) -> None:
    """Average ``.grad`` over processes (what DDP's reducer does when the forward goes through it).
    A parameter with a gradient on some ranks only gets zeros elsewhere; one with none anywhere
    keeps ``None`` (AdamW skips it, as in one process). No-op with one process."""
    if acc.num_processes == 1:
        return
    import torch

    dev = params[0].device
    has = acc.reduce(torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=dev), "sum")
    live = [p for p, h in zip(params, has.tolist(), strict=True) if h > 0]
    for p in live:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    i = 0
    while i < len(live):  # buckets of ~bucket elements: one collective each, bounded extra memory
        j, n = i, 0
        while j < len(live) and (n == 0 or n + live[j].numel() <= bucket):
            n += live[j].numel()
            j += 1
        flat = acc.reduce(torch.cat([p.grad.reshape(-1).float() for p in live[i:j]]), "mean")
        o = 0
        for p in live[i:j]:
            p.grad.copy_(flat[o : o + p.numel()].view_as(p.grad))
            o += p.numel()
        i = j


def _sync_step_stats(acc, per_response: dict[str, list], scalars: dict[str, float], maxed: dict[str, float]):
    """All processes' per-response values (concatenated in rank order; None comes back as NaN,
    which ``_mean`` skips alike) and the mean (``scalars``) or max (``maxed``, wall times) of
    per-process numbers. One process: returned unchanged."""
    if acc.num_processes == 1:
        return per_response, scalars, maxed
    import torch

    keys = list(per_response)
    cols = [[math.nan if v is None else float(v) for v in per_response[k]] for k in keys]
    t = torch.tensor(cols, dtype=torch.float64, device=acc.device).T.contiguous()  # [B, keys]
    allr = acc.gather(t).T.tolist()  # [keys, world * B]
    sk, mk = list(scalars), list(maxed)
    sv = acc.gather(torch.tensor([[scalars[k] for k in sk] + [maxed[k] for k in mk]], dtype=torch.float64,
                                 device=acc.device))  # [world, n]
    mean, mx = sv.mean(0).tolist(), sv.max(0).values.tolist()
    return ({k: allr[i] for i, k in enumerate(keys)},
            {k: mean[i] for i, k in enumerate(sk)}, {k: mx[len(sk) + i] for i, k in enumerate(mk)})


def _latest_checkpoint(out: Path) -> tuple[Path | None, int]:
    """The most advanced finished checkpoint under ``out`` (``checkpoints/step-N`` or ``final``)."""
    cands = [d for d in [*(out / "checkpoints").glob("step-*"), out / "final"] if (d / "trainer_state.json").exists()]
    best, best_step = None, 0
    for d in cands:
        try:
            st = int(json.loads((d / "trainer_state.json").read_text())["step"])
        except (ValueError, KeyError, OSError):
            continue  # a damaged state file: ignore that checkpoint, keep looking
        if st > best_step:
            best, best_step = d, st
    return best, best_step


def _save_checkpoint(adapter, optimizer, step: int, cfg: RLConfig, dest: Path, train_model=None) -> None:
    import shutil

    import torch

    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    _save_model(adapter, tmp, train_model, cfg.latent_size)
    if train_model is not None:  # LoRA: the unmerged trainable tensors, so a resume continues the same adapters
        from safetensors.torch import save_file

        save_file({n: p.detach().cpu().clone().contiguous() for n, p in adapter.model.named_parameters()
                   if p.requires_grad}, str(tmp / LORA_TRAINABLES))
    if optimizer is not None:
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")  # tensors + numbers: loads with weights_only=True
    atomic_write_json(tmp / "trainer_state.json", {"step": step, "config": asdict(cfg)})
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)


LORA_TRAINABLES = "lora_trainable.safetensors"


def _load_lora_trainables(model, path: Path) -> None:
    """Put a checkpoint's unmerged LoRA trainables back (names must match the trainable set)."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if set(state) != set(named):
        diff = sorted(set(state) ^ set(named))[:3]
        raise ValueError(f"{path}: LoRA tensors do not match this model's trainable parameters (e.g. {diff}); "
                         "resume with the same --lora-r / --init, or use a new --out")
    import torch

    with torch.no_grad():
        for n, p in named.items():
            p.copy_(state[n])


def _save_model(adapter, dest: Path, train_model=None, latent_size: int | None = None) -> None:
    """safetensors weights + processor via the shared ``train.trainer.save_final`` (what DIFT uses),
    loadable by ``fourdthinker.models.load``. A LoRA-wrapped ``train_model`` is merged into a copy."""
    from fourdthinker.train.trainer import save_final

    model = train_model if train_model is not None else adapter.model
    if hasattr(model, "merge_and_unload"):
        model = copy.deepcopy(model)  # merging in place would end LoRA training
    extra = {"latent_size": latent_size} if latent_size else None
    save_final(model, adapter.processor, dest, extra_config=extra)


def _load_adapter(init: str):
    from fourdthinker import models

    return models.load(init)


def plot_reward_curve(metrics: Sequence[dict], path: Path, title: str = "4DRL") -> Path:
    """Reward mean per step (+/- std band, moving average), accuracy and format rate, KL."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fourdthinker.plots import save_figure

    steps = [m["step"] for m in metrics]
    r = [m["reward_mean"] for m in metrics]
    sd = [m["reward_std"] for m in metrics]
    w = max(1, len(r) // 10)
    ma = [sum(r[max(0, i - w + 1) : i + 1]) / len(r[max(0, i - w + 1) : i + 1]) for i in range(len(r))]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    ax.fill_between(steps, [a - b for a, b in zip(r, sd, strict=True)], [a + b for a, b in zip(r, sd, strict=True)], alpha=0.15, color="C0")
    ax.plot(steps, r, color="C0", alpha=0.4 if w > 1 else 1.0, lw=1 if w > 1 else 2, label="reward mean (per step, +/- std)")
    if w > 1:
        ax.plot(steps, ma, color="C0", lw=2.5, label=f"reward mean ({w}-step moving avg)")
    ax.plot(steps, [m["accuracy"] for m in metrics], color="C2", lw=1, alpha=0.7, label="accuracy")
    ax.plot(steps, [m["format_rate"] for m in metrics], color="C1", lw=1, alpha=0.7, label="format rate")
    ax.set_xlabel("RL step")
    ax.set_ylabel("reward / rate")
    ax.set_title(f"{title}: reward over training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax = axes[1]
    beta0 = all(m["kl"] == 0 for m in metrics)
    ax.plot(steps, [m["kl"] for m in metrics], color="C3", label="KL to reference" + (" (beta=0: off)" if beta0 else ""))
    ax.plot(steps, [m["clip_frac"] for m in metrics], color="C4", label="clip fraction")
    ax2 = ax.twinx()
    ax2.plot(steps, [m["latent_blocks"] for m in metrics], color="C5", ls="--", label="latent blocks / response")
    ax2.set_ylim(bottom=0, top=max(1.0, 1.2 * max(m["latent_blocks"] for m in metrics)))
    ax2.set_ylabel("latent blocks / response")
    ax.set_xlabel("RL step")
    ax.set_title("KL, clipping, imagery use")
    ax.grid(alpha=0.3)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="best")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def train_rl(cfg: RLConfig, *, adapter=None, progress: bool = True,
             extra_rewards: dict[str, tuple[Callable, float]] | None = None) -> RLResult:
    """Run 4DRL (or a baseline, ``cfg.mode``) and return the metrics.

    ``adapter`` overrides ``cfg.init`` (an already loaded ``fourdthinker.models`` adapter, e.g.
    right after DIFT). ``extra_rewards`` adds TRL-style reward functions ``name -> (fn, weight)``;
    each is called as ``fn(completions, answer=..., options=..., completion_ids=..., is_latent=...,
    latent_size=...)`` and its weighted value is added to Eq. 11's sum."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from transformers.utils import logging as hf_logging

    from fourdthinker.latent.decode import latent_ids
    from fourdthinker.latent.prefix import encode_vision
    from fourdthinker.train.grpo import group_advantages, grpo_loss
    from fourdthinker.train.rewards import accuracy_reward, combine_rewards, format_reward

    hf_logging.disable_progress_bar()  # per-save "Writing model shards" bars would drown the RL bar
    torch.set_num_threads(max(1, cfg.threads))
    acc = _make_accelerator(cfg.deepspeed, cfg.max_grad_norm)
    from accelerate.utils import DistributedType

    use_ds = acc.distributed_type == DistributedType.DEEPSPEED
    rank, world, main = acc.process_index, acc.num_processes, acc.is_main_process
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    records, root, rejected = load_rl_records(cfg.data)
    rej_path = out / "rejected.jsonl"

    resume, start_step = _latest_checkpoint(out)
    start_step = min(start_step, cfg.steps)
    lora_state = resume / LORA_TRAINABLES if resume is not None and cfg.lora else None
    if lora_state is not None and lora_state.exists():
        adapter = _load_adapter(cfg.init)  # LoRA resume: the init weights + the saved unmerged adapters
    elif resume is not None:
        lora_state = None
        adapter = _load_adapter(str(resume))
    if adapter is None:
        adapter = _load_adapter(cfg.init)
    lid = latent_ids(adapter) if cfg.latents_enabled else _maybe_latent_ids(adapter)
    K = int(cfg.latent_size or model_latent_size(adapter))
    cfg = dataclasses.replace(cfg, latent_size=K)
    if world > 1 and acc.device.type != "cpu":
        adapter.model.to(acc.device)  # one GPU per process

    # Frozen reference = the INIT model (not the resumed one): reload it when resuming.
    ref_adapter = None
    if cfg.beta != 0.0:
        # (a passed-in adapter has been trained by the earlier run, so it cannot serve as the init)
        ref_model = copy.deepcopy(adapter.model) if resume is None or lora_state is not None else (
            _load_adapter(cfg.init).model.to(adapter.model.device))
        ref_model.eval().requires_grad_(False)
        ref_adapter = _with_model(adapter, ref_model)

    train_model = None  # the PEFT wrapper under LoRA; forwards always use the unwrapped model
    if cfg.lora:
        from fourdthinker.train.trainer import apply_lora

        torch.manual_seed(cfg.seed)  # the adapters' random init: a function of the seed (same on every rank)
        train_model = apply_lora(adapter.model, r=cfg.lora_r, alpha=cfg.lora_alpha)
        adapter.model = train_model.get_base_model()  # LoRA layers are injected in place
    if hasattr(adapter, "freeze_visual"):
        adapter.freeze_visual()  # the encoder defines the latent target space (SPEC §3)
    if lora_state is not None:
        _load_lora_trainables(adapter.model, lora_state)
    params = [p for p in adapter.model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{cfg.init}: model has no trainable parameters")
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if (not use_ds and resume is not None and (resume / "optimizer.pt").exists()
            and (not cfg.lora or lora_state is not None)):
        opt.load_state_dict(torch.load(resume / "optimizer.pt", weights_only=True, map_location=params[0].device))
    raw_opt = None if use_ds else opt  # DeepSpeed: the engine owns the (partitioned) state; not saved
    # One process: prepare returns the model untouched. Several: DDP wraps it (rank 0's weights are
    # broadcast to all), but rollouts and the replay run on the unwrapped model and the gradients are
    # averaged by _allreduce_grads.
    wrapped, opt = acc.prepare(adapter.model, opt)
    if acc.unwrap_model(wrapped) is not adapter.model:  # e.g. a dynamo/compile launch option
        raise NotImplementedError(f"train rl: accelerate returned a {type(wrapped).__name__} that does not unwrap to "
                                  "the model; launch without torch.compile/dynamo")

    metrics_path = out / "metrics.jsonl"
    metrics = [m for m in read_jsonl(metrics_path, tolerate_truncated_tail=True) if m["step"] <= start_step] if (
        metrics_path.exists() and start_step) else []
    acc.wait_for_everyone()  # every process has read the old files before the main one rewrites them
    if main:
        from fourdthinker.io import write_jsonl

        if rejected:
            write_jsonl(rej_path, rejected)
        if metrics_path.exists():
            write_jsonl(metrics_path, metrics)
    acc.wait_for_everyone()  # ... and has rewritten them before anyone appends
    sched = _Schedule(len(records), cfg.seed)
    frame_cache: dict[str, list] = {}
    bad: set[int] = set()
    G, Q = cfg.num_generations, cfg.questions_per_step
    weights = {"accuracy": cfg.acc_weight, "format": cfg.fmt_weight}
    weights.update({name: float(w) for name, (_fn, w) in (extra_rewards or {}).items()})
    if not any(weights.values()):
        raise ValueError(f"all reward weights are zero ({weights}): nothing to learn from")

    probe_recs: list[RLRecord] = []
    probe_frames: dict[str, list] = {}
    probe_path = out / "probe.json"

    def probe_now() -> list[float]:
        # each process scores its contiguous block of the probe questions; gathered in rank order
        lo, hi = rank * len(probe_recs) // world, (rank + 1) * len(probe_recs) // world
        mine = probe_expected_reward(adapter, probe_recs[lo:hi], probe_frames, cfg, weights, latent_size=K,
                                     seed=cfg.seed + 99)
        if world == 1:
            return mine
        from accelerate.utils import gather_object

        return [float(v) for share in gather_object([mine]) for v in share]  # one list per process

    if cfg.probe_questions:
        from fourdthinker.models.inputs import InputError
        from fourdthinker.video.errors import VideoError

        order = list(range(len(records)))
        random.Random(f"probe:{cfg.seed}").shuffle(order)
        for i in order:
            if len(probe_recs) >= cfg.probe_questions:
                break
            try:
                probe_frames[records[i].id] = load_prompt_frames(records[i], root, fps=cfg.fps, max_frames=cfg.max_frames,
                                                                 max_pixels=cfg.max_pixels)
                probe_recs.append(records[i])
            except (InputError, VideoError, OSError, ValueError):  # the training loop quarantines it when it comes up
                continue
        probe = _read_json(probe_path) if start_step else None
        if probe is None or [r.id for r in probe_recs] != probe.get("ids"):
            before = probe_now()
            if main:
                atomic_write_json(probe_path, {"ids": [r.id for r in probe_recs], "before": before})
        acc.wait_for_everyone()

    cols = [TextColumn("[bold]4DRL[/] {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*cols, disable=not (progress and main), transient=False) as bar:
        task = bar.add_task("", total=cfg.steps, completed=start_step)
        for step in range(start_step + 1, cfg.steps + 1):
            t0 = time.perf_counter()
            torch.manual_seed(cfg.seed * 1_000_003 + step + 7_777_777 * rank)
            gen = torch.Generator().manual_seed(cfg.seed * 7919 + step + 104_729 * rank)
            picked = []
            for i in rank_questions(sched, step, Q, rank, world):
                rec = _usable(records, i, bad, frame_cache, root, cfg, out, rank=rank)
                picked.append(rec)
            recs = [r for r in picked for _ in range(G)]
            enc = picked if cfg.prefix_sharing else recs  # sharing: each question encoded once, G responses each
            batch = adapter.encode_prompts([frame_cache[r.id] for r in enc],
                                           [build_question_text(r.question, r.options) for r in enc], fps=cfg.fps)
            # one pass of the frozen encoder per question, reused by the rollout and every replay below
            vision = encode_vision(adapter.model, batch) if cfg.prefix_sharing else None
            results = rollout(adapter, batch, recs, cfg, gen, vision=vision)
            t_roll = time.perf_counter() - t0

            comps = [res.text for res in results]
            per = {
                "accuracy": accuracy_reward(comps, [r.answer for r in recs], options=[r.options for r in recs]),
                "format": format_reward(comps, options=[r.options for r in recs],
                                        latent_size=K if cfg.latents_enabled else None),
            }
            for name, (fn, _w) in (extra_rewards or {}).items():
                per[name] = fn(comps, answer=[r.answer for r in recs], options=[r.options for r in recs],
                               completion_ids=[res.token_ids for res in results],
                               is_latent=[res.is_latent for res in results], latent_size=K)
            rewards = torch.tensor(combine_rewards(per, weights), dtype=torch.float32)
            adv, adv_stats = group_advantages(rewards, G)  # within this process's groups: no communication

            t1 = time.perf_counter()
            adapter.model.train()
            old_lp = ref_lp = None
            with torch.no_grad(), acc.autocast():
                if cfg.mu > 1:
                    old_lp, _ = response_logps(adapter, batch, results, grad=False, temperature=cfg.temperature,
                                               vision=vision)
                if ref_adapter is not None:
                    ref_lp, _ = response_logps(ref_adapter, batch, results, grad=False, temperature=cfg.temperature,
                                               vision=vision)
            loss_stats: dict[str, float] = {}
            grad_norm = 0.0
            # Every group has zero variance (e.g. a base model that never answers) and no KL term: the
            # loss and its gradient are exactly zero, so the replay forward/backward is skipped; the
            # optimiser still steps on zero gradients (AdamW momentum and decay as if it had run).
            # Decided over ALL processes (the gradient all-reduce needs every rank or none).
            no_signal = cfg.beta == 0.0 and not bool(adv.abs().gt(0).any())
            if world > 1:
                no_signal = bool(acc.reduce(torch.tensor([float(not no_signal)], device=acc.device), "sum").item() == 0)
            if no_signal and use_ds:  # the engine steps inside backward: a zero loss gives zero gradients
                loss = torch.zeros(())
                for _ in range(cfg.mu):
                    acc.backward(sum(p_.sum() for p_ in params) * 0.0)
            elif no_signal:
                for p_ in params:
                    p_.grad = torch.zeros_like(p_)
                loss = torch.zeros(())
                for _ in range(cfg.mu):
                    opt.step()
            for _ in range(0 if no_signal else cfg.mu):
                with acc.autocast():
                    lp, rep = response_logps(adapter, batch, results, grad=True, temperature=cfg.temperature,
                                             vision=vision)
                mask = text_token_mask(rep["response_ids"], rep["response_mask"], rep["latent_mask"], lid,
                                       score_latent_start=cfg.score_latent_start) if lid else (
                    rep["response_mask"].bool())
                loss, loss_stats = grpo_loss(
                    lp, adv.to(lp.device), mask, old_lp, ref_lp, eps_low=cfg.epsilon, eps_high=cfg.epsilon_high,
                    beta=cfg.beta, kl=cfg.kl, loss_type=cfg.loss_type,
                )
                opt.zero_grad(set_to_none=True)
                acc.backward(loss)  # DeepSpeed: the engine reduces, clips (gradient_clipping) and steps here
                if use_ds:
                    gn = wrapped.get_global_grad_norm()
                    grad_norm = float(gn) if gn is not None else 0.0
                    continue
                _allreduce_grads(acc, params)
                if cfg.max_grad_norm > 0:
                    grad_norm = float(acc.clip_grad_norm_(params, cfg.max_grad_norm))
                opt.step()
            t_upd = time.perf_counter() - t1

            resp = {**per, "_reward": rewards.tolist(),
                    "latent_blocks": [r.n_latent_blocks for r in results],
                    "latent_steps": [r.n_latent_steps for r in results],
                    "response_len": [len(r.token_ids) for r in results],
                    "finished": [float(r.finished) for r in results]}
            scal = {"loss": float(loss.detach()), "kl": loss_stats.get("kl", 0.0),
                    "clip_frac": loss_stats.get("clip_frac", 0.0), "ratio_mean": loss_stats.get("ratio_mean", 1.0),
                    "text_tokens": loss_stats.get("text_tokens", 0.0), "grad_norm": grad_norm}
            resp, scal, mx = _sync_step_stats(acc, resp, scal, {"t_rollout_s": t_roll, "t_update_s": t_upd})
            if world > 1:  # reward mean/std and zero-variance groups of the whole (all processes') batch
                _, adv_stats = group_advantages(torch.tensor(resp["_reward"], dtype=torch.float32), G)
            m = {
                "step": step,
                "reward_mean": adv_stats["reward_mean"],
                "reward_std": adv_stats["reward_std"],
                "accuracy": _mean(resp["accuracy"]),
                "format_rate": _mean(resp["format"]),
                **{f"reward_{k}": _mean(resp[k]) for k in per if k not in ("accuracy", "format")},
                "zero_var_groups": adv_stats["zero_var_groups"],
                "loss": scal["loss"],
                "kl": scal["kl"],
                "clip_frac": scal["clip_frac"],
                "ratio_mean": scal["ratio_mean"],
                "grad_norm": scal["grad_norm"],
                "latent_blocks": sum(resp["latent_blocks"]) / len(resp["latent_blocks"]),
                "latent_steps": sum(resp["latent_steps"]) / len(resp["latent_steps"]),
                "response_len": sum(resp["response_len"]) / len(resp["response_len"]),
                "text_tokens": scal["text_tokens"],
                "finished": sum(resp["finished"]) / len(resp["finished"]),
                "t_rollout_s": round(mx["t_rollout_s"], 3),
                "t_update_s": round(mx["t_update_s"], 3),
                "update_skipped": no_signal,
            }
            metrics.append(m)
            if main:
                append_jsonl(metrics_path, m)
                for r, res, rew in list(zip(recs, results, rewards.tolist(), strict=True))[: cfg.samples_per_step]:
                    append_jsonl(out / "samples.jsonl", {"step": step, "id": r.id, "answer": r.answer, "reward": rew,
                                                          **res.to_json()})
            bar.update(task, advance=1, description=(
                f"step {step} reward {m['reward_mean']:.3f} acc {m['accuracy']:.2f} fmt {m['format_rate']:.2f} "
                f"kl {m['kl']:.4f} lat {m['latent_blocks']:.1f}"))
            if cfg.save_every and step % cfg.save_every == 0 and step < cfg.steps:
                if main:
                    _save_checkpoint(adapter, raw_opt, step, cfg, out / "checkpoints" / f"step-{step}", train_model)
                acc.wait_for_everyone()

    probe_summary = None
    if probe_recs:
        after = probe_now()
        before = _read_json(probe_path)["before"]
        delta, lo, hi = paired_mean_delta_ci(before, after, seed=cfg.seed)
        probe_summary = {"questions": len(probe_recs), "samples": cfg.probe_samples, "before": sum(before) / len(before),
                         "after": sum(after) / len(after), "delta": delta, "ci95": [lo, hi]}
        if main:
            atomic_write_json(probe_path, {"ids": [r.id for r in probe_recs], "before": before, "after": after,
                                           "summary": probe_summary})
    curve = out / "reward_curve.png" if metrics else None
    final = out / "final"
    if main:
        if metrics:  # before the save: a failed save must not lose the curve
            curve = plot_reward_curve(metrics, curve, title=f"{cfg.mode} ({Path(cfg.init).name})")
        if start_step < cfg.steps or not final.exists():
            _save_checkpoint(adapter, raw_opt, cfg.steps, cfg, final, train_model)
        atomic_write_json(out / "summary.json", {
            "mode": cfg.mode, "steps": cfg.steps, "resumed_from": start_step, "records": len(records),
            "rejected": len(rejected), "config": asdict(cfg), "num_processes": world,
            "reward_first_last": list(RLResult(out, cfg.steps, metrics, final, rejected, curve).reward_trend()) if metrics else None,
            "probe": probe_summary,
            **({"deepspeed": {"config": cfg.deepspeed, "zero_stage": acc.state.deepspeed_plugin.zero_stage}}
               if use_ds else {}),
        })
    acc.wait_for_everyone()  # no process returns before the final model is on disk
    return RLResult(out=out, steps_done=cfg.steps, metrics=metrics, final_dir=final, rejected=rejected, curve_png=curve,
                    probe=probe_summary)


def paired_mean_delta_ci(before: Sequence[float], after: Sequence[float], *, n_boot: int = 2000,
                         seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``after[i] - before[i]`` and its 95% percentile-bootstrap CI (items resampled with
    replacement, both values of an item kept together).

    >>> paired_mean_delta_ci([0.0, 0.5], [0.5, 0.5])[0]
    0.25
    """
    import numpy as np

    d = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    if d.size == 0:
        return float("nan"), float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, d.size, size=(n_boot, d.size))
    boots = d[idx].mean(axis=1)
    return float(d.mean()), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


def probe_expected_reward(adapter, records: Sequence[RLRecord], frames: dict, cfg: RLConfig, weights: dict[str, float],
                          *, latent_size: int, seed: int) -> list[float]:
    """Mean reward (Eq. 11, accuracy and format with ``weights``) of each record over
    ``cfg.probe_samples`` responses sampled as in training, with a fixed seed: an estimate of the
    policy's expected reward on exactly these questions. Decoded in chunks of at most one
    training batch (questions_per_step x num_generations responses)."""
    import torch

    from fourdthinker.train.rewards import accuracy_reward, combine_rewards, format_reward

    S = cfg.probe_samples
    per_chunk = max(1, (cfg.questions_per_step * cfg.num_generations) // S)
    gen = torch.Generator().manual_seed(seed)
    out: list[float] = []
    for c in range(0, len(records), per_chunk):
        chunk = list(records[c : c + per_chunk])
        recs = [r for r in chunk for _ in range(S)]
        enc = chunk if cfg.prefix_sharing else recs  # sharing: one prefill per question for its S samples
        batch = adapter.encode_prompts([frames[r.id] for r in enc],
                                       [build_question_text(r.question, r.options) for r in enc], fps=cfg.fps)
        comps = [res.text for res in rollout(adapter, batch, recs, cfg, gen)]
        opts = [r.options for r in recs]
        per = {"accuracy": accuracy_reward(comps, [r.answer for r in recs], options=opts),
               "format": format_reward(comps, options=opts, latent_size=latent_size if cfg.latents_enabled else None)}
        rew = combine_rewards(per, {k: weights.get(k, 0.0) for k in per})
        out.extend(sum(rew[q * S : (q + 1) * S]) / S for q in range(len(chunk)))
    return out


def _usable(records: list[RLRecord], i: int, bad: set[int], cache: dict, root: Path, cfg: RLConfig,
            out: Path, *, rank: int = 0) -> RLRecord:
    """Record ``i`` with its frames loaded; a record whose video cannot be read is quarantined
    (``rejected.jsonl``) and the next usable record takes its place, so one bad file never stops a run.
    With several processes each quarantines what it meets (one appended line each, tagged ``rank``)."""
    from fourdthinker.models.inputs import InputError
    from fourdthinker.video.errors import VideoError

    for j in [*range(i, len(records)), *range(0, i)]:
        if j in bad:
            continue
        rec = records[j]
        if rec.id in cache:
            return rec
        if len(cache) >= 256:  # bounded memory on big datasets: frames are re-read after a clear
            cache.clear()
        try:
            cache[rec.id] = load_prompt_frames(rec, root, fps=cfg.fps, max_frames=cfg.max_frames,
                                               max_pixels=cfg.max_pixels)
            return rec
        except (InputError, VideoError, OSError, ValueError) as e:
            bad.add(j)
            append_jsonl(out / "rejected.jsonl", {"id": rec.id, "reason": f"unreadable during training: {e}",
                                                  **({"rank": rank} if rank else {})})
    raise ValueError("every RL record failed to load its video; see rejected.jsonl")


def model_latent_size(adapter, default: int = 4) -> int:
    """K of a model: the adapter's ``latent_size``, else the checkpoint config's (DIFT writes it), else 4."""
    k = getattr(adapter, "latent_size", None) or getattr(getattr(adapter.model, "config", None), "latent_size", None)
    return int(k or default)


def _maybe_latent_ids(adapter):
    """Latent ids when the model has them (baselines may start from a base model without)."""
    try:
        from fourdthinker.latent.decode import latent_ids

        return latent_ids(adapter)
    except ValueError:
        return None


def _read_json(path: Path) -> dict | None:
    """A JSON file written by this module, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _mean(xs: Sequence[float | None]) -> float:
    v = [x for x in xs if x is not None and not math.isnan(x)]
    return sum(v) / len(v) if v else 0.0
