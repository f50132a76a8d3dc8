#!/usr/bin/python3
"""Checks of the NumPy MobileNetV2 reference. Run: /usr/bin/python3 tests/python/test_mobilenet_ref.py"""

import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get("KERASCPP_SHARED_DIR", os.path.join(os.path.dirname(REPO), "shared"))
MNV2_H5 = os.path.join(SHARED, "models", "mobilenet_v2",
                       "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5")
FLOWERS = os.path.join(SHARED, "data", "flower_photos")
sys.path.insert(0, HERE)
import mobilenet_v2_ref as ref  # noqa: E402
from make_flower_batch import make_batch  # noqa: E402


class RefTest(unittest.TestCase):
    def test_self_test(self):
        self.assertLessEqual(ref.self_test(verbose=False), 1e-12)

    @unittest.skipUnless(os.path.exists(MNV2_H5), "MobileNetV2 weights not in shared/")
    def test_h5_and_converted_dir_agree_and_shapes(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "mnv2")
            subprocess.run([sys.executable, os.path.join(REPO, "tools", "keras_h5_to_tfjs.py"),
                            "-q", MNV2_H5, out], check=True)
            x = np.random.default_rng(3).uniform(-1, 1, (1, 96, 96, 3)).astype(np.float32)
            a = ref.MobileNetV2Ref(MNV2_H5)
            b = ref.MobileNetV2Ref(out)
            fa = a.features(x)
            self.assertEqual(fa.shape, (1, 3, 3, 1280))
            np.testing.assert_array_equal(fa, b.features(x))
            self.assertEqual(a.used, set(a.w))  # every weight of the file is used
            self.assertEqual(sum(v.size for v in a.w.values()), 2257984)
            # odd input size: correct_pad gives ((1,1),(1,1)) and the network still runs
            self.assertEqual(a.features(np.zeros((1, 97, 97, 3))).shape,
                             (1, 4, 4, 1280))

    @unittest.skipUnless(os.path.exists(MNV2_H5) and os.path.isdir(FLOWERS), "shared data missing")
    def test_flower_features_sensible(self):
        batch, files, _ = make_batch(per_class=2, size=192, data_dir=FLOWERS)
        self.assertEqual(batch.shape, (10, 192, 192, 3))
        self.assertGreaterEqual(batch.min(), 0.0)
        self.assertLessEqual(batch.max(), 255.0)
        net = ref.MobileNetV2Ref(MNV2_H5)
        f = net.features(batch / 127.5 - 1.0, pooling="avg")
        self.assertEqual(f.shape, (10, 1280))
        self.assertGreaterEqual(f.min(), 0.0)
        self.assertLessEqual(f.max(), 6.0)
        means = f.mean(axis=1)
        self.assertTrue(np.all((means > 0.05) & (means < 2.0)), means)
        self.assertTrue(np.all((f > 0).mean(axis=1) > 0.2))
        # same-class photos (consecutive pairs) are more alike than photos of different classes
        n = f / np.linalg.norm(f, axis=1, keepdims=True)
        sim = n @ n.T
        same = np.mean([sim[2 * i, 2 * i + 1] for i in range(5)])
        mask = np.ones_like(sim, bool)
        for i in range(5):
            mask[2 * i:2 * i + 2, 2 * i:2 * i + 2] = False
        self.assertGreater(same, sim[mask].mean() + 0.1, (same, sim[mask].mean()))


if __name__ == "__main__":
    unittest.main(verbosity=2)
