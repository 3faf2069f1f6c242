#!/usr/bin/env bash
# GPU smoke test: every stage once, on CUDA in bf16, with a tiny preset (under 5 minutes on one GPU):
#   world -> data build -> train dift -> train rl -> infer -> eval
#
#   bash scripts/gpu_smoke.sh                          # CUDA, bf16 (needs a GPU)
#   DEVICE=cpu DTYPE=fp32 bash scripts/gpu_smoke.sh    # the same commands on a CPU (~5-10 min on 2 cores)
#
# Settings (environment): DEVICE (cuda | cuda:N | cpu; default cuda), DTYPE (bf16 | fp32; default bf16),
# MODEL (default qwen2.5-vl-tiny), OUT (work folder; default a new temporary folder, kept for reading the
# logs), FOURDTHINKER (the command; default "python -m fourdthinker.cli").
# Each stage's output goes to $OUT/<stage>.log; a failing stage prints its log's tail and stops the script.
# A command without a --device flag (train dift picks the GPU itself through HF Trainer; eval loads
# local models on the CPU unless it has --device) is reported as such in the summary.
set -euo pipefail

DEVICE=${DEVICE:-cuda}
DTYPE=${DTYPE:-bf16}
MODEL=${MODEL:-qwen2.5-vl-tiny}
OUT=${OUT:-$(mktemp -d -t gpu_smoke.XXXXXX)}
read -r -a FT <<< "${FOURDTHINKER:-python -m fourdthinker.cli}"

case "$DTYPE" in
  bf16 | bfloat16) DT=bfloat16 ;;
  fp32 | float32) DT=float32 ;;
  *) echo "error: DTYPE must be bf16 or fp32, got '$DTYPE'" >&2; exit 2 ;;
esac
if [[ $DEVICE == cuda* ]]; then
  python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "error: DEVICE=$DEVICE but torch sees no CUDA GPU (on a CPU: DEVICE=cpu DTYPE=fp32 bash $0)" >&2; exit 2; }
elif [[ $DEVICE == cpu ]]; then
  export CUDA_VISIBLE_DEVICES=""  # HF Trainer (train dift) would otherwise take a GPU it sees
else
  echo "error: DEVICE must be cuda, cuda:N or cpu, got '$DEVICE'" >&2; exit 2
fi
mkdir -p "$OUT"

SUMMARY=()
T_START=$(date +%s)

# has_flag "<subcommand words>" --flag: whether that command's --help lists the flag
has_flag() {
  local words
  read -r -a words <<< "$1"
  COLUMNS=200 "${FT[@]}" "${words[@]}" --help 2>/dev/null | grep -q -- "$2"
}

# stage NAME CMD...: run CMD, log to $OUT/NAME.log, time it, stop with the log's tail on failure
stage() {
  local name=$1; shift
  local t0 ms
  t0=$(date +%s%N)
  echo ">> $name: $*"
  if ! "$@" > "$OUT/$name.log" 2>&1; then
    echo "FAILED: $name (log: $OUT/$name.log)" >&2
    tail -n 40 "$OUT/$name.log" >&2
    exit 1
  fi
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  SUMMARY+=("$(printf '%-6s ok %4d.%d s  %s' "$name" $((ms / 1000)) $(((ms % 1000) / 100)) "${STAGE_NOTE:-}")")
  STAGE_NOTE=""
}

DEV_FLAGS=(--device "$DEVICE" --dtype "$DT")

STAGE_NOTE="6 clips"
stage world "${FT[@]}" world --out "$OUT/world" --videos 6 --width 128 --height 96 --workers 2 --quiet

STAGE_NOTE="rule oracle, gt masks"
stage data "${FT[@]}" data build --videos "$OUT/world" --out "$OUT/data" --workers 2

STAGE_NOTE="dtype $DT, device: HF Trainer's choice (cuda when visible)"
stage dift "${FT[@]}" train dift --data "$OUT/data" --model "$MODEL" --out "$OUT/dift" --max-steps 4 --lr 1e-3 \
  --batch-size 2 --dtype "$DT" --save-steps 1000

STAGE_NOTE="$DEVICE $DT, micro-batch 2, grad checkpointing, grad-accum 2"
stage rl "${FT[@]}" train rl --data "$OUT/data" --init "$OUT/dift" --out "$OUT/rl" --steps 2 --questions-per-step 1 \
  --num-generations 4 --max-new-tokens 24 --lr 1e-4 --max-frames 4 --save-every 0 --micro-batch-size 2 \
  --grad-accum 2 --gradient-checkpointing "${DEV_FLAGS[@]}"

CLIP=$(find "$OUT/world" -mindepth 1 -maxdepth 1 -type d -name 'clip_*' | sort | head -n 1)
STAGE_NOTE="$DEVICE $DT"
stage infer "${FT[@]}" infer -m "$OUT/rl/final" -v "$CLIP" -q "How does the camera move?" \
  -o "Pan Left|Pan Right|Tilt Up|Tilt Down" --max-new-tokens 32 --max-frames 4 --json "${DEV_FLAGS[@]}"

EVAL_FLAGS=()
if has_flag "eval" "--device"; then
  EVAL_FLAGS=("${DEV_FLAGS[@]}"); STAGE_NOTE="$DEVICE $DT"
else
  STAGE_NOTE="cpu float32 (eval has no --device flag)"
fi
stage eval "${FT[@]}" eval -m "$OUT/rl/final" -b synthetic -d "$OUT/world" -o "$OUT/eval" --limit 4 \
  --max-new-tokens 32 --max-frames 4 --no-html ${EVAL_FLAGS[@]+"${EVAL_FLAGS[@]}"}

echo
echo "gpu_smoke summary ($MODEL, DEVICE=$DEVICE, DTYPE=$DT, work folder $OUT)"
for line in "${SUMMARY[@]}"; do echo "  $line"; done
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
m = [json.loads(x) for x in (out / "rl" / "metrics.jsonl").read_text().splitlines() if x.strip()]
print(f"  rl: {len(m)} steps, reward {m[0]['reward_mean']:.3f} -> {m[-1]['reward_mean']:.3f}, "
      f"kl {m[-1]['kl']:.4g}, loss finite: {all(x['loss'] == x['loss'] for x in m)}")
log = (out / "infer.log").read_text()
try:
    ans = json.loads(log[log.index("{"):])
    print(f"  infer: answer {ans.get('answer')!r}, {ans.get('n_latent_blocks', '?')} imagery blocks")
except ValueError:
    print("  infer: (no JSON answer in infer.log)")
PY
echo "gpu_smoke: all 6 stages passed in $(( $(date +%s) - T_START )) s"
