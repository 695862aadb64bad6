#!/usr/bin/env bash
# Measures the default model's scores and writes its model card
# (MODEL/README.md): multi-key needle in a haystack (rulerniah) at 1024 tokens
# with seeds never used in training, 100 examples each:
#   - the full cache (needles anywhere);
#   - recent_global, heavy_hitter (SnapKV prompt compression) and l2 at 50%
#     and 25% of the cache, needles in the middle 80% of the haystack;
#   - debug_heavy_hitter's attention loss at 10% and 50% (20 examples).
#   scripts/eval_default_model.sh [MODEL]      (default models/default)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/default}
BUILD_DIR=${BUILD_DIR:-build}
source scripts/lib/local_server.sh
start_local_server "$MODEL"
OUT=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -f "$server_log"; rm -rf "$OUT"' EXIT
cc="$BUILD_DIR/client/coldcompress"
common=(--servers "$address" --tasks rulerniah --context_length 1024 --no_progress)
"$cc" eval "${common[@]}" --cache_strategy full --num_samples 100 --seed 1000 \
  --results_dir "$OUT/full"
"$cc" sweep "${common[@]}" --config_names recent_global heavy_hitter l2 \
  --cache_sizes 0.5 0.25 --add_full --num_samples 100 --seed 2000 --needle_depth 0.1 0.9 \
  --results_dir "$OUT/policies"
"$cc" sweep "${common[@]}" --config_names debug_heavy_hitter --cache_sizes 0.5 0.1 \
  --num_samples 20 --seed 3000 --results_dir "$OUT/loss"
"$cc" report "$OUT/policies" --out "$OUT/report" >/dev/null
python3 scripts/model_card.py "$MODEL" "$OUT"
echo "wrote $MODEL/README.md"
