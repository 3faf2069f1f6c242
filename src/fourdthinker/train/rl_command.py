"""`fourdthinker train rl`."""

from __future__ import annotations

import typer


def rl(data: str = typer.Option(..., "--data", help="RL records folder.")) -> None:
    """4DRL: GRPO with latent-recurrent rollouts (SPEC §5)."""
    raise NotImplementedError("fourdthinker train rl: not implemented yet (issue 6)")
