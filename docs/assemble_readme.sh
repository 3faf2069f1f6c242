#!/bin/bash
# README.md is assembled from docs/readme_*.md: edit the fragments, then run this script.
set -euo pipefail
cd "$(dirname "$0")/.."
{ cat docs/readme_head.md
  for f in demo world_video data models_dift infer rl eval; do
    [ -f "docs/readme_$f.md" ] || continue
    sed -e 's#](img/#](docs/img/#g' -e 's#src="img/#src="docs/img/#g' "docs/readme_$f.md"; echo
  done
  cat docs/readme_tail.md
} > README.md
