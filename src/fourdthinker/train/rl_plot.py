"""The 4DRL reward curve (``OUT/reward_curve.png``): reward mean per step with its std band and a
moving average, accuracy and format rate; KL, clip fraction and latent blocks per response."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_reward_curve"]


def plot_reward_curve(metrics: Sequence[dict], path: Path, title: str = "4DRL") -> Path:
    """Reward mean per step (+/- std band, moving average), accuracy and format rate, KL."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fourdthinker.plots import save_figure

    steps = [m["step"] for m in metrics]
    r = [m["reward_mean"] for m in metrics]
    sd = [m["reward_std"] for m in metrics]
    w = max(1, len(r) // 10)
    ma = [sum(r[max(0, i - w + 1) : i + 1]) / len(r[max(0, i - w + 1) : i + 1]) for i in range(len(r))]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    ax.fill_between(steps, [a - b for a, b in zip(r, sd, strict=True)], [a + b for a, b in zip(r, sd, strict=True)], alpha=0.15, color="C0")
    ax.plot(steps, r, color="C0", alpha=0.4 if w > 1 else 1.0, lw=1 if w > 1 else 2, label="reward mean (per step, +/- std)")
    if w > 1:
        ax.plot(steps, ma, color="C0", lw=2.5, label=f"reward mean ({w}-step moving avg)")
    ax.plot(steps, [m["accuracy"] for m in metrics], color="C2", lw=1, alpha=0.7, label="accuracy")
    ax.plot(steps, [m["format_rate"] for m in metrics], color="C1", lw=1, alpha=0.7, label="format rate")
    ax.set_xlabel("RL step")
    ax.set_ylabel("reward / rate")
    ax.set_title(f"{title}: reward over training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax = axes[1]
    beta0 = all(m["kl"] == 0 for m in metrics)
    ax.plot(steps, [m["kl"] for m in metrics], color="C3", label="KL to reference" + (" (beta=0: off)" if beta0 else ""))
    ax.plot(steps, [m["clip_frac"] for m in metrics], color="C4", label="clip fraction")
    ax2 = ax.twinx()
    ax2.plot(steps, [m["latent_blocks"] for m in metrics], color="C5", ls="--", label="latent blocks / response")
    ax2.set_ylim(bottom=0, top=max(1.0, 1.2 * max(m["latent_blocks"] for m in metrics)))
    ax2.set_ylabel("latent blocks / response")
    ax.set_xlabel("RL step")
    ax.set_title("KL, clipping, imagery use")
    ax.grid(alpha=0.3)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="best")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
