#!/usr/bin/env bash
# Trains the default model from scratch on the CPU, in the
# stages of scripts/lib/default_model_stages.sh, and writes its model card
# with freshly measured scores. Deterministic for the seeds: the same machine
# gives the same weights. Not part of CI; hours on 2 cores (the card records
# the time each stage took).
#   scripts/train_default_model.sh       (OUT=models/next)
# SKIP_BUILD=1 skips setting up and building (a resumed run).
# Each stage trains in OUT/train_state/<stage> and checkpoints every 100
# steps; a rerun skips finished stages and resumes the others where they
# stopped (scripts/gpu_train.sh runs what is left on a GPU). The result is
# OUT itself: the last stage's weights, the tokenizer, training.json with
# every stage, and the card. Once it beats the shipped model, it replaces
# models/default.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SKIP_BUILD:-}" ]; then
  scripts/install_deps.sh
  TARGETS="cc-train coldcompress-server coldcompress" scripts/build.sh
fi
source scripts/lib/default_model_stages.sh
BUILD_DIR=${BUILD_DIR:-build}
OUT=${OUT:-models/next}
STATE=$OUT/train_state
train="$BUILD_DIR/server/cc-train"
mkdir -p "$STATE/stage1"

# stage NAME INIT FLAGS...: trains OUT/train_state/NAME from INIT's weights
# (none: random), with the first stage's tokenizer.
stage() {
  local name=$1 init=$2
  shift 2
  local dir=$STATE/$name
  stage_done "$dir" "$(stage_steps "$@")" && return 0
  mkdir -p "$dir"
  if [ "$name" != stage1 ]; then
    cp "$STATE/stage1/tokenizer.model" "$STATE/stage1/tokenizer_config.json" "$dir/"
  fi
  "$train" --out "$dir" ${init:+--init "$init"} "$@"
}
stage stage1 "" "${STAGE1[@]}"
stage stage1b "$STATE/stage1" "${STAGE1B[@]}"
stage stage2 "$STATE/stage1b" "${STAGE2[@]}"

# The model: the last stage's files, and every stage's settings and times.
cp "$STATE/stage2"/{config.json,generation_config.json,model.safetensors} "$OUT/"
cp "$STATE/stage1"/{tokenizer.model,tokenizer_config.json} "$OUT/"
python3 - "$STATE"/{stage1,stage1b,stage2}/training.json "$OUT/training.json" <<'PY'
import json, sys
stages = [json.load(open(p)) for p in sys.argv[1:-1]]
json.dump({"stages": stages}, open(sys.argv[-1], "w"), indent=2)
PY
scripts/eval_default_model.sh "$OUT"
