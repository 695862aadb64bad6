#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds, and runs every test, then the
# sanitizer builds (scripts/sanitize.sh; SANITIZE=0 skips them) and fuzzes
# request validation and policy resolution for FUZZ_SECONDS per target
# (default 120; 0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure --timeout 900)
if [ "${SANITIZE:-1}" != 0 ]; then
  scripts/sanitize.sh asan
  scripts/sanitize.sh tsan
fi
if [ "${FUZZ_SECONDS:-120}" -gt 0 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-120}"
fi
