"""The repository explains itself: code cites docs/ inside the repository, and the docs it cites exist.

* No comment or docstring in src/ or tests/ cites a file outside the repository (the notes the
  package was first written from) or an issue number.
* Every ``docs/<page>.md[#anchor]`` cited from src/, tests/, benchmarks/ or configs/ exists, and so
  does the anchor (an explicit ``<a id="...">`` or a heading's GitHub slug).
* Every ``fourdthinker.<module>.<name>`` named in docs/method.md imports, so the page cannot name a
  function that was moved or renamed.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# Files outside the repository, by name, and issue numbers (the same pattern as the check).
OUTSIDE = re.compile("(" + "|".join(["SPEC", "REFERENCE", "DESIGN", "BENCHMARKS", "ENVIRONMENT"]) + r")\.md|issue [0-9]")
CITE = re.compile(r"docs/([A-Za-z0-9_\-]+\.md)(?:#([a-z0-9\-]+))?")
TEXT_SUFFIXES = {".py", ".yaml", ".yml", ".json", ".toml", ".md", ".txt", ".sh", ".cfg", ".ini"}


def _files(*dirs: str) -> list[Path]:
    out = []
    for d in dirs:
        for p in sorted((ROOT / d).rglob("*")):
            if p.is_file() and p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts:
                out.append(p)
    return out


def _slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces -> '-'."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = page.read_text(encoding="utf-8")
    ids = set(re.findall(r'<a id="([^"]+)"', text))
    ids |= {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)}
    return ids


def test_slug_matches_github():
    assert _slug("Eq. 10: recurrent mental imagery") == "eq-10-recurrent-mental-imagery"
    assert _slug("Output (`OUT/`) and the records") == "output-out-and-the-records"


def test_no_citation_leaves_the_repository():
    hits = []
    for p in _files("src", "tests"):
        for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, "cite docs/ instead:\n" + "\n".join(hits)


def test_cited_docs_and_anchors_exist():
    cited: dict[tuple[str, str | None], list[str]] = {}
    for p in _files("src", "tests", "benchmarks", "configs"):
        for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for page, anchor in CITE.findall(line):
                cited.setdefault((page, anchor or None), []).append(f"{p.relative_to(ROOT)}:{i}")
    assert cited, "expected the code to cite docs/ pages"
    missing = []
    for (page, anchor), where in sorted(cited.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        path = DOCS / page
        if not path.is_file():
            missing.append(f"docs/{page} (cited at {where[0]})")
        elif anchor and anchor not in _anchors(path):
            missing.append(f"docs/{page}#{anchor} (cited at {where[0]})")
    assert not missing, "cited but missing:\n" + "\n".join(missing)


def _method_names() -> list[str]:
    text = (DOCS / "method.md").read_text(encoding="utf-8")
    return sorted(set(re.findall(r"`(fourdthinker(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`", text)))


def test_method_page_names_functions():
    assert len(_method_names()) >= 30


@pytest.mark.parametrize("name", _method_names())
def test_method_names_resolve(name: str):
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):  # the longest importable module prefix, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            assert hasattr(obj, attr), f"docs/method.md names {name}, but {attr!r} is not in {obj!r}"
            obj = getattr(obj, attr)
        return
    pytest.fail(f"docs/method.md names {name}, which does not import")


def test_ci_runs_the_readme_test_command():
    """README's second command (install + tests) is exactly what .ci/run executes."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [ln for ln in first_block.splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(commands) == 2 and commands[0].endswith("&& fourdthinker demo"), commands
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines() if ln and not ln.startswith(("#", "set ", "cd "))]
    assert ci == [commands[1]], f".ci/run runs {ci}, the README says {commands[1]!r}"
