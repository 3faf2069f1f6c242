"""DIFT records -> encoded training samples -> left-padded batches (docs/method.md#dift).

One sample = the prompt (video frames + ``build_question_text``, via ``VLMAdapter.encode_one``)
followed by the response tokens of the chosen mode:

* ``dift``   reasoning with each ``<imagery>`` expanded to ``<|latent_start|> <|latent_pad|>*K
  <|latent_end|>`` (Eq. 6); the K latent vectors per image come from ``LatentTargetCache``.
* ``cot``    reasoning with the placeholders removed (CoT-SFT baseline, Table 3).
* ``raw-qa`` only the ``<answer>...</answer>`` part (Raw-QA SFT baseline, Table 3).

followed by ``<|im_end|>``. Labels are the response ids with latent pads masked
(``latent.blocks.response_labels``). Bad records (schema, missing/broken image, placeholder count,
over-long sequence) raise :class:`SampleError` with a one-line reason; the dataset quarantines
them to ``quarantine.jsonl`` and goes on.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fourdthinker.latent.blocks import (
    IGNORE_INDEX,
    check_blocks,
    expand_imagery,
    latent_mask,
    response_labels,
    strip_imagery,
)
from fourdthinker.models.base import LATENT_END, LATENT_PAD, LATENT_START, left_pad_batch

MODES = ("dift", "cot", "raw-qa")
_ANSWER_RE = re.compile(r"<answer>.*?</answer>", re.DOTALL)


class SampleError(ValueError):
    """A record that cannot become a training sample; the message is the quarantine reason."""


@dataclass
class Sample:
    id: str
    enc: dict[str, Any]  # input_ids/attention_mask/labels [1, L] (+ mm_token_type_ids), pixel tensors
    latents: torch.Tensor  # [n_images * K, D] (empty for cot / raw-qa)
    n_images: int = 0
    meta: dict = field(default_factory=dict)


def response_text(reasoning: str, answer: str, mode: str, k: int) -> str:
    """The supervised response (before ``<|im_end|>``) of a record in ``mode``."""
    if mode == "dift":
        return expand_imagery(reasoning, k, LATENT_START, LATENT_PAD, LATENT_END)
    if mode == "cot":
        return strip_imagery(reasoning)
    if mode == "raw-qa":
        m = _ANSWER_RE.search(reasoning)
        return m.group(0) if m else f"<answer>{answer}</answer>"
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def build_sample(adapter, record, root: str | os.PathLike, *, mode: str = "dift", k: int = 4, targets=None,
                 max_length: int = 4096, fps: float | None = None, max_frames: int | None = 16,
                 max_pixels: int | None = 448 * 448) -> Sample:
    """Encode one ``DiftRecord`` (see the module docstring). Raises ``SampleError`` on bad input."""
    from fourdthinker.models.inputs import InputError, load_image, record_inputs

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    tok = adapter.tokenizer
    try:
        frames, text = record_inputs(record, root, fps=fps or record.frames_fps, max_frames=max_frames,
                                     max_pixels=max_pixels)
        images = []
        if mode == "dift":
            _, img_paths = record.resolve(root)
            images = [load_image(p) for p in img_paths]
    except (InputError, OSError, ValueError) as e:
        raise SampleError(f"record {record.id}: {e}") from None
    n_img = record.reasoning.count("<imagery>")
    if mode == "dift" and n_img != len(images):
        raise SampleError(f"record {record.id}: {n_img} <imagery> placeholders but {len(images)} imagery images")
    enc = adapter.encode_one(frames, text, fps=fps or record.frames_fps)
    end = "<|im_end|>" if "<|im_end|>" in tok.get_vocab() else tok.eos_token
    resp = tok(response_text(record.reasoning, record.answer, mode, k) + end, add_special_tokens=False,
               return_tensors="pt")["input_ids"]  # [1, R]
    if mode == "dift":
        ids = [adapter.latent_start_id, adapter.latent_pad_id, adapter.latent_end_id]
        if None in ids:
            raise RuntimeError("latent tokens missing: call adapter.add_latent_tokens() first")
        try:
            check_blocks(resp[0].tolist(), k, ids[0], ids[1], ids[2], n_img, where=f"record {record.id}: ")
        except ValueError as e:
            raise SampleError(str(e)) from None
    L = enc["input_ids"].shape[-1] + resp.shape[-1]
    if max_length < L:
        raise SampleError(f"record {record.id}: sequence of {L} tokens exceeds max_length {max_length}")
    prompt_len = enc["input_ids"].shape[-1]
    input_ids = torch.cat([enc["input_ids"], resp], -1)
    resp_mask = torch.zeros_like(input_ids, dtype=torch.bool)
    resp_mask[:, prompt_len:] = True
    ignore = [adapter.latent_pad_id] if adapter.latent_pad_id is not None else []
    enc["labels"] = response_labels(input_ids, resp_mask, ignore)
    enc["input_ids"] = input_ids
    enc["attention_mask"] = torch.ones_like(input_ids)
    if "mm_token_type_ids" in enc:
        enc["mm_token_type_ids"] = torch.cat([enc["mm_token_type_ids"], torch.zeros_like(resp).to(enc["mm_token_type_ids"].dtype)], -1)
    D = adapter.hidden_size
    latents = torch.zeros(0, D)
    if mode == "dift" and n_img:
        if targets is None:
            raise ValueError("build_sample: dift mode needs a LatentTargetCache (targets=...)")
        try:
            latents = torch.cat(targets.get(images), 0)  # [n_img * K, D]
        except ValueError as e:
            raise SampleError(f"record {record.id}: {e}") from None
        n_pos = int(latent_mask(input_ids, adapter.latent_pad_id).sum())
        assert latents.shape[0] == n_pos, f"{latents.shape[0]} latents for {n_pos} latent positions"
    return Sample(id=record.id, enc=enc, latents=latents, n_images=n_img,
                  meta={"prompt_len": prompt_len, "length": L})


def read_records(data: str | os.PathLike) -> tuple[Path, list[dict]]:
    """(root, raw rows) of ``dift.jsonl`` (``data`` is the file or the folder holding it)."""
    from fourdthinker.io import read_jsonl

    p = Path(data)
    f = p / "dift.jsonl" if p.is_dir() else p
    if not f.exists():
        raise FileNotFoundError(f"{f}: no dift.jsonl here (run `fourdthinker data build` first)")
    return f.parent, read_jsonl(f)


class DiftDataset(torch.utils.data.Dataset):
    """All valid samples of a ``dift.jsonl``, encoded once (in memory) with a progress bar.

    Invalid records are skipped and appended to ``quarantine`` (JSONL, ``{id, line, reason}``)."""

    def __init__(self, data: str | os.PathLike, adapter, *, mode: str = "dift", k: int = 4, targets=None,
                 quarantine: str | os.PathLike | None = None, progress: bool = True, **kw):
        from pydantic import ValidationError

        from fourdthinker.data.records import DiftRecord
        from fourdthinker.io import append_jsonl

        self.root, rows = read_records(data)
        self.samples: list[Sample] = []
        self.skipped: list[dict] = []
        it = rows
        bar = None
        if progress:
            from rich.progress import Progress

            bar = Progress(transient=True)
            bar.start()
            task = bar.add_task(f"encoding {len(rows)} {mode} samples", total=len(rows))
        try:
            for line, row in enumerate(it, 1):
                try:
                    rec = DiftRecord.model_validate(row)
                    self.samples.append(build_sample(adapter, rec, self.root, mode=mode, k=k, targets=targets, **kw))
                except (ValidationError, SampleError) as e:
                    reason = str(e).splitlines()[0] if isinstance(e, SampleError) else f"invalid record: {e.errors()[0]['msg']}"
                    entry = {"id": row.get("id"), "line": line, "reason": reason}
                    self.skipped.append(entry)
                    if quarantine is not None:
                        append_jsonl(quarantine, entry)
                if bar is not None:
                    bar.advance(task)
        finally:
            if bar is not None:
                bar.stop()
        if not self.samples:
            why = self.skipped[0]["reason"] if self.skipped else "file is empty"
            raise ValueError(f"{self.root / 'dift.jsonl'}: no usable records ({len(self.skipped)} skipped; first: {why})")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]


class DiftCollator:
    """List of :class:`Sample` -> one left-padded batch dict (+ ``latents [N, D]`` and ``ids``)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, samples: list[Sample]) -> dict[str, Any]:
        batch = left_pad_batch([s.enc for s in samples], self.pad_id, IGNORE_INDEX)
        batch["latents"] = torch.cat([s.latents for s in samples], 0)
        batch["ids"] = [s.id for s in samples]
        return batch
