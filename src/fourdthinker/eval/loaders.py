"""Benchmark loaders: the public release files -> normalised ``BenchItem``s (docs/benchmarks.md).

One function per benchmark, each reading the field names of the public release (formats in
``docs/benchmarks.md``):

* **DSR-Bench** (TencentARC/DSR_Suite-Data ``benchmark.parquet``; also .json/.jsonl): columns
  ``videoID``, ``question``, ``options`` (list of strings, fallback ``candidates``), letter
  ``answer``, ``type`` (13 subtask keys -> the paper's column names). Video = ``{root}/{videoID}.mp4``
  (also looked up under ``videos/`` and ``bmk_video/``).
* **Dyn-Bench** (yu2hi13/Dyn-Bench): ``frames/{dataset}/{scene}/frame_XXXX.jpg`` +
  ``multi_json/{dataset}/{scene}_{qa|sceneqa|cameraqa}.json``, each a list of
  ``{question, options, answer}``; suffix -> Inter-Object / Object-Scene / Camera-Object.
* **VLM4D** (shijiezhou/VLM4D ``QA/real_mc.json``, ``QA/synthetic_mc.json``): ``id``, ``video``
  (URL or path), ``question``, ``choices`` dict A-D and a FULL-TEXT ``answer`` mapped to its letter.
* **jsonl**: a file of ``BenchItem`` rows (what ``fourdthinker eval`` writes for the synthetic bench).

Bad items (missing video, answer not among the options, not four options) are skipped with a reason
(``LoadResult.skipped``) so one bad row never stops a run; a missing *field* or a duplicated id is a
schema error and raises ``BenchmarkFormatError`` naming the file and the problem.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from fourdthinker.labels import OPTION_LETTERS
from fourdthinker.records import BenchItem

# DSR-Bench ``type`` keys -> the paper's Table 1 column names, in the table's order.
DSR_SUBTASKS: dict[str, str] = {
    "abs_dis": "A.Dis",
    "abs_dir": "A.Dir",
    "abs_ori": "A.Ori",
    "abs_spd": "A.Spd",
    "abs_spd_comp": "A.SpdC",
    "abs_dir_pred": "A.DirP",
    "rel_dis": "R.Dis",
    "rel_dir": "R.Dir",
    "rel_ori": "R.Ori",
    "rel_spd": "R.Spd",
    "rel_spd_comp": "R.SpdC",
    "rel_dir_pred": "R.DirP",
    "non_temp": "N-Temp",
}
# The reference's summary names (dsr_eval.py) are accepted as ``type`` values too.
_DSR_LONG_NAMES = {
    "Abs Dis": "abs_dis", "Abs Dir": "abs_dir", "Abs Ori": "abs_ori", "Abs Spd": "abs_spd",
    "Abs Spd Comp": "abs_spd_comp", "Abs Dir Pred": "abs_dir_pred", "Rel Dis": "rel_dis",
    "Rel Dir": "rel_dir", "Rel Ori": "rel_ori", "Rel Spd": "rel_spd", "Rel Spd Comp": "rel_spd_comp",
    "Rel Dir Pred": "rel_dir_pred", "Non-Temp Based": "non_temp",
}

# Dyn-Bench file suffix -> the paper's Table 2 axis.
DYN_AXES: dict[str, str] = {"qa": "Inter-Obj", "sceneqa": "Obj-Scene", "cameraqa": "Cam-Obj"}

VIDEO_EXTS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

BENCHES = ("dsr-bench", "dyn-bench", "vlm4d", "synthetic", "jsonl")


class BenchmarkFormatError(ValueError):
    """A benchmark file does not have the published schema (missing field, duplicated id...)."""


@dataclass
class LoadResult:
    """Items ready to run, plus every row that was skipped and why (shown in reports)."""

    bench: str
    root: Path
    items: list[BenchItem]
    skipped: list[dict] = field(default_factory=list)  # [{id, reason}]

    def skip_reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.skipped:
            key = s["reason"].split(":")[0]
            out[key] = out.get(key, 0) + 1
        return out


# ----------------------------------------------------------------------------- helpers

_PREFIX = re.compile(r"^\s*\(?([A-Ea-e])\s*[\.\):：]\s*")


def options_from_list(options: list[str]) -> dict[str, str]:
    """``["A. x", "B. y", ...]`` or ``["x", "y", ...]`` -> ``{"A": "x", "B": "y", ...}``.

    A letter prefix (``A.``, ``A)``, ``(A)``, ``A:``) is stripped when every option carries its
    own letter in order; otherwise letters are assigned in list order. Needs exactly four options.

    >>> options_from_list(["A. left", "B. right", "C. up", "D. down"])["B"]
    'right'
    """
    opts = [str(o).strip() for o in options]
    if len(opts) != len(OPTION_LETTERS):
        raise ValueError(f"bad options: expected 4 options, got {len(opts)}")
    matches = [_PREFIX.match(o) for o in opts]
    if all(m and m.group(1).upper() == L for m, L in zip(matches, OPTION_LETTERS, strict=True)):
        opts = [o[m.end():].strip() for o, m in zip(opts, matches, strict=True)]
    return dict(zip(OPTION_LETTERS, opts, strict=True))


def _as_list(value) -> list:
    """Options stored as a list, a numpy array, or a string repr of a list (the reference eval()s it)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)  # literal_eval, never eval: the file is untrusted
        except (ValueError, SyntaxError):
            value = json.loads(value)
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"bad options: expected a list, got {type(value).__name__}")
    return list(value)


def _letter(answer) -> str:
    s = str(answer).strip().upper()
    m = _PREFIX.match(s)
    return m.group(1).upper() if m else s[:1]


def _require(row: dict, fields: tuple[str, ...], where: str, alternatives: dict[str, str] | None = None) -> None:
    alternatives = alternatives or {}
    for f in fields:
        if f not in row and alternatives.get(f) not in row:
            alt = f" (or {alternatives[f]!r})" if f in alternatives else ""
            raise BenchmarkFormatError(f"{where}: missing field {f!r}{alt}; found fields {sorted(row)}")


def _make_item(raw: dict, where: str, skipped: list[dict], ids: set[str]) -> BenchItem | None:
    if raw["id"] in ids:
        raise BenchmarkFormatError(f"{where}: duplicated id {raw['id']!r}")
    ids.add(raw["id"])
    if raw["answer"] not in raw["options"]:
        skipped.append({"id": raw["id"], "reason": f"answer not among options: {raw['answer']!r} not in {list(raw['options'])}"})
        return None
    try:
        return BenchItem(**raw)
    except ValidationError as e:
        msg = "; ".join(err["msg"] for err in e.errors())
        skipped.append({"id": raw["id"], "reason": f"invalid item: {msg}"})
        return None


def _row_id(row: dict, default: str) -> str:
    for key in ("id", "index", "ID"):
        v = row.get(key)
        if v is not None and not (isinstance(v, float) and v != v):  # NaN where pandas filled a gap
            return str(v)
    return default


def _find_video(root: Path, name: str, subdirs: tuple[str, ...] = ("", "videos", "bmk_video", "video")) -> Path | None:
    stem = Path(name)
    cands = [stem] if stem.suffix.lower() in VIDEO_EXTS else [stem.with_suffix(e) for e in VIDEO_EXTS]
    for sub in subdirs:
        for c in cands:
            p = root / sub / c
            if p.is_file():
                return p
    return None


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())


def _read_table(path: Path) -> list[dict]:
    suf = path.suffix.lower()
    if suf == ".parquet":
        import pandas as pd

        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for a corrupt file
            raise BenchmarkFormatError(f"{path}: cannot read parquet ({e})") from None
        return df.to_dict(orient="records")
    if suf == ".jsonl":
        from fourdthinker.io import read_jsonl

        return read_jsonl(path)
    if suf == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise BenchmarkFormatError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if isinstance(data, dict):  # {"data": [...]} or {id: row}
            data = data.get("data", list(data.values()))
        if not isinstance(data, list):
            raise BenchmarkFormatError(f"{path}: expected a JSON list of items")
        return data
    raise BenchmarkFormatError(f"{path}: unsupported file type {suf!r} (want .parquet, .json or .jsonl)")


# ----------------------------------------------------------------------------- DSR-Bench


def load_dsr_bench(data: str | os.PathLike, *, video_root: str | os.PathLike | None = None,
                   check_media: bool = True) -> LoadResult:
    """DSR-Bench: ``benchmark.parquet`` (or the folder holding it) -> 13-subtask items.

    ``subtask`` is the paper's column name (``A.Dis`` ... ``N-Temp``); the original key is in
    ``meta["type"]``. Rows whose video is missing are skipped (the reference excludes them too)."""
    path = Path(data)
    if path.is_dir():
        found = [path / n for n in ("benchmark.parquet", "benchmark.jsonl", "benchmark.json") if (path / n).is_file()]
        if not found:
            raise BenchmarkFormatError(f"{path}: no benchmark.parquet/.jsonl/.json in this folder (DSR-Bench layout)")
        path = found[0]
    root = Path(video_root) if video_root else path.parent
    rows = _read_table(path)
    items: list[BenchItem] = []
    skipped: list[dict] = []
    ids: set[str] = set()
    for i, row in enumerate(rows):
        where = f"{path} row {i}"
        _require(row, ("videoID", "question", "options", "answer", "type"), where, {"options": "candidates", "videoID": "video"})
        rid = _row_id(row, f"dsr_{i:05d}")
        vid = str(row.get("videoID", row.get("video")))
        typ = str(row["type"]).strip()
        typ = _DSR_LONG_NAMES.get(typ, typ)
        if typ not in DSR_SUBTASKS:
            skipped.append({"id": rid, "reason": f"unknown type: {typ!r} (want one of {list(DSR_SUBTASKS)})"})
            continue
        try:
            options = options_from_list(_as_list(row["options"] if "options" in row else row["candidates"]))
        except (ValueError, SyntaxError) as e:
            skipped.append({"id": rid, "reason": str(e)})
            continue
        video_path = _find_video(root, vid)
        if video_path is None and check_media:
            if rid in ids:
                raise BenchmarkFormatError(f"{where}: duplicated id {rid!r}")
            ids.add(rid)
            skipped.append({"id": rid, "reason": f"missing video: {vid}.mp4 not found under {root}"})
            continue
        raw = {
            "id": rid, "video": _rel(video_path, root) if video_path else f"{vid}.mp4", "question": str(row["question"]),
            "options": options, "answer": _letter(row["answer"]), "subtask": DSR_SUBTASKS[typ], "bench": "dsr-bench",
            "meta": {"type": typ, "videoID": vid},
        }
        item = _make_item(raw, where, skipped, ids)
        if item:
            items.append(item)
    return LoadResult("dsr-bench", root, items, skipped)


# ----------------------------------------------------------------------------- Dyn-Bench


def load_dyn_bench(data: str | os.PathLike, *, check_media: bool = True) -> LoadResult:
    """Dyn-Bench: ``multi_json/{dataset}/{scene}_{suffix}.json`` + ``frames/{dataset}/{scene}/``.

    Only the VQA files (``qa``, ``sceneqa``, ``cameraqa``) are read; grounding files
    (``*mask``) and ``frame_sampling`` files are ignored as in the official loader."""
    root = Path(data)
    qa_root = root / "multi_json"
    if not qa_root.is_dir():
        raise BenchmarkFormatError(f"{root}: no multi_json/ folder (Dyn-Bench layout: frames/, multi_json/)")
    items: list[BenchItem] = []
    skipped: list[dict] = []
    ids: set[str] = set()
    files = sorted(p for p in qa_root.rglob("*.json") if "frame_sampling" not in p.name)
    for f in files:
        if "_" not in f.stem:
            continue
        scene, suffix = f.stem.rsplit("_", 1)
        if suffix not in DYN_AXES:
            continue
        dataset = f.parent.relative_to(qa_root)
        rows = _read_table(f)
        frames_dir = root / "frames" / dataset / scene
        for i, row in enumerate(rows):
            where = f"{f} item {i}"
            _require(row, ("question", "options", "answer"), where)
            rid = f"{dataset}/{scene}/{suffix}/{i}"
            if check_media and not (frames_dir.is_dir() and any(p.suffix.lower() in IMAGE_EXTS for p in frames_dir.iterdir())):
                if rid in ids:
                    raise BenchmarkFormatError(f"{where}: duplicated id {rid!r}")
                ids.add(rid)
                skipped.append({"id": rid, "reason": f"missing video: no frames in {frames_dir}"})
                continue
            try:
                options = options_from_list(_as_list(row["options"]))
            except (ValueError, SyntaxError) as e:
                skipped.append({"id": rid, "reason": str(e)})
                continue
            raw = {
                "id": rid, "video": _rel(frames_dir, root), "question": str(row["question"]), "options": options,
                "answer": _letter(row["answer"]), "subtask": DYN_AXES[suffix], "bench": "dyn-bench",
                "meta": {"dataset": str(dataset), "scene": scene},
            }
            item = _make_item(raw, where, skipped, ids)
            if item:
                items.append(item)
    if not files:
        raise BenchmarkFormatError(f"{qa_root}: no *_qa.json / *_sceneqa.json / *_cameraqa.json files")
    return LoadResult("dyn-bench", root, items, skipped)


# ----------------------------------------------------------------------------- VLM4D


def _vlm4d_video(video: str, root: Path, split: str) -> Path | None:
    """Official ``video`` is a hub URL; the DSR Suite eval keeps the last 3 (real) / 2 (synthetic) parts."""
    parts = video.split("resolve/main/")[-1].split("/") if "://" in video else Path(video).parts
    keep = 3 if split.startswith("real") else 2
    for cand in (Path(*parts), Path(*parts[-keep:]), Path(parts[-1])):
        if (root / cand).is_file():
            return root / cand
    return None


def load_vlm4d(data: str | os.PathLike, *, check_media: bool = True) -> LoadResult:
    """VLM4D: ``QA/real_mc.json`` and ``QA/synthetic_mc.json`` (or one such file).

    The gold ``answer`` is the full option text; its letter is the ``choices`` key whose value
    equals it (whitespace/case-insensitive). ``subtask`` is ``real`` / ``synthetic``."""
    path = Path(data)
    if path.is_dir():
        files = sorted((path / "QA").glob("*_mc.json")) or sorted(path.glob("*_mc.json"))
        root = path
        if not files:
            raise BenchmarkFormatError(f"{path}: no QA/*_mc.json files (VLM4D layout: QA/real_mc.json, QA/synthetic_mc.json)")
    else:
        files, root = [path], (path.parent.parent if path.parent.name == "QA" else path.parent)
    items: list[BenchItem] = []
    skipped: list[dict] = []
    ids: set[str] = set()
    for f in files:
        split = f.stem.replace("_mc", "")
        for i, row in enumerate(_read_table(f)):
            where = f"{f} item {i}"
            _require(row, ("id", "video", "question", "choices", "answer"), where)
            rid = f"{split}/{row['id']}"
            choices = row["choices"]
            if not isinstance(choices, dict):
                skipped.append({"id": rid, "reason": f"bad options: choices must be a dict A-D, got {type(choices).__name__}"})
                continue
            options = {str(k).strip().upper(): str(v).strip() for k, v in choices.items()}
            gold = str(row["answer"]).strip()
            letters = [k for k, v in options.items() if v.lower() == gold.lower()]
            if not letters and gold.upper() in options and len(gold) == 1:
                letters = [gold.upper()]  # some mirrors store the letter
            answer = letters[0] if letters else gold
            video_path = _vlm4d_video(str(row["video"]), root, split)
            if video_path is None and check_media:
                if rid in ids:
                    raise BenchmarkFormatError(f"{where}: duplicated id {rid!r}")
                ids.add(rid)
                skipped.append({"id": rid, "reason": f"missing video: {row['video']} not found under {root}"})
                continue
            raw = {
                "id": rid, "video": _rel(video_path, root) if video_path else str(row["video"]),
                "question": str(row["question"]), "options": options, "answer": answer,
                "subtask": split, "bench": "vlm4d", "meta": {"answer_text": gold},
            }
            item = _make_item(raw, where, skipped, ids)
            if item:
                items.append(item)
    return LoadResult("vlm4d", root, items, skipped)


# ----------------------------------------------------------------------------- BenchItem JSONL


def load_jsonl_bench(data: str | os.PathLike, *, check_media: bool = True, bench: str = "jsonl") -> LoadResult:
    """A JSONL file of ``BenchItem`` rows; paths are relative to the file's folder."""
    path = Path(data)
    if path.is_dir():
        path = path / "bench.jsonl"
    if not path.is_file():
        raise BenchmarkFormatError(f"{path}: no such benchmark file")
    from fourdthinker.io import read_jsonl, resolve_inside

    root = path.parent
    items: list[BenchItem] = []
    skipped: list[dict] = []
    ids: set[str] = set()
    for i, row in enumerate(read_jsonl(path)):
        where = f"{path}:{i + 1}"
        _require(row, ("id", "video", "question", "options", "answer", "subtask"), where)
        row = {**row, "bench": row.get("bench", bench)}
        try:
            media = resolve_inside(root, row["video"])
        except ValueError as e:
            skipped.append({"id": row["id"], "reason": f"unsafe path: {e}"})
            continue
        if check_media and not media.exists():
            if row["id"] in ids:
                raise BenchmarkFormatError(f"{where}: duplicated id {row['id']!r}")
            ids.add(row["id"])
            skipped.append({"id": row["id"], "reason": f"missing video: {media}"})
            continue
        item = _make_item(row, where, skipped, ids)
        if item:
            items.append(item)
    return LoadResult(bench, root, items, skipped)


# ----------------------------------------------------------------------------- registry

_HUB_IDS = {"dsr-bench": "TencentARC/DSR_Suite-Data", "dyn-bench": "yu2hi13/Dyn-Bench", "vlm4d": "shijiezhou/VLM4D"}


def _hub_snapshot(repo_id: str) -> Path:
    """Download a hub dataset when the hub is reachable; a clear one-line error when not."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=repo_id, repo_type="dataset"))
    except Exception as e:  # offline, gated, unknown repo: all the same to the user
        raise BenchmarkFormatError(
            f"{repo_id}: not a local path, and the hub dataset could not be fetched ({type(e).__name__}); "
            f"download it yourself and pass --data /path/to/it"
        ) from None


def load_benchmark(bench: str, data: str | os.PathLike, *, check_media: bool = True, **kw) -> LoadResult:
    """Load any supported benchmark from a local path (or a hub dataset id when reachable).

    ``bench``: ``dsr-bench`` | ``dyn-bench`` | ``vlm4d`` | ``synthetic`` | ``jsonl``.
    For ``synthetic``, ``data`` is a world folder (clip folders with truth.json) or a ``bench.jsonl``."""
    bench = bench.lower()
    if bench not in BENCHES:
        raise ValueError(f"unknown benchmark {bench!r}; choose one of {', '.join(BENCHES)}")
    path = Path(data)
    if not path.exists():
        if re.fullmatch(r"[\w.-]+/[\w.-]+", str(data)) and not str(data).startswith("."):
            path = _hub_snapshot(str(data))
        else:
            hint = f" (hub id for {bench}: {_HUB_IDS[bench]})" if bench in _HUB_IDS else ""
            raise FileNotFoundError(f"{data}: no such file or folder{hint}")
    loaders: dict[str, Callable[..., LoadResult]] = {
        "dsr-bench": load_dsr_bench, "dyn-bench": load_dyn_bench, "vlm4d": load_vlm4d, "jsonl": load_jsonl_bench,
    }
    if bench == "synthetic":
        from fourdthinker.eval.synthetic import load_synthetic_bench

        return load_synthetic_bench(path, check_media=check_media, **kw)
    return loaders[bench](path, check_media=check_media, **kw)
