"""Stage settings from YAML + CLI overrides: one loader for every stage's config dataclass.

Defaults < YAML file < overrides (CLI flags that were given, i.e. not None). Unknown keys are an
error naming the file, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
from dataclasses import field, fields
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def config_field(default: Any, help: str, **metadata: Any) -> Any:
    """A config dataclass field with its ``--help`` text (and any other metadata, e.g. CLI hints):
    ``seed: int = config_field(0, "Seed of ...")``. The one helper every stage config uses, so the
    CLI can read the help of any field from ``dataclasses.fields(cls)[i].metadata["help"]``."""
    return field(default=default, metadata={"help": help, **metadata})


def load_yaml_config(cls: type[T], path: str | os.PathLike, overrides: dict[str, Any], *, what: str) -> T:
    """Build dataclass ``cls`` from the YAML mapping at ``path`` with non-None ``overrides`` on top.

    ``what`` names the config in errors, e.g. ``"DiftConfig fields"`` -> ``unknown DiftConfig fields [...]``.
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
    return cls(**raw)
