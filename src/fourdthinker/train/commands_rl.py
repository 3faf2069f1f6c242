"""`fourdthinker train rl`: 4DRL (GRPO with latent-recurrent rollouts), a thin command over
``fourdthinker.train.rl.train_rl`` (the ``RLRecipe``). Every ``RLConfig`` field is a flag (``--num-generations``,
``--beta`` ...) with the field's help text; ``--config file.yaml`` sets many at once, flags win."""

from __future__ import annotations

from fourdthinker.cli_config import config_command, option
from fourdthinker.train.rl_config import RLConfig


def _run(config: str | None = None, dry_run: bool = False, **flags) -> None:
    # OMP_WAIT_POLICY=PASSIVE is set once for every command in fourdthinker.cli.
    from rich.console import Console

    from fourdthinker.cli_config import config_from_flags
    from fourdthinker.errors import require_out_dir
    from fourdthinker.models.locate import resolve_model
    from fourdthinker.train.rl import train_rl

    con = Console()
    # Errors reach the CLI's one error boundary (fourdthinker.cli): one line, exit code 2. The flags'
    # bounds are declared on RLConfig's fields (checked here, naming the flag, and again in RLConfig).
    cfg = config_from_flags(RLConfig, config, flags)
    if not cfg.data:
        raise ValueError("--data is required (a JSONL of RL records or a folder with rl.jsonl) — pass --data data/dift")
    # Checked before any work: the policy to start from (a run folder resolves to its final
    # model; a missing local path or an unreachable hub fails at once) and the output folder.
    resolve_model(cfg.init)
    require_out_dir(cfg.out, "--out")
    if dry_run:
        from fourdthinker.train.rl import load_rl_records

        records, _, rejected = load_rl_records(cfg.data)
        con.print(f"dry run: {len(records)} RL records ({len(rejected)} refused), init {cfg.init}, out {cfg.out}: "
                  "all checks passed", soft_wrap=True, highlight=False)
        return
    res = train_rl(cfg)
    from accelerate import PartialState

    if not PartialState().is_main_process:  # `accelerate launch --num_processes N`: report once
        return
    if res.rejected:
        con.print(f"[yellow]{len(res.rejected)} records refused before training[/] (reasons in {res.out / 'rejected.jsonl'})")
    first, last = res.reward_trend()
    con.print(f"mean reward first steps {first:.3f} -> last steps {last:.3f}; curve: {res.curve_png}; model: {res.final_dir}")
    if res.probe:
        p = res.probe
        con.print(f"probe ({p['questions']} fixed questions x {p['samples']} samples): expected reward "
                  f"{p['before']:.3f} -> {p['after']:.3f}, paired delta {p['delta']:+.3f} "
                  f"[{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]")


_DOC = """4DRL: GRPO with latent-recurrent rollouts (docs/method.md, Eq. 11-13).

For each question, G responses are sampled in one batch by the latent-recurrent decoder, scored (accuracy + 0.2 x format), normalised within the group, and the policy is updated with the clipped GRPO objective + KL to the frozen init model, over text tokens only (latent slots replay the rollout's own vectors). Start from a DIFT checkpoint (`fourdthinker train dift`).

Defaults are the paper's (lr 1e-6, G 8, beta 0.01); tiny CPU demos need --lr 1e-4 or more.

Example: fourdthinker train rl --data data/dift --init runs/dift --out runs/rl

Baseline: fourdthinker train rl --data data/dift --init qwen2.5-vl-tiny --mode grpo --out runs/grpo

Several GPUs (data-parallel, --questions-per-step is per GPU): accelerate launch --multi_gpu --num_processes 8 -m fourdthinker.cli train rl --data data/dift --init runs/dift --out runs/rl

Writes OUT/metrics.jsonl, OUT/reward_curve.png, OUT/samples.jsonl, OUT/rejected.jsonl, OUT/final/ (safetensors). Rerun the same command to resume.
"""

rl = config_command(
    RLConfig, _run, name="rl", doc=_DOC,
    extra=[option("dry_run", bool, False, "--dry-run", help="Check the records, the init model, the output folder and "
                  "every number, then exit without training.")],
)
