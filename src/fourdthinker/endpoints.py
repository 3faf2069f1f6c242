"""Shared rules for OpenAI-compatible endpoints (the eval ``api:`` runner and the ``openai`` oracle).

* The key variable is checked up front: a remote endpoint with ``$NAME`` unset fails before any work
  (local servers, ``localhost`` / ``127.0.0.1`` / ``::1``, may run without a key).
* Fail fast: a connection that cannot be made (refused, unknown host) and HTTP 401 / 403 / 404
  (bad key, no access, wrong URL or model) stop the whole run with one line; only what can heal
  by waiting (timeouts, dropped connections, HTTP 429 and 5xx) is retried.
* Every error text is passed through ``errors.redact`` (a server echoing the request's
  ``Authorization`` header must not put the key into quarantine files or the terminal).
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from fourdthinker.errors import UserError, redact

FATAL_STATUS = (401, 403, 404)
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0")


class EndpointError(UserError, RuntimeError):
    """The endpoint cannot serve this run at all (refused, unknown host, bad key, wrong URL):
    retrying or going on to the next item would only repeat it."""


def is_local(url: str) -> bool:
    host = (urlparse(url).hostname or "").lower()
    return host in LOCAL_HOSTS or host.endswith(".localhost")


def require_api_key(env_name: str, base_url: str, flag: str) -> None:
    """Refuse a remote endpoint whose key variable is unset or empty (before any work starts)."""
    if not env_name or not env_name.replace("_", "").isalnum():
        raise UserError(f"{flag} {env_name!r} is not an environment variable name",
                        f"pass the NAME of the variable holding the key, e.g. {flag} OPENAI_API_KEY")
    if not os.environ.get(env_name) and not is_local(base_url):
        raise UserError(f"${env_name} is not set (the API key for {base_url})",
                        f"export {env_name}=<your key>, or name another variable with {flag}")


def fatal_transport(e: BaseException) -> bool:
    """Connection refused / unknown host: the endpoint is not there; waiting will not help."""
    import httpx

    return isinstance(e, httpx.ConnectError)


def endpoint_error(base_url: str, what: str, secrets: tuple[str, ...] = ()) -> EndpointError:
    fix = ("check the endpoint URL and that the server is running" if "connect" in what.lower()
           or "refused" in what.lower() else "check the API key variable, the model name and the endpoint URL")
    return EndpointError(redact(f"{base_url}: {what}", secrets), fix)


__all__ = ["EndpointError", "FATAL_STATUS", "endpoint_error", "fatal_transport", "is_local", "require_api_key"]
