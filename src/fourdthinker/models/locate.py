"""Decide what a ``--model`` / ``--init`` string names, without waiting on the network.

``resolve_model(spec)`` returns what ``from_pretrained`` should load, or raises a one-line
``UserError`` at once (docs/errors.md):

* a preset name (``qwen2.5-vl-tiny``) is returned unchanged;
* an existing folder resolves to its model: the folder itself when it holds ``config.json``, else
  its ``final/`` (a 4DRL run folder: ``runs/rl`` and ``runs/rl/final`` both work; for a DIFT run,
  whose model sits in the run folder itself, ``runs/dift/final`` means ``runs/dift``);
* a string that looks local (starts with ``./``, ``../``, ``/`` or ``~``; more than one ``/``; an
  existing first folder such as ``runs/``; a run-folder name such as ``runs/...``, ``.../final`` or
  ``.../checkpoint-N``) and does not exist fails at once: it is never taken for a hub id;
* ``org/name`` is a hub id: fine when it is in the local hub cache; otherwise the hub must answer a
  quick request (3 s), and when it does not (or ``HF_HUB_OFFLINE`` is set) it fails at once with
  the download hint instead of ~30 s of retries and a long traceback.

Weights must be safetensors unless pickle is allowed (``--allow-pickle`` or
``FOURDTHINKER_ALLOW_PICKLE=1``): a folder with only ``pytorch_model.bin`` is refused up front.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from fourdthinker.errors import UserFileNotFoundError, UserValueError
from fourdthinker.io import allow_pickle_default

# Folder names that only a local run layout uses (never the org of a hub id we would load).
_RUN_ROOTS = {"runs", "run", "outputs", "output", "out", "checkpoints", "models", "demo_out", "ablate_out", "data"}
_RUN_LEAF = re.compile(r"^(final|checkpoint-\d+|step-\d+|checkpoints)$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PICKLE = ("pytorch_model.bin", "pytorch_model.bin.index.json")
_SAFE = ("model.safetensors", "model.safetensors.index.json")


def looks_local(spec: str) -> bool:
    """True when ``spec`` can only mean a path on this machine (see the module docstring)."""
    if spec.startswith(("./", "../", "/", "~", ".\\")) or spec in (".", "..") or "\\" in spec:
        return True
    parts = [p for p in spec.split("/") if p]
    if len(parts) != 2 or not _HUB_ID.match(spec):
        return True
    return bool(Path(parts[0]).is_dir() or parts[0] in _RUN_ROOTS or _RUN_LEAF.match(parts[1]))


def _model_dir(p: Path, spec: str) -> Path:
    if (p / "config.json").is_file():
        return p
    if (p / "final" / "config.json").is_file():
        return p / "final"
    ckpts = sorted(p.glob("checkpoint-*")) + sorted((p / "checkpoints").glob("step-*"))
    hint = (f"pass a checkpoint ({ckpts[-1]}) or rerun the training to finish it" if ckpts
            else "pass the folder that holds config.json (a run's final model, e.g. runs/rl/final)")
    raise UserFileNotFoundError(f"{spec}: not a model folder (no config.json, no final/config.json)", hint)


def check_weights(d: Path, spec: str, allow_pickle: bool | None = None) -> None:
    """Refuse a model folder whose weights are pickle only (``pytorch_model.bin``) unless allowed."""
    allow = allow_pickle_default() if allow_pickle is None else allow_pickle
    has_safe = any((d / f).is_file() for f in _SAFE) or any(d.glob("*.safetensors"))
    has_pickle = any((d / f).is_file() for f in _PICKLE) or any(d.glob("pytorch_model-*.bin"))
    if has_pickle and not has_safe and not allow:
        raise UserValueError(
            f"{spec}: weights are pickle only (pytorch_model.bin); loading pickle can run code",
            "convert them to safetensors, or pass --allow-pickle if you created this file yourself")


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> str | None:
    """None when the hub answers a HEAD request within ``timeout``; else a one-line reason."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    try:
        import httpx

        httpx.head(constants.ENDPOINT, timeout=timeout, follow_redirects=False)
        return None
    except Exception as e:  # noqa: BLE001 -- DNS, refused, timeout, proxy: all mean "unreachable"
        return f"{constants.ENDPOINT} is unreachable ({type(e).__name__})"


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # noqa: BLE001 -- an odd id or cache layout: not cached
        return False


def resolve_model(spec: str, *, allow_pickle: bool | None = None, check_hub: bool = True) -> str:
    """What to load for ``spec`` (a preset, a local folder or a hub id); a one-line error otherwise."""
    from fourdthinker.models import PRESETS

    spec = str(spec).strip()
    if not spec:
        raise UserValueError("the model is empty", f"pass a preset ({', '.join(PRESETS)}), a model folder or a hub id")
    if spec in PRESETS:
        return spec
    p = Path(spec).expanduser()
    if p.exists():
        if not p.is_dir():
            raise UserValueError(f"{spec}: is a file, not a model folder", "pass the folder that holds config.json")
        d = _model_dir(p, spec)
        check_weights(d, spec, allow_pickle)
        return str(d)
    if p.name == "final" and (p.parent / "config.json").is_file():
        # DIFT writes its model into the run folder itself, 4DRL into <run>/final: accept both
        # spellings for both layouts (`--init runs/dift/final` works like `--init runs/dift`).
        check_weights(p.parent, spec, allow_pickle)
        return str(p.parent)
    if looks_local(spec):
        raise UserFileNotFoundError(
            f"{spec}: no such model folder",
            f"check the path, train one first (e.g. `fourdthinker train dift --out {spec}`), or pass a preset "
            f"({', '.join(PRESETS)})")
    if check_hub and not _in_hub_cache(spec):
        why = hub_reachable()
        if why:
            raise UserFileNotFoundError(
                f"{spec}: not a local folder and not in the hub cache, and {why}",
                f"download it where the hub is reachable (`huggingface-cli download {spec} --local-dir models/"
                f"{spec.split('/')[-1]}`) and pass that folder")
    return spec


__all__ = ["allow_pickle_default", "check_weights", "hub_reachable", "looks_local", "resolve_model"]
