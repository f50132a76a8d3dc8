#!/bin/sh
# usage: run.sh SOURCE_DIR WORK_DIR (find_package|add_subdirectory)
set -e
src=$1; work=$2; mode=$3
rm -rf "$work"; mkdir -p "$work"
if [ "$mode" = find_package ]; then
  cmake -S "$src" -B "$work/lib" -DKERASCPP_BUILD_TESTS=OFF -DKERASCPP_BUILD_EXAMPLES=OFF -DCMAKE_INSTALL_PREFIX="$work/prefix" >/dev/null
  cmake --install "$work/lib" >/dev/null
  cmake -S "$src/tests/consumer" -B "$work/app" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
else
  cmake -S "$src/tests/consumer" -B "$work/app" -DKERASCPP_SOURCE="$src" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$work/app" >/dev/null
"$work/app/consumer"
