"""Configuration and result of a 4DRL run: ``RLConfig`` (every knob of ``fourdthinker train rl``;
the CLI flags and their bounds are generated from its fields by ``fourdthinker.cli_config``) and ``RLResult``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fourdthinker.config import config_field as _f
from fourdthinker.config import field_problems
from fourdthinker.models.inputs import SPANS

__all__ = ["DTYPES", "MODES", "RLConfig", "RLResult"]

MODES = ("4drl", "grpo", "cot-grpo")
DTYPES = {"auto": "auto", "float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16"}


@dataclass
class RLConfig:
    """Every knob of `fourdthinker train rl` (YAML keys = field names; CLI flags override)."""

    data: str = _f("", "RL records: a JSONL file or a folder holding rl.jsonl ({id, video, question, options, answer, task}).")
    init: str = _f("qwen2.5-vl-tiny", "Initial policy: a DIFT checkpoint folder (4drl), a base model (grpo), a CoT-SFT checkpoint (cot-grpo), or a tiny preset name.")
    out: str = _f("runs/rl", "Output folder (metrics, curve, checkpoints). Rerunning with the same folder resumes.")
    mode: str = _f("4drl", "4drl: latent-recurrent rollouts (the paper). grpo / cot-grpo: Table 3 baselines, rollouts without latent blocks.")
    steps: int = _f(100, "Rollout+update steps. Each step samples questions_per_step x num_generations responses.", gt=0)
    questions_per_step: int = _f(2, "Questions per rollout batch PER PROCESS (reference: 8 per GPU; N processes train on N x this many). More = steadier gradient, slower step.", gt=0)
    num_generations: int = _f(8, "G, responses per question (reference 8). Bigger G = better advantage baseline, fewer zero-variance groups.", ge=2)
    mu: int = _f(1, "Optimisation steps per rollout batch. 1 = on-policy (ratio 1, clipping inert, as the reference); >1 reuses rollouts and makes the clip matter.", gt=0)
    lr: float = _f(1e-6, "AdamW learning rate (reference 1e-6 for 3B). Tiny CPU models need ~1e-4..1e-3 to move within "
                         "minutes. 0 runs every step without changing the weights (to measure or check a setup).", ge=0)
    weight_decay: float = _f(0.0, "AdamW weight decay.", ge=0)
    max_grad_norm: float = _f(1.0, "Gradient-norm clip (0 = off).", ge=0)
    beta: float = _f(0.01, "KL weight to the frozen init model (reference 0.01). 0 skips the reference forward (faster, no anchor).", ge=0)
    kl: str = _f("k3", "KL estimator: k3 (non-negative, low variance; TRL default) or k1 (logp - ref; the reference code).")
    epsilon: float = _f(0.2, "Clip range: ratio clipped to [1-epsilon, 1+epsilon_high].")
    epsilon_high: float | None = _f(None, "Upper clip (DAPO's clip-higher); None = epsilon.")
    loss_type: str = _f("grpo", "grpo: mean over each response's text tokens, then over responses (reference). bnpo: one token mean. dr_grpo: sum / (B * T).")
    acc_weight: float = _f(1.0, "Weight of the accuracy reward (Table 4: 0 removes it).")
    fmt_weight: float = _f(0.2, "Weight of the format reward (reference 0.2; Table 4: 0 removes it).")
    temperature: float = _f(1.0, "Rollout sampling temperature (reference 1.0); also used to score log-probs.", gt=0)
    top_p: float = _f(0.9, "Rollout nucleus sampling (reference 0.9).", gt=0)
    max_new_tokens: int = _f(1024, "Response budget per rollout, latent slots included. A response cut before </answer> "
                                   "scores 0 on both rewards, so a too small budget leaves whole groups at zero advantage: "
                                   "a real model's imagery CoT (a few latent blocks of K+2 slots + text) needs hundreds of "
                                   "tokens (reference rollout: 8192, loss on the first 1024; configs/rl_qwen2.5vl3b_paper.yaml "
                                   "uses 8192). Tiny CPU demos: 24-128.", gt=0)
    latent_size: int | None = _f(None, "K latent steps per block; None = the model's own (set by DIFT), else 4.", gt=0)
    max_latent_blocks: int | None = _f(None, "Cap on latent blocks per response (None = no cap). Forced to 0 in grpo/cot-grpo modes.", ge=0)
    score_latent_start: bool = _f(False, "Include the sampled <|latent_start|> token in the loss (default: excluded with all latent positions, like the reference).")
    fps: float = _f(1.0, "Frame sampling rate for prompts (must match DIFT; 1 FPS in the paper).", gt=0)
    max_frames: int | None = _f(16, "Cap on frames per prompt (evenly spread). Keep DIFT's value (16) so RL sees what DIFT saw.", gt=0)
    frame_span: str | None = _f(None, "video (frames over the whole video) or window (only the seconds the question asks "
                                      "about, the record's window_s); unset = what the --init model was trained with "
                                      "(its config's frame_span), else video.", choices=SPANS)
    max_pixels: int | None = _f(448 * 448, "Pixel cap per frame before the processor (DIFT's default 448*448).", gt=0)
    lora: bool = _f(False, "Train LoRA adapters on the LM (train/trainer.apply_lora, merged on save) instead of all weights. "
                           "Checkpoints also keep the unmerged trainable tensors + optimiser, so a resume continues exactly.")
    lora_r: int = _f(16, "LoRA rank.", gt=0)
    lora_alpha: int = _f(32, "LoRA alpha.", gt=0)
    seed: int = _f(0, "Seed for record order, sampling and init.")
    save_every: int = _f(50, "Checkpoint every N steps (0 = only the final model).", ge=0)
    samples_per_step: int = _f(2, "Rollouts written to samples.jsonl per step (to read what the model says).", ge=0)
    threads: int = _f(2, "torch CPU threads.", gt=0)
    device: str = _f("auto", "Device of the policy and the reference: auto (cuda when a GPU exists, else cpu), cpu, cuda, "
                             "cuda:N. Under accelerate launch / torchrun each process uses its own GPU.")
    dtype: str = _f("auto", "auto (bfloat16 on a GPU that supports it, else float32), float32 or bfloat16. bfloat16 is mixed "
                            "precision: trained weights and AdamW state stay float32 (an lr of 1e-6 would vanish in bf16 "
                            "weights), rollouts and replays run under bf16 autocast, the frozen reference is kept in bf16.")
    micro_batch_size: int = _f(0, "Responses per replay forward/backward (policy, reference, rollout policy); 0 = the whole "
                                  "batch (questions_per_step x num_generations) at once. Smaller = less activation memory "
                                  "and exactly the same gradient (the loss is normalised over the whole batch).", ge=0)
    grad_accum: int = _f(1, "Rollout batches per optimiser step (reference: 2). A step rolls out grad_accum x "
                            "questions_per_step questions in grad_accum decodes, then takes ONE update with exactly the "
                            "gradient of their union (same loss normalisation as one big batch).", gt=0)
    gradient_checkpointing: bool = _f(False, "Recompute the LM layers' activations in the backward: much less replay "
                                             "memory for ~30% more replay time (reference: on).")
    logit_chunk: int = _f(1024, "Response positions per lm_head chunk in the replay. Logits are computed only at response "
                                "positions (never over the prompt), chunk x vocab at a time, recomputed in the backward; "
                                "0 = all response positions at once.", ge=0)
    probe_questions: int = _f(0, "Fixed questions scored before and after training with probe_samples sampled responses each "
                                 "(paired): the expected reward on the same questions, far less noisy than the per-step batch "
                                 "mean. 0 = off; costs 2 x probe_questions x probe_samples extra rollouts.", ge=0)
    probe_samples: int = _f(8, "Sampled responses per probe question.", gt=0)
    prefix_sharing: bool = _f(True, "Encode each question once (vision + prompt prefill) and share it by its G responses in the "
                                    "rollout and in every replay (policy, reference, rollout policy); the same samples and "
                                    "gradients as unshared, several times faster at real prompt lengths (docs/rl_speed.md). "
                                    "--no-prefix-sharing: every response re-reads its own copy of the prompt (the reference path).")
    deepspeed: str | None = _f(None, "DeepSpeed JSON (ZeRO stage 1 or 2, e.g. configs/ds_zero2.json); 'auto' values are filled "
                                     "from this config (gradient_clipping = max_grad_norm, micro batch 1, bf16 from "
                                     "--dtype). ZeRO-3 is refused, and so are --micro-batch-size / --grad-accum (not "
                                     "implemented under DeepSpeed). A resume restarts the optimiser state.")

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in MODES:
            problems.append(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.kl not in ("k3", "k1"):
            problems.append(f"kl must be k3 or k1, got {self.kl!r}")
        if self.loss_type not in ("grpo", "bnpo", "dr_grpo"):
            problems.append(f"loss_type must be grpo, bnpo or dr_grpo, got {self.loss_type!r}")
        if self.dtype not in DTYPES:
            problems.append(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            problems.append(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        problems += field_problems(self)  # the bounds declared on the fields (gt= / ge=)
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
