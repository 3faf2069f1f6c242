"""`fourdthinker eval` and `fourdthinker probe`."""

from __future__ import annotations

import typer


def eval_cmd(
    model: list[str] = typer.Option(..., "--model"),
    bench: str = typer.Option(..., "--bench"),
    data: str = typer.Option(..., "--data"),
    out: str = typer.Option(..., "--out"),
) -> None:
    """Evaluate models on DSR-Bench, Dyn-Bench, VLM4D or the synthetic benchmark."""
    raise NotImplementedError("fourdthinker eval: not implemented yet (issue 7)")


def probe(
    model: str = typer.Option(..., "--model"),
    bench: str = typer.Option(..., "--bench"),
    data: str = typer.Option(..., "--data"),
) -> None:
    """Do the latents matter? Run a benchmark under latent interventions."""
    raise NotImplementedError("fourdthinker probe: not implemented yet (issue 9)")
