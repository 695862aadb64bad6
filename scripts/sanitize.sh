#!/usr/bin/env bash
# Builds tests with sanitizers in folders of their own and runs them; any
# report fails the run (halt_on_error, no recovery):
#   scripts/sanitize.sh asan    ASan + UBSan (build-asan), leak checks on:
#                               policies_test and policy_parity_test (the KV
#                               caches, policies and compressors),
#                               runtime_test, tokenizer_test, client_test
#                               (tasks, metrics, eval on a server),
#                               concurrency_test, service_test and
#                               reliability_test (the gRPC service, limits,
#                               drain, cancel storm, auth, TLS)
#   scripts/sanitize.sh tsan    TSan (build-tsan): the concurrent tests,
#                               concurrency_test (the engine under many client
#                               threads), service_test and reliability_test;
#                               tests/tsan.supp says what it cannot see
# Latency limits in the tests are multiplied by COLDCOMPRESS_TIME_SCALE here:
# they are checked as stated by the plain build's CTest run.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: sanitize.sh asan|tsan}
case "$kind" in
  asan) dir=build-asan flags=address,undefined scale=4 ;;
  tsan) dir=build-tsan flags=thread scale=10 ;;
  *) echo "sanitize.sh: asan or tsan, not $kind" >&2; exit 2 ;;
esac
if [ ! -f "$dir/build.ninja" ]; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCOLDCOMPRESS_SANITIZE="$flags" >/dev/null
fi
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1:suppressions=$PWD/tests/tsan.supp"
export COLDCOMPRESS_TIME_SCALE=$scale
tests=(concurrency_test service_test reliability_test)
if [ "$kind" = asan ]; then
  tests=(policies_test policy_parity_test runtime_test tokenizer_test
    client_test "${tests[@]}")
else
  # LibTorch's and OpenBLAS's worker pools are not instrumented: TSan cannot
  # see how they hand results back, so the model runs on the calling thread.
  export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
fi
cmake --build "$dir" --target "${tests[@]}" coldcompress-server coldcompress \
  cc-make-checkpoint
pattern=$(IFS='|'; echo "${tests[*]}")
(cd "$dir" && ctest --output-on-failure --timeout 1800 -R "^($pattern)$")
echo "sanitize.sh $kind: no reports"
