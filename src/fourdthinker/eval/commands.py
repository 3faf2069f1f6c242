"""`fourdthinker eval`."""

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

