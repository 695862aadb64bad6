# Sourced by scripts that need a server of their own on loopback:
#   start_local_server MODEL_DIR   (BUILD_DIR must be set)
# starts coldcompress-server on free ports, waits until it answers, sets
# `address` (127.0.0.1:PORT) and `server` (its pid), and stops it on exit.
start_local_server() {
  local model=$1
  server_log=$(mktemp)
  "$BUILD_DIR"/server/coldcompress-server --model_dir "$model" \
    --listen 127.0.0.1:0 --metrics_listen 127.0.0.1:0 >"$server_log" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true; rm -f "$server_log"' EXIT
  local port=""
  for _ in $(seq 1 300); do
    port=$(grep -o 'listening on [^ ]* (port [0-9]*)' "$server_log" | grep -o '[0-9]*)$' | tr -d ')' || true)
    [ -n "$port" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$server_log"; exit 1; }
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$server_log"; echo "the server did not start" >&2; exit 1; }
  address=127.0.0.1:$port
  "$BUILD_DIR"/client/coldcompress health --server "$address" --wait 60 >/dev/null
}
