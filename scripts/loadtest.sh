#!/usr/bin/env bash
# docs/performance.md's load section: starts a server on the default model,
# runs coldcompress-loadtest with 1, 4 and 16 closed-loop clients for each
# mix, and writes the reports and plots under docs/perf/<mix>/.
#   scripts/loadtest.sh [MIX...]   (default: default decode_heavy, from
#                                   loadtest/configs/<MIX>.yaml)
# Run after scripts/build.sh; needs nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
MIXES=("$@")
[ ${#MIXES[@]} -eq 0 ] && MIXES=(default decode_heavy)
source scripts/lib/local_server.sh
start_local_server models/default
for mix in "${MIXES[@]}"; do
  echo "== $mix"
  "$BUILD_DIR"/loadtest/coldcompress-loadtest --server "$address" \
    --config "loadtest/configs/$mix.yaml" --concurrency 1 4 16 \
    --out "docs/perf/$mix" --no_progress
done
