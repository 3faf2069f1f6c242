"""The 4DRL probe: a fixed set of questions scored before and after training with
``probe_samples`` sampled responses each (``probe_expected_reward``), compared paired
(``paired_mean_delta_ci``): the expected reward on the same questions, far less noisy than the
per-step batch mean."""

from __future__ import annotations

from collections.abc import Sequence

from fourdthinker.data.records import RLRecord, build_question_text
from fourdthinker.train.rl_step import rollout

__all__ = ["paired_mean_delta_ci", "probe_expected_reward"]


def paired_mean_delta_ci(before: Sequence[float], after: Sequence[float], *, n_boot: int = 2000,
                         seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``after[i] - before[i]`` and its 95% percentile-bootstrap CI (items resampled with
    replacement, both values of an item kept together: the one bootstrap,
    ``fourdthinker.stats.stratified_bootstrap_ci``, on the per-item differences as one stratum).

    >>> paired_mean_delta_ci([0.0, 0.5], [0.5, 0.5])[0]
    0.25
    """
    import numpy as np

    from fourdthinker.stats import stratified_bootstrap_ci

    d = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    if d.size == 0:
        return float("nan"), float("nan"), float("nan")
    return (float(d.mean()), *stratified_bootstrap_ci([d], n_boot=n_boot, seed=seed))


def probe_expected_reward(adapter, records: Sequence[RLRecord], frames: dict, cfg, weights: dict[str, float],
                          *, latent_size: int, seed: int) -> list[float]:
    """Mean reward (Eq. 11, accuracy and format with ``weights``) of each record over
    ``cfg.probe_samples`` responses sampled as in training, with a fixed seed: an estimate of the
    policy's expected reward on exactly these questions. Decoded in chunks of at most one
    training batch (questions_per_step x num_generations responses)."""
    import torch

    from fourdthinker.train.rewards import accuracy_reward, combine_rewards, format_reward

    S = cfg.probe_samples
    per_chunk = max(1, (cfg.questions_per_step * cfg.num_generations) // S)
    gen = torch.Generator(device=next(adapter.model.parameters()).device).manual_seed(seed)  # on the model's device
    out: list[float] = []
    for c in range(0, len(records), per_chunk):
        chunk = list(records[c : c + per_chunk])
        recs = [r for r in chunk for _ in range(S)]
        enc = chunk if cfg.prefix_sharing else recs  # sharing: one prefill per question for its S samples
        batch = adapter.encode_prompts([frames[r.id] for r in enc],
                                       [build_question_text(r.question, r.options) for r in enc], fps=cfg.fps)
        comps = [res.text for res in rollout(adapter, batch, recs, cfg, gen)]
        opts = [r.options for r in recs]
        per = {"accuracy": accuracy_reward(comps, [r.answer for r in recs], options=opts),
               "format": format_reward(comps, options=opts, latent_size=latent_size if cfg.latents_enabled else None)}
        rew = combine_rewards(per, {k: weights.get(k, 0.0) for k in per})
        out.extend(sum(rew[q * S : (q + 1) * S]) / S for q in range(len(chunk)))
    return out
