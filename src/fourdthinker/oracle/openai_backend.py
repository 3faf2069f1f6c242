"""The ``openai`` oracle: any OpenAI-compatible chat-completions endpoint (Gemini's, GPT, vLLM).

* Endpoint from ``--oracle-base-url`` / ``FOURDTHINKER_ORACLE_BASE_URL`` (default OpenAI's),
  model from ``--oracle-model`` / ``FOURDTHINKER_ORACLE_MODEL``; the API key ONLY from the
  environment variable named by ``api_key_env`` (default ``OPENAI_API_KEY``), never logged,
  never written to the cache or to any record.
* Frames go as ``image_url`` parts with base64 PNG data URLs.
* Structured output: ``response_format={"type": "json_schema", "json_schema": ...}`` for
  landmark selection and consistency checks; the reply is parsed and schema-checked here too
  (a server that ignores the schema gets a retry, then an ``OracleError``).
* Retries with exponential backoff (tenacity) on 429, 5xx, timeouts and connection errors;
  other 4xx fail at once with the server's message.
* On-disk cache: ``cache_dir/<sha256 of the request>.json`` holds the reply; a rerun makes no
  call. The request hash covers model, messages (images included) and response format; not the key.
* ``usage``: calls, cached hits, prompt/completion tokens and an estimated cost
  (``price_in``/``price_out`` USD per 1M tokens, flags of ``data build``).
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from fourdthinker.hashing import sha256_json
from fourdthinker.io import atomic_write_json
from fourdthinker.oracle import prompts
from fourdthinker.oracle.base import CotRequest, Landmark, Landmarks, OracleError, OracleUsage


class _Retryable(Exception):
    pass


def png_data_url(img: np.ndarray, max_side: int = 768) -> str:
    """RGB uint8 -> ``data:image/png;base64,...`` (downscaled so the longer side <= max_side)."""
    from PIL import Image

    im = Image.fromarray(np.asarray(img, dtype=np.uint8))
    if max(im.size) > max_side:
        s = max_side / max(im.size)
        im = im.resize((max(1, int(im.width * s)), max(1, int(im.height * s))), Image.Resampling.BOX)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _check_schema(obj: Any, schema: dict) -> None:
    """Minimal JSON-schema check (object/required/types) for the schemas in ``prompts``."""
    t = schema.get("type")
    types = {"object": dict, "string": str, "boolean": bool, "array": list, "integer": int}
    if t in types and not isinstance(obj, types[t]) or (t == "integer" and isinstance(obj, bool)):
        raise ValueError(f"expected {t}, got {type(obj).__name__}")
    if t == "object":
        for k in schema.get("required", []):
            if k not in obj:
                raise ValueError(f"missing key {k!r}")
        for k, sub in schema.get("properties", {}).items():
            if k in obj:
                _check_schema(obj[k], sub)
    if t == "array":
        for x in obj:
            _check_schema(x, schema.get("items", {}))


class OpenAIOracle:
    name = "openai"

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        cache_dir: str | os.PathLike | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        price_in: float = 0.0,
        price_out: float = 0.0,
        max_images: int = 16,
    ) -> None:
        self.base_url = (base_url or os.environ.get("FOURDTHINKER_ORACLE_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self.model = model or os.environ.get("FOURDTHINKER_ORACLE_MODEL") or "gpt-4.1"
        self.api_key_env = api_key_env
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, max_retries, backoff_s
        self.price_in, self.price_out = price_in, price_out
        self.max_images = max_images
        self.usage = OracleUsage()
        self._client = None

    def __getstate__(self) -> dict:  # picklable for process pools: the HTTP client is rebuilt
        d = dict(self.__dict__)
        d["_client"] = None
        return d

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIOracle(base_url={self.base_url!r}, model={self.model!r}, key from ${self.api_key_env})"

    # ---------------------------------------------------------------- transport
    def _http(self):
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout_s)
        return self._client

    def chat(self, messages: list[dict], response_format: dict | None = None, max_tokens: int = 2048) -> str:
        """One chat completion (cached, retried). Returns the message content."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
        if response_format is not None:
            body["response_format"] = response_format
        key = sha256_json({"url": self.base_url, "body": body})
        if self.cache_dir is not None:
            hit = self.cache_dir / f"{key}.json"
            if hit.exists():
                try:
                    self.usage.cached += 1
                    return json.loads(hit.read_text())["content"]
                except (ValueError, KeyError):
                    hit.unlink(missing_ok=True)  # a broken cache entry is refetched
        data = self._post_with_retries(body)
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise OracleError(f"{self.base_url}: reply has no choices[0].message.content") from None
        u = data.get("usage") or {}
        self.usage.calls += 1
        self.usage.prompt_tokens += int(u.get("prompt_tokens", 0))
        self.usage.completion_tokens += int(u.get("completion_tokens", 0))
        self.usage.cost_usd += (int(u.get("prompt_tokens", 0)) * self.price_in
                                + int(u.get("completion_tokens", 0)) * self.price_out) / 1e6
        if self.cache_dir is not None:
            atomic_write_json(self.cache_dir / f"{key}.json", {"content": content, "usage": u})
        return content

    def _post_with_retries(self, body: dict) -> dict:
        import httpx
        from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

        key = os.environ.get(self.api_key_env, "")
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"

        from fourdthinker.endpoints import FATAL_STATUS, endpoint_error, fatal_transport
        from fourdthinker.errors import redact

        secrets = (key,) if key else ()

        @retry(retry=retry_if_exception_type(_Retryable), stop=stop_after_attempt(self.max_retries),
               wait=wait_exponential(multiplier=self.backoff_s, max=30 * self.backoff_s), reraise=True)
        def once() -> dict:
            try:
                r = self._http().post(f"{self.base_url}/chat/completions", json=body, headers=headers)
            except (httpx.TimeoutException, httpx.TransportError) as e:
                if fatal_transport(e):  # refused / unknown host: stop the whole build, do not retry
                    raise endpoint_error(self.base_url, f"cannot connect ({type(e).__name__}: {e})", secrets) from None
                raise _Retryable(f"{type(e).__name__}") from None
            if r.status_code == 429 or r.status_code >= 500:
                raise _Retryable(f"HTTP {r.status_code}")
            detail = redact(r.text[:200], secrets)  # a server may echo the Authorization header
            if r.status_code in FATAL_STATUS:
                raise endpoint_error(self.base_url, f"HTTP {r.status_code}: {detail}", secrets)
            if r.status_code >= 400:
                raise OracleError(f"{self.base_url}: HTTP {r.status_code}: {detail}")
            try:
                return r.json()
            except ValueError:
                raise _Retryable("reply is not JSON") from None

        try:
            return once()
        except _Retryable as e:
            raise OracleError(f"{self.base_url}: gave up after {self.max_retries} attempts ({e})") from None

    def chat_json(self, text: str, images: list[np.ndarray], schema: dict, attempts: int = 3) -> dict:
        """Structured-output call; a reply that is not valid JSON for ``schema`` is re-asked
        (bypassing the cache key by an attempt note) up to ``attempts`` times."""
        last = ""
        for a in range(attempts):
            note = "" if a == 0 else f"\n(Attempt {a + 1}: your previous reply was not valid JSON for the schema.)"
            content = self.chat(self._messages(text + note, images),
                                response_format={"type": "json_schema", "json_schema": schema})
            try:
                obj = json.loads(_strip_fence(content))
                _check_schema(obj, schema["schema"])
                return obj
            except ValueError as e:
                last = str(e)
                if self.cache_dir is not None:  # never keep a bad answer in the cache
                    key = sha256_json({"url": self.base_url, "body": self._last_body(text + note, images, schema)})
                    (self.cache_dir / f"{key}.json").unlink(missing_ok=True)
        raise OracleError(f"{self.base_url}: no valid JSON for {schema['name']} after {attempts} attempts ({last})")

    def _last_body(self, text: str, images: list[np.ndarray], schema: dict) -> dict:
        return {"model": self.model, "messages": self._messages(text, images), "max_tokens": 2048, "temperature": 0,
                "response_format": {"type": "json_schema", "json_schema": schema}}

    def _messages(self, text: str, images: list[np.ndarray]) -> list[dict]:
        if len(images) > self.max_images:
            idx = np.linspace(0, len(images) - 1, self.max_images).round().astype(int)
            images = [images[i] for i in idx]
        parts: list[dict] = [{"type": "image_url", "image_url": {"url": png_data_url(im)}} for im in images]
        parts.append({"type": "text", "text": text})
        return [{"role": "system", "content": prompts.SYSTEM}, {"role": "user", "content": parts}]

    # ---------------------------------------------------------------- oracle jobs
    def select_landmarks(self, frames: list[np.ndarray], *, clip: Any = None) -> Landmarks:
        obj = self.chat_json(prompts.LANDMARKS.format(n=len(frames)), frames, prompts.LANDMARKS_SCHEMA)
        s, d = obj["static_object"], obj["dynamic_object"]
        for o in (s, d):
            if not o["name"].strip():
                raise OracleError("landmark selection returned an empty object name")
        return Landmarks(Landmark(s["name"], s["description"]), Landmark(d["name"], d["description"]))

    def verify_static(self, overlays: list[np.ndarray], landmark: Landmark, masks: list[np.ndarray]) -> tuple[bool, str]:
        obj = self.chat_json(prompts.STATIC_CHECK.format(n=len(overlays), name=landmark.name, description=landmark.description),
                             overlays, prompts.STATIC_CHECK_SCHEMA)
        return bool(obj["consistent"]), obj["reason"]

    def verify_dynamic(self, overlays: list[np.ndarray], landmark: Landmark, masks: list[np.ndarray]) -> list[int]:
        obj = self.chat_json(prompts.DYNAMIC_CHECK.format(n=len(overlays), last=len(overlays) - 1, name=landmark.name,
                                                          description=landmark.description),
                             overlays, prompts.DYNAMIC_CHECK_SCHEMA)
        if not obj["is_any_dynamic"]:
            return []
        return sorted({int(i) for i in obj["valid_frame_indices"] if 0 <= int(i) < len(overlays)})

    def write_cot(self, req: CotRequest) -> str:
        from fourdthinker.qa import format_options

        tmpl = prompts.CAMERA_COT if req.task == "camera" else prompts.OBJECT_COT
        extra = prompts.CAMERA_EXTRA if req.task == "camera" else prompts.OBJECT_EXTRA
        facts = json.dumps({k: v for k, v in req.facts.items() if isinstance(v, str | int | float)}, ensure_ascii=False)
        text = tmpl.format(question=req.question, options=format_options(req.options), static=req.facts.get("static", ""),
                           dynamic=req.facts.get("dynamic", ""), k=req.n_images, extra=extra, letter=req.answer,
                           text=req.answer_text, facts=facts)
        if req.attempt:
            text += f"\n(Attempt {req.attempt + 1}: follow the format exactly.)"
        return self.chat(self._messages(text, list(req.frames) + list(req.overlays)), max_tokens=4096).strip()


def _strip_fence(s: str) -> str:
    s = s.strip()
    if s.startswith("```"):
        s = s.split("\n", 1)[1] if "\n" in s else s[3:]
        if s.rstrip().endswith("```"):
            s = s.rstrip()[:-3]
        if s.startswith("json"):
            s = s[4:]
    return s.strip()
