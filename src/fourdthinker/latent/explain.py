"""Imagery inspection: "what did the model imagine?" (docs/inference.md#explain).

For every latent block the decoder produced (K fed-back vectors), find the overlay images whose
pooled latents (Eq. 5, the DIFT targets; docs/method.md#eq-5) are closest, and draw them as a PNG strip (plus an
HTML page). The score of bank image j for block b is the position-aligned cosine the DIFT loss
(Eq. 9) trains:

    s(b, j) = 1/K * sum_k cos(e_{b,k}, z_{j,k})

so a model whose imagery tracks the object retrieves overlays of that object at the right place;
one that reasons around its latents retrieves arbitrary images with low scores.

Bank: any folder of overlay images (PNG/JPG, searched recursively), e.g. the ``img/`` folder of a
``fourdthinker data build`` output; latents come from ``LatentTargetCache`` (computed once, cached).
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["Bank", "aligned_cosine", "build_bank", "explain", "nearest", "split_blocks", "write_strip"]

IMAGE_EXTS = (".png", ".jpg", ".jpeg")


def aligned_cosine(block: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """s_j = mean_k cos(block_k, bank_{j,k}) for block [K, D] and bank [N, K, D] -> [N].

    >>> aligned_cosine(torch.tensor([[1.0, 0.0]]), torch.tensor([[[2.0, 0.0]], [[0.0, 1.0]]]))
    tensor([1., 0.])
    """
    if block.ndim != 2 or bank.ndim != 3 or bank.shape[1:] != block.shape:
        raise ValueError(f"block must be [K, D] and bank [N, K, D], got {tuple(block.shape)} and {tuple(bank.shape)}")
    a = torch.nn.functional.normalize(block.float(), dim=-1)  # [K, D]
    b = torch.nn.functional.normalize(bank.float(), dim=-1)  # [N, K, D]
    return (b * a[None]).sum(-1).mean(-1)


def split_blocks(latent_inputs: torch.Tensor, k: int) -> list[torch.Tensor]:
    """Fed-back vectors [n, D] of one answer -> one [k, D] tensor per latent block (a block cut
    short by the token budget is dropped)."""
    n = latent_inputs.shape[0] // k
    return [latent_inputs[i * k : (i + 1) * k] for i in range(n)]


@dataclass
class Bank:
    paths: list[Path]
    latents: torch.Tensor  # [N, K, D]


def bank_folder(folder: str | os.PathLike) -> Path:
    """The imagery bank a ``--bank`` names: a folder of overlay images, or a dataset root from
    `fourdthinker data build` (its overlays are ``clips/<clip>/img/*.png``; ``<root>/img`` is read
    as the root too). A missing folder is a one-line ``FileNotFoundError``."""
    root = Path(folder)
    if not root.is_dir() and root.name == "img" and (root.parent / "clips").is_dir():
        root = root.parent
    if not root.is_dir():
        raise FileNotFoundError(f"{folder}: imagery bank folder not found (pass a folder of overlay images or a "
                                f"dataset root from `fourdthinker data build`)")
    return root


def _bank_images(root: Path) -> list[Path]:
    if (root / "clips").is_dir():  # a dataset root: only the overlay images, not the sampled frames
        return sorted(p for p in root.glob("clips/*/img/*") if p.suffix.lower() in IMAGE_EXTS)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS)


def build_bank(adapter, k: int, folder: str | os.PathLike, *, max_images: int = 2000, cache_dir=None) -> Bank:
    """Pooled latents of every overlay image under ``folder`` (at most ``max_images``; a dataset
    root contributes its ``clips/*/img`` overlays, see ``bank_folder``)."""
    from PIL import Image

    from fourdthinker.latent.targets import LatentTargetCache

    root = bank_folder(folder)
    paths = _bank_images(root)[:max_images]
    if not paths:
        raise ValueError(f"{root}: no PNG/JPG overlay images in the imagery bank")
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    cache = LatentTargetCache(adapter, k, cache_dir) if cache_dir is not None else LatentTargetCache(adapter, k)
    z = cache.get(images)  # list of [K, D]
    return Bank(paths=paths, latents=torch.stack([t.float().cpu() for t in z]))


def nearest(blocks: Sequence[torch.Tensor], bank: Bank, top: int = 3) -> list[list[tuple[Path, float]]]:
    """Per block, the ``top`` bank images by aligned cosine, best first."""
    out = []
    for blk in blocks:
        s = aligned_cosine(blk.float().cpu(), bank.latents)
        idx = s.argsort(descending=True)[:top].tolist()
        out.append([(bank.paths[i], float(s[i])) for i in idx])
    return out


def write_strip(matches: list[list[tuple[Path, float]]], out_png: str | os.PathLike, *, title: str = "",
                thumb: int = 128) -> Path:
    """One row per latent block: its label, then the nearest overlay images with their scores."""
    from PIL import Image, ImageDraw

    out_png = Path(out_png)
    rows = max(1, len(matches))
    cols = max((len(m) for m in matches), default=1)
    label_w, head, pad, cap = 110, 28 if title else 6, 6, 16
    W = label_w + cols * (thumb + pad) + pad
    H = head + rows * (thumb + cap + pad) + pad
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    d = ImageDraw.Draw(canvas)
    if title:
        d.text((pad, 8), title[:120], fill=(0, 0, 0))
    if not matches:
        d.text((pad, head + 10), "no latent block was produced", fill=(160, 0, 0))
    for r, row in enumerate(matches):
        y = head + r * (thumb + cap + pad)
        d.text((pad, y + thumb // 2 - 6), f"imagery #{r + 1}", fill=(0, 0, 0))
        for c, (path, score) in enumerate(row):
            x = label_w + c * (thumb + pad)
            im = Image.open(path).convert("RGB")
            im.thumbnail((thumb, thumb))
            canvas.paste(im, (x, y))
            d.text((x, y + thumb + 2), f"cos {score:+.3f} {path.stem[-12:]}", fill=(40, 40, 40))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_png.with_name(out_png.name + ".tmp.png")
    canvas.save(tmp)
    os.replace(tmp, out_png)
    return out_png


def _write_html(matches, png: Path, out_html: Path, *, question: str, text: str) -> Path:
    data = base64.b64encode(png.read_bytes()).decode()
    rows = "".join(
        f"<tr><td>imagery #{i + 1}</td><td>" + "<br>".join(f"{html.escape(str(p))} (cos {s:+.3f})" for p, s in m) + "</td></tr>"
        for i, m in enumerate(matches)
    )
    page = (
        "<!doctype html><meta charset='utf-8'><title>what the model imagined</title>"
        f"<h2>What the model imagined</h2><p><b>Question:</b> {html.escape(question)}</p>"
        f"<p><b>Answer text:</b> <code>{html.escape(text)}</code></p>"
        f"<img src='data:image/png;base64,{data}'><table border=1 cellpadding=4>{rows}</table>"
        "<p>Score: mean over the K latent steps of the cosine between the fed-back state and the bank "
        "image's pooled latent at the same step (the DIFT objective, Eq. 9).</p>"
    )
    out_html.write_text(page, encoding="utf-8")
    return out_html


def explain(result, bank: Bank, k: int, out_dir: str | os.PathLike, *, name: str = "explain", question: str = "",
            top: int = 3) -> dict:
    """Nearest bank images for each latent block of one ``DecodeResult``; writes
    ``<out_dir>/<name>.png`` and ``.html``. Returns ``{png, html, blocks: [[{image, cosine}]]}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    matches = nearest(split_blocks(result.latent_inputs, k), bank, top=top)
    png = write_strip(matches, out / f"{name}.png", title=f"what the model imagined: {question}")
    page = _write_html(matches, png, out / f"{name}.html", question=question, text=result.text)
    return {
        "png": str(png),
        "html": str(page),
        "blocks": [[{"image": str(p), "cosine": round(s, 4)} for p, s in m] for m in matches],
    }
