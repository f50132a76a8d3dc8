#!/usr/bin/env bash
# The README's test command: installs what is missing, builds everything, runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh chromium   # chromium: the report test opens report.html in a real browser
BUILD=${BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
cd "$BUILD"
# The MPI tests (tests/mpi: mpirun -np 2 and 3) must be there: deps.sh installed Open MPI.
ctest -N -R '^mpi_' | grep -q 'Total Tests: [1-9]' || { echo "test.sh: no MPI tests registered (is libopenmpi-dev installed?)" >&2; exit 1; }
ctest --output-on-failure -j"$(nproc)" --timeout 1200
