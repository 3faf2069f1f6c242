"""Settings of ``fourdthinker demo`` / ``ablate``: one dataclass, two presets (``quick``, ``full``).

Every field has a default and a help string that says its trade-off. The presets are sized for a
2-core CPU: ``--quick`` ~40 s; full 13-18 min measured (budget 20). At this size the models rise well
above chance on the paper-style benchmark, through the option sets rather than the motion
(``mcq_style``; docs/results.md, docs/latent_feed_study.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from fourdthinker.config import config_field as _f
from fourdthinker.config import field_problems
from fourdthinker.data.mcq import MCQ_STYLES
from fourdthinker.models.inputs import SPANS


@dataclass(frozen=True)
class DemoConfig:
    seed: int = _f(0, "Seed of the training world, data and training; the benchmark world uses seed + 1000.")
    model: str = _f("qwen2.5-vl-tiny", "Base VLM: a tiny preset (random init, offline) or a local folder / hub id.")
    # world
    train_clips: int = _f(600, "Synthetic clips for training data (~4 questions each). 240 clips left the tiny model "
                                "at chance, 600 did not (on the paper-style options, which reveal the answer).", gt=0)
    bench_clips: int = _f(100, "Held-out clips for the benchmark (2 questions each). More = tighter CIs, slower evaluation.", gt=0)
    width: int = _f(112, "Frame width of the synthetic videos. The tiny model sees <= 112x112 per frame anyway.", gt=0)
    height: int = _f(84, "Frame height of the synthetic videos.", gt=0)
    world_fps: int = _f(4, "Video frame rate of the synthetic world (rendering cost grows with it).", gt=0)
    max_segments: int = _f(1, "Camera segments per clip (1..3). 1 = no temporal grounding needed, learnable by a tiny model.", gt=0)
    workers: int = _f(2, "Processes for world rendering and the data build.", gt=0)
    # data -> training records
    answer_style: str = _f("text", "text: train on <answer>Pan Left</answer> (the option's text; the parser maps it to its letter). "
                                   "letter: <answer>B</answer> as the oracle writes it (tiny models stay at chance: "
                                   "binding letters to shuffled options is hard, docs/results.md).",
                           choices=("text", "letter"))
    cot: str = _f("compact", "compact: keep the oracle CoT's imagery sentences and its conclusion (~4x fewer tokens, "
                             "faster training and decoding). full: the oracle's whole reasoning.",
                  choices=("compact", "full"))
    mcq_style: str = _f("paper", "Distractors of the training and benchmark questions: paper (the opposite motion, then "
                                 "the analogous one: the paper's recipe; the options then reveal the answer to an "
                                 "options-only rule 70% of the time) | uniform (drawn uniformly from the task's labels).",
                        choices=MCQ_STYLES)
    rl_clips: int = _f(100, "Training clips whose questions are kept for RL only (the SFT rows never see them), so "
                            "the RL rows learn on questions the SFT model has not fitted. 0 = RL on the SFT questions.", ge=0)
    tasks: tuple[str, ...] = _f(("camera", "direction", "distance", "speed"),
                                "Training tasks kept (the benchmark asks camera, direction, distance, speed).")
    max_frames: int = _f(8, "Frames per video prompt (1 FPS, evenly capped), the same for training and evaluation.", gt=0)
    frame_span: str = _f("video", "video: each prompt's frames spread over the whole clip (the paper) | window: only the "
                                  "seconds the question asks about (the record's window_s), in training and evaluation.",
                          choices=SPANS)
    # SFT stages (Raw QA SFT, CoT SFT, DIFT)
    sft_steps: int = _f(200, "Optimizer steps of each SFT run (Raw QA, CoT, DIFT).", gt=0)
    sft_batch: int = _f(16, "SFT micro-batch size.", gt=0)
    sft_lr: float = _f(1e-3, "SFT learning rate (tiny random-init models need ~1e-3).", gt=0)
    latent_size: int = _f(4, "K latent vectors per imagery image (Eq. 5; Table 5 ablates it).", gt=0)
    l_ce: float = _f(1.0, "DIFT weight of L_ce (Eq. 7). The paper uses 0.1 on a pretrained 3B; a random-init model must "
                          "learn the language too, so the demo weighs text fully.", ge=0)
    l_sim: float = _f(1.0, "DIFT weight of L_sim (Eq. 7).", ge=0)
    # the DIFT curriculum (an extra Table 3 row; docs/latent_feed_study.md#the-dift-curriculum-in-the-demo)
    dift_curriculum: bool = _f(False, "Also train 'DIFT (curriculum)' and its 4DRL row: under the imagery bottleneck with the "
                                      "answer-only response, first the read-out on the camera records (teacher-forced latents, "
                                      "answer loss only), then the self-fed chain on all records (Eq. 7-9, the model's own "
                                      "h_{t-1} at the slots). Off by default: it adds two SFT runs, one RL run and two "
                                      "evaluations, and its gain was measured at run F's size only (--mcq-style uniform "
                                      "--frame-span window --train-clips 6000 --sft-steps 1500): there, with "
                                      "curriculum_gate, it reached the latent-usage goal in every run tried and beat the paper's "
                                      "DIFT at each seed compared (docs/latent_feed_study.md#gate-slow); at the defaults' size no "
                                      "model learns motion.")
    curriculum_read_steps: int = _f(0, "Steps of the curriculum's first stage (camera records only); 0 = 4/15 of "
                                       "sft_steps (run F: 400 of 1500), or with curriculum_gate its cap, 0 = 8/5 of "
                                       "sft_steps.", ge=0)
    curriculum_self_steps: int = _f(0, "Steps of the curriculum's self-fed stage (never gated); 0 = sft_steps.", ge=0)
    curriculum_gate: bool = _f(False, "Stop the curriculum's first stage by the read-out gate (train dift --stop-when "
                                      "readout) instead of at a fixed step count: once the answer fed z beats the answer "
                                      "fed zeros on held-out camera records, checked every 1/12 of the cap; that stage "
                                      "then runs at curriculum_lr. The self-fed stage keeps its fixed step count (gated "
                                      "too, it stopped before the other tasks were learnt). The step count that works "
                                      "differs by training seed (docs/latent_feed_study.md#gate-slow).")
    curriculum_gate_records: int = _f(300, "Camera records held out of the gated first stage for the read-out gate.",
                                      gt=0)
    curriculum_lr: float = _f(3e-4, "Learning rate of the curriculum's self-fed stage (it starts from the first "
                                    "stage's model, so lower than sft_lr), and with curriculum_gate of its first stage "
                                    "too (at sft_lr the read-out formed in some runs only; docs/latent_feed_study.md).",
                              gt=0)
    # RL stages (GRPO, CoT SFT + GRPO, DIFT + 4DRL)
    rl_steps: int = _f(16, "GRPO steps of each RL run.", gt=0)
    rl_questions: int = _f(6, "Questions per GRPO step.", gt=0)
    rl_generations: int = _f(4, "G, sampled responses per question.", ge=2)
    rl_lr: float = _f(2e-5, "GRPO learning rate. Measured on the demo's DIFT model: 1e-4 drifted it down (30.8 -> 23.9%), "
                               "1e-5 left it unchanged (30.0%), 2e-5 gave 33.9%.", gt=0)
    rl_beta: float = _f(0.0, "KL weight to the initial model (0 = no reference forward; faster).", ge=0)
    rl_max_new_tokens: int = _f(128, "Response budget per rollout (latent slots included).", gt=0)
    # evaluation
    eval_max_new_tokens: int = _f(160, "Response budget per benchmark question.", gt=0)
    eval_batch: int = _f(32, "Questions decoded together (32 decodes ~1.5-2x faster than 16 on 2 cores, same answers).", gt=0)
    threads: int = _f(2, "torch CPU threads.", gt=0)

    def __post_init__(self) -> None:
        problems = field_problems(self)  # the bounds declared on the fields (gt= / ge= / choices=)
        if not 0 <= self.rl_clips < self.train_clips:
            problems.append(f"rl_clips must be in [0, train_clips), got {self.rl_clips} of {self.train_clips}")
        if problems:
            raise ValueError("DemoConfig: " + "; ".join(problems))

    def curriculum_steps(self) -> tuple[int, int]:
        """(first stage, self-fed stage) steps of the DIFT curriculum, the 0 defaults resolved: fixed
        counts, except that with ``curriculum_gate`` the first is the gated stage's cap."""
        share = 8 / 5 if self.curriculum_gate else 4 / 15
        return (self.curriculum_read_steps or max(1, round(self.sft_steps * share)),
                self.curriculum_self_steps or self.sft_steps)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        return d

    def with_overrides(self, **kw: Any) -> DemoConfig:
        names = {f.name for f in fields(self)}
        bad = sorted(set(kw) - names)
        if bad:
            raise ValueError(f"DemoConfig: unknown settings {bad}; known: {sorted(names)}")
        return replace(self, **kw)


FULL = DemoConfig()
QUICK = DemoConfig(train_clips=8, rl_clips=2, bench_clips=4, sft_steps=4, sft_batch=4, rl_steps=2, rl_questions=2,
                   rl_generations=2, rl_max_new_tokens=24, eval_max_new_tokens=24, max_frames=4,
                   curriculum_gate_records=1)


def preset(quick: bool) -> DemoConfig:
    return QUICK if quick else FULL
