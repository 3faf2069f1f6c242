"""`fourdthinker video ...`: probe and sample videos."""

from __future__ import annotations

import typer

app = typer.Typer(help="Video tools: probe a file, sample frames at a target FPS.", no_args_is_help=True)


def _fail(e: Exception) -> None:
    typer.echo(f"error: {e}", err=True)  # one line, never wrapped
    raise typer.Exit(2) from None


@app.command("probe")
def probe_cmd(video: str = typer.Argument(..., help="Video file (mp4, mkv, avi, ...) or a world clip folder.")) -> None:
    """Print size, frame rate, frame count, duration, codec and keyframe spacing of a video.

    Example: fourdthinker video probe data/world/clip_00000/video.mp4
    """
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from fourdthinker.video import VideoError, probe

    if Path(video).is_dir():
        video = str(Path(video) / "video.mp4")
    try:
        info = probe(video)
    except VideoError as e:
        _fail(e)
    t = Table(show_header=False, title=video)
    for k, v in info.to_dict().items():
        t.add_row(k, f"{v:.3f}" if isinstance(v, float) else str(v))
    Console().print(t)


@app.command("sample")
def sample(
    video: str = typer.Argument(..., help="Video file, or a world clip folder (its video.mp4 is used)."),
    fps: float = typer.Option(1.0, "--fps", help="Samples per second (the paper uses 1)."),
    max_pixels: int = typer.Option(0, "--max-pixels", help="Cap each frame to this many pixels (0 = no cap)."),
    max_frames: int = typer.Option(0, "--max-frames", help="At most this many samples, spread evenly (0 = all)."),
    method: str = typer.Option("auto", "--method", help="auto (by keyframe spacing), seek or sequential."),
    out_dir: str = typer.Option("", "--out-dir", help="Write each sample as PNG (frame_0000.png ...) here."),
    sheet: str = typer.Option("", "--sheet", help="Write a contact sheet PNG of the samples to this path."),
    overlay_masks: str = typer.Option("", "--overlay-masks", help="World clip folder whose masks.npz to overlay "
                                      "(Eq. 1: alpha 0.4, red) on the samples."),
    objects: str = typer.Option("both", "--objects", help="Which masks to overlay: dynamic (red), static (red), "
                                "or both (dynamic red, static blue)."),
    outline: bool = typer.Option(True, "--outline/--no-outline", help="Also draw mask outlines (pictures only)."),
    cols: int = typer.Option(5, "--cols", help="Contact sheet columns."),
    scale: int = typer.Option(2, "--scale", help="Contact sheet enlargement (nearest neighbour)."),
) -> None:
    """Sample frames at a target FPS, optionally with mask overlays, as PNGs and/or a contact sheet.

    Example: fourdthinker video sample data/world/clip_00000 --sheet sheet.png --overlay-masks data/world/clip_00000
    """
    from pathlib import Path

    import numpy as np
    from rich.console import Console

    from fourdthinker.errors import require_out_dir, require_out_file, require_positive
    from fourdthinker.video import BLUE, RED, VideoError, contact_sheet, overlay, sample_frames, save_png
    from fourdthinker.video.overlay import draw_outline

    require_positive("--fps", fps)
    for flag, v in (("--max-pixels", max_pixels), ("--max-frames", max_frames)):
        require_positive(flag, v, allow_zero=True)
    for flag, v in (("--cols", cols), ("--scale", scale)):
        require_positive(flag, v)
    require_out_dir(out_dir or None, "--out-dir")
    require_out_file(sheet or None, "--sheet")
    console = Console()
    path = Path(video)
    if path.is_dir():
        path = path / "video.mp4"
    if objects not in ("dynamic", "static", "both"):
        _fail(ValueError(f"--objects must be dynamic, static or both, got {objects!r}"))
    try:
        s = sample_frames(path, fps, max_pixels=max_pixels or None, max_frames=max_frames or None, method=method)
    except (VideoError, ValueError) as e:
        _fail(e)
    frames = s.frames
    caps = [f"t={t:.1f}s  #{i}" for t, i in zip(s.times_s, s.frame_indices, strict=True)]
    title = f"{path}  ({s.method}, {fps:g} fps)"
    if overlay_masks:
        from fourdthinker.world.clip import ClipError, load_clip

        try:
            clip = load_clip(overlay_masks)
        except ClipError as e:
            _fail(e)
        if clip.masks_static is None:
            _fail(ValueError(f"{overlay_masks}: no masks.npz to overlay"))
        fh, fw = frames[0].shape[:2]

        def fit(m):  # masks follow the frames when --max-pixels shrank them (nearest neighbour)
            if m.shape == (fh, fw):
                return m
            from PIL import Image

            return np.asarray(Image.fromarray(m).resize((fw, fh), Image.Resampling.NEAREST))
        layers = {"dynamic": [(clip.masks_dynamic, RED)], "static": [(clip.masks_static, RED)],
                  "both": [(clip.masks_static, BLUE), (clip.masks_dynamic, RED)]}[objects]
        out = []
        for f, i in zip(frames, s.frame_indices, strict=True):
            if i >= len(clip.masks_static):
                _fail(ValueError(f"{overlay_masks}: video frame {i} has no mask (masks cover {len(clip.masks_static)})"))
            for masks, col in layers:
                m = fit(masks[i])
                f = overlay(f, m, 0.4, col)
                if outline:
                    f = draw_outline(f, m, col)
            out.append(f)
        frames = out
        if clip.truth is not None:  # say what the truth is, so the picture can be checked by eye
            tr = clip.truth
            om = tr.object_motion
            dyn = (f"{tr.dynamic_object.name} ({om.direction}, {om.distance}"
                   + (f", {om.speed})" if om.speed_defined else ")"))
            title += {"both": f" | blue: {tr.static_object.name}; red: {dyn}",
                      "static": f" | red: {tr.static_object.name}", "dynamic": f" | red: {dyn}"}[objects]
            for k, i in enumerate(s.frame_indices):
                segs = [g.label for g in tr.camera_segments if g.start_frame <= i < g.end_frame]
                moving = om.active_start_frame <= i < om.active_end_frame
                caps[k] += "  " + (f"cam: {segs[0]}" if segs else ("object moves" if moving else ""))
    if out_dir:
        od = Path(out_dir)
        for k, f in enumerate(frames):
            save_png(od / f"frame_{k:04d}.png", f)
    if sheet:
        save_png(sheet, contact_sheet(frames, caps, cols=cols, scale=scale, title=title))
    console.print(f"{len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]} from {path} "
                  f"({s.method}; video {s.info.fps:g} fps, keyframe every {s.info.keyframe_interval_s:.2f} s)")
    if s.missing_times_s:
        console.print(f"[yellow]stream ended early: {len(s.missing_times_s)} target time(s) missing[/yellow]")
    if out_dir:
        console.print(f"PNGs in {out_dir}")
    if sheet:
        console.print(f"contact sheet: {sheet}")
