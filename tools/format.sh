#!/usr/bin/env bash
# The project's C++ style (.clang-format, clang-format 14): `tools/format.sh` rewrites every
# tracked .hpp/.cpp in place; `tools/format.sh --check` lists the files that differ and fails
# (the ctest `format` runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
CF=${CLANG_FORMAT:-clang-format}
command -v "$CF" >/dev/null || { echo "format.sh: $CF not found (apt-get install clang-format)" >&2; exit 77; }
mapfile -t files < <(git ls-files '*.hpp' '*.cpp' 2>/dev/null || find include tests tools examples bench -name '*.[hc]pp')
if [ "${1:-}" = "--check" ]; then
  bad=0
  for f in "${files[@]}"; do
    if ! "$CF" --style=file "$f" | cmp -s - "$f"; then echo "not formatted: $f (run tools/format.sh)"; bad=1; fi
  done
  exit $bad
fi
"$CF" --style=file -i "${files[@]}"
