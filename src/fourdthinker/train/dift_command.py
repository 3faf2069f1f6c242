"""`fourdthinker train dift`."""

from __future__ import annotations

import typer


def dift(data: str = typer.Option(..., "--data", help="DIFT records folder.")) -> None:
    """Dynamic-imagery fine-tuning (SPEC §3)."""
    raise NotImplementedError("fourdthinker train dift: not implemented yet (issue 4)")
