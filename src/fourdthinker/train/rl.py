"""4DRL: GRPO with latent-recurrent rollouts (docs/method.md, Eq. 11-13). Python entry:
``train_rl(RLConfig)``, i.e. ``RLRecipe(cfg).train()``.

One training step, exactly:

1. Take ``questions_per_step`` QA records (a seeded shuffle, epoch after epoch). Each becomes one
   prompt through the same frame sampling and prompt builder as DIFT and evaluation
   (``load_prompt_frames`` + ``build_question_text``), repeated G times (``num_generations``).
   With ``grad_accum = A`` a step takes ``A`` such batches (``A * questions_per_step`` questions).
2. **Rollout**: each batch's ``Q * G`` responses are sampled in ONE batched decode by the
   latent-recurrent decoder (``fourdthinker.latent.decode.latent_generate``; temperature/top-p as
   the reference rollout, 1.0 / 0.9; the generator lives on the model's device). Each response
   records its token ids, a per-token ``is_latent`` flag and the exact vectors fed at its latent slots.
3. **Rewards** (Eq. 11): ``acc_weight * accuracy + fmt_weight * format`` (``train/rewards.py``).
4. **Advantages** (Eq. 12): group-normalised (``train/grpo.py``; zero-variance groups -> 0, counted).
5. **Replay**: the policy (with grad), the rollout policy (``mu > 1`` only, no grad) and the frozen
   reference (``beta > 0``, no grad) each run a full forward over prompt + responses in which the
   latent slots receive the rollout's own latent vectors, detached (``replay_forward``). The
   reference code fed the ``<|latent_pad|>`` embedding there (docs/reference.md): text tokens were
   scored under a context they were not sampled in. Log-probs use the rollout temperature; the
   lm_head runs only at the positions that predict response tokens, ``logit_chunk`` at a time.
   The replay runs over ``micro_batch_size`` responses at a time (0 = all at once).
6. **Loss** (Eq. 13, ``grpo_loss``) over the response's TEXT tokens only: prompt, padding and latent
   positions are masked out of both the surrogate and the KL. Latent positions are the fed slots
   plus the ``<|latent_end|>`` the decoder places (never sampled); ``<|latent_start|>`` is sampled by
   the policy but excluded by default like the reference (``score_latent_start`` includes it).
   Each micro-batch's loss is weighted by ``microbatch_weight`` (its share of the WHOLE step's
   normaliser: responses for ``grpo``, text tokens for ``bnpo``, responses x width for
   ``dr_grpo``), so the accumulated gradient is exactly the whole-batch gradient.
7. ``mu`` AdamW steps on this batch (grad-norm clip ``max_grad_norm``), then the next rollout.

Precision and memory: ``device``/``dtype`` (auto: cuda + bf16 when a GPU exists, else cpu +
fp32). bf16 is mixed precision: trained weights and AdamW state stay float32, rollouts and replays
run under bf16 autocast, the frozen reference is stored in bf16. ``gradient_checkpointing``
recomputes the LM layers in the backward. Full-size settings and measured memory:
docs/rl_full_size.md.

The reference model is a frozen deep copy of the initial (DIFT) model. Baselines on the same
trainer (Table 3): ``mode="grpo"`` (vanilla GRPO from a base model, latent blocks disabled in the
rollout) and ``mode="cot-grpo"`` (init from a CoT-SFT checkpoint, latent blocks disabled).

The recipe (``RLRecipe``) only wires building blocks, each in its own module:
``train/rl_config.py`` (``RLConfig``, ``RLResult``), ``train/rl_data.py`` (records, frames,
question schedule, quarantine), ``train/rl_step.py`` (rollout, replay log-probs, loss mask),
``train/grpo.py`` (advantages, loss), ``train/rewards.py``, ``train/distributed.py`` (accelerator,
DeepSpeed config, gradient all-reduce, stats sync), ``train/checkpoint.py`` (save / resume / LoRA
state), ``train/rl_probe.py`` (fixed-question probe) and ``train/rl_plot.py`` (reward curve).

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
wrapper's ``forward``, so the recipe all-reduces them itself), then clipped and stepped
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
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fourdthinker.data.records import RLRecord, build_question_text
from fourdthinker.io import append_jsonl, atomic_write_json, read_jsonl
from fourdthinker.train.checkpoint import (
    LORA_TRAINABLES,
    latest_checkpoint,
    load_adapter,
    load_lora_trainables,
    save_checkpoint,
)
from fourdthinker.train.distributed import (
    allreduce_grads,
    deepspeed_config,
    make_accelerator,
    resolve_device_dtype,
    sync_step_stats,
)
from fourdthinker.train.rl_config import MODES, RLConfig, RLResult
from fourdthinker.train.rl_data import (
    QuestionSchedule,
    load_prompt_frames,
    load_rl_records,
    pick_probe_records,
    rank_questions,
    usable_record,
)
from fourdthinker.train.rl_plot import plot_reward_curve
from fourdthinker.train.rl_probe import paired_mean_delta_ci, probe_expected_reward
from fourdthinker.train.rl_step import (
    maybe_latent_ids,
    merge_loss_stats,
    microbatch_weight,
    model_latent_size,
    pad_prompt_batch_left,
    response_logps,
    response_text_tokens,
    rollout,
    text_token_mask,
    with_model,
)

__all__ = [
    "RLConfig",
    "RLRecipe",
    "RLResult",
    "load_rl_records",
    "load_prompt_frames",
    "response_logps",
    "rank_questions",
    "rollout",
    "text_token_mask",
    "train_rl",
]

# Names that lived here before the split, kept importable from this module.
_Schedule = QuestionSchedule
_ = (MODES, LORA_TRAINABLES, deepspeed_config, paired_mean_delta_ci, probe_expected_reward, plot_reward_curve,
     model_latent_size)


@dataclass
class Chunk:
    """One rollout decode of a step (``grad_accum`` of them per step): its prompt batch and inputs,
    and the rows ``[lo, hi)`` of the step's responses it produced."""

    batch: dict
    frames: list
    texts: list[str]
    lo: int
    hi: int
    # prefix sharing (docs/rl_speed.md): ``batch``/``frames``/``texts`` hold each question ONCE for its
    # (hi - lo) / rows responses, and ``vision`` the frozen encoder's features of ``batch``, reused by
    # the rollout and every replay; None without sharing (one prompt row per response)
    vision: Any = None


@dataclass
class Trajectory:
    """One step's rollout batches, scored: what ``RLRecipe.grpo_step`` and ``RLRecipe.log`` consume."""

    recs: list[RLRecord]  # grad_accum * Q * G records, each question repeated G times
    chunks: list[Chunk]  # the decodes that produced them (prompt batches)
    results: list  # DecodeResult per response
    per: dict[str, list]  # reward name -> per-response values
    rewards: Any  # [n] combined reward (Eq. 11)
    adv: Any  # [n] group advantages (Eq. 12)
    adv_stats: dict[str, float]
    t_rollout: float


@dataclass
class Update:
    """What one ``RLRecipe.grpo_step`` did: the last loss, its stats, the grad norm, timings."""

    loss: Any
    loss_stats: dict[str, float]
    grad_norm: float
    skipped: bool
    t_update: float


class RLRecipe:
    """4DRL as a recipe: ``setup`` -> per step ``generate_trajectory`` (rollout + score) ->
    ``grpo_step`` (replay + loss + optimiser) -> ``log`` -> ``save``; ``finish`` writes the final
    model, curve and summary. See the module docstring for the algorithm."""

    def __init__(self, cfg: RLConfig, *, adapter=None, progress: bool = True,
                 extra_rewards: dict[str, tuple[Callable, float]] | None = None):
        self.cfg, self.adapter, self.progress = cfg, adapter, progress
        self.extra_rewards = extra_rewards or {}
        self.metrics: list[dict] = []

    # ------------------------------------------------------------------------- setup

    def setup(self) -> None:
        """Accelerator, records, models (policy, frozen reference, LoRA), optimiser, resume, logs, probe."""
        import torch
        from accelerate.utils import DistributedType
        from transformers.utils import logging as hf_logging

        cfg = self.cfg
        hf_logging.disable_progress_bar()  # per-save "Writing model shards" bars would drown the RL bar
        torch.set_num_threads(max(1, cfg.threads))
        bf16 = resolve_device_dtype(cfg.device, cfg.dtype)[1] == torch.bfloat16
        self.acc = acc = make_accelerator(cfg.deepspeed, cfg.max_grad_norm, bf16=bf16)
        self.use_ds = acc.distributed_type == DistributedType.DEEPSPEED
        self.rank, self.world, self.main = acc.process_index, acc.num_processes, acc.is_main_process
        self.device, self.dtype = resolve_device_dtype(cfg.device, cfg.dtype, acc)
        self.mixed = self.dtype == torch.bfloat16  # bf16 autocast over float32 trained weights
        if self.use_ds and (cfg.grad_accum > 1 or 0 < cfg.micro_batch_size < cfg.questions_per_step * cfg.num_generations):
            raise NotImplementedError("train rl --deepspeed with --micro-batch-size / --grad-accum is not implemented "
                                      "(the engine steps inside every backward); use plain data-parallel")
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.records, self.root, self.rejected = load_rl_records(cfg.data)
        self._setup_models()
        self._setup_optimizer()
        self._setup_logs()
        self.sched = QuestionSchedule(len(self.records), cfg.seed)
        self.frame_cache: dict[str, list] = {}
        self.bad: set[int] = set()
        self.weights = {"accuracy": cfg.acc_weight, "format": cfg.fmt_weight}
        self.weights.update({name: float(w) for name, (_fn, w) in self.extra_rewards.items()})
        if not any(self.weights.values()):
            raise ValueError(f"all reward weights are zero ({self.weights}): nothing to learn from")
        self._setup_probe()

    def _setup_models(self) -> None:
        """Policy (resumed or initial), K, the frozen reference (= the INIT model), LoRA, frozen vision."""
        import torch

        from fourdthinker.latent.decode import latent_ids

        cfg = self.cfg
        resume, start_step = latest_checkpoint(self.out)
        self.resume, self.start_step = resume, min(start_step, cfg.steps)
        lora_state = resume / LORA_TRAINABLES if resume is not None and cfg.lora else None
        adapter = self.adapter
        if lora_state is not None and lora_state.exists():
            adapter = load_adapter(cfg.init, self.device)  # LoRA resume: the init weights + the saved unmerged adapters
        elif resume is not None:
            lora_state = None
            adapter = load_adapter(str(resume), self.device)
        if adapter is None:
            adapter = load_adapter(cfg.init, self.device)
        # an imagery-bottleneck model (imagery_bottleneck in its config) is rolled out and replayed under its mask:
        # latent_generate and the replay (latent.decode.replay_bottleneck) both read the setting from the config
        self.lid = latent_ids(adapter) if cfg.latents_enabled else maybe_latent_ids(adapter)
        self.K = int(cfg.latent_size or model_latent_size(adapter))
        span = cfg.frame_span or getattr(adapter.model.config, "frame_span", None) or "video"
        adapter.model.config.frame_span = span  # saved with the policy: eval/probe load frames the same way
        self.cfg = cfg = dataclasses.replace(cfg, latent_size=self.K, frame_span=span)
        if adapter.model.device != self.device:
            adapter.model.to(self.device)  # a passed-in adapter; several processes: one GPU each

        # Frozen reference = the INIT model (not the resumed one): reload it when resuming.
        self.ref_adapter = None
        if cfg.beta != 0.0:
            # (a passed-in adapter has been trained by the earlier run, so it cannot serve as the init)
            ref_model = copy.deepcopy(adapter.model) if resume is None or lora_state is not None else (
                load_adapter(cfg.init, self.device).model)
            ref_model.eval().requires_grad_(False)
            if self.mixed:
                ref_model.to(torch.bfloat16)  # frozen: no float32 master copy needed
            self.ref_adapter = with_model(adapter, ref_model)

        self.train_model = None  # the PEFT wrapper under LoRA; forwards always use the unwrapped model
        if cfg.lora:
            from fourdthinker.train.trainer import apply_lora

            torch.manual_seed(cfg.seed)  # the adapters' random init: a function of the seed (same on every rank)
            self.train_model = apply_lora(adapter.model, r=cfg.lora_r, alpha=cfg.lora_alpha)
            adapter.model = self.train_model.get_base_model()  # LoRA layers are injected in place
        if hasattr(adapter, "freeze_visual"):
            adapter.freeze_visual()  # the encoder defines the latent target space (docs/method.md)
        if lora_state is not None:
            load_lora_trainables(adapter.model, lora_state)
        if cfg.gradient_checkpointing:  # active only in train mode: the replay with gradients
            adapter.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        self.adapter, self.lora_state = adapter, lora_state

    def _setup_optimizer(self) -> None:
        """AdamW over the trainable parameters (its state restored on resume), prepared by accelerate."""
        import torch

        cfg, acc, resume = self.cfg, self.acc, self.resume
        self.params = params = [p for p in self.adapter.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"{cfg.init}: model has no trainable parameters")
        # fused: the same update in one kernel over all parameters (measured ~6x faster on the CPU for
        # a 134 M-parameter model; also CUDA's fastest); DeepSpeed gets the plain one it expects
        fused = not self.use_ds and all(p.device.type in ("cpu", "cuda") for p in params)
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None)
        if (not self.use_ds and resume is not None and (resume / "optimizer.pt").exists()
                and (not cfg.lora or self.lora_state is not None)):
            opt.load_state_dict(torch.load(resume / "optimizer.pt", weights_only=True, map_location=params[0].device))
        self.raw_opt = None if self.use_ds else opt  # DeepSpeed: the engine owns the (partitioned) state; not saved
        # One process: prepare returns the model untouched. Several: DDP wraps it (rank 0's weights are
        # broadcast to all), but rollouts and the replay run on the unwrapped model and the gradients are
        # averaged by allreduce_grads.
        self.wrapped, self.opt = acc.prepare(self.adapter.model, opt)
        if acc.unwrap_model(self.wrapped) is not self.adapter.model:  # e.g. a dynamo/compile launch option
            raise NotImplementedError(f"train rl: accelerate returned a {type(self.wrapped).__name__} that does not "
                                      "unwrap to the model; launch without torch.compile/dynamo")

    def _setup_logs(self) -> None:
        """Keep the metrics rows up to the resumed step; write ``rejected.jsonl``."""
        acc, out = self.acc, self.out
        metrics_path = self.metrics_path = out / "metrics.jsonl"
        self.metrics = [m for m in read_jsonl(metrics_path, tolerate_truncated_tail=True)
                        if m["step"] <= self.start_step] if (metrics_path.exists() and self.start_step) else []
        acc.wait_for_everyone()  # every process has read the old files before the main one rewrites them
        if self.main:
            from fourdthinker.io import write_jsonl

            if self.rejected:
                write_jsonl(out / "rejected.jsonl", self.rejected)
            if metrics_path.exists():
                write_jsonl(metrics_path, self.metrics)
        acc.wait_for_everyone()  # ... and has rewritten them before anyone appends

    def _setup_probe(self) -> None:
        """Pick the fixed probe questions and score them once before training (kept across resumes)."""
        cfg = self.cfg
        self.probe_recs: list[RLRecord] = []
        self.probe_frames: dict[str, list] = {}
        self.probe_path = self.out / "probe.json"
        if not cfg.probe_questions:
            return
        self.probe_recs, self.probe_frames = pick_probe_records(self.records, self.root, cfg)
        probe = _read_json(self.probe_path) if self.start_step else None
        if probe is None or [r.id for r in self.probe_recs] != probe.get("ids"):
            before = self._probe_scores()
            if self.main:
                atomic_write_json(self.probe_path, {"ids": [r.id for r in self.probe_recs], "before": before})
        self.acc.wait_for_everyone()

    def _probe_scores(self) -> list[float]:
        """Expected reward per probe question; each process scores its contiguous block, gathered in rank order."""
        recs, rank, world = self.probe_recs, self.rank, self.world
        lo, hi = rank * len(recs) // world, (rank + 1) * len(recs) // world
        with self._autocast():
            mine = probe_expected_reward(self.adapter, recs[lo:hi], self.probe_frames, self.cfg, self.weights,
                                         latent_size=self.K, seed=self.cfg.seed + 99)
        if world == 1:
            return mine
        from accelerate.utils import gather_object

        return [float(v) for share in gather_object([mine]) for v in share]  # one list per process

    # ------------------------------------------------------------------------- one step

    def generate_trajectory(self, step: int) -> Trajectory:
        """Steps 1-4: this process's questions, ``grad_accum`` batched rollouts of Q * G responses each,
        rewards, advantages."""
        import torch

        from fourdthinker.latent.prefix import encode_vision
        from fourdthinker.train.grpo import group_advantages
        from fourdthinker.train.rewards import combine_rewards

        cfg, rank, G, Q = self.cfg, self.rank, self.cfg.num_generations, self.cfg.questions_per_step
        t0 = time.perf_counter()
        gen = self.step_generator(step)
        order = rank_questions(self.sched, step, Q * cfg.grad_accum, rank, self.world)
        recs, results, chunks = [], [], []
        for a in range(cfg.grad_accum):
            picked = [usable_record(self.records, i, self.bad, self.frame_cache, self.root, cfg, self.out, rank=rank)
                      for i in order[a * Q : (a + 1) * Q]]
            c_recs = [r for r in picked for _ in range(G)]
            enc = picked if cfg.prefix_sharing else c_recs  # sharing: each question encoded once for its G
            frames = [self.frame_cache[r.id] for r in enc]
            texts = [build_question_text(r.question, r.options) for r in enc]
            batch = self.adapter.encode_prompts(frames, texts, fps=cfg.fps)
            with self._autocast():
                vision = encode_vision(self.adapter.model, batch) if cfg.prefix_sharing else None  # once per question
                results += rollout(self.adapter, batch, c_recs, cfg, gen, vision=vision)
            chunks.append(Chunk(batch, frames, texts, len(recs), len(recs) + len(c_recs), vision))
            recs += c_recs
        t_roll = time.perf_counter() - t0
        per = self.score(recs, results)
        rewards = torch.tensor(combine_rewards(per, self.weights), dtype=torch.float32)
        adv, adv_stats = group_advantages(rewards, G)  # within this process's groups: no communication
        return Trajectory(recs, chunks, results, per, rewards, adv, adv_stats, t_roll)

    def step_generator(self, step: int):
        """Seed torch and return the step's sampling generator, ON THE MODEL'S DEVICE (a CPU generator
        cannot drive ``torch.multinomial`` over CUDA probabilities). A function of (seed, step, rank)."""
        import torch

        cfg, rank = self.cfg, self.rank
        torch.manual_seed(cfg.seed * 1_000_003 + step + 7_777_777 * rank)
        dev = next(self.adapter.model.parameters()).device
        return torch.Generator(device=dev).manual_seed(cfg.seed * 7919 + step + 104_729 * rank)

    def _autocast(self):
        """bf16 autocast under ``--dtype bfloat16`` (float32 weights), else accelerate's (a no-op by default)."""
        import torch

        if self.mixed:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return self.acc.autocast()

    def score(self, recs: list[RLRecord], results: list) -> dict[str, list]:
        """Per-response reward values by name (Eq. 11's terms; ``extra_rewards`` TRL-style)."""
        from fourdthinker.train.rewards import accuracy_reward, format_reward

        comps, opts, K = [res.text for res in results], [r.options for r in recs], self.K
        per = {
            "accuracy": accuracy_reward(comps, [r.answer for r in recs], options=opts),
            "format": format_reward(comps, options=opts, latent_size=K if self.cfg.latents_enabled else None),
        }
        for name, (fn, _w) in self.extra_rewards.items():
            per[name] = fn(comps, answer=[r.answer for r in recs], options=opts,
                           completion_ids=[res.token_ids for res in results],
                           is_latent=[res.is_latent for res in results], latent_size=K)
        return per

    def grpo_step(self, traj: Trajectory) -> Update:
        """Steps 5-7: reference / rollout-policy log-probs, then ``mu`` replays with gradients and optimiser
        steps, each over the micro-batches of the step (``micro_batch_size``)."""
        import torch

        cfg = self.cfg
        t1 = time.perf_counter()
        self.adapter.model.train()
        mbs = self._micro_batches(traj)
        old_lp = ref_lp = [None] * len(mbs)
        with torch.no_grad(), self._autocast():
            if cfg.mu > 1:
                old_lp = [self._logps(self.adapter, traj, mb, grad=False)[0] for mb in mbs]
            if self.ref_adapter is not None:
                ref_lp = [self._logps(self.ref_adapter, traj, mb, grad=False)[0] for mb in mbs]
        loss, loss_stats, grad_norm = torch.zeros(()), {}, 0.0
        no_signal = self._no_signal(traj.adv)
        if no_signal:
            self._zero_step()
        for _ in range(0 if no_signal else cfg.mu):
            loss, loss_stats, grad_norm = self._update_once(traj, mbs, old_lp, ref_lp)
        return Update(loss, loss_stats, grad_norm, no_signal, time.perf_counter() - t1)

    def _micro_batches(self, traj: Trajectory) -> list[Chunk]:
        """The replay's micro-batches: each chunk (rollout decode) whole, or cut into ``micro_batch_size``
        responses whose prompts are re-encoded and left-padded to the chunk's width (the same rows)."""
        m = self.cfg.micro_batch_size
        out = []
        for c in traj.chunks:
            if not m or m >= c.hi - c.lo:
                out.append(c)
                continue
            if c.vision is not None or c.batch["input_ids"].shape[0] < c.hi - c.lo:
                out += self._shared_micro_batches(c, m)
                continue
            width = c.batch["input_ids"].shape[1]
            for lo in range(0, c.hi - c.lo, m):
                hi = min(lo + m, c.hi - c.lo)
                b = self.adapter.encode_prompts(c.frames[lo:hi], c.texts[lo:hi], fps=self.cfg.fps)
                out.append(Chunk(pad_prompt_batch_left(b, width, self.adapter.pad_id), c.frames[lo:hi],
                                 c.texts[lo:hi], c.lo + lo, c.lo + hi))
        return out

    def _shared_micro_batches(self, c: Chunk, m: int) -> list[Chunk]:
        """Prefix sharing: micro-batches never cut a question's prompt; with ``m >= G`` each takes
        ``m // G`` whole questions, else one question with up to ``m`` of its responses (its prompt
        is run again for each such micro-batch; its gradient accumulates across them)."""
        from fourdthinker.latent.prefix import select_prompts

        P = c.batch["input_ids"].shape[0]
        G = (c.hi - c.lo) // P
        groups = ([(list(range(q, min(q + m // G, P))), 0, G) for q in range(0, P, m // G)] if m >= G else
                  [([q], lo, min(lo + m, G)) for q in range(P) for lo in range(0, G, m)])
        out = []
        for rows, lo, hi in groups:
            sub, feats = select_prompts(self.adapter.model, c.batch, c.vision, rows)
            first = c.lo + rows[0] * G + lo
            last = c.lo + rows[-1] * G + hi
            out.append(Chunk(sub, [c.frames[q] for q in rows], [c.texts[q] for q in rows], first, last, feats))
        return out

    def _logps(self, adapter, traj: Trajectory, mb: Chunk, *, grad: bool):
        return response_logps(adapter, mb.batch, traj.results[mb.lo : mb.hi], grad=grad,
                              temperature=self.cfg.temperature, logit_chunk=self.cfg.logit_chunk, vision=mb.vision)

    def _no_signal(self, adv) -> bool:
        """Every group has zero variance (e.g. a base model that never answers) and there is no KL term:
        the loss and its gradient are exactly zero, so the replay forward/backward is skipped.
        Decided over ALL processes (the gradient all-reduce needs every rank or none)."""
        import torch

        no_signal = self.cfg.beta == 0.0 and not bool(adv.abs().gt(0).any())
        if self.world > 1:
            flag = torch.tensor([float(not no_signal)], device=self.acc.device)
            no_signal = bool(self.acc.reduce(flag, "sum").item() == 0)
        return no_signal

    def _zero_step(self) -> None:
        """The optimiser still steps on zero gradients (AdamW momentum and decay as if the replay had run)."""
        import torch

        if self.use_ds:  # the engine steps inside backward: a zero loss gives zero gradients
            for _ in range(self.cfg.mu):
                self.acc.backward(sum(p_.sum() for p_ in self.params) * 0.0)
            return
        for p_ in self.params:
            p_.grad = torch.zeros_like(p_)
        for _ in range(self.cfg.mu):
            self.opt.step()

    def _update_once(self, traj: Trajectory, mbs: list[Chunk], old_lp: list, ref_lp: list):
        """One optimiser step: per micro-batch a replay with gradients and its GRPO loss (Eq. 13) over text
        tokens, weighted so that the accumulated gradient is the whole batch's (``microbatch_weight``);
        then all-reduce, clip, step."""
        from fourdthinker.train.grpo import grpo_loss

        cfg, acc = self.cfg, self.acc
        if len(mbs) > 1:  # what the whole batch's loss normalisation needs (microbatch_weight)
            n_text = sum(response_text_tokens(traj.results, self.lid, score_latent_start=cfg.score_latent_start))
            width = max(1, max(len(r.token_ids) for r in traj.results))
        self.opt.zero_grad(set_to_none=True)
        loss_sum, parts = 0.0, []
        for mb, old, ref in zip(mbs, old_lp, ref_lp, strict=True):
            with self._autocast():
                lp, rep = self._logps(self.adapter, traj, mb, grad=True)
            mask = text_token_mask(rep["response_ids"], rep["response_mask"], rep["latent_mask"], self.lid,
                                   score_latent_start=cfg.score_latent_start) if self.lid else rep["response_mask"].bool()
            loss, stats = grpo_loss(lp, traj.adv[mb.lo : mb.hi].to(lp.device), mask, old, ref, eps_low=cfg.epsilon,
                                    eps_high=cfg.epsilon_high, beta=cfg.beta, kl=cfg.kl, loss_type=cfg.loss_type)
            if len(mbs) > 1:
                loss = loss * microbatch_weight(cfg.loss_type, rows=mb.hi - mb.lo, text_tokens=int(mask.sum()),
                                                width=lp.shape[1], total_rows=len(traj.results),
                                                total_text_tokens=n_text, total_width=width)
            acc.backward(loss)  # DeepSpeed (one micro-batch): the engine reduces, clips and steps here
            loss_sum, parts = loss_sum + loss.detach(), [*parts, (stats, int(mask.sum()))]
        loss_stats = merge_loss_stats(parts)
        if self.use_ds:
            gn = self.wrapped.get_global_grad_norm()
            return loss_sum, loss_stats, float(gn) if gn is not None else 0.0
        allreduce_grads(acc, self.params)
        grad_norm = float(acc.clip_grad_norm_(self.params, cfg.max_grad_norm)) if cfg.max_grad_norm > 0 else 0.0
        self.opt.step()
        return loss_sum, loss_stats, grad_norm

    # ------------------------------------------------------------------------- log / save

    def log(self, step: int, traj: Trajectory, upd: Update) -> dict:
        """The step's metrics row (over all processes), appended to ``metrics.jsonl`` with a few samples."""
        from fourdthinker.train.grpo import group_advantages

        results, per, adv_stats = traj.results, traj.per, traj.adv_stats
        resp = {**per, "_reward": traj.rewards.tolist(),
                "latent_blocks": [r.n_latent_blocks for r in results],
                "latent_steps": [r.n_latent_steps for r in results],
                "response_len": [len(r.token_ids) for r in results],
                "finished": [float(r.finished) for r in results]}
        ls = upd.loss_stats
        scal = {"loss": float(upd.loss.detach()), "kl": ls.get("kl", 0.0), "clip_frac": ls.get("clip_frac", 0.0),
                "ratio_mean": ls.get("ratio_mean", 1.0), "text_tokens": ls.get("text_tokens", 0.0),
                "grad_norm": upd.grad_norm}
        resp, scal, mx = sync_step_stats(self.acc, resp, scal, {"t_rollout_s": traj.t_rollout,
                                                                 "t_update_s": upd.t_update})
        if self.world > 1:  # reward mean/std and zero-variance groups of the whole (all processes') batch
            import torch

            _, adv_stats = group_advantages(torch.tensor(resp["_reward"], dtype=torch.float32),
                                            self.cfg.num_generations)
        m = {
            "step": step,
            "reward_mean": adv_stats["reward_mean"],
            "reward_std": adv_stats["reward_std"],
            "accuracy": _mean(resp["accuracy"]),
            "format_rate": _mean(resp["format"]),
            **{f"reward_{k}": _mean(resp[k]) for k in per if k not in ("accuracy", "format")},
            "zero_var_groups": adv_stats["zero_var_groups"],
            **{k: scal[k] for k in ("loss", "kl", "clip_frac", "ratio_mean", "grad_norm")},
            **{k: sum(resp[k]) / len(resp[k]) for k in ("latent_blocks", "latent_steps", "response_len")},
            "text_tokens": scal["text_tokens"],
            "finished": sum(resp["finished"]) / len(resp["finished"]),
            "t_rollout_s": round(mx["t_rollout_s"], 3),
            "t_update_s": round(mx["t_update_s"], 3),
            "update_skipped": upd.skipped,
        }
        self.metrics.append(m)
        if self.main:
            append_jsonl(self.metrics_path, m)
            rows = list(zip(traj.recs, results, traj.rewards.tolist(), strict=True))[: self.cfg.samples_per_step]
            for r, res, rew in rows:
                append_jsonl(self.out / "samples.jsonl", {"step": step, "id": r.id, "answer": r.answer, "reward": rew,
                                                          **res.to_json()})
        return m

    def save(self, step: int, dest: Path | None = None) -> None:
        """A checkpoint (main process writes; every process waits for it)."""
        if self.main:
            save_checkpoint(self.adapter, self.raw_opt, step, self.cfg,
                            dest or self.out / "checkpoints" / f"step-{step}", self.train_model)
        self.acc.wait_for_everyone()

    # ------------------------------------------------------------------------- the loop

    def train(self) -> RLResult:
        """``setup``, then per step: rollout and score, update, log, save; then ``finish``."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.setup()
        cfg = self.cfg
        cols = [TextColumn("[bold]4DRL[/] {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*cols, disable=not (self.progress and self.main), transient=False) as bar:
            task = bar.add_task("", total=cfg.steps, completed=self.start_step)
            for step in range(self.start_step + 1, cfg.steps + 1):
                traj = self.generate_trajectory(step)
                upd = self.grpo_step(traj)
                m = self.log(step, traj, upd)
                bar.update(task, advance=1, description=(
                    f"step {step} reward {m['reward_mean']:.3f} acc {m['accuracy']:.2f} fmt {m['format_rate']:.2f} "
                    f"kl {m['kl']:.4f} lat {m['latent_blocks']:.1f}"))
                if cfg.save_every and step % cfg.save_every == 0 and step < cfg.steps:
                    self.save(step)
        return self.finish()

    def finish(self) -> RLResult:
        """Probe after training, reward curve, the final model, ``summary.json``."""
        cfg, out, metrics = self.cfg, self.out, self.metrics
        probe_summary = self._probe_summary() if self.probe_recs else None
        curve = out / "reward_curve.png" if metrics else None
        final = out / "final"
        if self.main:
            if metrics:  # before the save: a failed save must not lose the curve
                curve = plot_reward_curve(metrics, curve, title=f"{cfg.mode} ({Path(cfg.init).name})")
            if self.start_step < cfg.steps or not final.exists():
                save_checkpoint(self.adapter, self.raw_opt, cfg.steps, cfg, final, self.train_model)
            trend = RLResult(out, cfg.steps, metrics, final, self.rejected, curve).reward_trend() if metrics else None
            atomic_write_json(out / "summary.json", {
                "mode": cfg.mode, "steps": cfg.steps, "resumed_from": self.start_step, "records": len(self.records),
                "rejected": len(self.rejected), "config": asdict(cfg), "num_processes": self.world,
                "reward_first_last": list(trend) if trend else None,
                "probe": probe_summary,
                **({"deepspeed": {"config": cfg.deepspeed, "zero_stage": self.acc.state.deepspeed_plugin.zero_stage}}
                   if self.use_ds else {}),
            })
        self.acc.wait_for_everyone()  # no process returns before the final model is on disk
        return RLResult(out=out, steps_done=cfg.steps, metrics=metrics, final_dir=final, rejected=self.rejected,
                        curve_png=curve, probe=probe_summary)

    def _probe_summary(self) -> dict:
        after = self._probe_scores()
        before = _read_json(self.probe_path)["before"]
        delta, lo, hi = paired_mean_delta_ci(before, after, seed=self.cfg.seed)
        summary = {"questions": len(self.probe_recs), "samples": self.cfg.probe_samples,
                   "before": sum(before) / len(before), "after": sum(after) / len(after), "delta": delta,
                   "ci95": [lo, hi]}
        if self.main:
            atomic_write_json(self.probe_path, {"ids": [r.id for r in self.probe_recs], "before": before,
                                                "after": after, "summary": summary})
        return summary


def train_rl(cfg: RLConfig, *, adapter=None, progress: bool = True,
             extra_rewards: dict[str, tuple[Callable, float]] | None = None) -> RLResult:
    """Run 4DRL (or a baseline, ``cfg.mode``) and return the metrics.

    ``adapter`` overrides ``cfg.init`` (an already loaded ``fourdthinker.models`` adapter, e.g.
    right after DIFT). ``extra_rewards`` adds TRL-style reward functions ``name -> (fn, weight)``;
    each is called as ``fn(completions, answer=..., options=..., completion_ids=..., is_latent=...,
    latent_size=...)`` and its weighted value is added to Eq. 11's sum."""
    return RLRecipe(cfg, adapter=adapter, progress=progress, extra_rewards=extra_rewards).train()


def _read_json(path: Path) -> dict | None:
    """A JSON file written by this module, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _mean(xs: Sequence[float | None]) -> float:
    v = [x for x in xs if x is not None and not math.isnan(x)]
    return sum(v) / len(v) if v else 0.0
