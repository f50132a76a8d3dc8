#!/usr/bin/env bash
# How long a user's one-file program takes to compile (issue 13: "Compile time is a feature").
#
#   bash tools/compile_time.sh [PROGRAM...]      (default: empty codelab small_cnn)
#
# Compiles bench/compile_time/<PROGRAM>.cpp as a user builds it: header-only, no precompiled
# header, no kerascpp_instances, with the flags of the consumer tests (tests/consumer/run.sh:
# -std=c++20 -O2 -Wall -Wextra and what `pkg-config --cflags kerascpp` gives). Prints wall
# seconds, CPU seconds (user + sys) and the compiler's peak memory, from /usr/bin/time.
#   CXX=clang++         another compiler
#   OPT="-O0"           another optimisation level ("-fsyntax-only": the front end alone)
#   EXTRA="-march=native"  flags added at the end
# The machine may be shared: `uptime` is printed first, compare runs under similar load.
set -euo pipefail
cd "$(dirname "$0")/.."
CXX=${CXX:-g++}
OPT=${OPT:--O2}
[ $# -gt 0 ] || set -- empty codelab small_cnn
# The consumer's flags: include dirs of kerascpp, Eigen and stb (pkg-config's Cflags), -fopenmp-simd, -pthread.
flags=(-std=c++20 "$OPT" -Wall -Wextra -Wno-missing-field-initializers -I include
       $(pkg-config --cflags eigen3) -isystem /usr/include/stb -fopenmp-simd -pthread ${EXTRA:-})
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "# $(date -u '+%F %T UTC')  $(git rev-parse --short HEAD 2>/dev/null || true)  load:$(uptime | sed 's/.*load average://')"
echo "# $CXX ${flags[*]}"
printf '%-12s %8s %8s %8s\n' program wall_s cpu_s rss_MB
for p in "$@"; do
  src=bench/compile_time/$p.cpp
  [ -f "$src" ] || { echo "compile_time.sh: no $src" >&2; exit 2; }
  obj=$out/$p
  [ "$OPT" = "-fsyntax-only" ] && obj=/dev/null
  /usr/bin/time -f '%e %U %S %M' -o "$out/$p.time" "$CXX" "${flags[@]}" "$src" -o "$obj"
  read -r wall user sys rss <"$out/$p.time"
  printf '%-12s %8.1f %8.1f %8.0f\n' "$p" "$wall" "$(echo "$user + $sys" | bc)" "$((rss / 1024))"
done
