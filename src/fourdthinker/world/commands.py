"""`fourdthinker world`: generate the synthetic 4D world."""

from __future__ import annotations

import typer


def world(
    out: str = typer.Option(..., "--out", help="Output folder; one sub-folder per clip."),
    videos: int = typer.Option(200, "--videos", help="Number of clips."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed gives the same world."),
) -> None:
    """Generate synthetic 4D clips with exact truth (poses, masks, camera and object labels)."""
    raise NotImplementedError("fourdthinker world: not implemented yet (issue 2)")
