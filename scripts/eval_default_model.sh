#!/usr/bin/env bash
# Measures the default model's scores and writes its model card
# (MODEL/README.md), at 1024 tokens with seeds never used in training, needles
# in the middle 80% of the haystack:
#   - single-needle (rulerniah_single) and multi-key (rulerniah) needle in a
#     haystack, 50 examples per row: the full cache, and recent_global,
#     heavy_hitter (SnapKV prompt compression) and l2 at 50% and 25%;
#   - debug_heavy_hitter's attention loss at 10% and 50% (20 examples);
#   - the per-layer table of scripts/layer_table.sh (16 examples a row).
#   scripts/eval_default_model.sh [MODEL]      (default models/default)
# About 5 minutes on 2 cores. Needs the server and the client built.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/default}
BUILD_DIR=${BUILD_DIR:-build}
source scripts/lib/local_server.sh
start_local_server "$MODEL"
OUT=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -f "$server_log"; rm -rf "$OUT"' EXIT
cc="$BUILD_DIR/client/coldcompress"
common=(--servers "$address" --tasks rulerniah_single rulerniah --context_length 1024
  --needle_depth 0.1 0.9 --no_progress)
"$cc" sweep "${common[@]}" --config_names recent_global heavy_hitter l2 \
  --cache_sizes 0.5 0.25 --add_full --num_samples 50 --seed 2000 \
  --results_dir "$OUT/policies"
"$cc" sweep "${common[@]}" --config_names debug_heavy_hitter --cache_sizes 0.5 0.1 \
  --num_samples 20 --seed 3000 --results_dir "$OUT/loss"
kill $server
scripts/layer_table.sh "$MODEL" 16 >"$OUT/layers.md"
python3 scripts/model_card.py "$MODEL" "$OUT"
echo "wrote $MODEL/README.md"
