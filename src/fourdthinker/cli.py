"""The ``fourdthinker`` command line: one sub-command per stage, no logic here.

Each stage keeps its commands in ``<stage>/commands.py`` (thin recipes: parse -> run -> report),
which import their heavy dependencies (torch, transformers) lazily so ``--help`` stays instant.
"""

from __future__ import annotations

import os

# Spin-waiting OpenMP threads waste most of a busy CPU (measured ~10x slower tiny-model steps on 2
# shared cores); set before torch loads. Export OMP_WAIT_POLICY yourself to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer  # noqa: E402

from fourdthinker import __version__
from fourdthinker.data import commands as data_commands
from fourdthinker.demo import commands as demo_commands
from fourdthinker.eval import commands as eval_commands
from fourdthinker.eval import probe_command
from fourdthinker.latent import commands as latent_commands
from fourdthinker.train import commands as train_commands
from fourdthinker.video import commands as video_commands
from fourdthinker.world import commands as world_commands

app = typer.Typer(
    name="fourdthinker",
    help=(
        "Think with 4D imagery: build 4D reasoning data from videos, train VLMs with latent visual "
        "tokens (DIFT, 4DRL), run and evaluate them. Start with `fourdthinker demo`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fourdthinker {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """fourdthinker command line."""


app.command("world")(world_commands.world)
app.add_typer(video_commands.app, name="video")
app.add_typer(data_commands.app, name="data")
app.add_typer(train_commands.app, name="train")
app.command("infer")(latent_commands.infer)
app.command("eval")(eval_commands.eval_cmd)
app.command("probe")(probe_command.probe)
app.command("demo")(demo_commands.demo)
app.command("ablate")(demo_commands.ablate)


if __name__ == "__main__":  # pragma: no cover
    app()
