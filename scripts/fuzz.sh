#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang, ASan and UBSan in
# build-fuzz and runs each for SECONDS (default 120). Seeds: the protobuf
# text files in fuzz/seeds/generate_request (encoded with protoc) and the
# shipped presets in configs/presets. Exits non-zero on any crash, leak or
# sanitizer report, leaving the input in build-fuzz/artifacts.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
main=${BUILD_DIR:-build}
out=${FUZZ_BUILD_DIR:-build-fuzz}
# The policy layer comes from the main (g++) build: see fuzz/support.h.
TARGETS="cc_fuzz_support cc_runtime cc_policies" scripts/build.sh >/dev/null
if [ ! -f "$out/build.ninja" ]; then
  cmake -S . -B "$out" -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 \
    -DCOLDCOMPRESS_FUZZ=ON -DCOLDCOMPRESS_SUPPORT_DIR="$(realpath "$main")" \
    >/dev/null
fi
ninja -C "$out" generate_request_fuzz policy_preset_fuzz
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{corpus,seeds}/{generate_request,policy_preset} "$out/artifacts"
for f in fuzz/seeds/generate_request/*.txtpb; do
  protoc --encode=coldcompress.v1.GenerateRequest -I proto \
    proto/coldcompress/v1/coldcompress.proto <"$f" \
    >"$work/seeds/generate_request/$(basename "$f" .txtpb)"
done
cp configs/presets/*.yaml "$work/seeds/policy_preset/"
for target in generate_request policy_preset; do
  echo "== fuzzing $target for $seconds s"
  # New inputs go to the first (scratch) folder; the seeds stay as they are.
  "$out/fuzz/${target}_fuzz" "$work/corpus/$target" "$work/seeds/$target" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$out/artifacts/$target-" 2>&1 |
    grep -E "^(INFO: Seed|#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|stat::peak_rss|==[0-9]+==|SUMMARY|.*(ERROR|Deadly|crash|leak))" |
    tail -n 12
  status=${PIPESTATUS[0]}
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $target failed (exit $status); input in $out/artifacts/" >&2
    exit 1
  fi
done
echo "fuzz: no crashes"
