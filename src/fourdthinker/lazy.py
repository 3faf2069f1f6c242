"""Lazy re-exports for package ``__init__`` files (PEP 562), so importing a package does no work.

A stage package names its public API once, ``{name: submodule}``; a name's submodule is imported
on first attribute access (``fourdthinker.eval.load_benchmark``, ``from fourdthinker.eval import
load_benchmark``), not when the package is imported. So ``import fourdthinker.eval.metrics`` loads
the metrics module and nothing else of the stage.

A name may equal its own submodule's name (``fourdthinker.video.probe`` is the function in
``video/probe.py``). Importing a submodule makes the import system bind it as an attribute of its
package, which would turn the exported function into the module depending on import order; the
package's module class therefore ignores that one binding, so the name always means the exported
object, exactly as an eager ``from .probe import probe`` in the ``__init__`` did.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping

__all__ = ["lazy_exports"]


class _LazyPackage(types.ModuleType):
    def __setattr__(self, name: str, value: object) -> None:
        exports = self.__dict__.get("_lazy_exports", {})
        if isinstance(value, types.ModuleType) and exports.get(name) == value.__name__:
            return  # the import system binding submodule ``name``: keep the exported object of that name
        super().__setattr__(name, value)


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` for ``package`` (call it from the package's
    ``__init__`` with ``__name__``): ``exports`` maps each public name to the absolute module that
    defines it. The value is cached on the package after the first access; an unknown name raises
    the usual ``AttributeError``.

    >>> __getattr__, __dir__ = lazy_exports(__name__, {"sha256_json": "fourdthinker.hashing"})  # doctest: +SKIP
    """
    pkg = sys.modules[package]
    pkg.__class__ = _LazyPackage
    pkg._lazy_exports = dict(exports)

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(pkg, name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(pkg)) | set(exports))

    return __getattr__, __dir__
