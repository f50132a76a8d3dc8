#!/bin/sh
# usage: run.sh SOURCE_DIR WORK_DIR (find_package|add_subdirectory|pkg_config)
#   find_package:     cmake --install, checks the installed files, builds main.cpp and strict.cpp
#                     (-Wall -Wextra -Werror) with find_package(kerascpp)
#   add_subdirectory: builds main.cpp with kerascpp as a subproject; a parent without a build type
#                     keeps it (kerascpp does not FORCE its Release default on a parent)
#   pkg_config:       cmake --install, builds strict.cpp with `pkg-config --cflags --libs kerascpp`
set -e
src=$1; work=$2; mode=$3
rm -rf "$work"; mkdir -p "$work"
fail() { echo "consumer $mode: $*" >&2; exit 1; }
version=$(sed -n 's/^#define KERASCPP_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' "$src/include/keras/version.hpp" | paste -sd.)
install_lib() {
  cmake -S "$src" -B "$work/lib" -DKERASCPP_BUILD_TESTS=OFF -DKERASCPP_BUILD_EXAMPLES=OFF -DCMAKE_INSTALL_PREFIX="$work/prefix" >/dev/null
  cmake --install "$work/lib" >/dev/null
}
case $mode in
find_package)
  install_lib
  p=$work/prefix
  for f in include/keras/version.hpp include/keras/all.hpp share/doc/kerascpp/LICENSE share/pkgconfig/kerascpp.pc \
           lib/cmake/kerascpp/kerascppConfig.cmake lib/cmake/kerascpp/kerascppConfigVersion.cmake; do
    [ -f "$p/$f" ] || fail "not installed: $f"
  done
  [ -x "$p/share/kerascpp/keras_h5_to_tfjs.py" ] || fail "the converter is not installed (executable) in share/kerascpp/"
  cmp -s "$src/LICENSE" "$p/share/doc/kerascpp/LICENSE" || fail "installed LICENSE differs"
  grep -q "PACKAGE_VERSION \"$version\"" "$p/lib/cmake/kerascpp/kerascppConfigVersion.cmake" ||
    fail "kerascppConfigVersion.cmake does not say $version (include/keras/version.hpp)"
  cmake -S "$src/tests/consumer" -B "$work/app" -DCMAKE_PREFIX_PATH="$p" -DCMAKE_BUILD_TYPE=Release -DKERASCPP_CONSUMER_STRICT=ON >/dev/null
  cmake --build "$work/app" >/dev/null
  "$work/app/consumer"
  "$work/app/consumer_strict" "$work/strict_out"
  ;;
add_subdirectory)
  # No build type in the parent: kerascpp must not set one for it.
  cmake -S "$src/tests/consumer" -B "$work/untyped" -DKERASCPP_SOURCE="$src" >/dev/null
  bt=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$work/untyped/CMakeCache.txt")
  [ -z "$bt" ] || fail "kerascpp set the parent project's CMAKE_BUILD_TYPE to '$bt'"
  cmake -S "$src/tests/consumer" -B "$work/app" -DKERASCPP_SOURCE="$src" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$work/app" >/dev/null
  "$work/app/consumer"
  ;;
pkg_config)
  install_lib
  export PKG_CONFIG_PATH="$work/prefix/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  v=$(pkg-config --modversion kerascpp) || fail "pkg-config does not find kerascpp.pc"
  [ "$v" = "$version" ] || fail "pkg-config says version $v, include/keras/version.hpp $version"
  cflags=$(pkg-config --cflags kerascpp); libs=$(pkg-config --libs kerascpp)
  echo "pkg-config --cflags --libs kerascpp: $cflags $libs"
  ${CXX:-c++} -std=c++20 -O2 -Wall -Wextra -Werror $cflags "$src/tests/consumer/strict.cpp" -o "$work/strict" $libs
  "$work/strict" "$work/strict_out"
  ;;
*) fail "unknown mode" ;;
esac
