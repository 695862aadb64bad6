#!/usr/bin/env bash
# Trains what is left of the default model's training (models/next, the
# stages of scripts/lib/default_model_stages.sh) on a GPU, in one prepared
# run: ten GPU minutes are worth days of the 2-core build machine.
#
#   scripts/gpu_train.sh prepare   here: builds cc-train, writes the batches
#                                  of what is left into .gpu-bundle/train/
#                                  (stage 1b from its last checkpoint, then
#                                  stage 2; gzip, about 2 bytes a token) and
#                                  bundles the libraries cc-train needs
#                                  besides LibTorch (scripts/gpu_bench.sh
#                                  bundle, and zlib)
#   scripts/gpu_train.sh run       on the GPU machine (device tool:
#                                  carry .gpu-bundle): builds cc-train from
#                                  batch files against its PyTorch's LibTorch
#                                  (COLDCOMPRESS_BENCH_ONLY), trains each
#                                  stage with --device cuda, and copies the
#                                  checkpoints to $OUT
#   scripts/gpu_train.sh fetch DIR here: puts what $OUT brought back (DIR,
#                                  the device tool's files_at) into
#                                  models/next/train_state; then
#                                  scripts/train_default_model.sh finishes
#                                  (the stages are done) and measures it
#
# The GPU takes the very steps the CPU would (the same batches, the same
# seeds); only float rounding differs.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=$PWD/.gpu-bundle
BUILD_DIR=${BUILD_DIR:-build}
source scripts/lib/default_model_stages.sh
MODEL=models/next
STATE=$MODEL/train_state

prepare() {
  TARGETS="cc-train" scripts/build.sh
  scripts/gpu_bench.sh bundle
  local lib=/usr/lib/x86_64-linux-gnu
  cp /usr/include/zlib.h /usr/include/zconf.h "$BUNDLE/usr/include/"
  cp -L "$lib/libz.so" "$BUNDLE$lib/libz.so"
  cp -L "$lib/libz.so.1" "$BUNDLE$lib/libz.so.1"
  mkdir -p "$BUNDLE/train"
  local first
  first=$(stage_step "$STATE/stage1b")
  if ! stage_done "$STATE/stage1b" "$(stage_steps "${STAGE1B[@]}")"; then
    "$BUILD_DIR/server/cc-train" --out "$STATE/stage1b" "${STAGE1B[@]}" \
      --write_batches "$BUNDLE/train/stage1b.batches" --first_step "$first"
  fi
  mkdir -p "$STATE/stage2"
  cp "$STATE/stage1"/{tokenizer.model,tokenizer_config.json} "$STATE/stage2/"
  "$BUILD_DIR/server/cc-train" --out "$STATE/stage2" "${STAGE2[@]}" \
    --write_batches "$BUNDLE/train/stage2.batches"
  du -sh "$BUNDLE" "$BUNDLE"/train/*
}

run() {
  [ -d "$BUNDLE/train" ] || { echo "no $BUNDLE/train: run 'scripts/gpu_train.sh prepare' here first" >&2; exit 1; }
  local torch_prefix gpu_build=${GPU_BUILD_DIR:-build-gpu}
  torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  cmake -S . -B "$gpu_build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCOLDCOMPRESS_BENCH_ONLY=ON -DCMAKE_PREFIX_PATH="$torch_prefix;$BUNDLE/usr" \
    -DZLIB_ROOT="$BUNDLE/usr"
  cmake --build "$gpu_build" --target cc-train
  export LD_LIBRARY_PATH="$BUNDLE/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  local train=("$gpu_build/server/cc-train" --device cuda)
  # The stages' flags; the batch files' own settings (steps, batch,
  # contexts, seed, mixture) replace the data's.
  if [ -f "$BUNDLE/train/stage1b.batches" ]; then
    "${train[@]}" --out "$STATE/stage1b" --init "$STATE/stage1" "${STAGE1B[@]}" \
      --batches "$BUNDLE/train/stage1b.batches"
  fi
  mkdir -p "$STATE/stage2"
  "${train[@]}" --out "$STATE/stage2" --init "$STATE/stage1b" "${STAGE2[@]}" \
    --batches "$BUNDLE/train/stage2.batches"
  # Back through $OUT (8 files at most, 2 folders deep): each stage's
  # checkpoint, its summary and its state.
  local out=${OUT:?the device tool sets OUT}
  for s in stage1b stage2; do
    mkdir -p "$out/$s"
    cp "$STATE/$s"/{model.safetensors,training.json} "$out/$s/"
  done
  cp "$STATE/stage2/train_state/progress.json" "$out/stage2/"
  cp "$STATE/stage1b/train_state/progress.json" "$out/stage1b/"
}

fetch() {
  local from=${1:?usage: scripts/gpu_train.sh fetch DIR}
  for s in stage1b stage2; do
    mkdir -p "$STATE/$s/train_state"
    cp "$from/$s/model.safetensors" "$STATE/$s/"
    cp "$from/$s/model.safetensors" "$STATE/$s/train_state/"
    cp "$from/$s/training.json" "$STATE/$s/"
    cp "$from/$s/progress.json" "$STATE/$s/train_state/"
    cp "$STATE/stage1"/{config.json,generation_config.json,tokenizer.model,tokenizer_config.json} "$STATE/$s/"
    rm -f "$STATE/$s/train_state/optimizer.pt"
  done
  echo "now: SKIP_BUILD=1 scripts/train_default_model.sh (the stages are done; it measures the model)"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  fetch) shift; fetch "$@" ;;
  *) sed -n '2,27p' "$0"; exit 2 ;;
esac
