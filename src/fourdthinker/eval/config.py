"""Settings of ``fourdthinker eval`` and ``fourdthinker probe`` (one dataclass each; every field has a default,
a help string and its bounds; the commands' flags are generated from them by ``fourdthinker.cli_config``)."""

from __future__ import annotations

from dataclasses import dataclass

from fourdthinker.config import config_field as _f
from fourdthinker.config import field_problems
from fourdthinker.data.mcq import MCQ_STYLES
from fourdthinker.models.inputs import SPANS

__all__ = ["EvalConfig", "ProbeConfig"]


@dataclass(frozen=True)
class EvalConfig:
    """Every knob of `fourdthinker eval` (YAML keys = field names via ``--config``; flags override)."""

    model: tuple[str, ...] = _f((), "Model to evaluate; repeat for side-by-side tables. A tiny preset (qwen2.5-vl-tiny), a "
                                    "checkpoint folder or hub id (latent decoder if it has latent tokens, else plain "
                                    "generate), 'plain:PATH', 'latent:PATH', 'api:MODEL' (OpenAI-compatible endpoint) or "
                                    "'random' (chance). Name a row with NAME=SPEC, e.g. --model 'DIFT=runs/dift'.",
                                short="-m", required=True)
    bench: str = _f("", "dsr-bench | dyn-bench | vlm4d | synthetic | jsonl", short="-b", required=True)
    data: str = _f("", "Local benchmark path: DSR-Bench folder or benchmark.parquet; Dyn-Bench root (frames/, "
                       "multi_json/); VLM4D root (QA/*_mc.json); synthetic: a world folder from `fourdthinker world` or "
                       "a bench.jsonl. A hub dataset id is tried only when the hub is reachable.", short="-d", required=True)
    out: str = _f("", "Output folder; results go to OUT/BENCH/ (rerun the same command to resume).", short="-o",
                  required=True)
    samples: int = _f(1, "1 = greedy. N > 1 = N sampled runs (seeds SEED..SEED+N-1); tables show the mean and the "
                         "spread across seeds.", gt=0)
    seed: int = _f(0, "First seed for sampled runs (and the seed sent to APIs).")
    temperature: float = _f(0.7, "Sampling temperature when --samples > 1 (reference: 0.7).", gt=0)
    top_p: float = _f(0.9, "Nucleus sampling when --samples > 1 (reference: 0.9).", gt=0, le=1)
    prefix_sharing: bool = _f(True, "--samples > 1 on latent models: decode an item's N samples together from ONE "
                                    "prefill (vision + prompt) instead of N (docs/rl_speed.md).")
    max_new_tokens: int = _f(256, "Response budget (latent slots included). The reference used 2048 for full-size "
                                  "models; more tokens = slower.", gt=0)
    max_frames: int = _f(8, "Frames per video (sampled at --fps, then spread uniformly). The reference caps at 50; "
                            "fewer = faster and cheaper.", gt=0)
    fps: float = _f(1.0, "Video sampling rate (paper: 1 FPS).", gt=0)
    frame_span: str | None = _f(None, "video (frames over the whole video) or window (only the seconds each question "
                                      "asks about, the item's window_s); unset = what the model was trained with "
                                      "(its config's frame_span), else video.", choices=SPANS)
    mcq_style: str = _f("paper", "--bench synthetic with a world folder as --data: the distractors of the questions "
                                 "built from its truth: paper (the opposite motion, then the analogous one; they reveal "
                                 "the answer to an options-only rule) | uniform (drawn uniformly from the task's "
                                 "labels). A bench.jsonl keeps the options it was written with.", choices=MCQ_STYLES)
    max_pixels: int = _f(448 * 448, "Pixel cap per frame before the processor (DIFT's and RL's default 448*448, so a "
                                    "model is evaluated on what it was trained on; 0 = no cap).", ge=0)
    batch_size: int = _f(4, "Items per batch for local models (more = faster, more memory).", gt=0)
    limit: int | None = _f(None, "Evaluate only the first N items (smoke tests).", gt=0)
    video_root: str | None = _f(None, "DSR-Bench: folder with {videoID}.mp4 if not beside the parquet.")
    api_base: str | None = _f(None, "api: models: endpoint root ending in /v1 (default $OPENAI_BASE_URL).")
    api_key_env: str = _f("OPENAI_API_KEY", "api: models: NAME of the env var holding the key (never logged).")
    concurrency: int = _f(4, "api: models: requests in flight at once.", gt=0)
    retries: int = _f(5, "api: models: attempts per request on 429/5xx/network errors.", gt=0)
    latents: str = _f("normal", "What latent models are fed at latent positions: normal (their own hidden states, "
                                "Eq. 10) | zero | noise | shuffle (another item's latents) | pad (the latent-pad "
                                "embedding, as the reference RL code) | drop (no latent block). `fourdthinker probe` "
                                "runs them all.")
    latent_norm: float | None = _f(None, "Rescale fed-back hidden states to this L2 norm (e.g. the training targets' "
                                         "mean norm); 0 = never. Unset: the model's own setting (a `train dift "
                                         "--feed-norm` model is fed at its training norm, others as they are).", ge=0)
    frames: str = _f("normal", "Video intervention (only the frames change): normal | first (the first frame repeated) "
                               "| reversed | shuffled | blank. `fourdthinker probe --frames` runs them all.")
    baseline: str | None = _f(None, "Row name that Avg. gains are measured against (unset: the first model).")
    html: bool = _f(True, "Write OUT/BENCH/report.html with plots and examples.")

    def __post_init__(self) -> None:
        problems = field_problems(self)  # the bounds declared on the fields (gt= / ge= / le= / choices=)
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class ProbeConfig:
    """Every knob of `fourdthinker probe` (YAML keys = field names via ``--config``; flags override)."""

    model: str = _f("", "Model with latent tokens: a trained run folder (runs/dift), a hub id or a tiny preset.",
                    short="-m", required=True)
    bench: str = _f("", "dsr-bench | dyn-bench | vlm4d | synthetic | jsonl", short="-b", required=True)
    data: str = _f("", "Local benchmark path (as for `fourdthinker eval`).", short="-d", required=True)
    out: str = _f("reports/probe", "Output folder: one sub-folder per intervention, probe.md, probe.json. Rerun to "
                                   "resume.", short="-o")
    latents: tuple[str, ...] = _f((), "Interventions to run (repeatable); unset = all: normal zero noise shuffle pad drop.")
    frames: tuple[str, ...] = _f((), "Video interventions to run (repeatable), with normal latents: normal first reversed "
                                     "shuffled blank (unset = all). Reports accuracy and the share of answers flipped to "
                                     "the opposite label per task, and whether the model uses the motion. --frames "
                                     "normal = none.")
    latent_size: int | None = _f(None, "K latent steps per block (unset: the model config's latent_size, else 4).", gt=0)
    latent_norm: float | None = _f(None, "Rescale fed-back states to this norm; 0 = never; unset: the model's own "
                                         "setting (see `fourdthinker infer --latent-norm`).", ge=0)
    batch_size: int = _f(4, "Items decoded together (>= 2: 'shuffle' takes another item's latents).", gt=0)
    max_new_tokens: int = _f(256, "Response budget, latent slots included.", gt=0)
    max_frames: int = _f(8, "Frames per video.", gt=0)
    fps: float = _f(1.0, "Video sampling rate (paper: 1 FPS).", gt=0)
    limit: int | None = _f(None, "Only the first N items (smoke tests).", gt=0)
    seed: int = _f(0, "Seed (the noise intervention).")

    def __post_init__(self) -> None:
        problems = field_problems(self)  # the bounds declared on the fields (gt= / ge=)
        if problems:
            raise ValueError("; ".join(problems))
