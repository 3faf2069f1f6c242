"""The OpenAI-compatible API runner against a real HTTP server on 127.0.0.1 (in a thread)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fourdthinker.eval.evaluate import evaluate
from fourdthinker.eval.loaders import load_dyn_bench
from fourdthinker.eval.runners.api import ApiRunner


class FakeChatServer(ThreadingHTTPServer):
    """Answers /v1/chat/completions: the gold letter is looked up from the question text; a few
    scripted failures (HTTP 500 / 429) exercise retries; an 'unanswerable' question gets HTTP 400."""

    def __init__(self, answers: dict[str, str], fail_first: int = 0):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers = answers
        self.fail_left = fail_first
        self.requests: list[dict] = []
        self.headers_seen: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):  # keep test output clean
        pass

    def do_POST(self):  # noqa: N802 - http.server API
        srv: FakeChatServer = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with srv.lock:
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
            srv.requests.append(body)
            srv.headers_seen.append(dict(self.headers))
            fail = srv.fail_left > 0
            srv.fail_left -= 1 if fail else 0
        time.sleep(0.05)  # long enough for requests to overlap
        try:
            if self.path != "/v1/chat/completions":
                return self._send(404, {"error": "not found"})
            if fail:
                return self._send(500 if len(srv.requests) % 2 else 429, {"error": "try again"})
            text = "\n".join(p["text"] for p in body["messages"][0]["content"] if p["type"] == "text")
            if "unanswerable" in text:
                return self._send(400, {"error": "bad request"})
            letter = next((a for q, a in srv.answers.items() if q in text), "A")
            self._send(200, {"choices": [{"message": {"role": "assistant",
                                                      "content": f"<think>looking</think><answer>{letter}</answer>"}}],
                             "usage": {"total_tokens": 10}})
        finally:
            with srv.lock:
                srv.in_flight -= 1

    def _send(self, code: int, obj: dict):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server_factory():
    servers = []

    def start(answers, fail_first=0):
        s = FakeChatServer(answers, fail_first)
        threading.Thread(target=s.serve_forever, daemon=True).start()
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def test_api_runner_end_to_end(tmp_path, dyn_root, server_factory, monkeypatch):
    lr = load_dyn_bench(dyn_root)
    answers = {it.question: it.answer for it in lr.items if it.subtask != "Obj-Scene"}  # Obj-Scene -> always "A"
    srv = server_factory(answers, fail_first=3)
    monkeypatch.setenv("FAKE_KEY", "sk-secret-123")
    runner = ApiRunner("fake-vlm", base_url=srv.url, api_key_env="FAKE_KEY", concurrency=3, retry_wait_s=0.01,
                       cache_dir=tmp_path / "cache", max_frames=2)
    res = evaluate(runner, lr.items, tmp_path / "out", root=lr.root, progress=False)
    # Inter-Obj and Cam-Obj answered right; Obj-Scene gold is "B", the server says "A"
    assert res.subtask_accuracy() == {"Inter-Obj": 1.0, "Obj-Scene": 0.0, "Cam-Obj": 1.0}
    assert res.avg() == pytest.approx(2 / 3)
    assert len(srv.requests) == 12 + 3  # three transient failures were retried
    assert 1 < srv.max_in_flight <= 3  # concurrent, within the limit
    first = srv.requests[-1]
    parts = first["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url", "text"]  # 2 frames as images
    assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert first["temperature"] == 0.0  # greedy by default
    assert all(h.get("Authorization") == "Bearer sk-secret-123" for h in srv.headers_seen)
    # the key is never written to disk
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert b"sk-secret-123" not in p.read_bytes(), p

    # a fresh run in a new folder is served from the response cache: no new requests
    n = len(srv.requests)
    runner2 = ApiRunner("fake-vlm", base_url=srv.url, api_key_env="FAKE_KEY", concurrency=3, cache_dir=tmp_path / "cache",
                        max_frames=2)
    res2 = evaluate(runner2, lr.items, tmp_path / "out2", root=lr.root, progress=False)
    assert len(srv.requests) == n and runner2.n_cache_hits == 12
    assert res2.correct() == res.correct()


def test_api_runner_bad_request_is_quarantined_not_fatal(tmp_path, dyn_root, server_factory):
    lr = load_dyn_bench(dyn_root)
    items = [it.model_copy(update={"question": "unanswerable?"}) if k == 1 else it for k, it in enumerate(lr.items[:4])]
    srv = server_factory({})
    runner = ApiRunner("fake-vlm", base_url=srv.url, concurrency=2, retry_wait_s=0.01, max_frames=1)
    res = evaluate(runner, items, tmp_path / "out", root=lr.root, progress=False)
    assert len(res.predictions) == 3
    assert [f["id"] for f in res.failed] == [items[1].id]
    assert "HTTP 400" in res.failed[0]["reason"]
    assert len(srv.requests) == 4  # a 400 is not retried
    q = (tmp_path / "out" / "quarantine.jsonl").read_text()
    assert items[1].id in q
