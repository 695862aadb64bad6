#!/usr/bin/env bash
# Retrains the embedded default model (models/default) from scratch on the CPU
# and rewrites its model card with freshly measured scores. Deterministic for
# the seeds: the same machine gives the same weights. Not part of CI; about
# 2 hours on 2 cores (the card records the time each stage took).
#   scripts/train_default_model.sh            (OUT=models/default)
# An interrupted run resumes where it stopped: OUT/train_state (ignored by git)
# keeps each stage's last checkpoint; delete it to train afresh.
#
# Stage 1, the retrieval drill: needles in a short haystack and question after
# question (cc-train's "recall" and "lookup" kinds), 128-256 tokens. This is
# where the model learns to look a key up and copy its number.
# Stage 2, the task mixture from stage 1's weights: RULER's needle tasks,
# variable tracking, common words, generated text and the drill, at contexts
# growing from 320 to 1024 tokens.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
TARGETS="cc-train coldcompress-server coldcompress" scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
OUT=${OUT:-models/default}
STATE=$OUT/train_state
train="$BUILD_DIR/server/cc-train"
[ -d "$STATE" ] || { rm -rf "$OUT"; mkdir -p "$STATE"; }

"$train" --out "$STATE/stage1" --seed 1 --mixture lookup=1 recall=1 \
  --min_context 128 --max_context 256 --curriculum 0 --batch 16 --steps 8400 \
  --lr 3e-4 --schedule constant --warmup 50
cp "$STATE/stage1/tokenizer.model" "$STATE/stage1/tokenizer_config.json" "$OUT/"
"$train" --out "$OUT" --seed 2 --init "$STATE/stage1" \
  --mixture rulerniah=0.35 recall=0.35 lookup=0.05 rulerniah_single=0.05 rulerniah_multikey=0.05 \
  rulervt=0.05 rulercwe=0.05 text=0.05 \
  --min_context 320 --max_context 1024 --curriculum 0.5 --batch 16 --steps 1000 \
  --lr 3e-4 --schedule cosine --warmup 20
# Both stages' settings and times go into the card.
python3 - "$STATE/stage1/training.json" "$OUT/training.json" <<'EOF'
import json, sys
stage1, stage2 = (json.load(open(p)) for p in sys.argv[1:])
json.dump({"stages": [stage1, stage2]}, open(sys.argv[2], "w"), indent=2)
EOF
scripts/eval_default_model.sh "$OUT"
