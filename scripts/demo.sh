#!/usr/bin/env bash
# The main job: sets up, builds, starts the server on the default model,
# streams a generation and its cache statistics, and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}

# Until the trained default model lands, the default model is a small
# random-weight checkpoint written here (its text is gibberish).
if [ ! -f models/default/config.json ]; then
  "$BUILD_DIR"/server/cc-make-checkpoint --out models/default --layers 4 --hidden 128 \
    --heads 8 --kv_heads 2 --intermediate 384 --vocab 1024 --seed 7
fi

log=$(mktemp)
"$BUILD_DIR"/server/coldcompress-server --listen 127.0.0.1:0 >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
port=""
for _ in $(seq 1 100); do
  port=$(grep -o '(port [0-9]*)' "$log" | grep -o '[0-9]*' || true)
  [ -n "$port" ] && break
  kill -0 $server 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
address=127.0.0.1:$port
"$BUILD_DIR"/client/coldcompress health --server "$address" --wait 60 >/dev/null

prompt="The special number for the quiet river is 4721. Remember it. What is the special number for the quiet river?"
echo "== coldcompress generate --cache_config heavy_hitter --max_cache_length 0.5 (server $address, model models/default)"
"$BUILD_DIR"/client/coldcompress generate --server "$address" --prompt "$prompt" \
  --max_new_tokens 48 --cache_config heavy_hitter --max_cache_length 0.5

kill -TERM $server
wait $server
echo "== server stopped"
