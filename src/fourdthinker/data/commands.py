"""`fourdthinker data ...`: build, audit, show and import 4D reasoning data.

Thin recipes: parse options -> call the library (``data.runner``, ``data.audit``, ``data.show``,
``data.importer``) -> print a rich summary. Heavy imports happen inside the commands.
"""

from __future__ import annotations

import typer

from fourdthinker.cli_config import config_command, option
from fourdthinker.data.config import BuildConfig

app = typer.Typer(help="Annotation-free 4D reasoning data: build, audit, show, import.", no_args_is_help=True)


def _build(config: str | None = None, videos: str = "", out: str = "", workers: int | None = None,
           executor: str = "process", limit: int | None = None, overwrite: bool = False, retry_quarantined: bool = False,
           **flags) -> None:
    """Build DIFT (imagery CoT) and RL (QA) records from a folder of clips.

    Example: fourdthinker world --out data/world --videos 200 && fourdthinker data build --videos data/world --out data/dift
    """
    from pathlib import Path

    from rich.console import Console

    from fourdthinker.cli_config import config_from_flags
    from fourdthinker.data.runner import build as run_build
    from fourdthinker.data.runner import summary_table
    from fourdthinker.errors import UserFileNotFoundError, require_out_dir, require_positive

    # Checked before any work: numbers, folders, and the oracle's key variable.
    require_positive("--workers", workers)
    require_positive("--limit", limit)
    if not Path(videos).is_dir():
        raise UserFileNotFoundError(f"--videos {videos}: no such folder",
                                    "pass a folder of clips (e.g. `fourdthinker world --out data/world` first)")
    require_out_dir(out, "--out")
    cfg = config_from_flags(BuildConfig, config, flags)  # bounds and checks: BuildConfig (data/config.py)
    if cfg.oracle == "openai":
        import os

        from fourdthinker.endpoints import require_api_key

        base = cfg.oracle_base_url or os.environ.get("FOURDTHINKER_ORACLE_BASE_URL") or "https://api.openai.com/v1"
        require_api_key(cfg.oracle_api_key_env, base, "--oracle-api-key-env")
    s = run_build(videos, out, cfg, workers=workers, executor=executor, overwrite=overwrite,
                  retry_quarantined=retry_quarantined, limit=limit)
    Console().print(summary_table(s))
    typer.echo(f"wrote {out}/dift.jsonl, {out}/rl.jsonl ({sum(s.records.values())} records); quarantine: {out}/quarantine.jsonl")


app.command("build")(config_command(BuildConfig, _build, name="build", doc=_build.__doc__, extra=[
    option("videos", str, ..., "--videos", help="Folder of clip folders: the world's output (`fourdthinker world`) or "
           "SpatialVID-style clips (video + poses.npy + intrinsics.npy)."),
    option("out", str, ..., "--out", help="Dataset root to write (dift.jsonl, rl.jsonl, clips/...). Rerun the same "
           "command to resume after a crash."),
    option("workers", int | None, None, "--workers", help="Parallel clip workers (default: all cores)."),
    option("executor", str, "process", "--executor", help="process (local pool) or ray (cluster; needs `pip install ray`)."),
    option("limit", int | None, None, "--limit", help="Only the first N clips (sorted by name)."),
    option("overwrite", bool, False, "--overwrite", help="Rebuild a folder built with other settings."),
    option("retry_quarantined", bool, False, "--retry-quarantined", help="Try quarantined clips again on this run."),
]))


@app.command("audit")
def audit(
    videos: str = typer.Option(..., "--videos", help="The world folder the data was built from (has truth.json per clip)."),
    data: str = typer.Option(..., "--data", help="The dataset root written by `data build`."),
) -> None:
    """Compare the labels the pipeline derived with the world's truth: agreement + confusion per task."""
    from rich.console import Console

    from fourdthinker.data.audit import AUDIT_TASKS, confusion_table
    from fourdthinker.data.audit import audit as run_audit
    from fourdthinker.errors import UserValueError

    res = run_audit(videos, data)
    if not any(res[t].n for t in AUDIT_TASKS):
        raise UserValueError(f"--data {data}: no record could be compared with the truth in --videos {videos}",
                             "check that --data was built from --videos (`fourdthinker data build --videos "
                             f"{videos} --out {data}`)")
    con = Console(width=max(Console().width, 140))  # confusion matrices need the columns
    for t in AUDIT_TASKS:
        if res[t].n:
            con.print(confusion_table(t, res[t]))
    for t in AUDIT_TASKS:
        typer.echo(f"{t}: {res[t].agreement:.1f}" if res[t].n else f"{t}: n/a (no records)")


@app.command("show")
def show(
    record_id: str = typer.Argument(..., help="Record id, e.g. clip_00000_00_camera (see dift.jsonl)."),
    data: str = typer.Option(..., "--data", help="Dataset root (or a dift.jsonl)."),
    out: str = typer.Option("record.png", "--out", help="PNG to write."),
) -> None:
    """Render one record (frames, overlays, question, reasoning) to a PNG."""
    from fourdthinker.data.show import find_record, render_record
    from fourdthinker.errors import UserValueError, require_out_file

    require_out_file(out, "--out")
    try:
        rec, root = find_record(data, record_id)
    except KeyError as e:
        raise UserValueError(str(e.args[0]), "see the ids in dift.jsonl") from None
    typer.echo(f"wrote {render_record(rec, root, out)}")


@app.command("import")
def import_official(
    root: str = typer.Option(..., "--root", help="Folder the official release was unpacked in; every path in it "
                             "must stay inside this folder."),
    dift: str | None = typer.Option(None, "--dift", help="Official DIFT JSONL (dift_data.jsonl), relative to --root or absolute."),
    rl: str | None = typer.Option(None, "--rl", help="Official RL JSONL (4drl_data_filtered.jsonl)."),
    out: str | None = typer.Option(None, "--out", help="Where to write dift.jsonl / rl.jsonl (default: --root)."),
) -> None:
    """Import the official 4DThinker DIFT/RL JSONL into our record format (paths stay relative to --root)."""
    from pathlib import Path

    from fourdthinker.data.importer import import_dift, import_rl, reject_counts
    from fourdthinker.errors import UserValueError, require_out_dir
    from fourdthinker.io import write_jsonl

    if not dift and not rl:
        raise UserValueError("nothing to import", "give --dift and/or --rl")
    require_out_dir(out, "--out")
    r = Path(root)
    o = Path(out) if out else r
    try:
        prefix = r.resolve().relative_to(o.resolve())
    except ValueError:
        raise UserValueError(f"--out {o} must be --root or a folder containing it",
                             "record paths are relative to the folder holding dift.jsonl: pass --root itself or a "
                             "parent of it") from None
    for name, src, fn in (("dift", dift, import_dift), ("rl", rl, import_rl)):
        if not src:
            continue
        p = Path(src) if Path(src).is_absolute() else r / src
        recs, rej = fn(p, r)
        if str(prefix) != ".":
            for rec in recs:
                rec["video"] = str(prefix / rec["video"])
                for key in ("frames", "imagery"):
                    if rec.get(key):
                        rec[key] = [str(prefix / x) for x in rec[key]]
        n = write_jsonl(o / f"{name}.jsonl", recs)
        if rej:
            write_jsonl(o / f"{name}_rejects.jsonl", rej)
        typer.echo(f"{name}: imported {n}, rejected {len(rej)} {dict(reject_counts(rej))} -> {o / f'{name}.jsonl'}")
