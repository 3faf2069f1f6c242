"""The package's import layers (docs/architecture.md): no module imports from a later layer.

    root contracts < video < world < oracle, segment < data < models < latent < train < eval < demo < cli

Every module under ``src/fourdthinker`` is parsed with ``ast`` (nothing is imported), and every
import in it is checked: module-level ones, function-local ones, ``TYPE_CHECKING`` ones, and the
submodules a package names in ``lazy_exports``. The CLI layer is ``fourdthinker/cli.py`` plus each
stage's typer commands (``<stage>/commands.py``, ``<stage>/commands_<name>.py``): thin recipes that may
wire any stages together. A new subpackage must be given a layer here.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fourdthinker

LAYERS: list[tuple[str, ...]] = [
    ("root",),  # fourdthinker/*.py: records, qa, stats, labels, io, hashing, config, lazy, plots
    ("video",),
    ("world",),
    ("oracle", "segment"),
    ("data",),
    ("models",),
    ("latent",),
    ("train",),
    ("eval",),
    ("demo",),
    ("cli",),
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}
ORDER = " < ".join(", ".join(names) for names in LAYERS)
PKG_ROOT = Path(fourdthinker.__file__).parent


def module_name(path: Path) -> str:
    parts = ("fourdthinker", *path.relative_to(PKG_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_name(module: str) -> str:
    """The layer a ``fourdthinker.*`` module belongs to (see the module docstring)."""
    parts = module.split(".")
    last = parts[-1]
    if module == "fourdthinker.cli" or (len(parts) >= 3 and (last == "commands" or last.startswith("commands_"))):
        return "cli"
    if len(parts) == 1 or (len(parts) == 2 and parts[1] not in LAYER_OF):  # the package or a root module
        return "root"
    return parts[1]


def imported_modules(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> list[tuple[str, int]]:
    """(``fourdthinker.*`` module imported, line) for every import anywhere in ``tree``."""
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([node.module] if node.module else []))
            out.append((base, node.lineno))
            # ``from fourdthinker import demo``: the name is itself a module
            out += [(f"{base}.{a.name}", node.lineno) for a in node.names if f"{base}.{a.name}" in known]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
            "lazy_exports", "import_module"
        ):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and sub.value.startswith("fourdthinker."):
                    out.append((sub.value, node.lineno))
    return [(m, line) for m, line in out if m == "fourdthinker" or m.startswith("fourdthinker.")]


def violations_in(source: str, module: str, *, path: str = "<string>", is_package: bool = False,
                  known: set[str] = frozenset()) -> list[str]:
    """One message per import of a later layer in ``source`` (the code of ``module``)."""
    mine = layer_name(module)
    if mine not in LAYER_OF:
        return [f"{path}: module {module} is in subpackage {mine!r}, which has no layer; add it to LAYERS in "
                f"tests/test_layers.py and docs/architecture.md"]
    out = []
    for target, line in imported_modules(ast.parse(source, filename=path), module, is_package, set(known)):
        theirs = layer_name(target)
        if theirs in LAYER_OF and LAYER_OF[theirs] > LAYER_OF[mine]:
            out.append(f"{path}:{line}: {module} (layer {mine}) imports {target} (layer {theirs}), a later layer; "
                       f"layers: {ORDER}")
    return out


def test_no_module_imports_a_later_layer():
    files = sorted(PKG_ROOT.rglob("*.py"))
    known = {module_name(f) for f in files}
    assert len(files) > 50, f"found only {len(files)} modules under {PKG_ROOT}"
    problems = []
    for f in files:
        problems += violations_in(f.read_text(encoding="utf-8"), module_name(f), path=str(f.relative_to(PKG_ROOT.parent)),
                                  is_package=f.name == "__init__.py", known=known)
    assert not problems, "imports from a later layer:\n" + "\n".join(problems)


def test_checker_finds_local_relative_and_lazy_imports():
    """The walker sees what the package test relies on (so an empty result means something)."""
    src = (
        "import fourdthinker.qa\n"
        "from fourdthinker.world import clip\n"  # earlier layer: fine
        "def f():\n"
        "    from fourdthinker.eval.answers import parse_answer\n"  # function-local, later layer
        "    from ..train import rewards\n"  # relative, later layer
        "x = lazy_exports(__name__, {'y': 'fourdthinker.demo.pipeline'})\n"  # lazy, later layer
    )
    found = violations_in(src, "fourdthinker.latent.decode")
    assert len(found) == 3, found
    assert "fourdthinker.latent.decode (layer latent) imports fourdthinker.eval.answers (layer eval)" in found[0]
    assert "fourdthinker.train" in found[1] and "fourdthinker.demo.pipeline" in found[2]
    assert violations_in("from fourdthinker.data import records\n", "fourdthinker.oracle.rule")  # oracle < data
    assert not violations_in("from fourdthinker.eval import x\n", "fourdthinker.eval.commands")  # commands = cli
    assert violations_in("", "fourdthinker.newstage.mod")[0].endswith("add it to LAYERS in tests/test_layers.py "
                                                                     "and docs/architecture.md")


def _imported_by(statement: str) -> set[str]:
    """Module names ``python -X importtime -c statement`` reports (fresh interpreter, this checkout)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PKG_ROOT.parent), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return {ln.rsplit("|", 1)[1].strip() for ln in r.stderr.splitlines() if ln.startswith("import time:") and "|" in ln}


@pytest.mark.parametrize("statement", ["import fourdthinker.train.rewards"])
def test_rewards_import_loads_no_eval_demo_or_rl(statement):
    mods = _imported_by(statement)
    assert "fourdthinker.train.rewards" in mods and "fourdthinker.qa" in mods, sorted(mods)  # parsed right
    bad = sorted(m for m in mods if m.startswith(("fourdthinker.eval", "fourdthinker.demo"))
                 or m == "fourdthinker.train.rl" or m.startswith("fourdthinker.train.rl."))
    assert not bad, f"{statement!r} loads {bad}"


def test_contracts_and_stage_packages_import_cheaply():
    """The root contracts load no stage; a stage package loads none of its submodules until used."""
    mods = _imported_by("import fourdthinker.qa, fourdthinker.records, fourdthinker.eval.metrics, fourdthinker.world, "
                        "fourdthinker.models")
    stages = sorted(m for m in mods if m.startswith("fourdthinker.") and layer_name(m) != "root"
                    and m not in ("fourdthinker.eval", "fourdthinker.eval.metrics", "fourdthinker.world",
                                  "fourdthinker.models"))
    assert not stages, stages
    assert "torch" not in mods  # models/__init__ loads models.base (torch) only when VLMAdapter is used


def test_lazy_export_named_like_its_submodule_stays_the_function():
    """``fourdthinker.video.probe`` is the function whichever of package or submodule loads first."""
    code = ("import fourdthinker.video.probe, fourdthinker.eval.evaluate\n"
            "import fourdthinker.video as v, fourdthinker.eval as e\n"
            "from fourdthinker.eval import report\n"
            "assert callable(v.probe) and callable(v.overlay) and callable(e.evaluate), (v.probe, e.evaluate)\n"
            "assert report.__name__ == 'fourdthinker.eval.report'\n"
            "assert 'load_benchmark' in dir(e)\n"
            "try:\n    e.no_such_name\nexcept AttributeError as err:\n    print(err)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PKG_ROOT.parent), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "module 'fourdthinker.eval' has no attribute 'no_such_name'" in r.stdout
