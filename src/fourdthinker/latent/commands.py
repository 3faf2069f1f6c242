"""`fourdthinker infer`: latent-recurrent inference on a video + question."""

from __future__ import annotations

import typer


def infer(
    model: str = typer.Option(..., "--model"),
    video: str = typer.Option(None, "--video"),
    question: str = typer.Option(None, "--question"),
) -> None:
    """Answer a question about a video, thinking with latent imagery (SPEC Eq. 10)."""
    raise NotImplementedError("fourdthinker infer: not implemented yet (issue 5)")
