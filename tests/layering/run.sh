#!/bin/sh
# The layering rule (docs/architecture.md): the real tree passes, and a copy with one include
# that runs upward (core -> engine), one into the umbrella header (layers -> keras.hpp) and one of
# <mpi.h> outside distribute/ (MPI is opt-in) fail.
set -eu
src=$1
python3 "$src/tools/check_layering.py" "$src/include"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp -r "$src/include" "$tmp/include"
printf '#include "../engine/graph.hpp"\n' >> "$tmp/include/keras/core/shape.hpp"
if python3 "$src/tools/check_layering.py" "$tmp/include" 2> "$tmp/err"; then
  echo "check_layering missed core -> engine" >&2; exit 1
fi
grep -q "'core' may not include 'engine'" "$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
cp "$src/include/keras/core/shape.hpp" "$tmp/include/keras/core/shape.hpp"
printf '#include "../keras.hpp"\n' >> "$tmp/include/keras/layers/dense.hpp"
if python3 "$src/tools/check_layering.py" "$tmp/include" 2> "$tmp/err"; then
  echo "check_layering missed layers -> keras.hpp" >&2; exit 1
fi
cp "$src/include/keras/layers/dense.hpp" "$tmp/include/keras/layers/dense.hpp"
printf '#include <mpi.h>\n' >> "$tmp/include/keras/trainers/trainer.hpp"
if python3 "$src/tools/check_layering.py" "$tmp/include" 2> "$tmp/err"; then
  echo "check_layering missed <mpi.h> outside distribute/" >&2; exit 1
fi
grep -q "only distribute/ may" "$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
echo "layering check: passes on the tree, catches both injected upward includes and <mpi.h> outside distribute/"
