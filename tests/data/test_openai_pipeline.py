"""The whole build with --oracle openai against a local fake endpoint (real HTTP on 127.0.0.1):
structured landmark/consistency replies, a CoT that fails the validator once and is regenerated,
usage/cost in the summary, and a rerun served entirely from the response cache."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fourdthinker.data.config import BuildConfig
from fourdthinker.data.runner import build
from fourdthinker.io import read_jsonl


@pytest.fixture()
def endpoint(world3):
    truth = json.loads(next(iter(sorted(world3.iterdir()))).joinpath("truth.json").read_text())
    calls = []

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls.append(body)
            text = body["messages"][1]["content"][-1]["text"]
            fmt = (body.get("response_format") or {}).get("json_schema", {}).get("name")
            if fmt == "landmarks":
                out = json.dumps({k: {"name": truth[k]["name"], "description": truth[k]["description"]}
                                  for k in ("static_object", "dynamic_object")})
            elif fmt == "static_check":
                out = json.dumps({"consistent": True, "reason": "ok"})
            elif fmt == "dynamic_check":
                n = len(body["messages"][1]["content"]) - 1
                out = json.dumps({"is_any_dynamic": True, "valid_frame_indices": list(range(n)), "object_description": "x"})
            else:
                k = int(re.search(r"exactly (\d+) placeholders", text).group(1))
                letter = re.search(r"The correct answer is ([A-D])", text).group(1)
                k = k if "Attempt" in text else k + 1  # first try breaks the placeholder rule
                out = "<think>I watch it " + " then ".join(["<imagery>"] * k) + f" and conclude.</think><answer>{letter}</answer>"
            data = json.dumps({"choices": [{"message": {"content": out}}],
                               "usage": {"prompt_tokens": 50, "completion_tokens": 10}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", calls
    httpd.shutdown()
    httpd.server_close()


def test_build_with_openai_oracle(world3, tmp_path, endpoint):
    url, calls = endpoint
    cfg = BuildConfig(oracle="openai", oracle_base_url=url, oracle_model="fake", price_in=1.0, price_out=1.0)
    out = tmp_path / "d"
    s = build(world3, out, cfg, workers=1, progress=False, limit=1)
    recs = read_jsonl(out / "dift.jsonl")
    assert s.clips_ok == 1 and len(recs) >= 5
    assert all(r["reasoning"].count("<imagery>") == len(r["imagery"]) for r in recs)
    assert s.oracle["calls"] == len(calls) and s.oracle["prompt_tokens"] == 50 * len(calls)
    assert s.oracle["cost_usd"] == pytest.approx(60 * len(calls) / 1e6)
    n = len(calls)
    s2 = build(world3, tmp_path / "d", cfg, workers=1, progress=False, limit=1, retry_quarantined=True)
    assert len(calls) == n and s2.clips_skipped_done == 1
    # a fresh folder rebuilds, but the cache lives per dataset root: point a rebuild at the same root
    (out / "clips").rename(out / "old")
    build(world3, out, cfg, workers=1, progress=False, limit=1)
    assert len(calls) == n, "rerun must be served from the on-disk response cache"
    assert read_jsonl(out / "dift.jsonl") == recs
