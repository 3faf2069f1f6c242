"""DIFT records -> encoded training samples -> left-padded batches (docs/method.md#dift).

One sample = the prompt (video frames + ``build_question_text``, via ``VLMAdapter.encode_one``)
followed by the response tokens of the chosen mode:

* ``dift``   reasoning with each ``<imagery>`` expanded to ``<|latent_start|> <|latent_pad|>*K
  <|latent_end|>`` (Eq. 6); the K latent vectors per image come from ``LatentTargetCache``.
* ``cot``    reasoning with the placeholders removed (CoT-SFT baseline, Table 3).
* ``raw-qa`` only the ``<answer>...</answer>`` part (Raw-QA SFT baseline, Table 3).

``response="imagery-answer"`` (``train dift --response``, ``dift`` mode only; beyond the paper)
keeps the imagery blocks and the answer and drops the text between them
(:func:`imagery_answer`), so the whole text loss falls on the answer read after the last block.

followed by ``<|im_end|>``. Labels are the response ids with latent pads masked
(``latent.blocks.response_labels``). Bad records (schema, missing/broken image, placeholder count,
over-long sequence) raise :class:`SampleError` with a one-line reason.

:class:`DiftDataset` streams: a fast validation pass quarantines bad records up front (to
``quarantine.jsonl``), the latent targets go to their disk cache, and each sample is encoded when
the DataLoader fetches it; one that still fails then is skipped and logged (docs/dift_full_size.md).
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
from fourdthinker.models.base import left_pad_batch
from fourdthinker.qa import IMAGERY, LATENT_END, LATENT_PAD, LATENT_START

MODES = ("dift", "cot", "raw-qa")
RESPONSES = ("reasoning", "imagery-answer")
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


def imagery_answer(reasoning: str, answer: str) -> str:
    """The reasoning cut to its imagery blocks and its answer: ``<think>`` + one ``<imagery>`` per
    placeholder + ``</think>`` + the ``<answer>...</answer>`` part (``<answer>{answer}</answer>`` when
    the reasoning has none).

    >>> imagery_answer("<think>At 0s <imagery> and at 3s <imagery>: Pan Left.</think><answer>Pan Left</answer>", "B")
    '<think><imagery><imagery></think><answer>Pan Left</answer>'
    """
    m = _ANSWER_RE.search(reasoning)
    return "<think>" + IMAGERY * reasoning.count(IMAGERY) + "</think>" + (m.group(0) if m else f"<answer>{answer}</answer>")


def response_text(reasoning: str, answer: str, mode: str, k: int, response: str = "reasoning") -> str:
    """The supervised response (before ``<|im_end|>``) of a record in ``mode``; ``response``
    (``dift`` only): ``reasoning`` (the paper) or ``imagery-answer`` (:func:`imagery_answer`)."""
    if response not in RESPONSES:
        raise ValueError(f"response must be one of {RESPONSES}, got {response!r}")
    if mode == "dift":
        if response == "imagery-answer":
            reasoning = imagery_answer(reasoning, answer)
        return expand_imagery(reasoning, k, LATENT_START, LATENT_PAD, LATENT_END)
    if mode == "cot":
        return strip_imagery(reasoning)
    if mode == "raw-qa":
        m = _ANSWER_RE.search(reasoning)
        return m.group(0) if m else f"<answer>{answer}</answer>"
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def build_sample(adapter, record, root: str | os.PathLike, *, mode: str = "dift", k: int = 4, targets=None,
                 max_length: int = 4096, fps: float | None = None, max_frames: int | None = 16,
                 max_pixels: int | None = 448 * 448, span: str = "video", response: str = "reasoning") -> Sample:
    """Encode one ``DiftRecord`` (see the module docstring). Raises ``SampleError`` on bad input.
    ``span``: ``video`` or ``window`` (``models.inputs.FrameSettings.span``); ``response``: see
    :func:`response_text`."""
    from fourdthinker.models.inputs import (
        DEFAULT_FPS,
        FrameSettings,
        InputError,
        encode_inputs,
        load_image,
        record_inputs,
    )

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    tok = adapter.tokenizer
    try:
        prompt = record_inputs(record, root, FrameSettings(fps or DEFAULT_FPS, max_frames, max_pixels, span))
        images = []
        if mode == "dift":
            _, img_paths = record.resolve(root)
            images = [load_image(p) for p in img_paths]
    except (InputError, OSError, ValueError) as e:
        raise SampleError(f"record {record.id}: {e}") from None
    n_img = record.reasoning.count(IMAGERY)
    if mode == "dift" and n_img != len(images):
        raise SampleError(f"record {record.id}: {n_img} {IMAGERY} placeholders but {len(images)} imagery images")
    enc = encode_inputs(adapter, [prompt])  # the one input builder (models/inputs.py), as RL, infer and eval
    end = "<|im_end|>" if "<|im_end|>" in tok.get_vocab() else tok.eos_token
    resp = tok(response_text(record.reasoning, record.answer, mode, k, response) + end, add_special_tokens=False,
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
    from fourdthinker.io import check_unique_ids, read_jsonl

    f = records_file(data)
    rows = read_jsonl(f)
    check_unique_ids(rows, f)  # the same refusal as every other record reader
    return f.parent, rows


def _id_rows(file: Path):
    """One small ``{"id": ...}`` dict per line of ``file`` (``{}`` for blank or broken lines), streamed,
    so ``check_unique_ids`` reports true line numbers without holding the records."""
    import json

    with open(file, "rb") as f:
        for raw in f:
            try:
                row = json.loads(raw) if raw.strip() else {}
            except ValueError:
                row = {}
            yield {"id": row.get("id")} if isinstance(row, dict) else {}


def records_file(data: str | os.PathLike) -> Path:
    """The ``dift.jsonl`` of ``data`` (the file itself or the folder holding it)."""
    p = Path(data)
    f = p / "dift.jsonl" if p.is_dir() else p
    if not f.exists():
        raise FileNotFoundError(f"{f}: no dift.jsonl here (run `fourdthinker data build` first)")
    return f


# ----------------------------------------------------------------------------- validation pass
def _schema_reason(e) -> str:
    """One line naming the bad field of a pydantic ``ValidationError``."""
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    if not loc:  # a model-level check: the only one on DiftRecord ties reasoning to imagery
        loc = "reasoning/imagery" if IMAGERY in msg else "record"
    return f"field {loc}: {msg}"


class RecordValidator:
    """The fast checks of one raw row, before training (``validator(row) -> DiftRecord``): schema
    (pydantic), every path inside the root and present, ``<imagery>`` count = imagery images, and
    the response's latent blocks and length (a tokenizer call). No image or video is decoded.
    Raises ``SampleError`` whose message names the record and the bad field.

    Paths are checked like ``io.resolve_inside`` (symlinks followed, escapes refused) but with the
    real path of each folder computed once, so a record costs one ``lstat`` per file."""

    def __init__(self, root: str | os.PathLike, adapter, *, mode: str = "dift", k: int = 4, max_length: int = 4096,
                 response: str = "reasoning"):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.root = os.path.realpath(root)
        self.mode, self.k, self.max_length, self.response = mode, k, max_length, response
        self.tok = adapter.tokenizer
        self.end = "<|im_end|>" if "<|im_end|>" in self.tok.get_vocab() else self.tok.eos_token
        self.ids = [adapter.latent_start_id, adapter.latent_pad_id, adapter.latent_end_id] if mode == "dift" else []
        if None in self.ids:
            raise RuntimeError("latent tokens missing: call adapter.add_latent_tokens() first")
        self._dirs: dict[str, str] = {}  # folder as written -> its real path

    def _inside(self, p: str) -> bool:
        return p == self.root or p.startswith(self.root + os.sep)

    def check_path(self, rel: str, field_name: str, *, file: bool) -> None:
        """``root/rel`` inside the root and present (no read), or ``SampleError`` naming the field."""
        import stat

        head, tail = os.path.split(rel)
        real_dir = self._dirs.get(head)
        if real_dir is None:
            real_dir = self._dirs[head] = os.path.realpath(os.path.join(self.root, head))
        p = os.path.join(real_dir, tail) if tail else real_dir
        try:
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                p = os.path.realpath(p)
                st = os.stat(p)
        except OSError:
            st = None
        if not self._inside(os.path.normpath(p)):
            raise SampleError(f"{field_name} {rel}: path escapes dataset root {self.root}")
        if st is None or (file and not stat.S_ISREG(st.st_mode)):
            raise SampleError(f"{field_name} {rel}: {'image file' if file else 'video'} not found")

    def __call__(self, row: Any):
        from pydantic import ValidationError

        from fourdthinker.data.records import DiftRecord

        if not isinstance(row, dict):
            raise SampleError(f"record is a {type(row).__name__}, not a JSON object")
        try:
            rec = DiftRecord.model_validate(row)
        except ValidationError as e:
            raise SampleError(f"record {row.get('id')}: invalid {_schema_reason(e)}") from None
        try:
            if rec.frames:
                for i, f in enumerate(rec.frames):
                    self.check_path(f, f"frames[{i}]", file=True)
            else:
                self.check_path(rec.video, "video", file=False)
            if self.mode == "dift":
                for i, f in enumerate(rec.imagery):
                    self.check_path(f, f"imagery[{i}]", file=True)
        except SampleError as e:
            raise SampleError(f"record {rec.id}: {e}") from None
        resp = self.tok(response_text(rec.reasoning, rec.answer, self.mode, self.k, self.response) + self.end,
                        add_special_tokens=False)["input_ids"]
        if self.mode == "dift":
            try:
                check_blocks(list(resp), self.k, *self.ids, len(rec.imagery), where=f"record {rec.id}: field reasoning: ")
            except ValueError as e:
                raise SampleError(str(e)) from None
        if len(resp) >= self.max_length:
            raise SampleError(f"record {rec.id}: field reasoning: response of {len(resp)} tokens alone reaches "
                              f"max_length {self.max_length}")
        return rec


def validate_record(row: dict, root: str | os.PathLike, adapter, *, mode: str = "dift", k: int = 4,
                    max_length: int = 4096):
    """One row through :class:`RecordValidator` (for many rows, build the validator once)."""
    return RecordValidator(root, adapter, mode=mode, k=k, max_length=max_length)(row)


def _index_path(cache, root: Path) -> Path:
    import hashlib

    return cache.dir / "paths" / f"{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]}.json"


class TargetPass:
    """Fills the latent-target cache for the imagery of the records given to :meth:`add`, streaming:
    images are decoded and encoded ``cache.batch_size`` at a time and written to disk, never held
    all together. ``add`` returns the reason a record's imagery cannot be read (it is quarantined),
    else None; :meth:`close` flushes the last batch and the index.

    An index ``<cache>/paths/<root hash>.json`` maps each image path (with its size and mtime) to its
    pixel hash, so a rerun over a warm cache only stats the files (no decode)."""

    def __init__(self, cache, root: Path):
        import json

        self.cache, self.root = cache, Path(root)
        self.index_path = _index_path(cache, self.root)
        try:
            self.index = json.loads(self.index_path.read_text()) if self.index_path.exists() else {}
        except (OSError, ValueError):  # a broken index only costs a re-hash
            self.index = {}
        self.changed = False
        self.pending: list[tuple[str, Any]] = []
        self.queued: set[str] = set()
        self.decoded = 0  # images decoded (index misses): 0 on a warm rerun

    def add(self, rec) -> str | None:
        from fourdthinker.latent.targets import image_hash
        from fourdthinker.models.inputs import InputError, load_image

        hashes: list[str] = []
        images: dict[int, Any] = {}  # decoded here: index misses, or needed for a missing target
        for j, rel in enumerate(rec.imagery):
            p = self.root / rel  # already checked inside the root by RecordValidator
            try:
                st = p.stat()
                hit = self.index.get(rel)
                if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
                    hashes.append(hit[2])
                    continue
                images[j] = load_image(p)
            except (InputError, OSError) as e:
                return f"record {rec.id}: imagery[{j}] {e}"
            self.decoded += 1
            h = image_hash(images[j])
            self.index[rel] = [st.st_size, st.st_mtime_ns, h]
            self.changed = True
            hashes.append(h)
        keys = self.cache.keys(hashes)
        missing = [j for j, key in enumerate(keys) if key not in self.queued and not self.cache.has(key)]
        if not missing:
            return None
        for i, rel in enumerate(rec.imagery):  # a target is missing: decode the rest (a pair needs its previous image)
            if i not in images:
                try:
                    images[i] = load_image(self.root / rel)
                except (InputError, OSError) as e:
                    return f"record {rec.id}: imagery[{i}] {e}"
                self.decoded += 1
        items = self.cache.items([images[i] for i in range(len(rec.imagery))])
        for j in missing:
            if keys[j] in self.queued:  # the same target twice in one record
                continue
            self.queued.add(keys[j])
            self.pending.append((keys[j], items[j]))
            if len(self.pending) >= self.cache.batch_size:
                self._flush()
        return None

    def _flush(self) -> None:
        if self.pending:
            self.cache.put([x[0] for x in self.pending], [x[1] for x in self.pending])
            self.pending.clear()

    def close(self) -> None:
        import json

        from fourdthinker.io import atomic_write_text

        self._flush()
        if self.changed:
            atomic_write_text(self.index_path, json.dumps(self.index))
            self.changed = False


def _progress(on: bool, what: str, total: int):
    if not on:
        return None
    from rich.progress import Progress

    bar = Progress(transient=True)
    bar.start()
    return bar, bar.add_task(what, total=total)


class _CacheOnly:
    """``targets`` for ``build_sample`` at load time: the disk cache only, never the encoder."""

    def __init__(self, cache):
        self.cache = cache

    def get(self, images):
        return self.cache.cached(images)


class DiftDataset(torch.utils.data.Dataset):
    """The valid records of a ``dift.jsonl``, each encoded when it is fetched (``__getitem__``,
    so in the DataLoader workers): memory does not grow with the number of records.

    Construction runs the fast validation pass (:func:`validate_record`: schema, paths, files,
    ``<imagery>`` count, no decode) and, in ``dift`` mode, :func:`prepare_targets` (latent targets
    computed once into the disk cache). Bad records are listed in ``skipped`` and written to
    ``quarantine`` (JSONL ``{id, line, reason}``, rewritten each run). What the dataset keeps per
    record is one int64 byte offset into ``dift.jsonl``.

    A record that still fails when fetched (a file deleted or corrupted since, a decode error, an
    over-long sequence) is skipped and logged (``load_errors`` JSONL and a warning): item ``i`` is
    replaced by the next record that loads, ``i+1, i+2, ...`` (cyclic). The batch keeps its size
    and the sampler's order is untouched, so a rerun or an exact ``--resume`` sees the same
    batches; at most ``max_replacements`` records are tried before the fetch fails."""

    def __init__(self, data: str | os.PathLike, adapter, *, mode: str = "dift", k: int = 4, targets=None,
                 quarantine: str | os.PathLike | None = None, load_errors: str | os.PathLike | None = None,
                 progress: bool = True, max_replacements: int = 100, **kw):
        import json

        import numpy as np

        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.file = records_file(data)
        self.root = self.file.parent
        from fourdthinker.io import check_unique_ids

        check_unique_ids(_id_rows(self.file), self.file)  # the same refusal as every other record reader
        self.adapter, self.mode, self.k, self.kw = adapter, mode, k, kw
        self.load_errors = Path(load_errors) if load_errors is not None else None
        self.max_replacements = max_replacements
        self.skipped: list[dict] = []
        self._tmp = None
        if mode == "dift":
            if targets is None:
                raise ValueError("DiftDataset: dift mode needs a LatentTargetCache (targets=...)")
            if targets.dir is None:  # no shared cache: a private one that lives as long as the dataset
                import copy
                import tempfile

                self._tmp = tempfile.TemporaryDirectory(prefix="dift_targets_")
                targets = copy.copy(targets)
                targets.dir = Path(self._tmp.name)
        self.targets = targets
        offsets: list[int] = []
        lines: list[int] = []
        tp = TargetPass(targets, self.root) if mode == "dift" else None
        validate = RecordValidator(self.root, adapter, mode=mode, k=k, max_length=kw.get("max_length", 4096),
                                   response=kw.get("response", "reasoning"))
        with open(self.file, "rb") as f:
            n_lines = sum(1 for _ in f)
        bar = _progress(progress, f"validating {n_lines} {mode} records", n_lines)
        try:
            with open(self.file, "rb") as f:
                off = 0
                for line_no, raw in enumerate(f, 1):
                    here, off = off, off + len(raw)
                    if bar is not None:
                        bar[0].advance(bar[1])
                    if not raw.strip():
                        continue
                    row: Any = None
                    try:
                        try:
                            row = json.loads(raw)
                        except ValueError:
                            raise SampleError(f"line {line_no}: not valid JSON") from None
                        rec = validate(row)
                        why = tp.add(rec) if tp is not None else None
                        if why:
                            raise SampleError(why)
                    except SampleError as e:
                        self.skipped.append({"id": row.get("id") if isinstance(row, dict) else None,
                                             "line": line_no, "reason": str(e).splitlines()[0]})
                    else:
                        offsets.append(here)
                        lines.append(line_no)
        finally:
            if tp is not None:
                tp.close()
            if bar is not None:
                bar[0].stop()
        self.offsets = np.asarray(offsets, dtype=np.int64)  # what is kept per record: 8 bytes
        self.lines = np.asarray(lines, dtype=np.int64)
        self._bad: set[int] = set()
        if quarantine is not None:
            from fourdthinker.io import write_jsonl

            write_jsonl(quarantine, self.skipped)
        if not len(self.offsets):
            why = self.skipped[0]["reason"] if self.skipped else "file is empty"
            raise ValueError(f"{self.file}: no usable records ({len(self.skipped)} skipped; first: {why})")

    def __len__(self) -> int:
        return len(self.offsets)

    def record(self, i: int):
        """The ``DiftRecord`` of item ``i`` (one line read and parsed)."""
        import json

        from fourdthinker.data.records import DiftRecord

        with open(self.file, "rb") as f:
            f.seek(int(self.offsets[i]))
            return DiftRecord.model_validate(json.loads(f.readline()))

    def ids(self) -> list[str]:
        """Record ids in item order (reads the file)."""
        return [self.record(i).id for i in range(len(self))]

    def tasks(self) -> list[str | None]:
        """Each item's ``task`` field, in item order (one pass over the file, no validation)."""
        import json

        out = []
        with open(self.file, "rb") as f:
            for off in self.offsets:
                f.seek(int(off))
                out.append(json.loads(f.readline()).get("task"))
        return out

    def load(self, i: int) -> Sample:
        """Encode item ``i`` now (raises on a bad record; ``__getitem__`` skips instead)."""
        targets = _CacheOnly(self.targets) if self.mode == "dift" else None
        return build_sample(self.adapter, self.record(i), self.root, mode=self.mode, k=self.k, targets=targets, **self.kw)

    def __getitem__(self, i: int) -> Sample:
        n = len(self)
        first_reason = None
        for step in range(min(n, self.max_replacements + 1)):
            j = (i + step) % n
            if j in self._bad:
                continue
            try:
                return self.load(j)
            except Exception as e:  # noqa: BLE001 - any load failure skips the record (logged), never the run
                reason = str(e).splitlines()[0] if isinstance(e, SampleError) else f"{type(e).__name__}: {e}".splitlines()[0]
                first_reason = first_reason or reason
                self._bad.add(j)
                self._log_failure(j, reason)
        raise RuntimeError(f"{self.file}: item {i} and the {self.max_replacements} records after it all failed to "
                           f"load (first: {first_reason})")

    def _log_failure(self, j: int, reason: str) -> None:
        import logging

        logging.getLogger(__name__).warning("skipping record at line %d of %s: %s", int(self.lines[j]), self.file, reason)
        if self.load_errors is not None:
            from fourdthinker.io import append_jsonl

            append_jsonl(self.load_errors, {"line": int(self.lines[j]), "reason": reason, "pid": os.getpid()})


class DiftCollator:
    """List of :class:`Sample` -> one left-padded batch dict (+ ``latents [N, D]`` and ``ids``)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, samples: list[Sample]) -> dict[str, Any]:
        batch = left_pad_batch([s.enc for s in samples], self.pad_id, IGNORE_INDEX)
        batch["latents"] = torch.cat([s.latents for s in samples], 0)
        batch["ids"] = [s.id for s in samples]
        return batch
