"""The openai oracle against a real HTTP server on 127.0.0.1 (good JSON, broken JSON, 429, timeouts)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from fourdthinker.oracle import CotRequest, OracleError
from fourdthinker.oracle.openai_backend import OpenAIOracle

LANDMARKS = {"static_object": {"name": "blue tower", "description": "the tall blue tower in the middle"},
             "dynamic_object": {"name": "red ball", "description": "the red ball rolling on the ground"}}


class FakeServer:
    """Replies from a script: each entry is ("json", obj) | ("text", str) | ("status", code) | ("sleep", s)."""

    def __init__(self):
        self.script: list = []
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep pytest output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                outer.headers.append(dict(self.headers))
                kind, val = outer.script.pop(0) if outer.script else ("status", 500)
                if kind == "sleep":
                    time.sleep(val)
                    kind, val = "json", LANDMARKS
                if kind == "status":
                    self.send_response(val)
                    self.end_headers()
                    self.wfile.write(b'{"error": "busy"}')
                    return
                content = json.dumps(val) if kind == "json" else val
                reply = {"choices": [{"message": {"content": content}}], "usage": {"prompt_tokens": 100, "completion_tokens": 20}}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = FakeServer()
    yield s
    s.close()


def _oracle(server, tmp_path, **kw):
    return OpenAIOracle(base_url=server.url, model="fake-model", api_key_env="FDT_TEST_KEY", cache_dir=tmp_path / "cache",
                        timeout_s=kw.pop("timeout_s", 2.0), backoff_s=0.01, price_in=1.0, price_out=2.0, **kw)


FRAMES = [np.full((24, 32, 3), i * 40, np.uint8) for i in range(3)]


def test_good_json_images_key_and_cache(server, tmp_path, monkeypatch):
    monkeypatch.setenv("FDT_TEST_KEY", "sk-secret-123")
    server.script = [("json", LANDMARKS)]
    o = _oracle(server, tmp_path)
    lm = o.select_landmarks(FRAMES)
    assert (lm.static.name, lm.dynamic.description) == ("blue tower", "the red ball rolling on the ground")
    req = server.requests[0]
    assert req["response_format"]["type"] == "json_schema" and req["model"] == "fake-model"
    parts = req["messages"][1]["content"]
    assert sum(p["type"] == "image_url" for p in parts) == 3
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert server.headers[0]["Authorization"] == "Bearer sk-secret-123"
    # usage and cost: 100 prompt + 20 completion tokens at $1 / $2 per 1M
    assert o.usage.calls == 1 and o.usage.prompt_tokens == 100
    assert o.usage.cost_usd == pytest.approx((100 * 1 + 20 * 2) / 1e6)
    # rerun: served from the on-disk cache, no HTTP request
    o2 = _oracle(server, tmp_path)
    assert o2.select_landmarks(FRAMES) == lm
    assert len(server.requests) == 1 and o2.usage.cached == 1 and o2.usage.calls == 0
    # the key is never stored or shown
    for f in (tmp_path / "cache").iterdir():
        assert "sk-secret-123" not in f.read_text()
    assert "sk-secret-123" not in repr(o)


def test_broken_json_is_reasked_then_fails_clearly(server, tmp_path):
    server.script = [("text", "sure! {not json"), ("text", '```json\n' + json.dumps(LANDMARKS) + '\n```')]
    o = _oracle(server, tmp_path)
    assert o.select_landmarks(FRAMES).static.name == "blue tower"
    assert len(server.requests) == 2
    server.script = [("json", {"static_object": {"name": "x"}})] * 3  # schema violation every time
    with pytest.raises(OracleError, match="no valid JSON for landmarks after 3 attempts"):
        _oracle(server, tmp_path / "b").select_landmarks(FRAMES[:1])


def test_429_and_5xx_are_retried(server, tmp_path):
    server.script = [("status", 429), ("status", 503), ("json", LANDMARKS)]
    o = _oracle(server, tmp_path)
    assert o.select_landmarks(FRAMES).dynamic.name == "red ball"
    assert len(server.requests) == 3
    server.script = [("status", 400)]
    with pytest.raises(OracleError, match="HTTP 400"):
        _oracle(server, tmp_path / "c").select_landmarks(FRAMES[:2])
    assert len(server.requests) == 4, "a 400 must not be retried"


def test_timeout_is_retried_then_gives_up(server, tmp_path):
    server.script = [("sleep", 1.0), ("json", LANDMARKS)]
    o = _oracle(server, tmp_path, timeout_s=0.3)
    assert o.select_landmarks(FRAMES).static.name == "blue tower"
    server.script = [("sleep", 1.0)] * 2
    with pytest.raises(OracleError, match="gave up after 2 attempts"):
        _oracle(server, tmp_path / "d", timeout_s=0.3, max_retries=2).select_landmarks(FRAMES[:1])


def test_consistency_checks_and_cot(server, tmp_path):
    from fourdthinker.oracle import Landmark

    server.script = [("json", {"consistent": False, "reason": "mask drifts to the tree"}),
                     ("json", {"is_any_dynamic": True, "valid_frame_indices": [0, 2, 9], "object_description": "ball"}),
                     ("text", "<think>a <imagery> b <imagery></think><answer>B</answer>")]
    o = _oracle(server, tmp_path)
    lm = Landmark("red ball", "the red ball")
    assert o.verify_static(FRAMES, lm, []) == (False, "mask drifts to the tree")
    assert o.verify_dynamic(FRAMES, lm, []) == [0, 2], "indices outside the overlay set are dropped"
    req = CotRequest("r1", "camera", "How does the camera move?", {"A": "Pan Left", "B": "Pan Right", "C": "Move Left",
                     "D": "Tilt Up"}, "B", "Pan Right", [0.0, 2.0], {"static": "blue tower"}, overlays=FRAMES[:2])
    assert o.write_cot(req).endswith("<answer>B</answer>")
    text = server.requests[-1]["messages"][1]["content"][-1]["text"]
    assert "exactly 2 placeholders" in text and "blue tower" in text
