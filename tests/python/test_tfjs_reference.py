#!/usr/bin/python3
"""TF.js (Node, pure-JS CPU backend) against the NumPy references.

    tests/tfjs/run_reference.sh test     (installs node_modules with npm ci if missing)
    /usr/bin/python3 tests/python/test_tfjs_reference.py

1. make_models.js models (TF.js-saved MLP, CNN, nested MobileNetV2-like) run by the NumPy
   executor tfjs_numpy_runner.py: same predictions to 1e-5.
2. Real MobileNetV2: weights-only h5 -> tools/keras_h5_to_tfjs.py -> + tf.keras topology
   (mobilenet_v2_topology.py --merge, 192x192, pooling avg) -> TF.js predict on the flower batch
   vs mobilenet_v2_ref.py: max abs diff <= 1e-4 (printed).
3. The same with --quantize uint8: TF.js's decoding of our quantized shards equals ours.
Exits 77 (skip) if node or TF.js is not available.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TFJS = os.path.join(REPO, "tests", "tfjs")
SHARED = os.environ.get("KERASCPP_SHARED_DIR", os.path.join(os.path.dirname(REPO), "shared"))
MNV2_H5 = os.path.join(SHARED, "models", "mobilenet_v2",
                       "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5")
FLOWERS = os.path.join(SHARED, "data", "flower_photos")
sys.path.insert(0, HERE)
import tfjs_numpy_runner  # noqa: E402
import mobilenet_v2_ref  # noqa: E402
from mobilenet_v2_topology import mobilenet_v2_config, merge_into  # noqa: E402
from make_flower_batch import make_batch  # noqa: E402

TOL_MNV2 = 1e-4
RESULTS = {}


def node(script, *args):
    p = subprocess.run(["node", os.path.join(TFJS, script)] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    return p.returncode, p.stdout, p.stderr


def convert(out, *extra):
    subprocess.run([sys.executable, os.path.join(REPO, "tools", "keras_h5_to_tfjs.py"), "-q",
                    MNV2_H5, out] + list(extra), check=True)


class TfjsReference(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kerascpp-tfjs-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_small_models(self):
        out = os.path.join(self.tmp, "models")
        rc, so, se = node("make_models.js", out)
        self.assertEqual(rc, 0, se)
        for name in ("mlp", "cnn", "nested"):
            d = os.path.join(out, name)
            x, y = np.load(os.path.join(d, "X.npy")), np.load(os.path.join(d, "Y.npy"))
            ours = tfjs_numpy_runner.run(d, x)
            diff = float(np.abs(ours - y).max())
            RESULTS["small model %s" % name] = diff
            self.assertLessEqual(diff, 1e-5, name)
            self.assertTrue(np.allclose(y.sum(-1), 1, atol=1e-5))  # softmax outputs
            # predict.js reloads it from disk and gives TF.js's prediction again
            rc, so, se = node("predict.js", d, os.path.join(d, "X.npy"), os.path.join(d, "Y2.npy"))
            self.assertEqual(rc, 0, se)
            np.testing.assert_array_equal(np.load(os.path.join(d, "Y2.npy")), y)

    def test_weights_only_model_needs_topology(self):
        if not os.path.exists(MNV2_H5):
            self.skipTest("no MobileNetV2 weights")
        d = os.path.join(self.tmp, "weights_only")
        convert(d)
        np.save(os.path.join(self.tmp, "x.npy"), np.zeros((1, 32, 32, 3), np.float32))
        rc, so, se = node("predict.js", d, os.path.join(self.tmp, "x.npy"), os.path.join(self.tmp, "y.npy"))
        self.assertNotEqual(rc, 0)
        self.assertIn("no modelTopology", se)

    def _mnv2(self, tag, n_per_class, extra):
        if not (os.path.exists(MNV2_H5) and os.path.isdir(FLOWERS)):
            self.skipTest("shared data missing")
        d = os.path.join(self.tmp, "mnv2_" + tag)
        convert(d, *extra)
        merge_into(d, mobilenet_v2_config(192, "avg"))
        batch, files, decoder = make_batch(per_class=n_per_class, size=192, data_dir=FLOWERS)
        x = (batch / 127.5 - 1.0).astype(np.float32)
        xp, yp = os.path.join(self.tmp, tag + "_x.npy"), os.path.join(self.tmp, tag + "_y.npy")
        np.save(xp, x)
        rc, so, se = node("predict.js", d, xp, yp)
        self.assertEqual(rc, 0, se)
        y_tfjs = np.load(yp).astype(np.float64)
        y_ref = mobilenet_v2_ref.MobileNetV2Ref(d).features(x, pooling="avg")
        self.assertEqual(y_tfjs.shape, (len(files), 1280))
        diff = float(np.abs(y_tfjs - y_ref).max())
        RESULTS["MobileNetV2 192 avg %s, %d photos (%s)" % (tag, len(files), decoder)] = diff
        self.assertLessEqual(diff, TOL_MNV2)
        self.assertGreaterEqual(y_tfjs.min(), 0.0)
        return y_ref

    def test_mobilenet_v2_float32(self):
        self._mnv2("float32", 2, [])

    def test_mobilenet_v2_uint8(self):
        self._mnv2("uint8", 1, ["--quantize", "uint8"])


if __name__ == "__main__":
    if shutil.which("node") is None or not os.path.isdir(os.path.join(TFJS, "node_modules", "@tensorflow", "tfjs")):
        print("node or tests/tfjs/node_modules missing (run tests/tfjs/run_reference.sh deps): skipped")
        sys.exit(77)
    prog = unittest.main(verbosity=2, exit=False)
    for k, v in RESULTS.items():
        print("max abs diff TF.js vs NumPy, %s: %.3g" % (k, v))
    sys.exit(0 if prog.result.wasSuccessful() else 1)
