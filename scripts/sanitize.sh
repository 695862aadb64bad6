#!/usr/bin/env bash
# Builds tests with sanitizers in folders of their own and runs them; any
# report fails the run (halt_on_error, no recovery):
#   scripts/sanitize.sh asan    ASan + UBSan (build-asan): policies_test, the
#                               KV caches, policies and compressors
#   scripts/sanitize.sh ubsan   UBSan (build-ubsan): the runtime, the gRPC
#                               service and the reliability tests (limits,
#                               drain, cancel storm, auth, TLS)
# Why ASan covers only the policy layer for now: the server loads Debian's
# SentencePiece through a module opened with RTLD_DEEPBIND (its bundled
# protobuf 3.14 must not meet ours), and ASan cannot run with RTLD_DEEPBIND
# (google/sanitizers#611); UBSan can.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: sanitize.sh asan|ubsan}
case "$kind" in
  asan) dir=build-asan flags=address,undefined ;;
  ubsan) dir=build-ubsan flags=undefined ;;
  *) echo "sanitize.sh: asan or ubsan, not $kind" >&2; exit 2 ;;
esac
if [ ! -f "$dir/build.ninja" ]; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCOLDCOMPRESS_SANITIZE="$flags" >/dev/null
fi
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
if [ "$kind" = asan ]; then
  cmake --build "$dir" --target policies_test
  COLDCOMPRESS_SOURCE_DIR="$PWD" "$dir/tests/policies_test" --gtest_brief=1
else
  cmake --build "$dir" --target runtime_test service_test reliability_test \
    coldcompress-server coldcompress cc-make-checkpoint
  (cd "$dir" && ctest --output-on-failure --timeout 900 \
    -R "^(runtime_test|service_test|reliability_test)$")
fi
echo "sanitize.sh $kind: no reports"
