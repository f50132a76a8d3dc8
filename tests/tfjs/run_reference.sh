#!/bin/sh
# TF.js (pure JS, CPU backend) reference runs for kerascpp tests.
#   tests/tfjs/run_reference.sh deps                 install node_modules once (npm ci, locked)
#   tests/tfjs/run_reference.sh models OUT_DIR       node make_models.js OUT_DIR
#   tests/tfjs/run_reference.sh predict DIR X Y      node predict.js DIR X.npy Y.npy
#   tests/tfjs/run_reference.sh test                 the full check (tests/python/test_tfjs_reference.py)
# Exits 77 (ctest SKIP_RETURN_CODE) when node or npm is missing.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null 2>&1 || { echo "node not found: skipping TF.js reference" >&2; exit 77; }

deps() {
  [ -f "$HERE/node_modules/@tensorflow/tfjs/package.json" ] && [ -f "$HERE/node_modules/jpeg-js/package.json" ] && return 0
  command -v npm >/dev/null 2>&1 || { echo "npm not found: skipping TF.js reference" >&2; exit 77; }
  lock="${TMPDIR:-/tmp}/kerascpp-tfjs-npm.lock"
  (
    flock 9
    if [ ! -f "$HERE/node_modules/@tensorflow/tfjs/package.json" ] || [ ! -f "$HERE/node_modules/jpeg-js/package.json" ]; then
      echo "installing TF.js into $HERE/node_modules (npm ci)" >&2
      (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) >&2
    fi
  ) 9>"$lock"
}

cmd=${1:-test}
[ $# -gt 0 ] && shift
case "$cmd" in
  deps) deps ;;
  models) deps; exec node "$HERE/make_models.js" "$@" ;;
  predict) deps; exec node "$HERE/predict.js" "$@" ;;
  test) deps; exec /usr/bin/python3 "$HERE/../python/test_tfjs_reference.py" "$@" ;;
  *) echo "usage: $0 deps|models OUT_DIR|predict DIR X.npy Y.npy|test" >&2; exit 2 ;;
esac
