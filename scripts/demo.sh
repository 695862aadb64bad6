#!/usr/bin/env bash
# The main job: sets up, builds the server and the client, starts the server
# on the embedded default model (models/default, trained by
# scripts/train_default_model.sh), and compares cache policies on
# single-needle and multi-key needle in a haystack: the full cache,
# recent_global, heavy_hitter and l2 at 50% and 25% of the cache, 20 examples
# each at 1024 tokens, needles in the middle 80% of the haystack. Prints the
# comparison tables, writes the plots, stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
TARGETS="coldcompress-server coldcompress" scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
OUT=${DEMO_OUT:-$BUILD_DIR/demo}
rm -rf "$OUT"

source scripts/lib/local_server.sh
start_local_server models/default

echo "== models/default on $address: rulerniah_single (1 needle) and rulerniah (4 needles, one asked), 1024 tokens, 20 examples per policy"
"$BUILD_DIR"/client/coldcompress sweep --servers "$address" \
  --config_names recent_global heavy_hitter l2 --cache_sizes 0.5 0.25 --add_full \
  --tasks rulerniah_single rulerniah --num_samples 20 --context_length 1024 --needle_depth 0.1 0.9 \
  --seed 1000 --results_dir "$OUT/results" --no_progress
echo
"$BUILD_DIR"/client/coldcompress report "$OUT/results" --out "$OUT/report" \
  | sed -n '/^## /,$p'
echo
echo "plots: $OUT/report/<task>__string_match_all.svg (score against compression), $OUT/report/<task>__memory.svg"
kill -TERM $server
wait $server || true
echo "== server stopped"
