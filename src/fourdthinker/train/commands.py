"""`fourdthinker train ...`: DIFT and 4DRL (docs/method.md#dift, #rl)."""

from __future__ import annotations

import typer

from fourdthinker.train.dift_command import dift
from fourdthinker.train.rl_command import rl

app = typer.Typer(help="Training: `dift` (dynamic-imagery fine-tuning) and `rl` (4DRL, GRPO).", no_args_is_help=True)
app.command("dift")(dift)
app.command("rl")(rl)
