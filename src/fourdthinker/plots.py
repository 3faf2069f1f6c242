"""The one way every stage writes a matplotlib figure to disk: :func:`save_figure`.

It creates the parent folder, writes through ``io.atomic_path`` (a temp file beside the target,
then ``os.replace``: a killed run never leaves a half-written PNG that a rerun would take for a
finished one) and always closes the figure (pyplot keeps every open figure alive otherwise).
Matplotlib itself is imported by the callers (lazily, with the Agg backend); this module does not
import it, so importing it costs nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fourdthinker.io import atomic_path

__all__ = ["save_figure"]


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: float | None = None, **savefig_kw: Any) -> Path:
    """Save ``fig`` to ``path`` atomically (parent folders created), close it, return ``path``.

    ``dpi=None`` keeps matplotlib's default (``rcParams["savefig.dpi"]``), exactly as a plain
    ``fig.savefig(path)`` would. The format comes from ``path``'s suffix (``.png``, ``.pdf``, ...);
    a path without one is saved as ``rcParams["savefig.format"]`` under that exact name. The figure
    is closed even when saving fails."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        fmt = path.suffix[1:].lower() or None
        if fmt is None:
            from matplotlib import rcParams

            fmt = rcParams["savefig.format"]
        kw = dict(savefig_kw)
        if dpi is not None:
            kw["dpi"] = dpi
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, **kw)
    finally:
        plt.close(fig)
    return path
