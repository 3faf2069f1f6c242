"""One prepared tree for the CLI tests: the inputs the documented commands expect, at tiny size.

Built once per session (about 30 s of CPU), then copied for each user of it (``fresh_tree``):
small text files are copied, big binary files (model weights, videos, masks, PNGs) are
hard-linked, since every writer replaces those atomically instead of editing them in place.

Layout (relative paths, as the docs use them)::

    data/world/clip_0000{0..3}/     4 clips, seed 0, 112x84 at 4 fps (the documented world at tiny size)
    data/world_test/                4 clips, seed 777, same settings
    data/dift/                      `data build` of data/world (rule oracle, gt masks): dift.jsonl, rl.jsonl, clips/
    runs/dift/                      a tiny model with latent tokens (the qwen2.5-vl-tiny preset, as DIFT saves it)
    runs/rl/final/                  the same weights in the 4DRL layout (a run folder with final/)
    clip.mp4, my_video.mp4          a world clip's video
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TINY_WORLD = {"width": 112, "height": 84, "fps": 4}
N_CLIPS = 4
BIG = (".safetensors", ".mp4", ".npz", ".png", ".jpg", ".bin")


def _link_or_copy(src: str, dst: str) -> str:
    if src.endswith(BIG):
        try:
            os.link(src, dst)
            return dst
        except OSError:
            pass
    return shutil.copy2(src, dst)


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, copy_function=_link_or_copy, symlinks=True, dirs_exist_ok=True)
    return dst


@pytest.fixture(scope="session")
def prepared_tree(tmp_path_factory) -> Path:
    """The master copy (never run commands in it: use ``fresh_tree``)."""
    from fourdthinker.data.config import BuildConfig
    from fourdthinker.data.runner import build
    from fourdthinker.models import load
    from fourdthinker.train.trainer import save_final
    from fourdthinker.world import WorldConfig, generate_world

    root = tmp_path_factory.mktemp("prepared")
    cfg = WorldConfig(**TINY_WORLD)
    assert len(generate_world(root / "data/world", N_CLIPS, seed=0, workers=1, config=cfg, progress=False)) == N_CLIPS
    assert len(generate_world(root / "data/world_test", N_CLIPS, seed=777, workers=1, config=cfg,
                              progress=False)) == N_CLIPS
    build(root / "data/world", root / "data/dift", BuildConfig(), workers=1, progress=False)
    ad = load("qwen2.5-vl-tiny")  # the preset with its three latent tokens, saved as DIFT saves a model
    save_final(ad.model, ad.processor, root / "runs/dift", extra_config={"latent_size": 4})
    copy_tree(root / "runs/dift", root / "runs/rl/final")
    for name in ("clip.mp4", "my_video.mp4"):
        shutil.copy2(root / "data/world/clip_00000/video.mp4", root / name)
    return root


@pytest.fixture
def fresh_tree(prepared_tree, tmp_path) -> Path:
    """A private copy of the prepared tree for one test."""
    return copy_tree(prepared_tree, tmp_path / "tree")


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a real CLI run: this checkout's sources, wide piped output, no hub."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("FOURDTHINKER_DEBUG", None)
    env.pop("FOURDTHINKER_ALLOW_PICKLE", None)
    env.update(extra)
    return env


def run_cli(args: list[str], cwd: Path, *, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``fourdthinker ARGS`` as a user runs it (a subprocess of the real entry point)."""
    return subprocess.run([sys.executable, "-m", "fourdthinker.cli", *args], cwd=cwd, env=env or cli_env(),
                          capture_output=True, text=True, timeout=timeout)
