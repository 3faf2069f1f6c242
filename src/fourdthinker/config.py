"""Stage settings: one field helper, one bounds check and one YAML loader for every stage's config dataclass.

* ``config_field(default, help, gt=..., ge=..., le=..., allow=..., choices=..., flag=...)`` declares a field
  with its ``--help`` text and hints: numeric bounds (``gt`` / ``ge`` / ``le``; ``allow`` lists sentinel values
  exempt from them, e.g. ``-1 = run epochs``), the values a string field may take (``choices``) and the
  CLI spelling of a flag (``flag="--lora/--full"``).
* ``field_problems(cfg)`` checks every declared bound (the config's ``validate`` / ``__post_init__``
  calls it); ``fourdthinker.cli_config`` builds the typer flags from the same fields and checks the
  flags given against the same bounds, so a bound is declared once, on the field.
* ``load_yaml_config``: defaults < YAML file < overrides (CLI flags that were given, i.e. not None).
  Unknown keys are an error naming the file, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
from dataclasses import Field, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def config_field(default: Any, help: str, **metadata: Any) -> Any:
    """A config dataclass field with its ``--help`` text (and any other metadata, e.g. CLI hints):
    ``seed: int = config_field(0, "Seed of ...")``, ``lr: float = config_field(1e-5, "...", gt=0)``.
    The one helper every stage config uses, so the CLI reads the help and the bounds of any field
    from ``dataclasses.fields(cls)[i].metadata``."""
    return field(default=default, metadata={"help": help, **metadata})


def bound_problem(f: Field, value: Any) -> str | None:
    """``"must be > 0"`` / ``"must be >= 2"`` / ``"must be one of a|b"`` when ``value`` breaks the bound
    declared on field ``f`` (``gt`` / ``ge`` / ``le`` / ``choices`` metadata), else None. None values and
    the field's ``allow`` sentinels pass."""
    m = f.metadata
    if value is None or isinstance(value, bool) or value in m.get("allow", ()):
        return None
    if "choices" in m:
        return None if value in m["choices"] else f"must be one of {'|'.join(m['choices'])}"
    if "gt" in m and not value > m["gt"]:
        return f"must be > {m['gt']:g}" + _allowed(m)
    if "ge" in m and not value >= m["ge"]:
        return f"must be >= {m['ge']:g}" + _allowed(m)
    if "le" in m and not value <= m["le"]:
        return f"must be <= {m['le']:g}" + _allowed(m)
    return None


def _allowed(m) -> str:
    return f" (or {' or '.join(f'{a:g}' for a in m['allow'])})" if m.get("allow") else ""


def shown(value: Any) -> str:
    """A value as bound errors quote it: ``0``, ``1e-05``, ``'clip'``."""
    return f"{value:g}" if isinstance(value, int | float) else repr(value)


def field_problems(cfg: Any) -> list[str]:
    """``["lr must be > 0, got 0", ...]``: every declared bound (``config_field(gt=/ge=/choices=)``)
    that dataclass instance ``cfg`` breaks. The configs' ``validate`` / ``__post_init__`` report these."""
    out = []
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        why = bound_problem(f, v)
        if why:
            out.append(f"{f.name} {why}, got {shown(v)}")
    return out


def load_yaml_config(cls: type[T], path: str | os.PathLike, overrides: dict[str, Any], *, what: str,
                     base: T | None = None) -> T:
    """Build dataclass ``cls`` from the YAML mapping at ``path`` with non-None ``overrides`` on top.

    ``what`` names the config in errors, e.g. ``"DiftConfig fields"`` -> ``unknown DiftConfig fields [...]``.
    ``base``: an instance whose values stand in for the class defaults (e.g. the demo's ``--quick`` preset).
    A YAML list becomes a tuple where the field's default is a tuple.
    """
    import yaml

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: config file not found")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"{p}: cannot read config ({e})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{p}: expected a mapping of {what}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"{p}: unknown {what} {unknown}; known: {sorted(names)}")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    for f in fields(cls):
        if isinstance(raw.get(f.name), list) and isinstance(f.default, tuple):
            raw[f.name] = tuple(raw[f.name])
    return replace(base, **raw) if base is not None else cls(**raw)
