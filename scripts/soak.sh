#!/usr/bin/env bash
# Soak test: STREAMS concurrent streaming clients with mixed policies, prompt
# lengths, multi-turn sessions and 20% random cancellations against a server
# process for SECONDS, sampling its RSS, threads, cache bytes and sessions
# every second (tests/server/soak_test.cc). CI runs 16 streams for 3 minutes.
#   scripts/soak.sh [STREAMS] [SECONDS]      (default: 16 1800)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGETS="soak_test coldcompress-server cc-make-checkpoint" scripts/build.sh
cd "${BUILD_DIR:-build}"
SOAK_STREAMS=${1:-16} SOAK_SECONDS=${2:-1800} \
  ctest -R soak_test --output-on-failure --verbose --timeout $((${2:-1800} + 600))
