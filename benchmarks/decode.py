"""Latent-recurrent decoder speed vs ``model.generate`` (docs/benchmarks.md#decode).

Same tiny model (qwen2.5-vl-tiny preset, random weights), same video prompt, same number of new
tokens (EOS suppressed in both so every run decodes exactly N tokens; greedy). For batch 1 and 8:
tokens/s of ``latent_generate`` (no latent block) over tokens/s of ``model.generate``. Then the
cost of a latent step (feeding the last hidden state) vs a text step (sampling + embedding a token):
one run that opens a block of N-1 latent steps at step 0 vs a text-only run of the same length.
Each timing is the best of ``--repeats`` runs, interleaved, so machine noise hits both sides alike;
the CPU-time ratio (process time) is printed too, as it is less sensitive to a busy machine.

    python benchmarks/decode.py            # ~1-3 min on 2 CPU cores

Headline lines (last): ``decode_over_generate`` (the lower of batch 1 and 8; goal >= 0.9) and
``latent_step_over_text_step``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-vl-tiny")
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from fourdthinker.data.records import build_question_text
    from fourdthinker.latent.decode import ForceTokens, latent_generate
    from fourdthinker.models import load

    ad = load(args.model)
    rng = np.random.default_rng(0)
    opts = {"A": "Pan Left", "B": "Pan Right", "C": "Tilt Up", "D": "Tilt Down"}
    text = build_question_text("What is the camera movement from 0s to 3s?", opts)
    N = args.tokens
    sup = [ad.latent_start_id, ad.latent_end_id, ad.latent_pad_id]
    eos = ad.eos_ids

    def no_eos(ids, scores):
        scores[:, eos] = float("-inf")
        return scores

    ratios, cpu_ratios = {}, {}
    for B in (1, 8):
        vids = [[rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(4)] for _ in range(B)]
        batch = ad.encode_prompts(vids, [text] * B)
        t_gen, t_ours, c_gen, c_ours = [], [], [], []
        with torch.no_grad():
            for _ in range(args.repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                g = ad.model.generate(**batch, max_new_tokens=N, min_new_tokens=N, do_sample=False,
                                      suppress_tokens=sup, pad_token_id=ad.pad_id)
                t_gen.append(time.perf_counter() - t0)
                c_gen.append(time.process_time() - c0)
                t0, c0 = time.perf_counter(), time.process_time()
                r = latent_generate(ad, batch, max_new_tokens=N, max_latent_blocks=0, stop_strings=(), logits_processor=no_eos)
                t_ours.append(time.perf_counter() - t0)
                c_ours.append(time.process_time() - c0)
        assert g.shape[1] - batch["input_ids"].shape[1] == N and all(len(x.token_ids) == N for x in r)
        tg, to = min(t_gen), min(t_ours)
        ratios[B] = tg / to
        cpu_ratios[B] = min(c_gen) / min(c_ours)
        print(f"batch {B}: generate {B * N / tg:7.1f} tok/s ({tg:.3f} s)  latent_generate {B * N / to:7.1f} tok/s "
              f"({to:.3f} s)  wall ratio {tg / to:.3f}  cpu-time ratio {cpu_ratios[B]:.3f}")

    # latent step vs text step, batch 1
    vids = [[rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(4)]]
    batch = ad.encode_prompts(vids, [text])
    L = batch["input_ids"].shape[1]
    force = ForceTokens(L, {0: ad.latent_start_id})

    def force_no_eos(ids, scores):
        return force(ids, no_eos(ids, scores))

    t_text, t_lat = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        latent_generate(ad, batch, max_new_tokens=N, max_latent_blocks=0, stop_strings=(), logits_processor=no_eos)
        t_text.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        r = latent_generate(ad, batch, latent_size=N - 2, max_new_tokens=N, stop_strings=(), logits_processor=force_no_eos)
        t_lat.append(time.perf_counter() - t0)
    assert r[0].n_latent_steps == N - 2, r[0].n_latent_steps
    tt, tl = min(t_text), min(t_lat)
    print(f"{N} text steps {tt:.3f} s ({1000 * tt / N:.2f} ms/step); 1 start + {N - 2} latent + 1 end steps {tl:.3f} s "
          f"({1000 * tl / N:.2f} ms/step)")
    print(f"decode_over_generate_batch1: {ratios[1]:.3f}")
    print(f"decode_over_generate_batch8: {ratios[8]:.3f}")
    print(f"decode_over_generate_cpu_time: {min(cpu_ratios.values()):.3f}")
    print(f"decode_over_generate: {min(ratios.values()):.3f}")
    print(f"latent_step_over_text_step: {tl / tt:.3f}")


if __name__ == "__main__":
    main()
