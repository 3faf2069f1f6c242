"""`fourdthinker world`: generate the synthetic 4D world."""

from __future__ import annotations

import typer


def world(
    out: str = typer.Option(..., "--out", help="Output folder; one sub-folder per clip (clip_00000, ...)."),
    videos: int = typer.Option(200, "--videos", help="Number of clips. 200 take a few minutes on 2 cores."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed (and settings) gives the same world."),
    workers: int = typer.Option(0, "--workers", help="Processes (0 = all cores). Does not change the output."),
    width: int = typer.Option(192, "--width", help="Frame width (even). Larger = slower and bigger masks."),
    height: int = typer.Option(144, "--height", help="Frame height (even)."),
    fps: int = typer.Option(8, "--fps", help="Video frame rate (integer, so whole seconds fall on frames)."),
    codec: str = typer.Option("h264", "--codec", help="h264 or mpeg4."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar and no label table."),
) -> None:
    """Generate synthetic 4D clips with exact truth: video.mp4, meta.json, poses.npz (camera-to-world
    + intrinsics per frame), masks.npz (static landmark and moving object, per frame) and truth.json
    (camera-motion segments in the 12 SpatialVID types; the object's trajectory and its direction,
    distance and speed labels). Rerunning with the same --out resumes: finished clips are kept.

    Example: fourdthinker world --out data/world --videos 200 --seed 0
    """
    from rich.console import Console

    from fourdthinker.errors import UserValueError, require_out_dir, require_positive
    from fourdthinker.world.config import WorldConfig
    from fourdthinker.world.generate import (
        generate_world,
        label_distribution,
        missing_labels,
        print_label_table,
    )

    require_out_dir(out, "--out")
    require_positive("--videos", videos)
    require_positive("--workers", workers, allow_zero=True)
    require_positive("--fps", fps)
    for flag, v in (("--width", width), ("--height", height)):
        if v < 16 or v % 2:
            raise UserValueError(f"{flag} must be an even number >= 16, got {v}", f"pass e.g. {flag} 112")
    console = Console(stderr=False)
    try:
        cfg = WorldConfig(width=width, height=height, fps=fps, codec=codec)
        clips = generate_world(out, videos, seed, workers=workers or None, config=cfg, progress=not quiet)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    failed = videos - len(clips)
    if not quiet:
        counts = label_distribution(clips)
        print_label_table(counts, console)
        miss = missing_labels(counts)
        if miss:
            console.print(f"[yellow]{len(miss)} label(s) absent (use more --videos): {', '.join(miss)}[/yellow]")
    from pathlib import Path

    qfile = Path(out) / "quarantine.jsonl"
    console.print(f"{len(clips)} clips in {out}" + (f"; [red]{failed} failed" + (f", see {qfile}" if qfile.exists() else "")
                                                      + "[/red]" if failed else ""), soft_wrap=True)
    if failed:
        raise typer.Exit(1)
