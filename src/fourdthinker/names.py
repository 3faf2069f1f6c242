"""The one slug helper: a display name ("DIFT + 4DRL", "DIFT=runs/dift") as a folder, file or
headline-key name. Every stage that names things after a model or a row uses it."""

from __future__ import annotations

import re

__all__ = ["slug"]


def slug(name: str, sep: str = "-", *, lower: bool = True, keep: str = "", default: str = "") -> str:
    """Every run of characters other than ASCII letters, digits and ``keep`` becomes ``sep``;
    ``sep`` is stripped from both ends; ``default`` stands in for an empty result. ``lower``
    lower-cases first (otherwise capitals are kept).

    >>> slug("CoT SFT + GRPO")
    'cot-sft-grpo'
    >>> slug("DIFT + 4DRL", "_")
    'dift_4drl'
    >>> slug("DIFT=runs/dift v1.2", "_", lower=False, keep="._-", default="model")
    'DIFT_runs_dift_v1.2'
    """
    letters = "a-z0-9" if lower else "A-Za-z0-9"
    text = name.lower() if lower else name
    return re.sub(f"[^{letters}{re.escape(keep)}]+", sep, text).strip(sep) or default
