"""The user-facing error contract (docs/errors.md).

``UserError(what, fix)`` is an expected failure: bad input, a missing file, an unreachable endpoint.
The command line prints it as ONE line, ``error: <what> — <fix>``, and exits with code 2. Any other
exception is a bug: one line plus the path of a file holding the full traceback, exit code 1
(``--debug`` prints the traceback instead). Library code raises ``UserError`` (or a ``ValueError`` /
``FileNotFoundError`` with a one-line message naming the file); only ``fourdthinker.cli`` formats it.

``redact`` removes secrets (API keys from the environment, ``Authorization`` / bearer values,
``sk-...`` style keys) from any text that is printed or stored (quarantine files, done markers).
"""

from __future__ import annotations

import os
import re

DASH = " — "


class UserError(Exception):
    """An expected failure a user can act on: ``what`` went wrong and how to ``fix`` it."""

    def __init__(self, what: str, fix: str | None = None) -> None:
        self.what = one_line(what)
        self.fix = one_line(fix) if fix else None
        super().__init__(self.what + (DASH + self.fix if self.fix else ""))


class UserValueError(UserError, ValueError):
    """A ``UserError`` that library callers may also catch as ``ValueError`` (bad values, bad paths)."""


class UserFileNotFoundError(UserError, FileNotFoundError):
    """A ``UserError`` that is also a ``FileNotFoundError`` (a missing input or model folder)."""


def one_line(text: object) -> str:
    """Collapse a (possibly multi-line) message into one line: lines joined with '; '."""
    lines = [" ".join(ln.split()) for ln in str(text).splitlines()]
    return "; ".join(ln for ln in lines if ln)


# Names of environment variables whose values are secrets (any value of 8+ characters is redacted).
_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
_PATTERNS = [
    # Authorization: Bearer xxx / "authorization": "Bearer xxx" / Bearer xxx
    (re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bearer\s+|basic\s+|token\s+)?[^\s'\",}]+"), r"\1\2***"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"), r"\1***"),
    # api_key=xxx, "api-key": "xxx", x-api-key: xxx
    (re.compile(r"(?i)((?:x-)?api[_-]?key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}&]+"), r"\1***"),
    # provider key shapes: sk-..., sk-proj-..., hf_..., AIza...
    (re.compile(r"\b(sk-[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{8,}|AIza[0-9A-Za-z_-]{20,})"), "***"),
]


def redact(text: object, extra_secrets: tuple[str, ...] = ()) -> str:
    """``text`` with secrets replaced by ``***``: the values of secret-looking environment variables
    (``*KEY*``, ``*TOKEN*``, ``*SECRET*`` ...), ``extra_secrets``, and header/key patterns."""
    s = str(text)
    secrets = [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 8]
    secrets += [v for v in extra_secrets if v and len(v) >= 4]
    for v in sorted(set(secrets), key=len, reverse=True):
        s = s.replace(v, "***")
    for pat, rep in _PATTERNS:
        s = pat.sub(rep, s)
    return s


def validation_reason(e: Exception) -> str:
    """One line naming the field for a pydantic ``ValidationError``: ``options.B: Field required``."""
    errs = e.errors() if hasattr(e, "errors") else []
    if not errs:
        return one_line(e)
    first = errs[0]
    loc = ".".join(str(x) for x in first.get("loc", ())) or "record"
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"{loc}: {first.get('msg', 'invalid')}{more}"


def require_positive(name: str, value: float | None, *, allow_zero: bool = False, allow_none: bool = True) -> None:
    """Refuse a number that must be > 0 (or >= 0): ``error: --name must be ... — ...``."""
    if value is None:
        if allow_none:
            return
        raise UserValueError(f"{name} is required", f"give {name} N")
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise UserValueError(f"{name} must be {bound}, got {value:g}", f"pass {name} with a value {bound}")


def require_out_dir(path: str | os.PathLike | None, flag: str) -> None:
    """An output folder must not be an existing file, nor sit under one."""
    if path is None or str(path) == "":
        return
    from pathlib import Path

    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise UserValueError(f"{flag} {path}: is an existing file, not a folder", f"pass a folder for {flag} (or move the file)")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserValueError(f"{flag} {path}: {parent} is a file, not a folder", f"pass a folder for {flag}")
            break


def require_out_file(path: str | os.PathLike | None, flag: str) -> None:
    """An output file must not be an existing folder, nor sit under a file."""
    if path is None or str(path) == "":
        return
    from pathlib import Path

    p = Path(path).expanduser()
    if p.is_dir():
        raise UserValueError(f"{flag} {path}: is a folder, not a file", f"pass a file path for {flag}")
    require_out_dir(p.parent, flag) if str(p.parent) not in ("", ".") else None


__all__ = ["require_out_dir", "require_out_file", "validation_reason", "DASH", "UserError", "UserFileNotFoundError", "UserValueError", "one_line", "redact", "require_positive"]
