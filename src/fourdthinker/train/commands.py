"""`fourdthinker train ...`: DIFT and 4DRL (docs/method.md#dift, #rl)."""

from __future__ import annotations

import typer

from fourdthinker.train.commands_dift import dift
from fourdthinker.train.commands_rl import rl

app = typer.Typer(help="Training: `dift` (dynamic-imagery fine-tuning) and `rl` (4DRL, GRPO).", no_args_is_help=True)
app.command("dift")(dift)
app.command("rl")(rl)
