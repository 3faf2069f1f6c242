"""The one config/CLI idiom: a command's flags are generated from its config dataclass.

Every field of the dataclass becomes a flag ``--field-name`` with the field's help text
(``config_field(default, help, ...)`` in ``fourdthinker.config``) and its default shown; a bool
field is ``--x/--no-x`` unless the field names its spelling (``flag="--lora/--full"``); a
``tuple[str, ...]`` field is a repeatable flag. ``--config FILE.yaml`` sets many fields at once
(defaults < YAML < flags given); ``short="-m"`` adds a short alias, ``required=True`` makes the
field one the command needs (from a flag or the YAML). Bounds are declared once, on the field (``gt`` / ``ge``):
``check_flags`` refuses a flag outside them before any work (``error: --lr must be > 0, got 0 —
...``), ``ge`` / ``le`` are also the flag's click range (shown in ``--help``), and the config's own
``validate`` / ``__post_init__`` checks the same bounds on the merged values (``field_problems``).

A command is ``config_command(Cfg, run, doc=..., extra=[...])``: ``run(config=..., <extra>...,
**fields)`` receives every field flag (None = not given) and builds the config with
``config_from_flags``. typer is the only import here; the config modules stay light.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import MISSING, fields, replace
from typing import Any, TypeVar

import typer

from fourdthinker.config import bound_problem, shown

T = TypeVar("T")

__all__ = ["check_flags", "config_command", "config_from_flags", "config_params", "flag_name", "option"]


def flag_name(field_name: str) -> str:
    """``max_steps`` -> ``--max-steps``."""
    return "--" + field_name.replace("_", "-")


def option(name: str, annotation: Any, default: Any, *decls: str, **kw: Any) -> inspect.Parameter:
    """One hand-written typer option as a keyword parameter (for the flags a config does not hold:
    ``--dry-run``, ``--out`` of a command whose config has no output folder ...)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=typer.Option(default, *(decls or (flag_name(name),)), **kw))


def _flag_type(tp: Any) -> Any:
    """The typer type of a field annotation: ``int | None`` -> int, ``tuple[str, ...]`` -> list[str]."""
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = args[0] if len(args) == 1 else str
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        return list[args[0]] if len(args) == 2 and args[1] is Ellipsis else tp
    return tp


def _bool_flag(decl: str, value: bool) -> str:
    """The spelling of a bool flag's value: ``("--lora/--full", False)`` -> ``--full``."""
    on, _, off = decl.partition("/")
    return on if value else off


def _show(v: Any) -> str:
    return ", ".join(map(str, v)) if isinstance(v, tuple) else str(v)


def config_params(cls: type, *, exclude: Iterable[str] = (), presets: dict[str, Any] | None = None) -> list[inspect.Parameter]:
    """One keyword parameter (a typer option defaulting to None = not given) per field of ``cls``.

    ``presets``: ``{"--quick": QUICK}`` adds ``--quick: <value>`` to the help of fields whose value
    differs in that preset instance."""
    hints = typing.get_type_hints(cls)
    params = []
    for f in fields(cls):
        if f.name in exclude:
            continue
        typ = _flag_type(hints[f.name])
        meta = f.metadata
        name = flag_name(f.name)
        decl = meta.get("flag") or (f"{name}/--no-{f.name.replace('_', '-')}" if typ is bool else name)
        default = f.default if f.default is not MISSING else None
        help_ = meta.get("help", "")
        if default not in (None, "", ()):  # "\[" : a bare "[default: x]" would be read as rich markup and vanish
            help_ += " \\[default: " + _show(_bool_flag(decl, default) if typ is bool else default) + "".join(
                f"; {pname}: {_show(getattr(inst, f.name))}" for pname, inst in (presets or {}).items()
                if getattr(inst, f.name) != default) + "]"
        if meta.get("required"):
            help_ += " \\[required]"
        if meta.get("choices"):
            help_ += " \\[one of: " + "|".join(meta["choices"]) + "]"
        kw: dict[str, Any] = {}
        if "ge" in meta and typ in (int, float):
            kw["min"] = meta["ge"]
        if "le" in meta and typ in (int, float):
            kw["max"] = meta["le"]
        decls = (decl, meta["short"]) if meta.get("short") else (decl,)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=typ | None,
                                        default=typer.Option(None, *decls, help=help_, show_default=False, **kw)))
    return params


def check_flags(cls: type, flags: dict[str, Any]) -> None:
    """Refuse a given flag (not None) outside the bound its field declares, naming the flag:
    ``error: --max-steps must be > 0, got 0 — pass --max-steps with a value > 0``."""
    from fourdthinker.errors import UserValueError

    for f in fields(cls):
        v = flags.get(f.name)
        why = bound_problem(f, v)
        if why:
            name = flag_name(f.name)
            raise UserValueError(f"{name} {why}, got {shown(v)}", f"pass {name} with a value {why.removeprefix('must be ')}")


def config_from_flags(cls: type[T], config: str | None, flags: dict[str, Any], *, base: T | None = None) -> T:
    """The config a command runs with: defaults (or ``base``) < YAML ``config`` < the flags given.

    Flags are checked against their fields' bounds first; the result is not validated (call the
    config's ``validate`` where it has one; ``__post_init__`` checks run on construction)."""
    check_flags(cls, flags)
    flags = {k: tuple(v) if isinstance(v, list) else v for k, v in flags.items()}
    if config:
        from fourdthinker.config import load_yaml_config

        if base is None and hasattr(cls, "from_yaml"):  # the config's own loader (its error wording)
            cfg = cls.from_yaml(config, **flags)
        else:
            cfg = load_yaml_config(cls, config, flags, what=f"{cls.__name__} fields", base=base)
    else:
        given = {k: v for k, v in flags.items() if v is not None}
        cfg = replace(base, **given) if base is not None else cls(**given)
    for f in fields(cls):  # a field the command needs (``required=True``), from a flag or the YAML
        if f.metadata.get("required") and getattr(cfg, f.name) in (None, "", ()):
            from fourdthinker.errors import UserValueError

            name = flag_name(f.name)
            raise UserValueError(f"{name} is required", f"give {name}" + (f" ({f.metadata['short']})" if
                                 f.metadata.get("short") else "") + f", or {f.name} in a --config file")
    return cfg


def config_command(cls: type, run: Callable[..., Any], *, doc: str, name: str, extra: Iterable[inspect.Parameter] = (),
                   exclude: Iterable[str] = (), presets: dict[str, Any] | None = None) -> Callable[..., Any]:
    """A typer command ``name`` calling ``run(config=..., <extra>..., **fields)``: ``--config`` first,
    then the ``extra`` options (flags outside the config), then one flag per field of ``cls``."""
    params = [option("config", str | None, None, "--config",
                     help=f"YAML file of {cls.__name__} fields (keys = the flags' names with _); flags given here override it.")]
    params += list(extra) + config_params(cls, exclude=exclude, presets=presets)

    def command(**kw: Any) -> None:
        return run(**kw)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = doc
    command.__name__ = command.__qualname__ = name
    return command
