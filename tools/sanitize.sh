#!/usr/bin/env bash
# Builds and runs C++ tests under AddressSanitizer + UndefinedBehaviorSanitizer (GCC, -O1), in
# their own build folder. CI runs the subset below: test_io (model.json, shards, .npy, the limits,
# the kill-during-save test), test_data (image decoding and datasets) and test_layer_check (every
# registered layer forward and backward through keras::testing::check_layer). The whole suite
# under sanitizers would double CI's ~18 minutes; this subset is what fits the ~30-minute budget
# next to the fuzz step (timings in docs/reliability.md).
#   tools/sanitize.sh                 the CI subset
#   SANITIZE_TESTS=all tools/sanitize.sh   every C++ test_* except test_cli (not timed; longer than CI allows)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${SANITIZE_BUILD_DIR:-build-asan}
TESTS=${SANITIZE_TESTS:-"test_io test_data test_layer_check"}
if [ "$TESTS" = all ]; then
  TESTS=$(ls tests/test_*.cpp | xargs -n1 basename | sed 's/\.cpp$//' | grep -v '^test_cli$' | tr '\n' ' ')
fi
FLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DKERASCPP_BUILD_EXAMPLES=OFF -DKERASCPP_NATIVE=OFF >/dev/null
# shellcheck disable=SC2086
cmake --build "$BUILD" -j"$(nproc)" --target $TESTS
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
regex="^($(echo $TESTS | tr ' ' '|'))\$"
cd "$BUILD" && ctest --output-on-failure -j"$(nproc)" --timeout 1800 -R "$regex"
