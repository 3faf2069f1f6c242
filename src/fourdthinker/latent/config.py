"""Settings of ``fourdthinker infer`` (one dataclass; every field has a default, a help string and its
bounds; the command's flags are generated from it by ``fourdthinker.cli_config``)."""

from __future__ import annotations

from dataclasses import dataclass

from fourdthinker.config import config_field as _f
from fourdthinker.config import field_problems

__all__ = ["InferConfig"]


@dataclass(frozen=True)
class InferConfig:
    """Every knob of `fourdthinker infer` (YAML keys = field names via ``--config``; flags override)."""

    model: str = _f("", "Model: a trained run folder (runs/dift), a hub id, or a tiny preset (qwen2.5-vl-tiny, "
                        "qwen3-vl-tiny, internvl3.5-tiny).", short="-m", required=True)
    video: str | None = _f(None, "Video file, clip folder (with video.mp4) or folder of frame images.", short="-v")
    question: str | None = _f(None, "The question about the video.", short="-q")
    options: tuple[str, ...] = _f((), "Answer options A-D: repeat 4 times (-o 'Pan Left' -o ...), or one 'x|y|z|w' "
                                      "string; 'A=...' also accepted. Omit for a free answer.", short="-o")
    batch: str | None = _f(None, "JSONL file, one {id, video, question, options} per line (video relative to the file's "
                                 "folder). Needs --out.")
    out: str | None = _f(None, "Predictions JSONL for --batch; appended as answers come, reruns skip ids already there. "
                               "Bad items go to <out>.quarantine.jsonl.")
    json_out: bool = _f(False, "Print machine-readable JSON instead of the rich view.", flag="--json/--no-json")
    latents: str = _f("normal", "What to feed at latent positions: normal (the model's own hidden state, Eq. 10), zero, "
                                "noise, shuffle (another sample's state; batch >= 2), pad (the <|latent_pad|> embedding) "
                                "or drop (no imagery block at all).")
    latent_size: int | None = _f(None, "K latent steps per imagery block; unset: the model config's latent_size, else 4. "
                                       "Use the K the model was trained with.", gt=0)
    latent_norm: str = _f("auto", "auto: the model's own setting (a model trained with `train dift --feed-norm` is fed "
                                  "at its training norm; others as they are). none: feed hidden states as they are "
                                  "(paper). match: rescale each to the mean norm of the DIFT targets (config "
                                  "latent_target_norm or measured on --bank). Or a number.")
    max_new_tokens: int = _f(512, "Token budget per answer, latent slots included.", gt=0)
    max_latent_blocks: int | None = _f(None, "Cap on imagery blocks per answer (unset: no cap).", ge=0)
    sample: bool = _f(False, "Sample (with --temperature/--top-p) instead of greedy decoding.", flag="--sample/--greedy")
    temperature: float = _f(0.7, "Sampling temperature (with --sample).", gt=0)
    top_p: float = _f(0.9, "Nucleus sampling mass (with --sample).", gt=0)
    seed: int = _f(0, "Seed for sampling and the noise intervention.")
    fps: float = _f(1.0, "Frames per second sampled from the video (the paper uses 1).", gt=0)
    max_frames: int = _f(16, "At most this many frames, spread evenly over the video (DIFT's default).", gt=0)
    max_pixels: int = _f(448 * 448, "Pixel cap per frame before the processor (DIFT's and RL's default 448*448; "
                                    "0 = no cap).", ge=0)
    batch_size: int = _f(4, "Questions decoded together in --batch mode.", gt=0)
    explain: str | None = _f(None, "Folder for 'what the model imagined': per imagery block, the nearest overlay images "
                                   "of --bank (PNG strip + HTML).")
    bank: str | None = _f(None, "Folder of overlay images, or a dataset root from `data build` (its clips/*/img overlays "
                                "are used), for --explain and --latent-norm match.")
    top: int = _f(3, "Images shown per imagery block with --explain.", gt=0)
    force_imagery: tuple[int, ...] = _f((), "Diagnostic: open an imagery block at this response step (repeatable), "
                                            "e.g. to inspect an untrained model's latents with --explain.")
    add_latent_tokens: bool = _f(False, "Run a model that has no latent tokens (a base checkpoint) by adding untrained "
                                        "ones. Tiny presets always get them.")
    device: str = _f("cpu", "cpu, cuda, cuda:1 ...")
    dtype: str = _f("float32", "float32 | bfloat16 | float16.")

    def __post_init__(self) -> None:
        problems = field_problems(self)  # the bounds declared on the fields (gt= / ge=)
        if problems:
            raise ValueError("; ".join(problems))
