"""An lmms-eval model wrapper: our latent-recurrent decoder inside the lmms-eval harness.

    lmms_eval --model fourdthinker --model_args pretrained=runs/rl,max_frames=8 --tasks fourdthinker_synthetic ...

Registered under the name ``fourdthinker`` when lmms-eval is installed (import this module from
an ``--include_path`` plugin or ``lmms_eval.models`` registry); without lmms-eval the class still
imports and works on plain request objects with an ``.args`` tuple
``(context, gen_kwargs, doc_to_visual, doc_id, task, split)`` — the lmms-eval ``Instance`` shape.
Only ``generate_until`` is implemented: log-likelihood scoring of latent-recurrent outputs is not
defined (``loglikelihood`` raises ``NotImplementedError``).
"""

from __future__ import annotations

from collections.abc import Callable

try:  # pragma: no cover - depends on the optional harness
    from lmms_eval.api.model import lmms as _Base
    from lmms_eval.api.registry import register_model as _register
except Exception:  # noqa: BLE001 - lmms-eval absent or incompatible: plain base class
    _Base = object

    def _register(*_names: str) -> Callable[[type], type]:
        return lambda cls: cls


@_register("fourdthinker")
class FourDThinkerLMM(_Base):
    """``pretrained``: preset name, checkpoint folder or hub id (``fourdthinker.models.load``)."""

    def __init__(self, pretrained: str = "qwen2.5-vl-tiny", max_frames: int | str = 8, fps: float | str = 1.0,
                 latent_size: int | str | None = None, batch_size: int | str = 1, adapter=None,
                 max_pixels: int | str | None = 448 * 448, **kwargs):
        if _Base is not object:
            super().__init__()
        self.pretrained = pretrained
        self.max_frames, self.fps = int(max_frames), float(fps)
        self.max_pixels = int(max_pixels) if max_pixels not in (None, "", "None", 0, "0") else None
        self.latent_size = int(latent_size) if latent_size not in (None, "", "None") else None
        self.batch_size_per_gpu = int(batch_size)
        self._adapter = adapter

    @property
    def adapter(self):
        if self._adapter is None:
            from fourdthinker.models import load

            self._adapter = load(self.pretrained)
        return self._adapter

    def _frames(self, visuals) -> list:
        """The harness's visuals (video paths, images) through the one input builder (models/inputs.py):
        the same sampling, frame cap and pixel cap as DIFT, 4DRL, infer and eval."""
        import numpy as np

        from fourdthinker.models.inputs import FrameSettings, cap_frame, load_frames, spread

        s = FrameSettings(self.fps, self.max_frames, self.max_pixels)
        frames: list = []
        for v in visuals:
            if isinstance(v, str):
                frames += load_frames(None, v, settings=s)
            else:  # PIL image / array
                frames.append(cap_frame(np.asarray(v.convert("RGB") if hasattr(v, "convert") else v), s.max_pixels))
        return spread(frames, s.max_frames)

    def generate_until(self, requests) -> list[str]:
        """One text per request, in order (the context already is the full question prompt)."""
        import torch

        from fourdthinker.latent.decode import latent_generate

        out: list[str] = []
        for req in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = req.args
            task_dict = getattr(self, "task_dict", None)  # set by the lmms-eval evaluator
            if task_dict is None:
                raise RuntimeError("FourDThinkerLMM.generate_until: task_dict is not set (lmms-eval sets it; "
                                   "outside the harness assign {task: {split: docs}})")
            visuals = doc_to_visual(task_dict[task][split][doc_id])
            batch = self.adapter.encode_prompts([self._frames(visuals)], [context], fps=self.fps)
            do_sample = bool(gen_kwargs.get("do_sample", False)) or float(gen_kwargs.get("temperature", 0) or 0) > 0
            with torch.no_grad():
                res = latent_generate(self.adapter, batch, latent_size=self.latent_size,
                                      max_new_tokens=int(gen_kwargs.get("max_new_tokens", 256)), do_sample=do_sample,
                                      temperature=float(gen_kwargs.get("temperature", 1.0) or 1.0),
                                      top_p=float(gen_kwargs.get("top_p", 1.0) or 1.0))
            out.append(res[0].text)
        return out

    def loglikelihood(self, requests):
        raise NotImplementedError("fourdthinker: log-likelihood of latent-recurrent outputs is not defined; "
                                  "use generate_until tasks (multiple choice by generation)")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("fourdthinker: multi-round generation is not implemented")
