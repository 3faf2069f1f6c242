"""The end-to-end embedded run: ``fourdthinker demo`` and ``fourdthinker ablate``.

world -> data build (rule oracle, ground-truth segmenter) -> Raw QA SFT / CoT SFT / DIFT ->
GRPO / CoT SFT + GRPO / DIFT + 4DRL -> evaluation on a held-out synthetic benchmark -> Table 3
layout with 95% CIs, paired comparisons and an HTML report. Python entry points:
``run_demo(cfg, out)`` and ``run_ablation(what, cfg, out)`` (``demo.pipeline``, ``demo.ablate``).
Importing this package does no work (torch/transformers load inside the stages); the two entry
points are imported on first use. The typer commands are ``demo.commands.demo`` / ``.ablate``.
"""

from fourdthinker.lazy import lazy_exports

_EXPORTS = {"run_demo": "fourdthinker.demo.pipeline", "run_ablation": "fourdthinker.demo.ablate"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
