"""Evaluation runners and the ``--model`` spec that picks one.

``--model`` spec                  runner
``random``                        chance baseline (``RandomRunner``)
``api:MODEL``                     OpenAI-compatible chat API (``ApiRunner``; ``--api-base``, key from env)
``plain:NAME_OR_PATH``            any HF VLM with stock ``generate`` (``PlainModelRunner``)
``latent:NAME_OR_PATH``           our latent-recurrent decoder (``LatentModelRunner``)
``NAME_OR_PATH``                  latent decoder when the checkpoint has latent tokens (DIFT/4DRL
                                  outputs), else plain (tiny presets: ``qwen2.5-vl-tiny``,
                                  ``qwen3-vl-tiny``, ``internvl3.5-tiny``; ``latent:`` forces latents)

An optional display name goes after ``=``: ``--model "DIFT=runs/dift"``.
"""

from __future__ import annotations

from fourdthinker.eval.runners.base import (
    FatalRunnerError,
    MissingMediaError,
    RandomRunner,
    Runner,
    RunOutput,
)
from fourdthinker.models.inputs import DEFAULT_MAX_PIXELS

__all__ = ["FatalRunnerError", "MissingMediaError", "RandomRunner", "RunOutput", "Runner", "make_runner", "split_spec"]


def split_spec(spec: str) -> tuple[str, str]:
    """``"DIFT=runs/dift"`` -> ``("DIFT", "runs/dift")``; ``"runs/dift"`` -> ``("runs/dift", "runs/dift")``."""
    name, eq, target = spec.partition("=")
    if eq and name.strip() and target.strip():
        return name.strip(), target.strip()
    return spec, spec


def checkpoint_has_latent_tokens(name_or_path: str) -> bool | None:
    """Whether a local checkpoint's tokenizer files define ``<|latent_start|>`` (read as text, no
    model load, so finished reruns stay instant); False for tiny presets; None when unknown (hub id)."""
    from pathlib import Path

    from fourdthinker.models import PRESETS
    from fourdthinker.qa import LATENT_START

    if name_or_path in PRESETS:
        return False
    d = Path(name_or_path)
    if not d.is_dir():
        return None
    files = [d / f for f in ("tokenizer.json", "added_tokens.json", "tokenizer_config.json", "special_tokens_map.json")]
    return any(f.is_file() and LATENT_START in f.read_text(encoding="utf-8", errors="ignore") for f in files)


def make_runner(spec: str, *, api_base: str | None = None, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 4,
                cache_dir=None, batch_size: int = 4, max_new_tokens: int = 256, max_frames: int = 8, fps: float = 1.0,
                max_pixels: int | None = DEFAULT_MAX_PIXELS, temperature: float = 0.7, top_p: float = 0.9, latent_size: int | None = None, retries: int = 5,
                latents: str = "normal", latent_norm: float | None = None, prefix_sharing: bool = True,
                frames: str = "normal", span: str | None = None) -> Runner:
    """Build the runner a ``--model`` spec names (see the module docstring); its ``name`` is the display name.
    ``span``: frames over the whole ``video`` or the question's ``window`` (local models: unset = what
    the model was trained with, ``models.inputs.trained_span``)."""
    name, target = split_spec(spec)
    if target == "random":
        r: Runner = RandomRunner()
    elif target.startswith("api:"):
        from fourdthinker.eval.runners.api import ApiRunner

        r = ApiRunner(target[4:], base_url=api_base, api_key_env=api_key_env, concurrency=concurrency, cache_dir=cache_dir,
                      max_frames=max_frames, fps=fps, max_pixels=max_pixels or DEFAULT_MAX_PIXELS, max_tokens=max_new_tokens,
                      temperature=temperature, top_p=top_p, max_retries=retries, frames=frames, span=span)
    else:
        from fourdthinker.eval.runners.model import LatentModelRunner, PlainModelRunner
        from fourdthinker.models.locate import resolve_model

        kw = dict(batch_size=batch_size, max_new_tokens=max_new_tokens, fps=fps, max_frames=max_frames,
                  max_pixels=max_pixels, temperature=temperature, top_p=top_p, frames=frames, span=span)
        # a run folder resolves to its final model (runs/rl -> runs/rl/final); a missing path fails now
        kind, _, path = target.partition(":") if target.startswith(("plain:", "latent:")) else ("", "", target)
        target = (f"{kind}:" if kind else "") + resolve_model(path)
        if target.startswith("plain:"):
            r = PlainModelRunner(target[6:], **kw)
        elif target.startswith("latent:"):
            r = LatentModelRunner(target[7:], latent_size=latent_size, latents=latents, latent_norm=latent_norm,
                                  prefix_sharing=prefix_sharing, **kw)
        else:
            has = checkpoint_has_latent_tokens(target)
            if has is None:  # not a local folder: load to find out
                from fourdthinker.models import load

                adapter = load(target, add_latent_tokens=False)  # has them only if it was trained with them
                has, kw = adapter.latent_start_id is not None, kw | {"adapter": adapter}
            r = (LatentModelRunner(target, latent_size=latent_size, latents=latents, latent_norm=latent_norm,
                                   prefix_sharing=prefix_sharing, **kw)
                 if has else PlainModelRunner(target, **kw))
    r.name = name
    return r
