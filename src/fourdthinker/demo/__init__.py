"""The end-to-end embedded run: ``fourdthinker demo`` and ``fourdthinker ablate``.

world -> data build (rule oracle, ground-truth segmenter) -> Raw QA SFT / CoT SFT / DIFT ->
GRPO / CoT SFT + GRPO / DIFT + 4DRL -> evaluation on a held-out synthetic benchmark -> Table 3
layout with 95% CIs, paired comparisons and an HTML report. Python entry points:
``run_demo(cfg, out)`` and ``run_ablation(what, cfg, out)`` (``demo.pipeline``, ``demo.ablate``).
Importing this package does no work (torch/transformers load inside the stages).
"""

from fourdthinker.demo.commands import ablate, demo

__all__ = ["ablate", "demo"]
