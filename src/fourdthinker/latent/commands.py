"""`fourdthinker infer`: latent-recurrent inference on a video + question (Eq. 10, docs/method.md#eq-10).

Thin recipe: check the inputs -> the video's frames and the prompt from the one input builder
(``models.inputs``: the frames, caps and prompt DIFT, 4DRL and eval use) -> load the model -> decode with
``latent.decode.latent_generate`` -> show (rich), print JSON, or append predictions (batch mode).
Heavy libraries are imported inside the function so ``--help`` stays instant.

Examples::

    fourdthinker infer --model runs/dift --video clip.mp4 \\
        --question "What is the camera movement from 0s to 4s?" \\
        -o "Pan Left" -o "Pan Right" -o "Tilt Up" -o "Tilt Down"
    fourdthinker infer --model runs/dift --batch questions.jsonl --out preds.jsonl --latents zero
    fourdthinker infer --model runs/dift --video clip.mp4 -q "..." -o ... --explain out/ --bank data/dift
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import typer

from fourdthinker.cli_config import config_command
from fourdthinker.labels import OPTION_LETTERS
from fourdthinker.latent.config import InferConfig
from fourdthinker.models.inputs import (  # the one input builder; InputError: one line naming the file/argument
    FrameSettings,
    InputError,
    PromptInputs,
    encode_inputs,
    load_frames,
    prompt_text,
)

# ------------------------------------------------------------------------------------- input checks


def parse_options(values: list[str] | None) -> dict[str, str] | None:
    """``--options`` values -> ``{"A": .., "B": .., "C": .., "D": ..}`` or None when none are given.

    Accepts four values (``-o "Pan Left" -o ...``), one ``"x|y|z|w"`` string, or lettered values
    (``"A=Pan Left"``, ``"A. Pan Left"``) in A-D order.

    >>> parse_options(["Pan Left|Pan Right|Tilt Up|Tilt Down"])["B"]
    'Pan Right'
    """
    if not values:
        return None
    items = [p.strip() for v in values for p in (v.split("|") if "|" in v else [v])]
    texts, letters = [], []
    for it in items:
        m = re.match(r"^\s*([A-Za-z])\s*(?:=|\.|\)|:)\s*(.+)$", it)
        if m:
            letters.append(m.group(1).upper())
            texts.append(m.group(2).strip())
        else:
            texts.append(it)
    if letters and (len(letters) != len(items) or letters != list(OPTION_LETTERS)):
        raise InputError(f"--options: lettered options must be exactly A, B, C, D in order, got {letters or items}")
    if len(texts) != len(OPTION_LETTERS):
        raise InputError(f"--options: give exactly 4 options (A-D), got {len(texts)}: {texts}")
    if any(not t for t in texts):
        raise InputError("--options: an option is empty")
    if len(set(texts)) != len(texts):
        raise InputError(f"--options: options must be distinct, got {texts}")
    return dict(zip(OPTION_LETTERS, texts, strict=True))


def check_question(question: str | None, where: str = "--question") -> str:
    if question is None or not str(question).strip():
        raise InputError(f"{where}: the question is empty")
    return str(question).strip()


def resolve_latent_norm(spec: str, adapter, bank=None) -> float | None:
    """``--latent-norm``: ``auto`` | ``none`` | ``match`` | a number. ``auto`` (None) = the model's
    own setting (``latent_generate``: the norm a ``--feed-norm`` model was trained to be fed at,
    else none); ``none`` (0.0) = never rescale. ``match`` takes the DIFT targets' mean norm from the
    model config (``latent_target_norm``) or, failing that, from the ``--bank`` overlay latents (the
    same pooled targets DIFT trained towards)."""
    s = (spec or "auto").strip().lower()
    if s in ("auto", ""):
        return None
    if s in ("none", "off", "0"):
        return 0.0
    if s == "match":
        n = getattr(getattr(adapter, "model", None) and adapter.model.config, "latent_target_norm", None)
        if n:
            return float(n)
        if bank is not None:
            return float(bank.latents.float().norm(dim=-1).mean())
        raise InputError(
            "--latent-norm match: the model config has no latent_target_norm; pass --bank DIR (overlay images) "
            "to measure it, or give the norm as a number"
        )
    try:
        v = float(s)
    except ValueError:
        raise InputError(f"--latent-norm: expected none, match or a number, got {spec!r}") from None
    if v <= 0:
        raise InputError(f"--latent-norm: the norm must be > 0, got {v}")
    return v


# ------------------------------------------------------------------------------------- display


def _render(console, question: str, options: dict | None, res, model: str) -> None:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    body = Text()
    for part in re.split(r"(<imagery:\d+>|</?think>|</?answer>)", res.text):
        if re.fullmatch(r"<imagery:\d+>", part):
            body.append(f" [{part[1:-1]} latent steps] ", style="bold magenta")
        elif re.fullmatch(r"</?(think|answer)>", part):
            body.append(part, style="dim")
        else:
            body.append(part)
    q = Text(question)
    if options:
        q.append("\n" + "\n".join(f"{k}. {v}" for k, v in options.items()), style="cyan")
    console.print(Panel(q, title="question", border_style="cyan"))
    console.print(Panel(body, title="reasoning (latent imagery in magenta)", border_style="magenta"))
    t = Table(show_header=False, box=None)
    ans = res.answer or "(none parsed)"
    if res.answer and options:
        ans = f"{res.answer}. {options[res.answer]}"
    t.add_row("answer", f"[bold green]{ans}[/]" if res.answer else f"[yellow]{ans}[/]")
    t.add_row("latent blocks / steps", f"{res.n_latent_blocks} / {res.n_latent_steps}")
    t.add_row("tokens", f"{len(res.token_ids)} ({res.stop_reason})")
    t.add_row("latency", f"{res.latency_s:.2f} s")
    t.add_row("model", model)
    console.print(t)


def _fail(console, msg: str) -> None:
    console.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


# ------------------------------------------------------------------------------------- command


def _infer(config: str | None = None, **flags) -> None:
    """Answer a question about a video, thinking with latent imagery (Eq. 10).

    After the model writes <|latent_start|>, its own last hidden state is fed back as the next input for exactly K steps (shown as <imagery:K>), then text resumes; the answer letter is parsed from <answer>...</answer>. Use --latents to test whether the imagery matters, and --explain to see which overlay images the imagined latents are closest to. When latent steps were fed, a 'latent health' line compares their mean norm with the token embeddings' (warning when the ratio leaves [1/4, 4]; in --json output: the latent_health field).

    Example: fourdthinker infer --model runs/dift --video clip.mp4 -q "What is the camera movement from 0s to 4s?" -o "Pan Left|Pan Right|Tilt Up|Tilt Down"
    """
    from rich.console import Console

    from fourdthinker.cli_config import config_from_flags
    from fourdthinker.errors import require_out_dir, require_out_file

    # Numbers checked against InferConfig's declared bounds, and paths, before any work (a model load
    # takes seconds to minutes).
    c = config_from_flags(InferConfig, config, flags)
    model, video, question, latents, latent_norm, seed = c.model, c.video, c.question, c.latents, c.latent_norm, c.seed
    options, force_imagery, json_out, top = list(c.options) or None, list(c.force_imagery), c.json_out, c.top
    batch, out, explain, bank = (Path(p) if p else None for p in (c.batch, c.out, c.explain, c.bank))
    fps, max_frames, max_pixels, batch_size = c.fps, c.max_frames, c.max_pixels, c.batch_size
    console = Console(stderr=json_out)
    require_out_file(out, "--out")
    require_out_dir(explain, "--explain")
    try:
        from fourdthinker.latent.interventions import check_intervention

        check_intervention(latents)
        if batch is not None:
            if out is None:
                raise InputError("--batch needs --out (the predictions JSONL)")
            if video or question:
                raise InputError("--batch reads videos and questions from the JSONL; drop --video/--question")
            if not batch.is_file():
                raise InputError(f"{batch}: batch file not found")
            from fourdthinker.io import check_unique_ids, read_jsonl

            check_unique_ids(read_jsonl(batch), batch)  # a duplicated id would be answered twice
        else:
            if video is None:
                raise InputError("--video is required (or --batch FILE.jsonl)")
            question = check_question(question)
            opts = parse_options(options)
            settings = FrameSettings(fps, max_frames, max_pixels or None)
            frames = load_frames(None, video, settings=settings)
        if explain is not None and bank is None:
            raise InputError("--explain needs --bank DIR (a folder of overlay images to compare the latents with)")
        if bank is not None:
            from fourdthinker.latent.explain import bank_folder

            bank = bank_folder(bank)
        if latents == "shuffle" and batch is None:
            raise InputError("--latents shuffle feeds another sample's state: use --batch with --batch-size >= 2")
    except (InputError, ValueError) as e:
        _fail(console, str(e))

    import torch

    from fourdthinker.models import PRESETS, load

    torch.manual_seed(seed)
    from fourdthinker.errors import UserError
    from fourdthinker.models.locate import resolve_model

    try:
        resolved = resolve_model(model)  # a run folder -> its final model; a missing path fails now
    except UserError as e:
        _fail(console, str(e))
    with console.status(f"loading {model} ..."):
        try:
            adapter = load(resolved, dtype=c.dtype, device=c.device, add_latent_tokens=c.add_latent_tokens or model in PRESETS)
        except (OSError, ValueError) as e:
            _fail(console, f"{model}: cannot load model ({str(e).splitlines()[0]})")
    from fourdthinker.latent.blocks import resolve_latent_size
    from fourdthinker.latent.decode import latent_ids

    try:
        latent_ids(adapter)
    except ValueError as e:
        _fail(console, f"{e}; or pass --add-latent-tokens to run it with untrained ones")
    K = resolve_latent_size(adapter, c.latent_size)  # the one K rule: --latent-size, else the model's, else 4
    bank_obj = None
    if bank is not None:
        from fourdthinker.latent.explain import build_bank

        with console.status(f"encoding the imagery bank {bank} ..."):
            try:
                bank_obj = build_bank(adapter, K, bank)
            except (OSError, ValueError) as e:
                _fail(console, str(e))
    try:
        norm = resolve_latent_norm(latent_norm, adapter, bank_obj)
    except InputError as e:
        _fail(console, str(e))
    gen_kw = dict(latent_size=K, max_new_tokens=c.max_new_tokens, do_sample=c.sample, temperature=c.temperature,
                  top_p=c.top_p, max_latent_blocks=c.max_latent_blocks, latents=latents, latent_norm=norm)

    if batch is not None:
        _run_batch(console, adapter, batch, out, gen_kw, seed=seed, settings=FrameSettings(fps, max_frames, max_pixels or None),
                   batch_size=batch_size, json_out=json_out, model=model)
        return

    from fourdthinker.latent.decode import latent_generate

    enc = encode_inputs(adapter, [PromptInputs(frames, prompt_text(question, opts), settings.fps)])
    gen = torch.Generator(device=adapter.device).manual_seed(seed)
    hook = None
    if force_imagery:
        from fourdthinker.latent.decode import ForceTokens

        hook = ForceTokens(enc["input_ids"].shape[1], {int(s): adapter.latent_start_id for s in force_imagery})
    with console.status("thinking ..."):
        (res,) = latent_generate(adapter, enc, generator=gen, options=[opts] if opts else None, logits_processor=hook, **gen_kw)
    from fourdthinker.latent.health import decode_health, print_decode_health
    from fourdthinker.latent.interventions import resolve_feed_norm

    health = decode_health([res], adapter.model.get_input_embeddings().weight[: len(adapter.tokenizer)])
    effective_norm = resolve_feed_norm(norm, adapter)  # what the decoder rescaled to (None: nothing)
    info = {"model": model, "video": str(video), "question": question, "options": opts, "latents": latents,
            "latent_size": K, "latent_norm": effective_norm, **res.to_json(), "latent_health": health}
    if explain is not None and bank_obj is not None:
        from fourdthinker.latent.explain import explain as do_explain

        info["explain"] = do_explain(res, bank_obj, K, explain, question=question, top=top)
    if json_out:
        print_decode_health(console, health, latents=latents)  # stderr: stdout stays one JSON line
        sys.stdout.write(json.dumps(info) + "\n")
        return
    _render(console, question, opts, res, model)
    print_decode_health(console, health, latents=latents)
    if "explain" in info:
        console.print(f"what the model imagined: [bold]{info['explain']['png']}[/] and {info['explain']['html']}", soft_wrap=True)


infer = config_command(InferConfig, _infer, name="infer", doc=_infer.__doc__)


def _run_batch(console, adapter, batch_file: Path, out: Path, gen_kw: dict, *, seed: int, settings: FrameSettings,
               batch_size: int, json_out: bool, model: str) -> None:
    """Batch mode: decode every line of ``batch_file``, append predictions to ``out`` as they come,
    quarantine bad lines (with a reason) instead of stopping, skip ids already in ``out``."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from fourdthinker.io import UnsafePathError, append_jsonl, check_unique_ids, read_jsonl, resolve_inside
    from fourdthinker.latent.decode import latent_generate

    if not batch_file.exists():
        _fail(console, f"{batch_file}: batch file not found")
    try:
        rows = read_jsonl(batch_file)
    except (ValueError, OSError) as e:
        _fail(console, f"{batch_file}: not a JSONL file ({str(e).splitlines()[0]})")
    check_unique_ids(rows, batch_file)  # a duplicated id would be answered twice
    done = {r.get("id") for r in read_jsonl(out, tolerate_truncated_tail=True)} if out.exists() else set()
    quarantine = out.with_name(out.name + ".quarantine.jsonl")
    quarantine.unlink(missing_ok=True)  # rebuilt each run: a fixed item is retried, a bad one listed once
    root = batch_file.parent
    todo, n_bad = [], 0
    for i, row in enumerate(rows):
        rid = str(row.get("id", f"line{i + 1}"))
        if rid in done:
            continue
        try:
            q = check_question(row.get("question"), where="question")
            opts = row.get("options")
            if isinstance(opts, list):
                opts = parse_options([str(o) for o in opts])
            elif isinstance(opts, dict):
                if list(opts) != list(OPTION_LETTERS):
                    raise InputError(f"options must have keys A, B, C, D in order, got {list(opts)}")
                parse_options([str(v) for v in opts.values()])
            elif opts is not None:
                raise InputError(f"options must be a list or an A-D mapping, got {type(opts).__name__}")
            if not row.get("video"):
                raise InputError("no video")
            try:  # record paths stay inside the batch file's folder (no ../, no absolute path outside it)
                vpath = resolve_inside(root, str(row["video"]))
            except UnsafePathError as e:
                raise InputError(str(e)) from None
            todo.append((rid, vpath, q, opts, row.get("answer")))
        except InputError as e:
            n_bad += 1
            append_jsonl(quarantine, {"id": rid, "line": i + 1, "reason": f"{batch_file}:{i + 1}: {e}"})
    from fourdthinker.latent.health import DecodeHealthMeter, mean_norm, print_decode_health

    gen = torch.Generator(device=adapter.device).manual_seed(seed)
    n_ok = 0
    meter = DecodeHealthMeter()  # latent health over the whole batch file (sums only)
    cols = [TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*cols, console=console, transient=json_out) as prog:
        task = prog.add_task("answering", total=len(todo))
        for s in range(0, len(todo), max(1, batch_size)):
            chunk, frames = [], []
            for item in todo[s : s + batch_size]:
                try:
                    frames.append(load_frames(None, item[1], settings=settings))
                    chunk.append(item)
                except InputError as e:
                    n_bad += 1
                    append_jsonl(quarantine, {"id": item[0], "reason": str(e)})
                    prog.advance(task)
            if not chunk:
                continue
            if gen_kw["latents"] == "shuffle" and len(chunk) < 2:
                for item in chunk:
                    n_bad += 1
                    append_jsonl(quarantine, {"id": item[0], "reason": "--latents shuffle: batch of one (no other sample to take latents from)"})
                prog.advance(task, len(chunk))
                continue
            prompts = [PromptInputs(f, prompt_text(q, o), settings.fps) for f, (_, _, q, o, _) in zip(frames, chunk, strict=True)]
            try:
                enc = encode_inputs(adapter, prompts)
                res = latent_generate(adapter, enc, generator=gen, options=[c[3] for c in chunk], **gen_kw)
            except (RuntimeError, ValueError) as e:  # one bad batch never kills the run
                for item in chunk:
                    n_bad += 1
                    append_jsonl(quarantine, {"id": item[0], "reason": f"decode failed: {str(e).splitlines()[0]}"})
                prog.advance(task, len(chunk))
                continue
            meter.add(res)
            for (rid, _vpath, _q, _o, ans), r in zip(chunk, res, strict=True):
                row = {"id": rid, "raw_output": r.text, "parsed_answer": r.answer,
                       "correct": bool(ans is not None and r.answer == ans), "latency_s": round(r.latency_s, 4),
                       "n_latent_steps": r.n_latent_steps, "n_latent_blocks": r.n_latent_blocks,
                       "stop_reason": r.stop_reason, "latents": gen_kw["latents"], "model": model}
                append_jsonl(out, row)
                if json_out:
                    sys.stdout.write(json.dumps(row) + "\n")
                n_ok += 1
            prog.advance(task, len(chunk))
    msg = f"{n_ok} answered -> {out}; {len(done)} already done; {n_bad} quarantined"
    console.print(msg + (f" -> {quarantine}" if n_bad else ""), soft_wrap=True, highlight=False)
    if n_bad and not n_ok and not done:
        _fail(console, f"{batch_file}: every item failed ({n_bad}) — see {quarantine}, fix the cause and rerun the same command")
    if meter.n_latent:
        with torch.no_grad():
            emb = mean_norm(adapter.model.get_input_embeddings().weight[: len(adapter.tokenizer)])
        print_decode_health(console, meter.stats(emb), latents=gen_kw["latents"])
