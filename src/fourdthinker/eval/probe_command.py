"""`fourdthinker probe`: do the latents matter?"""

from __future__ import annotations

import typer


def probe(
    model: str = typer.Option(..., "--model"),
    bench: str = typer.Option(..., "--bench"),
    data: str = typer.Option(..., "--data"),
) -> None:
    """Run a benchmark under every latent intervention and report what changes."""
    raise NotImplementedError("fourdthinker probe: not implemented yet (issue 9)")
