"""The ``fourdthinker`` command line: one sub-command per stage, no logic here.

Each stage keeps its commands in ``<stage>/commands.py`` (a big one in ``<stage>/commands_<name>.py``):
thin recipes (parse -> run -> report) that import their heavy dependencies (torch, transformers)
lazily so ``--help`` stays instant.
"""

from __future__ import annotations

import os
import sys

# Spin-waiting OpenMP threads waste most of a busy CPU (measured ~10x slower tiny-model steps on 2
# shared cores); set before torch loads. Export OMP_WAIT_POLICY yourself to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer  # noqa: E402

try:  # typer >= 0.2x vendors click; its exceptions are the ones raised
    from typer._click import exceptions as click  # noqa: E402
except ImportError:  # pragma: no cover
    from click import exceptions as click  # noqa: E402

from fourdthinker import __version__
from fourdthinker.data import commands as data_commands
from fourdthinker.demo import commands as demo_commands
from fourdthinker.eval import commands as eval_commands
from fourdthinker.eval import commands_probe
from fourdthinker.latent import commands as latent_commands
from fourdthinker.train import commands as train_commands
from fourdthinker.video import commands as video_commands
from fourdthinker.world import commands as world_commands

_EXPECTED_NAMES = ("FatalRunnerError", "ConfigMismatchError", "BuildError", "OracleError", "SceneSamplingError")


def _is_expected(e: BaseException) -> bool:
    """Expected failures (bad input, missing files, refused settings) vs bugs (anything else)."""
    from fourdthinker.errors import UserError

    if isinstance(e, (UserError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
                      IsADirectoryError, PermissionError, NotImplementedError)):
        return True
    return any(c.__name__ in _EXPECTED_NAMES for c in type(e).__mro__)


class _ExpectedError(click.ClickException):
    """An expected failure, carried through click as a one-line message with exit code 2."""

    exit_code = 2

    def show(self, file=None) -> None:  # click's plain (non-rich) display: one line
        typer.echo(f"error: {self.message}", err=True)


_REAL_RUN = False  # set by ``app()``; under ``CliRunner`` bugs are re-raised so tests see them


class _Group(typer.core.TyperGroup):
    """Root group and the CLI's one error boundary (docs/errors.md), also under ``CliRunner``:

    * expected failure -> ``error: <what> — <how to fix>`` on stderr, exit 2;
    * usage error (unknown flag, bad type) -> the same one line, exit 2;
    * anything else -> one line naming the exception and the file holding its traceback, exit 1
      (``--debug`` or ``FOURDTHINKER_DEBUG=1`` prints the traceback).
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
        from fourdthinker.errors import one_line, redact

        try:
            rv = super().main(args=args, prog_name=prog_name or "fourdthinker", complete_var=complete_var,
                              standalone_mode=False, **extra)
        except click.NoArgsIsHelpError as e:
            typer.echo(e.ctx.get_help())
            sys.exit(2)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx else "fourdthinker"
            typer.echo(f"error: {redact(one_line(e.format_message()))} — see `{where} --help`", err=True)
            sys.exit(2)
        except click.ClickException as e:
            typer.echo(f"error: {redact(one_line(e.format_message()))}", err=True)
            sys.exit(e.exit_code)
        except (typer.Abort, KeyboardInterrupt):
            typer.echo("error: interrupted — rerun the same command to resume", err=True)
            sys.exit(130)
        except Exception as e:
            if not _REAL_RUN:
                raise
            import traceback

            tb = traceback.format_exc()
            msg = redact(one_line(str(e)))[:300]
            if os.environ.get("FOURDTHINKER_DEBUG", "") not in ("", "0"):
                sys.stderr.write(redact(tb))
                typer.echo(f"error: unexpected {type(e).__name__}: {msg} — this is a bug; please report it "
                           "with the traceback above", err=True)
            else:
                path = _traceback_file(tb)
                typer.echo(f"error: unexpected {type(e).__name__}: {msg} — this is a bug; full traceback in "
                           f"{path} (rerun with --debug to print it)", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, _ExpectedError):
            raise
        except Exception as e:
            if isinstance(e, click.ClickException) or not _is_expected(e):
                raise
            from fourdthinker.errors import DASH, one_line, redact

            msg = redact(one_line(str(e) or type(e).__name__))
            if DASH.strip() not in msg:
                sub = ctx.invoked_subcommand
                path = " ".join(x for x in ("fourdthinker", sub) if x)
                msg += f"{DASH}see `{path} --help`"
            raise _ExpectedError(msg) from e


def _traceback_file(text: str) -> str:
    """Write a bug's full traceback (secrets redacted) under the cache folder; returns its path."""
    import time

    from fourdthinker.errors import redact

    base = os.environ.get("FOURDTHINKER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "fourdthinker")
    d = os.path.join(base, "errors")
    try:
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt")
    except OSError:
        import tempfile

        path = os.path.join(tempfile.gettempdir(), f"fourdthinker-error-{os.getpid()}.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(redact(text))
    return path


# Flags every command accepts anywhere on the line (stripped before click parses it).
GLOBAL_FLAGS = {
    "--debug": "FOURDTHINKER_DEBUG",        # print full tracebacks of unexpected errors
    "--allow-pickle": "FOURDTHINKER_ALLOW_PICKLE",  # load pickle (.bin) weights you created yourself
}


class _App(typer.Typer):
    """``typer.Typer`` whose call strips the global flags (``--debug``, ``--allow-pickle``, accepted
    anywhere before ``--``) and runs the root group's error boundary (``_Group.main``)."""

    def __call__(self, *args, **kwargs):
        global _REAL_RUN
        argv = list(kwargs.pop("args", None) or (args[0] if args else sys.argv[1:]))
        head, sep, tail = (argv[: argv.index("--")], ["--"], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [], [])
        for flag, env in GLOBAL_FLAGS.items():
            if flag in head:
                os.environ[env] = "1"
                head = [a for a in head if a != flag]
        if "COLUMNS" not in os.environ and not sys.stdout.isatty():
            os.environ["COLUMNS"] = "200"  # piped output: rich would cut tables at 80 columns
        _REAL_RUN = True
        return typer.main.get_command(self).main(args=head + sep + tail, prog_name="fourdthinker", **kwargs)


app = _App(
    cls=_Group,
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
    debug: bool = typer.Option(False, "--debug", help="Print the full traceback of an unexpected error (accepted "
                               "anywhere on the command line; same as FOURDTHINKER_DEBUG=1)."),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Also load pickle weights (pytorch_model.bin) "
                                      "of models YOU created; default: safetensors only (accepted anywhere on the line)."),
) -> None:
    """fourdthinker command line. Errors: one line `error: <what> — <how to fix>`, exit code 2 (docs/errors.md)."""


app.command("world")(world_commands.world)
app.add_typer(video_commands.app, name="video")
app.add_typer(data_commands.app, name="data")
app.add_typer(train_commands.app, name="train")
app.command("infer")(latent_commands.infer)
app.command("eval")(eval_commands.eval_cmd)
app.command("probe")(commands_probe.probe)
app.command("demo")(demo_commands.demo)
app.command("ablate")(demo_commands.ablate)


if __name__ == "__main__":  # pragma: no cover
    app()
