#!/usr/bin/env bash
# Full-cache prefill speed against llama.cpp on the same weights and threads:
# a random 77M-parameter float32 Llama (12 layers, hidden 768, 12 query / 4
# KV heads, SwiGLU 2048, vocabulary 1,024, tied embeddings) written by
# cc-make-checkpoint, exported to GGUF (scripts/llama_cpp/export_gguf.py),
# and a prompt of token ids through each, in alternating runs:
# cc-prefill-bench --model (ColdCompress, as the server prefills: chunks of
# 512 tokens) and node-llama-cpp's prebuilt CPU llama.cpp (npm), with its
# flash attention off (its default) and on.
#   scripts/prefill_vs_llama_cpp.sh [TOKENS (1024)] [RUNS (3)]
#   THREADS (default: every online core) sets both sides' threads.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
TOKENS=${1:-1024}
RUNS=${2:-3}
THREADS=${THREADS:-$(getconf _NPROCESSORS_ONLN)}
# OpenBLAS (our prompt's products) reads these; the same count for both.
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
TARGETS="cc-make-checkpoint cc-prefill-bench" scripts/build.sh >/dev/null
work=$BUILD_DIR/llama_cpp
model=$work/llama77m
mkdir -p "$work"
if [ ! -f "$model/config.json" ]; then
  "$BUILD_DIR/server/cc-make-checkpoint" --out "$model" --layers 12 \
    --hidden 768 --heads 12 --kv_heads 4 --intermediate 2048 --vocab 1024 \
    --max_positions 4096 --tie --seed 7 >/dev/null
fi
if [ ! -f "$work/llama77m.gguf" ]; then
  /usr/bin/python3 scripts/llama_cpp/export_gguf.py "$model" "$work/llama77m.gguf"
fi
if [ ! -d "$work/node_modules/node-llama-cpp" ]; then
  # The CPU build only (the optional GPU builds are most of the download).
  (cd "$work" && npm init -y >/dev/null &&
    npm install --no-audit --no-fund --omit=optional \
      node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1 >/dev/null)
fi
# Imports resolve next to the script: run it from the folder with the package.
cp scripts/llama_cpp/prefill.mjs "$work/"
echo "prefill of $TOKENS tokens, $THREADS threads, $RUNS alternating runs each"
for _ in $(seq "$RUNS"); do
  "$BUILD_DIR/server/cc-prefill-bench" --model "$model" --lengths "$TOKENS" \
    --strategies full --threads "$THREADS" |
    awk -F'|' '/^\| full/ { printf "ColdCompress prefill %d tokens: %.3f s\n", $4, $5 }'
  for flash in off on; do
    node "$work/prefill.mjs" "$work/llama77m.gguf" "$TOKENS" "$THREADS" 1 512 1024 "$flash"
  done
done
