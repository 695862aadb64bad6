#!/usr/bin/env bash
# Which layers' retrieval survives SnapKV: single-needle NIAH
# (rulerniah_single, needles in the middle 80%) with heavy_hitter (SnapKV
# prompt compression) at 25% of the cache in some layers and the full cache
# in the others. Rows: no layer, every layer, each layer alone, every layer
# but one. Prints a Markdown table of the examples answered right, for the
# model card (docs/default_model.md says how to read it).
#   scripts/layer_table.sh [MODEL] [EXAMPLES]   (models/default, 16; seed 5000)
# Needs the server and the client built (scripts/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/default}
EXAMPLES=${2:-16}
BUILD_DIR=${BUILD_DIR:-build}
LAYERS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["num_hidden_layers"])' "$MODEL/config.json")
source scripts/lib/local_server.sh
start_local_server "$MODEL"
OUT=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -f "$server_log"; rm -rf "$OUT"' EXIT

# Patterns as comma-separated layer lists ("none" and "all" by name).
patterns=(none all)
for ((l = 0; l < LAYERS; ++l)); do patterns+=("$l"); done
if ((LAYERS > 2)); then
  for ((l = 0; l < LAYERS; ++l)); do
    patterns+=("$(seq -s, 0 $((LAYERS - 1)) | tr , '\n' | grep -vx "$l" | paste -sd,)")
  done
fi
for p in "${patterns[@]}"; do
  strategies=() lengths=()
  for ((l = 0; l < LAYERS; ++l)); do
    if [ "$p" = all ] || { [ "$p" != none ] && [[ ",$p," == *",$l,"* ]]; }; then
      strategies+=(heavy_hitter) lengths+=(0.25)
    else
      strategies+=(full) lengths+=(1.0)
    fi
  done
  echo "layers $p: ${strategies[*]}" >&2
  "$BUILD_DIR"/client/coldcompress eval --servers "$address" --tasks rulerniah_single \
    --context_length 1024 --needle_depth 0.1 0.9 --num_samples "$EXAMPLES" --seed 5000 \
    --cache_strategy "${strategies[@]}" --max_cache_length "${lengths[@]}" \
    --results_dir "$OUT/$p" --no_progress >/dev/null
done
python3 - "$OUT" "$EXAMPLES" "${patterns[@]}" <<'EOF'
import glob, json, os, sys
out, n, patterns = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
correct = []
for p in patterns:
    path = glob.glob(os.path.join(out, p, "**", "rulerniah_single_metrics.json"), recursive=True)[0]
    score = json.load(open(path))["metrics"]["string_match_all"]
    correct.append(str(round(score * n / 100)))
print("| SnapKV at 25% in layers | " + " | ".join(patterns) + " |")
print("|---" * (len(patterns) + 1) + "|")
print(f"| correct of {n} | " + " | ".join(correct) + " |")
EOF
