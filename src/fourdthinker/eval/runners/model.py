"""Local VLM runners: our latent-recurrent models, and any HF VLM with plain ``generate``.

Both load through ``fourdthinker.models.load`` (a tiny preset name, a local checkpoint folder or a
hub id), build the prompt batch with the one input builder (``models.inputs.build_prompt_batch``:
the frames, caps and question text DIFT, 4DRL and ``infer`` use), and decode a whole batch at once
(left padding).

* ``LatentModelRunner``: ``fourdthinker.latent.decode.latent_generate`` (Eq. 10): when the
  model opens a latent block, its last hidden states are fed back as the next K inputs.
* ``PlainModelRunner``: stock ``model.generate`` (baselines that never saw latent tokens).

Sampling uses a ``torch.Generator`` seeded per batch from ``seed`` so sampled runs are reproducible.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from fourdthinker.data.records import BenchItem
from fourdthinker.eval.runners.base import FatalRunnerError, RunOutput
from fourdthinker.models.inputs import DEFAULT_MAX_PIXELS, FrameSettings


def _process_device() -> str:
    """``cuda:LOCAL_RANK`` for a process of a multi-GPU data-parallel eval (accelerate launch /
    torchrun), else ``cpu`` (the default of a one-process eval)."""
    import os

    import torch

    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0') or 0)}"
    return "cpu"


class _LocalRunner:
    kind = "local"
    add_latent_tokens = False

    def __init__(self, name_or_path: str, *, adapter=None, batch_size: int = 4, max_new_tokens: int = 256,
                 fps: float = 1.0, max_frames: int = 8, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 temperature: float = 0.7, top_p: float = 0.9, threads: int | None = None, frames: str = "normal",
                 span: str | None = None):
        from fourdthinker.models.inputs import trained_span
        from fourdthinker.video.interventions import check_frames

        self._adapter = adapter
        self.frames = check_frames(frames)  # video intervention: what the model is shown (video/interventions.py)
        self.threads = threads
        self.name = self.path = name_or_path
        self.batch_size = batch_size
        self.max_new_tokens, self.fps, self.max_frames, self.max_pixels = max_new_tokens, fps, max_frames, max_pixels
        self.temperature, self.top_p = temperature, top_p
        # frames over the whole video or the question's window: what the model was trained with unless set
        self.span = FrameSettings(span=span).span if span else trained_span(name_or_path)

    @property
    def adapter(self):
        """Loaded on first use, so a rerun whose predictions are all done never loads the model."""
        if self._adapter is None:
            import torch

            from fourdthinker.models import load

            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                self._adapter = load(self.path, add_latent_tokens=self.add_latent_tokens, device=_process_device())
            except Exception as e:  # one clear error for the whole run, not one quarantine per item
                raise FatalRunnerError(f"{self.path}: cannot load model ({type(e).__name__}: {e})") from e
            self._check(self._adapter)
        self._adapter.model.eval()
        return self._adapter

    def _check(self, adapter) -> None:
        pass

    def settings(self) -> dict:
        s = {"runner": self.kind, "model": self.path, "max_new_tokens": self.max_new_tokens, "fps": self.fps,
             "max_frames": self.max_frames, "max_pixels": self.max_pixels, "temperature": self.temperature,
             "top_p": self.top_p}
        # old run folders stay resumable: a setting at its default is not written
        return s | ({"frames": self.frames} if self.frames != "normal" else {}) | (
            {"span": self.span} if self.span != "video" else {})

    def _batch(self, items: Sequence[BenchItem], root: Path):
        from dataclasses import replace

        from fourdthinker.models.inputs import encode_inputs, record_inputs
        from fourdthinker.video.interventions import intervene_frames

        # the one input builder (models/inputs.py): the frames, caps and prompt DIFT, 4DRL and infer use;
        # a video intervention (--frames) then changes only the frames
        settings = FrameSettings(self.fps, self.max_frames, self.max_pixels, self.span)
        inputs = [record_inputs(it, root, settings, allow_absolute=True) for it in items]
        inputs = [replace(x, frames=intervene_frames(x.frames, self.frames, key=it.id)) for x, it in zip(inputs, items, strict=True)]
        return encode_inputs(self.adapter, inputs)


class LatentModelRunner(_LocalRunner):
    """Our models: latent-recurrent decoding. The latent tokens are added when the checkpoint
    lacks them (a base model then runs the same decoder, e.g. the "base" row of Table 3)."""

    kind = "latent"
    add_latent_tokens = True

    def __init__(self, name_or_path: str, *, latent_size: int | None = None, latents: str = "normal",
                 latent_norm: float | None = None, prefix_sharing: bool = True, **kw):
        from fourdthinker.latent.interventions import check_intervention

        super().__init__(name_or_path, **kw)
        self.prefix_sharing = prefix_sharing
        self._seeds: list[int] | None = None  # plan_samples: all sampled runs' seeds, decoded together
        self._pending: dict[tuple[str, int], RunOutput] = {}
        self.latent_size = latent_size
        self.latents = check_intervention(latents)  # what is fed at latent positions (docs/inference.md)
        self.latent_norm = latent_norm
        self._health = None  # DecodeHealthMeter of the fed-back latents (sums only), from the first decode
        self._embed_norm: float | None = None
        if self._adapter is not None:
            self._check(self._adapter)

    def _check(self, adapter) -> None:
        if adapter.latent_start_id is None:
            raise FatalRunnerError(f"{self.path}: the tokenizer has no latent tokens; evaluate it with 'plain:{self.path}'")

    def settings(self) -> dict:
        return super().settings() | {"latent_size": self.latent_size, "latents": self.latents,
                                     "latent_norm": self.latent_norm}

    def plan_samples(self, seeds: Sequence[int]) -> None:
        """``evaluate`` announces its sampled runs (``--samples N``: seeds S..S+N-1). With prefix
        sharing on, the first ``generate`` call for an item decodes the N samples of every seed
        together from ONE prefill (vision + prompt) of that item (``num_return_sequences``); the
        other seeds' answers are kept until ``evaluate`` asks for them. Each seed's answer is still a
        sample at the run's temperature/top-p, drawn from one generator per decode batch (seeded
        from the first seed), so the samples differ from the unshared per-seed decodes'."""
        self._pending = {}
        self._seeds = list(seeds) if self.prefix_sharing and len(seeds) > 1 else None

    def generate(self, items: Sequence[BenchItem], root: Path, *, seed: int, do_sample: bool) -> list[RunOutput]:
        import torch

        from fourdthinker.latent.decode import latent_generate

        if do_sample and self._seeds and seed in self._seeds:
            missing = [it for it in items if (it.id, seed) not in self._pending]
            if missing:
                self._generate_all_seeds(missing, root)
            return [self._pending.pop((it.id, seed)) for it in items]
        if self.latents == "shuffle" and len(items) < 2:
            raise ValueError("latent intervention 'shuffle' needs a batch of at least 2 items")
        batch = self._batch(items, root)
        gen = torch.Generator(device=self.adapter.device).manual_seed(seed * 1_000_003 + len(items))
        with torch.no_grad():
            res = latent_generate(self.adapter, batch, latent_size=self.latent_size, max_new_tokens=self.max_new_tokens,
                                  do_sample=do_sample, temperature=self.temperature, top_p=self.top_p, generator=gen,
                                  latents=self.latents, latent_norm=self.latent_norm, options=[it.options for it in items])
        self._record_health(res)
        return [RunOutput(text=r.text, latency_s=r.latency_s / max(1, len(items)), n_latent_steps=r.n_latent_steps)
                for r in res]

    def _generate_all_seeds(self, items: Sequence[BenchItem], root: Path) -> None:
        """Every planned seed's sample of ``items``: N responses per item from one prefill each, in
        decode batches of about ``batch_size`` rows (``batch_size // N`` items)."""
        import torch

        from fourdthinker.latent.decode import latent_generate

        seeds = self._seeds or []
        n = len(seeds)
        per = max(1, self.batch_size // n)
        for c in range(0, len(items), per):
            chunk = list(items[c : c + per])
            if self.latents == "shuffle" and len(chunk) * n < 2:
                raise ValueError("latent intervention 'shuffle' needs a batch of at least 2 rows")
            batch = self._batch(chunk, root)
            gen = torch.Generator(device=self.adapter.device).manual_seed(seeds[0] * 1_000_003 + len(chunk) + 7919 * n)
            with torch.no_grad():
                res = latent_generate(self.adapter, batch, latent_size=self.latent_size,
                                      max_new_tokens=self.max_new_tokens, do_sample=True, temperature=self.temperature,
                                      top_p=self.top_p, generator=gen, latents=self.latents,
                                      latent_norm=self.latent_norm, num_return_sequences=n,
                                      options=[it.options for it in chunk for _ in range(n)])
            self._record_health(res)
            for i, it in enumerate(chunk):
                for j, s in enumerate(seeds):
                    r = res[i * n + j]
                    self._pending[(it.id, s)] = RunOutput(text=r.text, latency_s=r.latency_s / len(res),
                                                          n_latent_steps=r.n_latent_steps)

    # -- latent health (docs/inference.md): norms of what the decoder fed back, summed over the run
    def _record_health(self, results) -> None:
        from fourdthinker.latent.health import DecodeHealthMeter, mean_norm

        if self._health is None:
            self._health = DecodeHealthMeter()
            self._embed_norm = mean_norm(self.adapter.model.get_input_embeddings().weight[: len(self.adapter.tokenizer)])
        self._health.add(results)

    def reset_latent_health(self) -> None:
        """Start a new tally (``evaluate`` calls this at the start of each run folder)."""
        self._health = None

    def gather_latent_health(self, gather) -> None:
        """Data-parallel eval: replace this process's tally by the sum over all processes
        (``gather(obj)`` -> every process's ``obj`` in rank order)."""
        from fourdthinker.latent.health import DecodeHealthMeter

        shares = gather((self._health.norm_sum, self._health.n_latent, self._embed_norm) if self._health else None)
        shares = [x for x in shares if x is not None]
        if not shares:
            self._health = None
            return
        self._health = DecodeHealthMeter(sum(x[0] for x in shares), sum(x[1] for x in shares))
        self._embed_norm = next(x[2] for x in shares if x[2] is not None)

    def latent_health(self, previous: dict | None = None) -> dict | None:
        """``latent.health.decode_health`` over every item decoded since the last reset, merged with
        ``previous`` (the stats an earlier, resumed part of the same run stored); None when neither
        has anything. Merged as sums: ``latent_norm = (sum of norms) / n_latent`` over both parts."""
        from fourdthinker.latent.health import DecodeHealthMeter

        if self._health is None:
            return previous
        meter = DecodeHealthMeter(self._health.norm_sum, self._health.n_latent)
        if previous and previous.get("n_latent") and previous.get("latent_norm") is not None:
            meter.norm_sum += float(previous["latent_norm"]) * int(previous["n_latent"])
            meter.n_latent += int(previous["n_latent"])
        return meter.stats(self._embed_norm)


class PlainModelRunner(_LocalRunner):
    """Any HF VLM without latents: stock ``model.generate`` on the same prompts."""

    kind = "plain"

    def generate(self, items: Sequence[BenchItem], root: Path, *, seed: int, do_sample: bool) -> list[RunOutput]:
        import torch

        batch = self._batch(items, root)
        dev = self.adapter.device
        inputs = {k: (v.to(dev) if hasattr(v, "to") else v) for k, v in dict(batch).items()}
        torch.manual_seed(seed)
        kw = {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p} if do_sample else {"do_sample": False}
        t0 = time.perf_counter()
        with torch.no_grad():
            out = self.adapter.model.generate(**inputs, max_new_tokens=self.max_new_tokens, pad_token_id=self.adapter.pad_id,
                                              eos_token_id=self.adapter.eos_ids,
                                              suppress_tokens=self.adapter.padding_ids() or None, **kw)
        dt = (time.perf_counter() - t0) / max(1, len(items))
        new = out[:, inputs["input_ids"].shape[1]:]
        texts = self.adapter.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [RunOutput(text=t, latency_s=dt) for t in texts]
