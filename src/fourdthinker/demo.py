"""`fourdthinker demo` and `fourdthinker ablate`: the end-to-end embedded run."""

from __future__ import annotations

import typer


def demo(
    quick: bool = typer.Option(False, "--quick", help="Smallest run (< 3 min on 2 cores)."),
    out: str = typer.Option("demo_out", "--out", help="Output folder (resumable)."),
) -> None:
    """World -> data -> DIFT -> 4DRL -> evaluation, on CPU, with the embedded defaults."""
    raise NotImplementedError("fourdthinker demo: not implemented yet (issue 8)")


def ablate(what: str = typer.Option(..., "--what", help="loss | reward | latent-size")) -> None:
    """Reproduce the paper's ablation tables (4 and 5) on the embedded defaults."""
    raise NotImplementedError("fourdthinker ablate: not implemented yet (issue 8)")
