"""Benchmark: the API runner's concurrency and response cache against a local chat server.

A real HTTP server on 127.0.0.1 answers ``/v1/chat/completions`` after a fixed delay (``--latency``,
standing in for a remote model's time to answer). The same items are evaluated:

* with ``concurrency=1`` (one request at a time: the baseline)           -> ``speedup_concurrency_8``
* with ``concurrency=8``
* again with the response cache warm (no request reaches the server)    -> ``speedup_cache``

Items are frame folders (Dyn-Bench layout, written on the fly), so the timings include frame
loading and JPEG encoding, as a real run does. All runs happen in this process, same items.

Run: ``python benchmarks/eval_api_runner.py [--items 48] [--latency 0.1]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

from fourdthinker.eval.evaluate import evaluate
from fourdthinker.eval.loaders import load_dyn_bench
from fourdthinker.eval.runners.api import ApiRunner


class _Handler(BaseHTTPRequestHandler):
    latency = 0.1

    def log_message(self, *a):
        pass

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.latency)
        data = json.dumps({"choices": [{"message": {"content": "<think>.</think><answer>B</answer>"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def make_bench(root: Path, n_items: int) -> Path:
    """n_items questions over 4 scenes of 4 frames (160x120) in the Dyn-Bench layout."""
    per_scene = max(1, n_items // 4)
    for s in range(4):
        fdir = root / "frames" / "bench" / f"scene{s}"
        fdir.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(s)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(fdir / f"frame_{i:04d}.png")
        qdir = root / "multi_json" / "bench"
        qdir.mkdir(parents=True, exist_ok=True)
        qa = [{"question": f"scene {s} question {j}?", "options": ["A. a", "B. b", "C. c", "D. d"], "answer": "B"}
              for j in range(per_scene)]
        (qdir / f"scene{s}_qa.json").write_text(json.dumps(qa))
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=48)
    ap.add_argument("--latency", type=float, default=0.1, help="server seconds per request")
    args = ap.parse_args()
    _Handler.latency = args.latency
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lr = load_dyn_bench(make_bench(tmp / "bench", args.items))
        times = {}
        for name, conc, cache in (("sequential", 1, None), ("concurrent8", 8, tmp / "cache"), ("cached", 8, tmp / "cache")):
            r = ApiRunner("bench", base_url=url, concurrency=conc, cache_dir=cache, max_frames=4)
            t0 = time.perf_counter()
            res = evaluate(r, lr.items, tmp / f"out_{name}", root=lr.root, progress=False)
            times[name] = time.perf_counter() - t0
            assert res.micro() == 1.0, res.summary()
            print(f"{name}: {len(res.predictions)} items in {times[name]:.2f} s, {r.n_requests} requests, "
                  f"{r.n_cache_hits} cache hits")
    srv.shutdown()
    print(f"items: {len(lr.items)}")
    print(f"server_latency_s: {args.latency}")
    print(f"sequential_items_per_s: {len(lr.items) / times['sequential']:.1f}")
    print(f"speedup_concurrency_8: {times['sequential'] / times['concurrent8']:.2f}")
    print(f"speedup_cache: {times['sequential'] / times['cached']:.2f}")


if __name__ == "__main__":
    main()
