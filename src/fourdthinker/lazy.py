"""Lazy re-exports for package ``__init__`` files (PEP 562), so importing a package does no work.

A stage package names its public API once, ``{name: submodule}``; a name's submodule is imported
on first attribute access (``fourdthinker.eval.load_benchmark``, ``from fourdthinker.eval import
load_benchmark``), not when the package is imported. So ``import fourdthinker.eval.metrics`` loads
the metrics module and nothing else of the stage.

One caveat: a name that equals its own submodule's name (``video.probe`` the function, in
``video/probe.py``) cannot be lazy, because importing the submodule rebinds the package attribute
to the module; such names stay eager imports in the ``__init__`` (as before).

>>> __getattr__, __dir__ = lazy_exports(__name__, {"sha256_json": "fourdthinker.hashing"})  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` for ``package``: ``exports`` maps each public
    name to the absolute module that defines it. The value is cached on the package after the
    first access; an unknown name raises the usual ``AttributeError``."""

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
