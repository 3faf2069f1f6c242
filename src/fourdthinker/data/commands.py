"""`fourdthinker data ...`: build, audit, show and import 4D reasoning data."""

from __future__ import annotations

import typer

app = typer.Typer(help="Annotation-free 4D reasoning data: build, audit, show, import.", no_args_is_help=True)


@app.command("build")
def build(videos: str = typer.Option(..., "--videos"), out: str = typer.Option(..., "--out")) -> None:
    """Build DIFT and RL records from a folder of clips."""
    raise NotImplementedError("fourdthinker data build: not implemented yet (issue 3)")
