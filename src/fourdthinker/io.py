"""Small file helpers every stage shares: atomic writes, JSONL append/read, safe paths.

Atomic = write to a temp file in the same folder, fsync, then ``os.replace``: a killed run never
leaves a half-written file behind, which is what makes every stage resumable.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class UnsafePathError(ValueError):
    """A path inside a data file resolves outside its dataset root."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it is renamed onto ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the final file the usual umask-based permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write all rows atomically; returns the count."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def append_jsonl(path: str | os.PathLike, row: dict) -> None:
    """Append one row and flush it to disk (predictions, quarantine): a kill loses at most this row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike, *, tolerate_truncated_tail: bool = False) -> list[dict]:
    """Read a JSONL file. A broken line raises ``ValueError`` naming the file and line, except a
    truncated *last* line when ``tolerate_truncated_tail`` (what a killed appender leaves)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    rows: list[dict] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if tolerate_truncated_tail and i == len(lines):
                break
            raise ValueError(f"{path}:{i}: not valid JSON ({e.msg})") from None
    return rows


def resolve_inside(root: str | os.PathLike, rel: str | os.PathLike) -> Path:
    """Resolve ``rel`` against ``root`` and refuse anything that escapes it (``..``, absolute
    paths, symlinks pointing out). Paths inside data files stay inside their root
    (docs/errors.md, path rules); an absolute path is accepted only when it lies inside."""
    root_p = Path(root).resolve()
    p = (root_p / rel).resolve()
    if p != root_p and root_p not in p.parents:
        raise UnsafePathError(f"{rel}: path escapes dataset root {root_p}")
    return p


def check_unique_ids(rows: Iterable[Any], where: str | os.PathLike, key: str = "id") -> None:
    """Refuse a record file in which two rows share an id (ids key predictions, resumes and
    quarantine files, so a duplicate would be answered twice or overwrite another row). The same
    one-line error everywhere: ``<file>:<line>: duplicated id 'x' (first on line N) — ...``.
    Rows that are not objects or have no id are left to the caller's own validation."""
    from fourdthinker.errors import UserValueError

    first: dict[str, int] = {}
    for line, row in enumerate(rows, 1):
        rid = row.get(key) if isinstance(row, dict) else None
        if rid is None:
            continue
        rid = str(rid)
        if rid in first:
            raise UserValueError(f"{where}:{line}: duplicated id {rid!r} (first on line {first[rid]})",
                                 "give every record a unique id")
        first[rid] = line


def allow_pickle_default() -> bool:
    """Whether pickle weight files (``pytorch_model.bin``) may be loaded: only when asked for.
    ``--allow-pickle`` on the command line sets ``FOURDTHINKER_ALLOW_PICKLE=1`` (docs/errors.md)."""
    return os.environ.get("FOURDTHINKER_ALLOW_PICKLE", "") not in ("", "0", "false", "False")
