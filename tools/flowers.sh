#!/usr/bin/env bash
# The flowers job end to end (README): installs missing Debian packages, converts the MobileNetV2
# weights, builds the example with CMake in build/ and trains it. Outputs in runs/flowers/ (or
# --output DIR): model/ (TF.js layers format), history.csv, report.html, validation/.
# Any argument is passed to the example, e.g.  tools/flowers.sh --recipe codelab   (see --help).
# Environment: KERASCPP_SHARED_DIR (default ../shared next to the repository), BUILD_DIR (build),
# KERASCPP_CACHE_DIR (converted weights; default ~/.cache/kerascpp).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh

H5=mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5
SHARED=${KERASCPP_SHARED_DIR:-$(pwd)/../shared}
CACHE=${KERASCPP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kerascpp}
DATA_URL=https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz
WEIGHTS_URL=https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/$H5

# Inputs: the shared folder first, then Keras's own cache (~/.keras), as tf.keras would download them.
data=""; h5=""
for d in "$SHARED/data/flower_photos" "$HOME/.keras/datasets/flower_photos"; do
  [ -d "$d/daisy" ] && { data=$d; break; }
done
for f in "$SHARED/models/mobilenet_v2/$H5" "$HOME/.keras/models/$H5"; do
  [ -f "$f" ] && { h5=$f; break; }
done
if [ -z "$data" ] || [ -z "$h5" ]; then
  echo "The flowers example needs the flower photos and the MobileNetV2 ImageNet weights:" >&2
  [ -z "$data" ] && echo "  photos:  not in $SHARED/data/flower_photos nor ~/.keras/datasets/flower_photos" >&2
  [ -z "$h5" ] && echo "  weights: not in $SHARED/models/mobilenet_v2/ nor ~/.keras/models/" >&2
  echo "Download them into Keras's cache with:" >&2
  [ -z "$data" ] && echo "  mkdir -p ~/.keras/datasets && curl -L $DATA_URL | tar xz -C ~/.keras/datasets" >&2
  [ -z "$h5" ] && echo "  mkdir -p ~/.keras/models && curl -L -o ~/.keras/models/$H5 $WEIGHTS_URL" >&2
  echo "then run again: tools/flowers.sh $*" >&2
  exit 2
fi

# Weights: Keras .h5 -> TF.js layers format, once (never written into the read-only shared folder).
weights=$CACHE/mobilenet_v2_1.0_224_no_top
if [ ! -f "$weights/model.json" ] || [ "$h5" -nt "$weights/model.json" ]; then
  echo "Converting $h5 -> $weights"
  mkdir -p "$CACHE"
  /usr/bin/python3 tools/keras_h5_to_tfjs.py "$h5" "$weights" -q
fi

BUILD=${BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target flowers_transfer_learning
exec "$BUILD/examples/flowers_transfer_learning" --data "$data" --weights "$weights" "$@"
