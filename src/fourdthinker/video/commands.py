"""`fourdthinker video ...`: probe and sample videos."""

from __future__ import annotations

import typer

app = typer.Typer(help="Video tools: probe a file, sample frames at a target FPS.", no_args_is_help=True)


@app.command("sample")
def sample(video: str = typer.Argument(..., help="Video file.")) -> None:
    """Sample frames at a target FPS."""
    raise NotImplementedError("fourdthinker video sample: not implemented yet (issue 2)")
