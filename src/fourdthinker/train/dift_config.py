"""Configuration of a DIFT run: ``DiftConfig``, every knob of ``fourdthinker train dift`` (the CLI
flags are generated from its fields by ``train/commands_dift.py``; YAML keys = field names).

Light on purpose (no torch): the command line builds its flags from it at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from fourdthinker.config import config_field as _f
from fourdthinker.config import field_problems
from fourdthinker.models.inputs import SPANS

__all__ = ["DiftConfig", "GATES"]

GATES = ("none", "readout", "self-level")  # train dift --stop-when (train/readout.py)


@dataclass
class DiftConfig:
    """Settings of one DIFT run (``fourdthinker train dift``; YAML via ``--config``)."""

    data: str = _f("", "Folder holding dift.jsonl (from `fourdthinker data build`), or the file.")
    model: str = _f("qwen2.5-vl-tiny", "Base VLM: qwen2.5-vl-tiny | qwen3-vl-tiny | internvl3.5-tiny (random init, "
                                       "offline), a hub id or a local folder.")
    out: str = _f("runs/dift", "Output folder: checkpoints, final model, logs.")
    mode: str = _f("dift", "dift (latent imagery) | cot (imagery removed: the CoT-SFT baseline) | raw-qa (answer only).")
    latent_size: int = _f(4, "K latent vectors per imagery image (Eq. 5; Table 5 ablates it).", gt=0)
    latent_target: str = _f("image", "What each latent target z encodes: image (Eq. 5, the paper: the imagery image "
                                     "alone) | pair (the image with the record's previous imagery image, as a 2-frame "
                                     "clip through the vision tower's temporal patch, so z holds the change between "
                                     "them; Qwen-VL families only).", choices=("image", "pair"))
    response: str = _f("reasoning", "What the response supervises (--mode dift): reasoning (the paper: the whole "
                                    "interleaved reasoning) | imagery-answer (only the imagery blocks, then the answer: "
                                    "the text between them is dropped, so the whole text loss falls on the answer read "
                                    "after the last block; beyond the paper).", choices=("reasoning", "imagery-answer"))
    l_ce: float = _f(0.1, "Weight of L_ce, the text cross-entropy (Eq. 7).", ge=0)
    l_sim: float = _f(1.0, "Weight of L_sim, the latent similarity loss (Eq. 7).", ge=0)
    conclusion_weight: float = _f(1.0, "Weight of the text cross-entropy on the tokens after the last latent block (the "
                                       "conclusion drawn from the imagery, and the answer) against 1 for the other "
                                       "response tokens; 1 = Eq. 8 as it is. The label is ~1 token in 40 of the reasoning.",
                                  gt=0)
    sim_loss: str = _f("cosine", "The latent similarity loss: cosine (Eq. 9, the paper: 1 - cos(h_{t-1}, z_t)) | infonce "
                                 "(contrastive: each h_{t-1} closer to its own z_t than to the batch's other targets, "
                                 "at --sim-temperature; needs several latents per batch).",
                       choices=("cosine", "infonce"))
    sim_temperature: float = _f(0.1, "--sim-loss infonce: the temperature tau of the softmax over cosines.", gt=0)
    use_ce: bool = _f(True, "Keep the text cross-entropy (Eq. 8); --no-ce is the Table 4 ablation.", flag="--ce/--no-ce")
    use_sim: bool = _f(True, "Keep the latent similarity loss (Eq. 9); --no-sim is the Table 4 ablation.",
                       flag="--sim/--no-sim")
    max_steps: int = _f(-1, "Optimizer steps (overrides --epochs); -1 = run --epochs.", gt=0, allow=(-1,))
    epochs: float = _f(1.0, "Passes over the data (paper: 1).", gt=0)
    lr: float = _f(1e-5, "AdamW learning rate (1e-5 for real models, the reference; ~1e-3 for tiny presets).", gt=0)
    batch_size: int = _f(1, "Per-device micro-batch (paper: 1).", gt=0)
    grad_accum: int = _f(1, "Gradient accumulation steps.", gt=0)
    warmup_steps: int = _f(10, "Linear warm-up steps of the learning rate.", ge=0)
    weight_decay: float = _f(0.01, "AdamW weight decay.", ge=0)
    scheduler: str = _f("linear", "HF lr scheduler: linear | cosine | constant ...")
    grad_checkpointing: bool = _f(False, "Recompute activations in the backward: less memory, ~30% slower.")
    bf16: bool | None = _f(None, "bf16 mixed precision; unset = where the GPU supports it.")
    dtype: str = _f("float32", "float32 | bfloat16 | float16: load dtype of the weights.")
    attn_implementation: str = _f("sdpa", "sdpa | eager | flash_attention_2.")
    lora: bool = _f(False, "LoRA adapters (merged at save) instead of full fine-tuning of all LM weights.",
                    flag="--lora/--full")
    lora_r: int = _f(16, "LoRA rank (--lora).", gt=0)
    lora_alpha: int = _f(32, "LoRA alpha (--lora).", gt=0)
    seed: int = _f(42, "Seed for init, data order and sampling.")
    save_steps: int = _f(500, "Checkpoint every N steps (resume points).", gt=0)
    save_total_limit: int = _f(2, "Checkpoints kept in --out (older ones are deleted).", gt=0)
    max_length: int = _f(4096, "Token cap per sample; longer samples are skipped with a reason.", gt=0)
    max_frames: int = _f(16, "Video frames per sample (evenly spread).", gt=0)
    frame_span: str = _f("video", "Where a sample's frames come from: video (the paper: spread over the whole video) or "
                                  "window (only the seconds its question asks about, the record's window_s). Stored in "
                                  "the model config, so eval/probe/train rl load frames the same way by default.",
                            choices=SPANS)
    max_pixels: int = _f(448 * 448, "Pixel cap per frame before the processor.", gt=0)
    target_cache: str | None = _f("auto", "Latent-target cache folder; auto = <cache>/latent_targets; none = a private "
                                          "one for this run.")
    dataloader_workers: int = _f(0, "Worker processes that decode frames and encode samples while the model trains "
                                    "(0 = in the training process; 4-8 on a GPU node). Each holds about one batch of "
                                    "pixel tensors per prefetched batch.", ge=0)
    deepspeed: str | None = _f(None, "DeepSpeed JSON, e.g. configs/ds_zero2.json.")
    resume: bool = _f(False, "Continue from the last checkpoint in --out (same step, optimizer, data order).")
    progress: bool = _f(True, "Show the progress bar.")
    health_heldout: int = _f(2, "Latent health: records kept out of training to measure the held-out latent cosine "
                                "(used only when the data has more than 4x as many). More = a steadier generalisation "
                                "check, fewer training records; 0 = off.", ge=0)
    health_every: int = _f(10, "Latent health: held-out check every N optimizer steps (0 = none). Each check is one "
                               "extra no-grad forward of the held-out batch: smaller N = finer curve in "
                               "latent_health.png, slower training.", ge=0)
    health_factor: float = _f(4.0, "Latent health: warn when a latent norm ratio (fed-back h vs target z vs token "
                                   "embeddings) leaves [1/f, f] (must be > 1). Smaller = earlier but noisier warnings; "
                                   "larger = only gross divergence.")
    latent_feed: str = _f("target", "What the latent slots hold in training: target (the paper: the target latents z, "
                                    "teacher forcing) | self (the model's own h_{t-1}, step by step as at inference: "
                                    "K+1 forwards per block, slower) | mixed (scheduled sampling: the share of self-fed "
                                    "slots goes from --mix-start to --mix-end); train/latent_feed.py.")
    mix_start: float = _f(0.0, "mixed: share of self-fed slots at the first step.")
    mix_end: float = _f(1.0, "mixed: share of self-fed slots at the last step (linear in between).")
    mix_unit: str = _f("slot", "mixed: draw self vs target per slot or per whole block.")
    feed_norm: bool = _f(False, "Rescale every fed latent (z or h) to the training targets' mean norm; saved in the "
                                "model config (latent_feed_norm) so infer/eval/probe rescale the same way by default.")
    imagery_bottleneck: bool = _f(False, "Imagery bottleneck: an attention mask under which only the frames and the "
                                         "<|latent_start|> tokens see the frames, and nothing sees a <|latent_start|>: the "
                                         "video reaches the answer only through the latent slots (latent/bottleneck.py). "
                                         "Saved in the model config, so eval/probe/infer decode with the same mask.")
    latent_feed_norm: float | None = _f(None, "The norm --feed-norm rescales to; unset = measured on the training "
                                              "targets (mean ||z||).", gt=0)
    stop_when: str = _f("none", "Stop rule on the read-out check (needs --response imagery-answer; train/readout.py): "
                                "none (run --max-steps) | readout (stop once the answer, fed the targets z, beats the "
                                "answer fed zeros by --gate-margin points, McNemar p < 0.01: the curriculum's first "
                                "stage) | self-level (stop once the answer fed the model's own vectors is within "
                                "--gate-tolerance of fed z, and beats fed zeros by --gate-margin: the second stage). "
                                "--max-steps is then the cap. Checked on held-out records (--gate-records).",
                        choices=GATES)
    gate_task: str | None = _f("camera", "--stop-when: the task of the held-out records (none = any task).")
    gate_records: int = _f(300, "--stop-when: the last N records of --gate-task, kept out of training and checked. "
                                "The data must hold 4N of them. 300 tells a 10-point gap from noise.", gt=0)
    gate_every: int = _f(100, "--stop-when: check every N optimizer steps (and at the cap). Each check is 2-3 "
                              "no-grad forwards of the held-out records (self: K+1 per block).", gt=0)
    gate_margin: float = _f(10.0, "--stop-when: points the fed answer must beat the zero-fed one by.", ge=0)
    gate_tolerance: float = _f(3.0, "--stop-when self-level: points the self-fed answer may trail the target-fed one "
                                    "by.", ge=0)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, **overrides: Any) -> DiftConfig:
        """Defaults < YAML < overrides (non-None); unknown keys are an error."""
        from fourdthinker.config import load_yaml_config

        return load_yaml_config(cls, path, overrides, what="DiftConfig fields")

    def validate(self) -> None:
        """Every check of a DIFT config, in one place: the bounds declared on the fields, then the
        checks between fields. Raises ValueError naming the field."""
        from fourdthinker.train.collate import MODES

        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        problems = field_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        if not (self.use_ce or self.use_sim):
            raise ValueError("--no-ce and --no-sim together leave no loss")
        if self.mode != "dift" and self.response != "reasoning":
            raise ValueError(f"--response {self.response} keeps the imagery blocks: it needs --mode dift, got {self.mode}")
        if self.mode != "dift" and not self.use_ce:
            raise ValueError(f"mode {self.mode} has no latents: --no-ce would leave no loss")
        if not self.health_factor > 1:
            raise ValueError(f"health_factor must be > 1 (warn outside [1/f, f]), got {self.health_factor}")
        from fourdthinker.train.latent_feed import FEEDS, MIX_UNITS

        if self.latent_feed not in FEEDS:
            raise ValueError(f"latent_feed must be one of {FEEDS}, got {self.latent_feed!r}")
        if self.mix_unit not in MIX_UNITS:
            raise ValueError(f"mix_unit must be one of {MIX_UNITS}, got {self.mix_unit!r}")
        if not (0 <= self.mix_start <= 1 and 0 <= self.mix_end <= 1):
            raise ValueError(f"mix_start and mix_end must lie in [0, 1], got {self.mix_start} and {self.mix_end}")
        if self.imagery_bottleneck and "flash" in self.attn_implementation:
            raise ValueError(f"--imagery-bottleneck needs a 4-D attention mask, which {self.attn_implementation} does "
                             "not take: use --attn-implementation sdpa or eager")
        if self.stop_when != "none" and (self.mode != "dift" or self.response != "imagery-answer"):
            raise ValueError(f"--stop-when {self.stop_when} checks the answer read after the imagery: it needs --mode "
                             f"dift --response imagery-answer, got --mode {self.mode} --response {self.response}")
        if self.latent_feed != "target" and self.grad_checkpointing:
            raise ValueError(f"--latent-feed {self.latent_feed} needs the KV cache, which gradient checkpointing turns off: "
                             "drop --grad-checkpointing")
