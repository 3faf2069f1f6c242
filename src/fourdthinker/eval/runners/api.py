"""OpenAI-compatible chat API as an evaluation runner (GPT, Gemini's OpenAI endpoint, a vLLM server).

Each item is sent as one user message: the sampled frames as JPEG ``image_url`` parts (the
portable way to send video to any OpenAI-compatible endpoint), then the same question text every
other runner uses (``build_question_text``). Requests run ``concurrency`` at a time; transient
failures (connection errors, HTTP 429 and 5xx) are retried with exponential back-off; every
response is cached on disk under a hash of the exact request, so a rerun costs nothing.

The API key is read from the environment variable named by ``api_key_env`` (default
``OPENAI_API_KEY``); it is sent in the ``Authorization`` header only, never logged, cached or saved.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from fourdthinker.data.records import BenchItem, build_question_text
from fourdthinker.eval.runners.base import RunOutput
from fourdthinker.hashing import sha256_json
from fourdthinker.io import atomic_write_json
from fourdthinker.models.inputs import FrameSettings, record_frames

VIDEO_PREAMBLE = "These are frames of a video, sampled at {fps:g} frame(s) per second, in order."


class ApiError(RuntimeError):
    """A non-retryable API failure (bad request, auth) or retries exhausted. Never holds the key."""


def _retryable(e: BaseException) -> bool:
    """Timeouts, dropped connections, 429 and 5xx heal by waiting; a refused connection or an
    unknown host does not (``endpoints.fatal_transport``: the run stops at once)."""
    from fourdthinker.endpoints import fatal_transport

    if isinstance(e, httpx.TransportError):
        return not fatal_transport(e)
    return isinstance(e, httpx.HTTPStatusError) and (e.response.status_code == 429 or e.response.status_code >= 500)


def frame_to_data_url(frame, max_pixels: int, quality: int = 85) -> str:
    """RGB array -> ``data:image/jpeg;base64,...``, downscaled to at most ``max_pixels`` pixels."""
    from PIL import Image

    img = Image.fromarray(frame).convert("RGB")
    w, h = img.size
    if w * h > max_pixels:
        s = (max_pixels / (w * h)) ** 0.5
        img = img.resize((max(1, int(w * s)), max(1, int(h * s))), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


class ApiRunner:
    """Runner for ``POST {base_url}/chat/completions``.

    Args:
        model: the API's model name (``gpt-5``, ``gemini-2.5-pro``, ...).
        base_url: endpoint root ending in ``/v1`` (default: ``$OPENAI_BASE_URL`` or api.openai.com).
        api_key_env: name of the environment variable holding the key (missing -> no auth header,
            fine for local servers).
        concurrency: requests in flight at once (rate limits vs wall time).
        max_retries: attempts per request for transient errors (429, 5xx, network).
        cache_dir: response cache folder (None: no cache).
        max_frames / fps / max_pixels: what is sent per item (more frames = more tokens = cost).
        max_tokens, temperature, top_p: decoding; greedy (temperature 0) unless sampling is asked.
    """

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 4, max_retries: int = 5, retry_wait_s: float = 1.0, timeout_s: float = 120.0,
                 cache_dir: str | os.PathLike | None = None, max_frames: int = 16, fps: float = 1.0,
                 max_pixels: int = 448 * 448, max_tokens: int = 1024, temperature: float = 0.7, top_p: float = 0.9,
                 frames: str = "normal", span: str | None = None):
        from fourdthinker.video.interventions import check_frames

        self.frames = check_frames(frames)
        self.span = FrameSettings(span=span or "video").span  # whole video, or each item's window_s
        self.model = model
        self.name = f"api:{model}"
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self.api_key_env = api_key_env
        from fourdthinker.endpoints import require_api_key

        require_api_key(api_key_env, self.base_url, "--api-key-env")  # before any work, not per item
        self.concurrency = max(1, concurrency)
        self.batch_size = 4 * self.concurrency
        self.max_retries = max_retries
        self.retry_wait_s = retry_wait_s
        self.timeout_s = timeout_s
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.max_frames, self.fps, self.max_pixels = max_frames, fps, max_pixels
        self.max_tokens, self.temperature, self.top_p = max_tokens, temperature, top_p
        self.n_requests = 0  # HTTP requests actually sent (cache hits excluded), for reports/tests
        self.n_cache_hits = 0
        self._client = httpx.Client(timeout=timeout_s)

    def settings(self) -> dict:
        return {"runner": "api", "model": self.model, "base_url": self.base_url, "max_frames": self.max_frames,
                "fps": self.fps, "max_pixels": self.max_pixels, "max_tokens": self.max_tokens,
                "temperature": self.temperature, "top_p": self.top_p} | ({"frames": self.frames} if self.frames != "normal" else {}) | (
                    {"span": self.span} if self.span != "video" else {})

    def request_body(self, item: BenchItem, root: Path, *, seed: int, do_sample: bool) -> dict:
        from fourdthinker.video.interventions import intervene_frames

        # the one input builder (models/inputs.py): the frames local models see, capped the same way
        frames = record_frames(item, root, FrameSettings(self.fps, self.max_frames, self.max_pixels, self.span),
                              allow_absolute=True)
        frames = intervene_frames(frames, self.frames, key=item.id)
        content = [{"type": "text", "text": VIDEO_PREAMBLE.format(fps=self.fps)}]
        content += [{"type": "image_url", "image_url": {"url": frame_to_data_url(f, self.max_pixels)}} for f in frames]
        content.append({"type": "text", "text": build_question_text(item.question, item.options)})
        body = {"model": self.model, "messages": [{"role": "user", "content": content}], "max_tokens": self.max_tokens}
        if do_sample:
            body |= {"temperature": self.temperature, "top_p": self.top_p, "seed": seed}
        else:
            body |= {"temperature": 0.0, "seed": seed}
        return body

    def _post(self, body: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"

        @retry(retry=retry_if_exception(_retryable), stop=stop_after_attempt(self.max_retries),
               wait=wait_exponential(multiplier=self.retry_wait_s, max=30), reraise=True)
        def send() -> dict:
            self.n_requests += 1
            r = self._client.post(f"{self.base_url}/chat/completions", json=body, headers=headers)
            r.raise_for_status()
            return r.json()

        from fourdthinker.endpoints import FATAL_STATUS, endpoint_error, fatal_transport
        from fourdthinker.errors import redact
        from fourdthinker.eval.runners.base import FatalRunnerError

        secrets = (key,) if key else ()
        try:
            return send()
        except httpx.HTTPStatusError as e:
            detail = redact(e.response.text[:200].replace("\n", " "), secrets)  # servers may echo the key
            msg = f"HTTP {e.response.status_code} for model {self.model} ({detail})"
            if e.response.status_code in FATAL_STATUS:  # bad key / no access / wrong URL: every item would fail
                raise FatalRunnerError(str(endpoint_error(self.base_url, msg, secrets))) from None
            raise ApiError(redact(f"{self.base_url}: {msg}", secrets)) from None
        except httpx.TransportError as e:
            if fatal_transport(e):
                raise FatalRunnerError(str(endpoint_error(
                    self.base_url, f"cannot connect ({type(e).__name__}: {e})", secrets))) from None
            raise ApiError(f"{self.base_url}: {type(e).__name__} after {self.max_retries} attempts") from None

    def _one(self, item: BenchItem, root: Path, seed: int, do_sample: bool) -> RunOutput:
        body = self.request_body(item, root, seed=seed, do_sample=do_sample)
        key = sha256_json({"url": self.base_url, "body": body})
        cpath = self.cache_dir / f"{key}.json" if self.cache_dir else None
        t0 = time.perf_counter()
        if cpath and cpath.exists():
            try:
                data = json.loads(cpath.read_text())
                self.n_cache_hits += 1
                return RunOutput(text=data["text"], latency_s=data.get("latency_s", 0.0))
            except (json.JSONDecodeError, KeyError):
                pass  # a damaged cache entry is just a miss
        resp = self._post(body)
        try:
            text = resp["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise ApiError(f"{self.base_url}: response without choices[0].message.content: {str(resp)[:200]}") from None
        if isinstance(text, list):  # some servers return content parts
            text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
        dt = time.perf_counter() - t0
        if cpath:
            atomic_write_json(cpath, {"text": text, "latency_s": dt, "model": self.model, "usage": resp.get("usage")})
        return RunOutput(text=text, latency_s=dt)

    def generate(self, items: Sequence[BenchItem], root: Path, *, seed: int, do_sample: bool
                 ) -> list[RunOutput | Exception]:
        """All items of the batch, ``concurrency`` at a time. A failed item comes back as its
        exception (``evaluate`` quarantines it) so the rest of the batch is kept."""
        from fourdthinker.eval.runners.base import FatalRunnerError

        def safe(it: BenchItem) -> RunOutput | Exception:
            try:
                return self._one(it, root, seed, do_sample)
            except FatalRunnerError:
                raise  # stops the run (one line), instead of one quarantine row per item
            except Exception as e:  # noqa: BLE001 - reported per item, with its reason
                return e

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(safe, items))

    def close(self) -> None:
        self._client.close()
