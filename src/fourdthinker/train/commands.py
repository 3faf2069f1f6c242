"""`fourdthinker train ...`: DIFT and 4DRL."""

from __future__ import annotations

import typer

app = typer.Typer(help="Training: `dift` (SPEC §3) and `rl` (4DRL, SPEC §5).", no_args_is_help=True)


@app.command("dift")
def dift(data: str = typer.Option(..., "--data")) -> None:
    """Dynamic-imagery fine-tuning."""
    raise NotImplementedError("fourdthinker train dift: not implemented yet (issue 4)")


@app.command("rl")
def rl(data: str = typer.Option(..., "--data")) -> None:
    """4DRL: GRPO with latent-recurrent rollouts."""
    raise NotImplementedError("fourdthinker train rl: not implemented yet (issue 6)")
