#!/usr/bin/env bash
# Issue 9's GPU benchmark: decode speed of a Llama-3-8B-shaped model (random
# bfloat16 weights made on the GPU) against the GPU's own copy bandwidth.
#
#   scripts/gpu_bench.sh bundle   here, on a Debian machine with the project's
#                                 dependencies (scripts/install_deps.sh):
#                                 copies the libraries cc-bench needs besides
#                                 LibTorch (Abseil, nlohmann-json, CLI11) into
#                                 .gpu-bundle/ (git-ignored, about 8 MB)
#   scripts/gpu_bench.sh run [N..] on the GPU machine, which needs only CUDA, a
#                                 PyTorch with CUDA (its LibTorch:
#                                 torch.utils.cmake_prefix_path), CMake, ninja
#                                 and a C++ compiler: builds cc-bench alone
#                                 and cc-prefill-bench
#                                 (COLDCOMPRESS_BENCH_ONLY) against them and
#                                 .gpu-bundle/, then runs measurements 1-4
#                                 below (about 6-9 minutes on an H100), or
#                                 those numbered N (5 only when named: a few
#                                 minutes more)
#
# Measurements (batch 1, bfloat16, 32 layers, hidden 4096, 32 query / 8 KV
# heads, SwiGLU 14336, vocabulary 128256):
#   1. full cache at a 4k context: decode tok/s against the HBM roofline;
#      heavy_hitter and recent_global with the same capacity (4032 slots for
#      a 4000-token prompt and 128 steps: the last 96 evict) for their
#      overhead;
#   2. recent_global with a 4k cache at a 4k and at a 32k context: the long
#      context's decode speed against the short one's;
#   3. the full cache at a 4k context with eager steps (--cuda_graphs off):
#      what the CUDA graphs of measurements 1 and 2 gain;
#   4. long prompts (cc-prefill-bench): the full cache and heavy_hitter at
#      0.25 prefilling 32k and 64k tokens in chunks of 2,048, each in a fresh
#      process: seconds, tok/s against the GPU's GEMM throughput, and the
#      CUDA allocator's peak (docs/long_prompts.md works out the largest
#      prompt heavy_hitter takes on an 80 GB GPU);
#   5. heavy_hitter prefilling 131,072 tokens, Llama-3.1's whole context
#      (about 42 GB on paper).
# Before its table, each run with CUDA graphs checks them against eager
# steps (cc-bench exits 1 on a mismatch).
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=$PWD/.gpu-bundle
BUILD_DIR=${BUILD_DIR:-build-gpu}

bundle() {
  rm -rf "$BUNDLE"
  local lib=/usr/lib/x86_64-linux-gnu
  mkdir -p "$BUNDLE/usr/include" "$BUNDLE$lib/cmake" "$BUNDLE/usr/share/cmake"
  cp -r /usr/include/absl /usr/include/nlohmann /usr/include/CLI "$BUNDLE/usr/include/"
  cp -r "$lib/cmake/absl" "$BUNDLE$lib/cmake/"
  cp -r /usr/share/cmake/nlohmann_json /usr/share/cmake/CLI11 "$BUNDLE/usr/share/cmake/"
  # Real files, not links: the copy to the GPU machine may not keep links.
  for so in "$lib"/libabsl_*.so; do cp -L "$so" "$BUNDLE$lib/"; done
  for so in "$lib"/libabsl_*.so.*; do cp -L "$so" "$BUNDLE$lib/"; done
  du -sh "$BUNDLE"
}

run() {
  [ -d "$BUNDLE" ] || { echo "no $BUNDLE: run 'scripts/gpu_bench.sh bundle' on the build machine first" >&2; exit 1; }
  local torch_prefix
  torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCOLDCOMPRESS_BENCH_ONLY=ON -DCMAKE_PREFIX_PATH="$torch_prefix;$BUNDLE/usr"
  cmake --build "$BUILD_DIR" --target cc-bench cc-prefill-bench
  export LD_LIBRARY_PATH="$BUNDLE/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
  local shape=(--device cuda --dtype bfloat16 --layers 32 --hidden 4096
    --heads 32 --kv_heads 8 --intermediate 14336 --vocab 128256)
  local bench=("$BUILD_DIR/server/cc-bench" "${shape[@]}")
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  local only=" ${*:-1 2 3 4} "
  if [[ $only == *" 1 "* ]]; then
    echo "== 1. batch 1 at a 4k context, equal capacity (4032 slots)"
    "${bench[@]}" --context 4000 --steps 128 \
      --strategies full recent_global heavy_hitter --cache_sizes 4032
  fi
  if [[ $only == *" 2 "* ]]; then
    echo "== 2. recent_global, a 4k cache: 4k context, then 32k context"
    "${bench[@]}" --context 4032 --steps 64 --strategies recent_global --cache_sizes 4096
    "${bench[@]}" --context 32704 --steps 64 --strategies recent_global --cache_sizes 4096
  fi
  if [[ $only == *" 3 "* ]]; then
    echo "== 3. the full cache at a 4k context, eager steps (no CUDA graphs)"
    "${bench[@]}" --context 4000 --steps 64 --strategies full --cuda_graphs off
  fi
  if [[ $only == *" 4 "* ]]; then
    echo "== 4. prefill of 32k and 64k tokens: full cache and heavy_hitter 0.25"
    "$BUILD_DIR/server/cc-prefill-bench" "${shape[@]}" --lengths 32768 65536 \
      --strategies full heavy_hitter --chunk 2048
  fi
  if [[ $only == *" 5 "* ]]; then
    echo "== 5. prefill of 131,072 tokens (Llama-3.1's context) under heavy_hitter 0.25"
    "$BUILD_DIR/server/cc-prefill-bench" "${shape[@]}" --lengths 131072 \
      --strategies heavy_hitter --chunk 2048
  fi
}

case "${1:-}" in
  bundle) bundle ;;
  run) shift; run "$@" ;;
  *) sed -n '2,39p' "$0"; exit 2 ;;
esac
