"""The CLI's error contract (docs/errors.md), each case a subprocess run of the real command line.

Every expected failure: exit code 2, exactly one line ``error: <what> — <how to fix>`` naming the
problem, no traceback, and nothing that was already on disk changed. Cases are grouped per topic so
they share one prepared tree (tests/cli/conftest.py).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from .conftest import cli_env, run_cli

KEY = "sk-test-SECRET-0123456789abcdef"


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def error_line(r) -> str:
    """The one ``error:`` line of a failed run (asserting there is exactly one and no traceback)."""
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    lines = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, out
    assert " — " in lines[0], f"no '— how to fix' part: {lines[0]}"
    return lines[0]


def expect_error(tree: Path, args: list[str], *needles: str, env=None, max_s: float | None = None) -> str:
    before = snapshot(tree)
    t0 = time.perf_counter()
    r = run_cli(args, tree, env=env)
    dt = time.perf_counter() - t0
    assert r.returncode == 2, (args, r.returncode, r.stdout + r.stderr)
    line = error_line(r)
    for n in needles:
        assert n in line, (n, line)
    assert snapshot(tree) == before, f"{args}: files on disk changed"
    if max_s is not None:
        assert dt < max_s, f"{args}: took {dt:.1f} s (should fail at once)"
    return line


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- numbers, outputs, usage
def test_numbers_output_paths_and_usage_fail_up_front(fresh_tree):
    t = fresh_tree
    cases = [
        (["world", "--out", "data/w2", "--videos", "-2"], "--videos must be > 0"),
        (["world", "--out", "clip.mp4", "--videos", "2"], "--out clip.mp4: is an existing file"),
        (["train", "dift", "--data", "data/dift", "--max-steps", "0"], "--max-steps must be > 0"),
        (["train", "dift", "--data", "data/dift", "--max-steps", "-3"], "--max-steps must be > 0"),
        (["train", "dift", "--data", "data/dift", "--epochs", "0"], "--epochs must be > 0"),
        (["train", "dift", "--data", "data/dift", "--out", "clip.mp4"], "is an existing file"),
        (["train", "rl", "--data", "data/dift", "--init", "runs/dift", "--out", "clip.mp4"], "is an existing file"),
        (["eval", "-m", "random", "-b", "synthetic", "-d", "data/world_test", "-o", "rep", "--limit", "-1"],
         "--limit must be > 0"),
        (["eval", "-m", "random", "-b", "synthetic", "-d", "data/world_test", "-o", "rep", "--batch-size", "0"],
         "--batch-size must be > 0"),
        (["eval", "-m", "random", "-b", "synthetic", "-d", "data/world_test", "-o", "clip.mp4"], "is an existing file"),
        (["eval", "-m", "a b=random", "-m", "a_b=random", "-b", "synthetic", "-d", "data/world_test", "-o", "rep"],
         "share the output folder"),
        (["infer", "--model", "runs/dift", "--video", "clip.mp4", "-q", "x", "--max-new-tokens", "0"],
         "--max-new-tokens must be > 0"),
        (["probe", "--model", "runs/dift", "-b", "synthetic", "-d", "data/world_test", "--out", "clip.mp4"],
         "is an existing file"),
        (["data", "build", "--videos", "data/world", "--out", "clip.mp4"], "is an existing file"),
        (["data", "build", "--videos", "nowhere", "--out", "d2"], "--videos nowhere: no such folder"),
        (["data", "show", "clip_00000_00_camera", "--data", "data/dift", "--out", "data"], "is a folder"),
        (["video", "sample", "clip.mp4", "--fps", "0"], "--fps must be > 0"),
        (["video", "sample", "clip.mp4", "--sheet", "clip.mp4/x.png"], "clip.mp4: is an existing file"),
        (["demo", "--out", "clip.mp4"], "is an existing file"),
        (["eval", "--bogus"], "No such option: --bogus"),
        (["world", "--videos", "many", "--out", "w"], "'--videos'"),
    ]
    for args, needle in cases:
        expect_error(t, args, needle)
    assert not (t / "rep").exists() and not (t / "data/w2").exists()


# ----------------------------------------------------------------------------- local paths vs hub ids
def test_model_paths_are_decided_without_the_network(fresh_tree):
    t = fresh_tree
    for args in (["train", "rl", "--data", "data/dift", "--init", "runs/nothing/final", "--out", "runs/x"],
                 ["train", "dift", "--data", "data/dift", "--model", "./missing_model"],
                 ["eval", "-m", "DIFT=runs/nope", "-b", "synthetic", "-d", "data/world_test", "-o", "rep"],
                 ["infer", "--model", "some/dir/model", "--video", "clip.mp4", "-q", "x"],
                 ["probe", "--model", "~/no_such_model_here", "-b", "synthetic", "-d", "data/world_test"]):
        expect_error(t, args, "no such model folder", max_s=60)
    # a hub id with the hub unreachable: at once, with the download hint (no retries, no traceback)
    hub = ["train", "dift", "--data", "data/dift", "--model", "Qwen/Qwen2.5-VL-3B-Instruct"]
    env = cli_env(HF_ENDPOINT=f"http://127.0.0.1:{free_port()}", HF_HUB_OFFLINE="0")
    expect_error(t, hub, "Qwen/Qwen2.5-VL-3B-Instruct", "unreachable", "huggingface-cli download", env=env, max_s=60)
    expect_error(t, hub, "HF_HUB_OFFLINE is set", env=cli_env(HF_HUB_OFFLINE="1"), max_s=60)
    # a run folder resolves to its final model: runs/rl and runs/rl/final (and runs/dift/final) all work
    for init in ("runs/rl", "runs/rl/final", "runs/dift", "runs/dift/final"):
        r = run_cli(["train", "rl", "--data", "data/dift", "--init", init, "--out", "runs/x", "--dry-run"], t)
        assert r.returncode == 0 and "all checks passed" in r.stdout, r.stdout + r.stderr
    # a folder that is no model, and one that only has checkpoints
    (t / "runs/empty/checkpoint-3").mkdir(parents=True)
    expect_error(t, ["train", "rl", "--data", "data/dift", "--init", "runs/empty", "--dry-run"],
                 "not a model folder", "checkpoint-3")


def test_pickle_weights_need_an_explicit_flag(fresh_tree):
    import torch
    from safetensors.torch import load_file

    t = fresh_tree
    pkl = t / "runs/pkl"
    shutil.copytree(t / "runs/dift", pkl)
    torch.save(load_file(pkl / "model.safetensors"), pkl / "pytorch_model.bin")
    (pkl / "model.safetensors").unlink()
    expect_error(t, ["infer", "--model", "runs/pkl", "--video", "clip.mp4", "-q", "x"],
                 "runs/pkl", "pickle", "--allow-pickle")
    expect_error(t, ["train", "rl", "--data", "data/dift", "--init", "runs/pkl", "--dry-run"], "pickle")
    r = run_cli(["--allow-pickle", "train", "rl", "--data", "data/dift", "--init", "runs/pkl", "--out", "o", "--dry-run"], t)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_cli(["train", "rl", "--data", "data/dift", "--init", "runs/pkl", "--out", "o", "--dry-run", "--allow-pickle"], t)
    assert r.returncode == 0, r.stdout + r.stderr  # accepted anywhere on the line


# ----------------------------------------------------------------------------- record paths, duplicated ids
def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_record_paths_stay_inside_their_root_and_ids_are_unique(fresh_tree, tmp_path):
    t = fresh_tree
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy2(t / "clip.mp4", outside / "x.mp4")
    q = {"question": "How does the camera move?", "options": ["Pan Left", "Pan Right", "Tilt Up", "Tilt Down"]}
    # infer --batch: duplicated ids are refused before the model loads
    _write_jsonl(t / "dup.jsonl", [{"id": "a", "video": "clip.mp4", **q}, {"id": "a", "video": "clip.mp4", **q}])
    expect_error(t, ["infer", "--model", "runs/dift", "--batch", "dup.jsonl", "--out", "dup_preds.jsonl"],
                 "dup.jsonl:2: duplicated id 'a' (first on line 1)")
    # data show: a missing field, an escaping path, a duplicated id -> one line each
    recs = [json.loads(ln) for ln in (t / "data/dift/dift.jsonl").read_text().splitlines()]
    bad = dict(recs[0], id="no_options")
    del bad["options"]
    esc = dict(recs[0], id="escapes", frames=["../../outside/x.png"])
    _write_jsonl(t / "data/bad/dift.jsonl", [bad, esc])
    expect_error(t, ["data", "show", "no_options", "--data", "data/bad"], "no_options", "options: Field required")
    expect_error(t, ["data", "show", "escapes", "--data", "data/bad"], "escapes dataset root")
    _write_jsonl(t / "data/dup/dift.jsonl", [recs[0], recs[0]])
    expect_error(t, ["data", "show", recs[0]["id"], "--data", "data/dup"], "duplicated id")
    expect_error(t, ["train", "dift", "--data", "data/dup", "--max-steps", "1"], "duplicated id")
    _write_jsonl(t / "data/rldup/rl.jsonl", [recs[0], recs[0]])
    expect_error(t, ["train", "rl", "--data", "data/rldup", "--init", "runs/dift", "--dry-run"], "duplicated id")
    # data audit on a folder with nothing to compare
    (t / "empty/clips").mkdir(parents=True)
    expect_error(t, ["data", "audit", "--videos", "data/world", "--data", "empty"], "no record could be compared")
    # infer --batch: escaping and absolute paths are quarantined (never opened), the good one answered
    _write_jsonl(t / "batch.jsonl", [{"id": "ok", "video": "clip.mp4", **q},
                                     {"id": "esc", "video": "../outside/x.mp4", **q},
                                     {"id": "abs", "video": str(outside / "x.mp4"), **q}])
    r = run_cli(["infer", "--model", "runs/dift", "--batch", "batch.jsonl", "--out", "preds.jsonl",
                 "--max-new-tokens", "4", "--max-frames", "2"], t)
    assert r.returncode == 0, r.stdout + r.stderr
    answered = [json.loads(ln)["id"] for ln in (t / "preds.jsonl").read_text().splitlines()]
    assert answered == ["ok"]
    quarantined = {json.loads(ln)["id"]: json.loads(ln)["reason"]
                   for ln in (t / "preds.jsonl.quarantine.jsonl").read_text().splitlines()}
    assert set(quarantined) == {"esc", "abs"} and all("escapes dataset root" in v for v in quarantined.values())


# ----------------------------------------------------------------------------- endpoints
class _EchoHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request with ``status`` and a body echoing the request's Authorization header."""

    status = 401

    def log_message(self, *a):
        pass

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error": "denied", "echo": {"Authorization": self.headers.get("Authorization")}}).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def echo_server():
    servers = []

    def start(status: int) -> str:
        handler = type("H", (_EchoHandler,), {"status": status})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/v1"

    yield start
    for s in servers:
        s.shutdown()


def test_failing_endpoints_stop_fast_and_never_store_the_key(fresh_tree, echo_server):
    t = fresh_tree
    env = cli_env(FDT_KEY=KEY)
    ev = ["-b", "synthetic", "-d", "data/world_test", "--api-key-env", "FDT_KEY", "--max-frames", "1"]
    # connection refused: one line at once, not retries per item
    dead = f"http://127.0.0.1:{free_port()}/v1"
    line = expect_error(t, ["eval", "-m", "api:m", "--api-base", dead, "-o", "r1", *ev], "cannot connect",
                        env=env, max_s=90)
    # 401 whose body echoes the key: stops the run, the key is neither printed nor stored
    line = expect_error(t, ["eval", "-m", "api:m", "--api-base", echo_server(401), "-o", "r2", *ev], "HTTP 401",
                        env=env, max_s=90)
    assert KEY not in line
    # 400 (per-item failure) echoing the key: every item fails -> nonzero exit; quarantine redacted
    r = run_cli(["eval", "-m", "api:m", "--api-base", echo_server(400), "-o", "r3", "--retries", "1", *ev], t, env=env)
    assert r.returncode == 2 and "every item failed" in error_line(r) and KEY not in r.stdout + r.stderr
    stored = "".join(p.read_text() for p in (t / "r3").rglob("*") if p.is_file())
    assert "HTTP 400" in stored and KEY not in stored and "***" in stored
    # a missing key variable for a remote endpoint: refused before any work
    expect_error(t, ["eval", "-m", "api:m", "--api-base", "https://api.example.invalid/v1", "-o", "r4",
                     "-b", "synthetic", "-d", "data/world_test", "--api-key-env", "FDT_NO_SUCH_KEY"],
                 "$FDT_NO_SUCH_KEY is not set")
    assert not (t / "r4").exists()
    # the data-build oracle: missing key up front; 401 echo and refused connection stop the build
    build = ["data", "build", "--videos", "data/world", "--oracle", "openai", "--workers", "1", "--limit", "2"]
    expect_error(t, [*build, "--out", "o1", "--oracle-base-url", "https://api.example.invalid/v1",
                     "--oracle-api-key-env", "FDT_NO_SUCH_KEY"], "$FDT_NO_SUCH_KEY is not set")
    for url, needle in ((echo_server(401), "HTTP 401"), (dead, "cannot connect")):
        r = run_cli([*build, "--out", "o2", "--oracle-base-url", url, "--oracle-api-key-env", "FDT_KEY"], t, env=env)
        assert r.returncode == 2 and needle in error_line(r) and KEY not in r.stdout + r.stderr, r.stdout + r.stderr
        assert not list((t / "o2").rglob("done.json")), "a fatal endpoint error must not quarantine clips"


# ----------------------------------------------------------------------------- eval reruns after a failure
def test_failed_eval_leaves_no_run_json_behind(fresh_tree):
    t = fresh_tree
    broken = t / "runs/broken"
    shutil.copytree(t / "runs/dift", broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    ev = ["-b", "synthetic", "-d", "data/world_test", "-o", "rep", "--limit", "1", "--max-new-tokens", "4",
          "--max-frames", "1", "--no-html"]
    r = run_cli(["eval", "-m", "M=runs/broken", *ev], t)
    assert r.returncode == 2 and "cannot load model" in error_line(r)
    assert not list((t / "rep").rglob("run.json"))
    r = run_cli(["eval", "-m", "M=runs/dift", *ev], t)  # the corrected command, no --overwrite needed
    assert r.returncode == 0, r.stdout + r.stderr


# ----------------------------------------------------------------------------- bugs
BUG = """
import sys
import fourdthinker.world.generate as g
def boom(*a, **k):
    raise RuntimeError("kaboom with key sk-test-SECRET-0123456789abcdef")
g.generate_world = boom
from fourdthinker.cli import app
sys.argv = ["fourdthinker", *sys.argv[1:]]
app()
"""


def test_unexpected_errors_print_one_line_and_keep_the_traceback(tmp_path):
    import subprocess

    env = cli_env(FOURDTHINKER_CACHE=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-c", BUG, "world", "--out", str(tmp_path / "w"), "--videos", "1"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and "unexpected RuntimeError" in line[0] and "--debug" in line[0]
    assert KEY not in r.stderr and "***" in line[0]
    path = Path(line[0].split("full traceback in ")[1].split(" (rerun")[0])
    assert path.is_file() and path.is_relative_to(tmp_path / "cache")
    text = path.read_text()
    assert "Traceback" in text and "boom" in text and KEY not in text
    r = subprocess.run([sys.executable, "-c", BUG, "world", "--debug", "--out", str(tmp_path / "w"), "--videos", "1"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" in r.stderr and "kaboom" in r.stderr and KEY not in r.stderr
    assert os.environ.get("FOURDTHINKER_DEBUG") is None
