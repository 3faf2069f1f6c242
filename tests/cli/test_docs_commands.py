"""Every shell command the documentation shows runs (the docs test; contract in docs/errors.md).

Collected generically: each fenced ```bash / ```sh / ```shell / ```console block of README.md and
docs/**/*.md, and each example (``fourdthinker ...`` line) in a command's ``--help``. They run in
ONE shared copy of the prepared tree (tests/cli/conftest.py: tiny world, data, runs), in document
order, as a user following the pages would; identical commands run once.

How a command runs:

* ``# docs-test: skip (<reason>)`` at the end of a command line opts it out (the reason is required:
  a bare marker fails this test). Use it for GPU, hub-download, API-key and long commands.
* Not run, by rule (reported as skipped): ``pip install`` (installs packages), ``python -m pytest``
  without a path (the suite itself), ``export`` (sets a key), a ``--model`` / ``--init`` hub id
  (downloads), ``api:`` models and ``--oracle openai`` (need a key).
* Tiny size: flags are appended to each ``fourdthinker`` command (``TINY`` below; the last
  occurrence of a flag wins), e.g. ``world --width 112 --height 84 --fps 4`` (and ``--videos`` at
  most 4), ``eval --limit 2 --max-new-tokens 8``.
* ``fourdthinker ...`` commands run in this process through typer's CliRunner against
  ``fourdthinker.cli.app`` (``run_fourdthinker``: same parser, commands and error boundary as the
  console script, one torch import for all); other lines (``python scripts/...``) run in bash.
* Heavy commands in the default suite: ``train dift`` / ``train rl`` run with ``--dry-run`` (data,
  model, output folder and every number checked, no training); ``demo`` / ``ablate`` and
  ``accelerate launch`` / ``torchrun`` lines are parsed by the real CLI (options and values checked,
  the train part dry-run). ``-m slow`` runs all of them for real at tiny size.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import cli_env, copy_tree

REPO = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(?:bash|sh|shell|console)[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
MARK = re.compile(r"#\s*docs-test:\s*skip\b\s*(?:\((?P<reason>[^)]*)\))?")
HUB_FLAGS = ("--model", "-m", "--init", "--sam3-model")

# Flags appended to a command, by sub-command: tiny sizes (the last occurrence of a flag wins).
TINY: dict[tuple[str, ...], list[str]] = {
    ("world",): ["--width", "112", "--height", "84", "--fps", "4", "--workers", "1", "--quiet"],
    ("data", "build"): ["--workers", "1", "--limit", "4"],
    ("train", "dift"): ["--max-steps", "1", "--save-steps", "100"],
    ("train", "rl"): ["--steps", "1", "--questions-per-step", "1", "--num-generations", "2", "--max-new-tokens", "8",
                      "--max-frames", "2", "--save-every", "0"],
    ("infer",): ["--max-new-tokens", "8", "--max-frames", "2"],
    ("eval",): ["--limit", "2", "--max-new-tokens", "8", "--max-frames", "2", "--batch-size", "2"],
    ("probe",): ["--limit", "2", "--max-new-tokens", "8", "--max-frames", "2", "--latents", "normal", "--latents", "zero"],
    ("demo",): ["--quick"],
    ("ablate",): ["--quick"],
}
MAX_CLIPS = 4  # `world --videos N` runs with min(N, 4): the prepared worlds have 4 clips (resumed, not redone)
DRY_RUN = {("train", "dift"), ("train", "rl")}  # default suite: checked, not trained
PARSE_ONLY = {("demo",), ("ablate",)}  # default suite: parsed by the real CLI (tests/e2e runs the quick demo)


@dataclass
class DocCommand:
    where: str  # file:line, or "--help of <command>"
    text: str  # the command as documented (continuations joined, comment removed)
    skip: str | None = None  # why it is not run


def _logical_lines(block: str, first_line: int):
    buf, start = "", first_line
    for i, line in enumerate(block.splitlines()):
        if not buf:
            start = first_line + i
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        yield start, buf + line
        buf = ""
    if buf:
        yield start, buf


def _strip_comment(line: str) -> str:
    """The line without its trailing ``# comment`` (a ``#`` inside quotes stays)."""
    quote, out = None, []
    for ch in line:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (not out or out[-1].isspace()):
            break
        out.append(ch)
    return "".join(out).strip()


def collect_markdown(files: list[Path]) -> list[DocCommand]:
    cmds = []
    for f in files:
        text = f.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            first = text[: m.start(1)].count("\n") + 1
            for line_no, line in _logical_lines(m.group(1), first):
                if not line.strip() or line.strip().startswith("#"):
                    continue
                mark = MARK.search(line)
                where = f"{f.relative_to(REPO) if f.is_relative_to(REPO) else f}:{line_no}"
                cmd = _strip_comment(line)
                if line.lstrip().startswith("$ "):
                    cmd = cmd.lstrip()[2:]
                skip = None
                if mark:
                    skip = (mark.group("reason") or "").strip() or "MISSING REASON"
                cmds.append(DocCommand(where, cmd, skip))
    return cmds


def collect_help_examples() -> list[DocCommand]:
    import typer

    from fourdthinker.cli import app

    out = []

    def walk(cmd, path):
        text = (cmd.help or "").replace("\\\n", " ")
        for line in text.splitlines():
            for m in re.finditer(r"(?<![`\w])((?:accelerate launch|torchrun|fourdthinker) [^`]*?)\s*$", line):
                out.append(DocCommand(f"--help of {' '.join(path)}", _strip_comment(re.sub(r"\s+", " ", m.group(1)))))
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), ["fourdthinker"])
    return out


def doc_files() -> list[Path]:
    """README.md and docs/**/*.md of this checkout (``FOURDTHINKER_DOCS_ROOT``: another checkout's)."""
    root = Path(os.environ.get("FOURDTHINKER_DOCS_ROOT", REPO))
    return [p for p in [root / "README.md", *sorted((root / "docs").rglob("*.md"))] if p.is_file()]


# ----------------------------------------------------------------------------- what to run, and how
def _subcommand(tokens: list[str]) -> tuple[str, ...]:
    words = [t for t in tokens if not t.startswith("-")]
    return tuple(words[:2]) if words[:1] in (["train"], ["data"], ["video"]) else tuple(words[:1])


def rule_skip(tokens: list[str]) -> str | None:
    from fourdthinker.models import PRESETS
    from fourdthinker.models.locate import looks_local

    if tokens[:2] == ["pip", "install"]:
        return "installs packages"
    if tokens[:1] == ["export"]:
        return "sets an environment variable (a key)"
    if tokens[:3] == ["python", "-m", "pytest"] and not any(t.startswith("tests/") for t in tokens):
        return "the test suite itself"
    if "--oracle" in tokens and tokens[tokens.index("--oracle") + 1:][:1] == ["openai"]:
        return "needs an API key (openai oracle)"
    for i, t in enumerate(tokens[:-1]):
        if t in HUB_FLAGS:
            v = tokens[i + 1]
            if v.startswith("api:"):
                return "needs an API key (api: model)"
            v = v.split("=", 1)[1] if "=" in v else v
            v = v.split(":", 1)[1] if v.startswith(("plain:", "latent:")) else v
            if v not in PRESETS and v != "random" and not looks_local(v) and "/" in v:
                return f"needs a model from the hub ({v})"
    return None


def plan(text: str, slow: bool) -> list[tuple[str, list[str], str | None, str]]:
    """(mode, argv, skip reason, raw text) per part of an ``&&`` chain. mode: run | parse | shell | skip."""
    parts = []
    for part in re.split(r"\s+&&\s+", text):
        try:
            tokens = shlex.split(part)
        except ValueError as e:
            parts.append(("skip", [], f"cannot split: {e}", part))
            continue
        why = rule_skip(tokens)
        if why:
            parts.append(("skip", tokens, why, part))
            continue
        launcher = tokens[:2] == ["accelerate", "launch"] or tokens[:1] == ["torchrun"]
        if launcher:
            if "fourdthinker.cli" not in tokens:
                parts.append(("skip", tokens, "launcher without the fourdthinker CLI", part))
                continue
            tokens = ["fourdthinker", *tokens[tokens.index("fourdthinker.cli") + 1:]]
        if tokens[:1] != ["fourdthinker"]:
            parts.append(("shell", tokens, None, part))
            continue
        args = tokens[1:]
        sub = _subcommand(args)
        if "--help" not in args:
            args = args + TINY.get(sub, [])
            if sub == ("world",) and "--videos" in args:  # at most the prepared world's clips
                i = args.index("--videos") + 1
                if i < len(args) and args[i].isdigit():
                    args[i] = str(min(int(args[i]), MAX_CLIPS))
        if sub in DRY_RUN and not slow:
            parts.append(("run", [*args, "--dry-run"], None, part))
        elif (sub in PARSE_ONLY or launcher) and not slow:
            parts.append(("parse", args, None, part))
        else:
            parts.append(("run", args, None, part))
    return parts


def _parse(args: list[str]) -> str | None:
    """Parse ``args`` with the real CLI (no work done); the error text, or None."""
    import typer

    from fourdthinker.cli import app

    def go(cmd, name, a, parent=None):
        ctx = cmd.make_context(name, list(a), parent=parent)
        if hasattr(cmd, "resolve_command"):
            rest = [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])), *ctx.args]
            sub_name, sub, sub_args = cmd.resolve_command(ctx, rest)
            go(sub, sub_name, sub_args, ctx)

    try:
        go(typer.main.get_command(app), "fourdthinker", [a for a in args if a not in ("--debug", "--allow-pickle")])
    except Exception as e:  # noqa: BLE001 - any parse failure is the finding
        return f"{type(e).__name__}: {e}"
    return None


def run_fourdthinker(argv: list[str], tree: Path) -> tuple[int, str]:
    """``fourdthinker ARGV`` run in ``tree`` in THIS process: typer's CliRunner against
    ``fourdthinker.cli.app``, i.e. the same parser, commands and error boundary as the console script
    (global flags ``--debug`` / ``--allow-pickle`` handled as ``fourdthinker.cli`` does), without a
    fresh interpreter and torch import per command. (exit code, stdout + stderr [+ traceback])."""
    import contextlib
    import traceback

    from typer.testing import CliRunner

    from fourdthinker.cli import GLOBAL_FLAGS, app

    env: dict[str, str | None] = {"COLUMNS": "200", "OMP_WAIT_POLICY": "PASSIVE", **dict.fromkeys(GLOBAL_FLAGS.values())}
    head = argv[: argv.index("--")] if "--" in argv else argv
    for flag, var in GLOBAL_FLAGS.items():
        if flag in head:
            env[var] = "1"
    args = [a for a in head if a not in GLOBAL_FLAGS] + argv[len(head):]
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch else None
    environ = dict(os.environ)
    try:
        with contextlib.chdir(tree):
            r = CliRunner().invoke(app, args, env=env, prog_name="fourdthinker")
    finally:  # what a command may change in its process: the environment, the thread count (--threads)
        os.environ.clear()
        os.environ.update(environ)
        torch = sys.modules.get("torch")
        if torch and threads:
            torch.set_num_threads(threads)
    out = r.output
    if r.exception is not None and not isinstance(r.exception, SystemExit) and r.exc_info:
        out += "".join(traceback.format_exception(*r.exc_info))
    return r.exit_code, out


def run_documented(commands: list[DocCommand], tree: Path, *, slow: bool) -> tuple[list[str], list[str], int]:
    """Run ``commands`` in ``tree``; (failures, skipped, number run). ``fourdthinker`` commands run
    in-process (``run_fourdthinker``); other lines (``python scripts/...``, ``ls``) in bash."""
    env = cli_env(COLUMNS="200")
    shell_prefix = f'fourdthinker() {{ {shlex.quote(sys.executable)} -m fourdthinker.cli "$@"; }}; '
    seen: set[str] = set()
    failures, skipped, n_run = [], [], 0
    for c in commands:
        if c.skip:
            if c.skip == "MISSING REASON":
                failures.append(f"{c.where}: '# docs-test: skip' needs a reason in parentheses: {c.text}")
            else:
                skipped.append(f"{c.where}: {c.skip}")
            continue
        for mode, argv, why, raw in plan(c.text, slow):
            if why:
                skipped.append(f"{c.where}: {why}")
                continue
            key = f"{mode} {argv}"
            if key in seen:
                continue
            seen.add(key)
            t0 = time.perf_counter()
            if mode == "parse":
                err = _parse(argv)
                if err:
                    failures.append(f"{c.where}: {c.text}\n    parse: {err}")
                continue
            if mode == "run":
                ran = shlex.join(["fourdthinker", *argv])
                code, out = run_fourdthinker(argv, tree)
            else:
                ran = raw
                r = subprocess.run(["bash", "-c", shell_prefix + raw], cwd=tree, env=env, capture_output=True, text=True,
                                   timeout=900)
                code, out = r.returncode, r.stdout + r.stderr
            n_run += 1
            print(f"  [{time.perf_counter() - t0:5.1f} s, exit {code}] {c.where}: {ran[:120]}", flush=True)
            if code == 0 and mode == "run" and argv and argv[-1] == "--dry-run":
                _stand_in_for_training(argv, tree)
            if code != 0:
                tail = "\n".join(out.strip().splitlines()[-6:])
                failures.append(f"{c.where}: {c.text}\n    ran: {ran}\n    exit {code} "
                                f"after {time.perf_counter() - t0:.0f} s:\n    {tail}")
    return failures, skipped, n_run


def _stand_in_for_training(argv: list[str], tree: Path) -> None:
    """A dry-run training leaves no model; later commands (``--init runs/cot-sft``) expect one:
    its ``--out`` gets the prepared tiny model, in the layout that command writes."""
    import shutil

    sub = _subcommand(argv)
    out = argv[len(argv) - 1 - argv[::-1].index("--out") + 1] if "--out" in argv else None
    if out is None or (tree / out).exists():
        return
    dest = tree / out / "final" if sub == ("train", "rl") else tree / out
    shutil.copytree(tree / "runs/dift", dest, ignore=shutil.ignore_patterns("checkpoint-*"))


def _session_tree(prepared_tree: Path, tmp_path: Path) -> Path:
    tree = copy_tree(prepared_tree, tmp_path / "docs_session")
    for name in ("configs", "benchmarks", "tests", "pyproject.toml"):  # what a clone has beside the docs
        if (REPO / name).exists() and not (tree / name).exists():
            os.symlink(REPO / name, tree / name)
    return tree


# ----------------------------------------------------------------------------- tests
def test_collector_and_skip_marker(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("text\n```bash\nfourdthinker world --out w \\\n    --videos 8   # comment\n"
                  "fourdthinker demo --out big   # docs-test: skip (18 min)\n# only a comment\n"
                  "fourdthinker eval -m 'a # b=random' -b x   # docs-test: skip\n```\n```python\nnot_a_command\n```\n")
    cmds = collect_markdown([md])
    assert [c.text for c in cmds] == ["fourdthinker world --out w      --videos 8",
                                      "fourdthinker demo --out big", "fourdthinker eval -m 'a # b=random' -b x"]
    assert [c.skip for c in cmds] == [None, "18 min", "MISSING REASON"]
    assert cmds[0].where.endswith("x.md:3")
    fails, skipped, _ = run_documented(cmds[1:], tmp_path, slow=False)
    assert skipped == [f"{cmds[1].where}: 18 min"] and "needs a reason" in fails[0]
    assert rule_skip(shlex.split("fourdthinker train dift --model Qwen/Qwen2.5-VL-3B-Instruct")).startswith("needs a model")
    assert rule_skip(shlex.split("fourdthinker train rl --init runs/dift/final")) is None
    assert plan("fourdthinker train rl --data d --init runs/dift", slow=False)[0][1][-1] == "--dry-run"
    assert [p[0] for p in plan("pip install x && fourdthinker demo --out d", slow=False)] == ["skip", "parse"]
    assert _parse(["demo", "--quick", "--out", "x"]) is None and "No such option" in _parse(["demo", "--bogus"])
    # in-process runs: the CLI's exit codes and messages, global flags handled, nothing left behind
    code, out = run_fourdthinker(["world", "--out", "w", "--videos", "-2"], tmp_path)
    assert code == 2 and "--videos must be > 0" in out and not (tmp_path / "w").exists(), out
    code, out = run_fourdthinker(["--debug", "--version"], tmp_path)
    assert code == 0 and out.startswith("fourdthinker ") and "FOURDTHINKER_DEBUG" not in os.environ, out
    examples = collect_help_examples()
    assert any(c.text.startswith("fourdthinker train rl ") for c in examples)
    assert any(c.text.startswith("fourdthinker world ") for c in examples)


@pytest.mark.timeout(2400)  # ~3 min on a quiet 2-core machine; the shared development box is far slower
def test_documented_commands_run(prepared_tree, tmp_path):
    """README.md, docs/**/*.md and every --help example, in one shared prepared tree."""
    tree = _session_tree(prepared_tree, tmp_path)
    commands = collect_markdown(doc_files()) + collect_help_examples()
    assert commands, "no documented command found"
    failures, skipped, n_run = run_documented(commands, tree, slow=False)
    print(f"\n{n_run} documented commands run; {len(skipped)} skipped:\n  " + "\n  ".join(skipped))
    assert not failures, f"{len(failures)} documented command(s) fail:\n" + "\n".join(failures)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_documented_commands_run_for_real(prepared_tree, tmp_path):
    """The same, with training, demo and ablations run for real at tiny size."""
    tree = _session_tree(prepared_tree, tmp_path)
    failures, skipped, n_run = run_documented(collect_markdown(doc_files()) + collect_help_examples(), tree, slow=True)
    assert not failures, f"{len(failures)} documented command(s) fail:\n" + "\n".join(failures)
