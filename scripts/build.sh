#!/usr/bin/env bash
# Configures and builds everything into build/ (Ninja, ccache when present).
# The Docker image builds with this script too:
#   BUILD_DIR      build folder (default build)
#   CMAKE_ARGS     extra CMake arguments, e.g. -DCMAKE_PREFIX_PATH=/opt/libtorch
#                  (a CUDA LibTorch) -DCOLDCOMPRESS_BUILD_TESTS=OFF
#   TARGETS        build only these targets (default: everything)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  # shellcheck disable=SC2086
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CMAKE_ARGS:-}
fi
# shellcheck disable=SC2086
cmake --build "$BUILD_DIR" ${TARGETS:+--target $TARGETS}
