#!/usr/bin/env bash
# Builds and runs C++ tests under AddressSanitizer + UndefinedBehaviorSanitizer (GCC, -O1), in
# their own build folder. CI runs the subset below (the readers, every layer through the layer
# check, the tensor and convolution kernels, training with its kill test): the whole suite under
# sanitizers would double CI's ~18 minutes; this subset adds about 9 on 2 cores (measured, see
# docs/reliability.md).
#   tools/sanitize.sh                 the CI subset
#   SANITIZE_TESTS=all tools/sanitize.sh   every C++ test_* (about 40 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${SANITIZE_BUILD_DIR:-build-asan}
TESTS=${SANITIZE_TESTS:-"test_io test_layer_check test_layers_core test_layers_conv test_data test_tensor"}
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
