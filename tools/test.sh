#!/usr/bin/env bash
# The README's test command: installs what is missing, builds everything, runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh chromium   # chromium: the report test opens report.html in a real browser
BUILD=${BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
cd "$BUILD" && ctest --output-on-failure -j"$(nproc)" --timeout 1200
