#!/usr/bin/python3
"""Tests of tools/keras_h5_to_tfjs.py. Run: /usr/bin/python3 tests/python/test_converter.py

Environment: KERASCPP_SHARED_DIR (default ../shared beside the repo) for the real MobileNetV2
weights; that test is skipped when the file is absent.
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TOOL = os.path.join(REPO, "tools", "keras_h5_to_tfjs.py")
SHARED = os.environ.get("KERASCPP_SHARED_DIR", os.path.join(os.path.dirname(REPO), "shared"))
MNV2_H5 = os.path.join(SHARED, "models", "mobilenet_v2",
                       "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5")
sys.path.insert(0, HERE)
from tfjs_io import read_tfjs_raw, read_h5_weights  # noqa: E402


def run_tool(*args):
    p = subprocess.run([sys.executable, TOOL] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    return p.returncode, p.stdout, p.stderr


def _strs(xs):
    return np.array([x.encode() for x in xs], dtype="S")


def write_layer(g, weights):
    """weights: list of (weight_name like 'dense/kernel:0', array)."""
    g.attrs["weight_names"] = _strs([n for n, _ in weights]) if weights else np.array([], dtype="S1")
    for n, a in weights:
        g.create_dataset(n, data=a)


RNG = np.random.default_rng(1234)


def rnd(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def make_weights_only(path):
    layers = [
        ("input_1", []),
        ("Conv1", [("Conv1/kernel:0", rnd(3, 3, 3, 4))]),
        ("bn_Conv1", [("bn_Conv1/gamma:0", rnd(4)), ("bn_Conv1/beta:0", rnd(4)),
                      ("bn_Conv1/moving_mean:0", rnd(4)),
                      ("bn_Conv1/moving_variance:0", np.abs(rnd(4)) + 0.5)]),
        ("Conv1_relu", []),
        ("dense", [("dense/kernel:0", rnd(4, 3)), ("dense/bias:0", np.zeros(3, np.float32))]),
        ("steps", [("steps/counter:0", np.array([7, -3], np.int32))]),
    ]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = _strs([n for n, _ in layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.11.0"
        for n, ws in layers:
            write_layer(f.create_group(n), ws)
    return {w[:-2]: a for _, ws in layers for w, a in ws}, [w[:-2] for _, ws in layers for w, _ in ws]


NESTED_CONFIG = {
    "class_name": "Sequential",
    "config": {"name": "sequential", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 8, 8, 3],
                                                "dtype": "float32", "name": "input_2"}},
        {"class_name": "Functional", "config": {"name": "tiny_net", "layers": [], "input_layers": [],
                                                "output_layers": []}},
        {"class_name": "BatchNormalizationV1", "config": {"name": "bn_top", "epsilon": 0.001}},
        {"class_name": "Dense", "config": {"name": "dense_1", "units": 2}}]},
}


def make_full_model(path):
    inner = [("Conv1/kernel:0", rnd(3, 3, 3, 4)), ("block_1_depthwise/depthwise_kernel:0", rnd(3, 3, 4, 1)),
             ("block_1_depthwise_BN/gamma:0", rnd(4)), ("block_1_depthwise_BN/beta:0", rnd(4)),
             ("block_1_depthwise_BN/moving_mean:0", rnd(4)),
             ("block_1_depthwise_BN/moving_variance:0", np.abs(rnd(4)))]
    layers = [("tiny_net", inner),
              ("bn_top", [("bn_top/gamma:0", rnd(4)), ("bn_top/beta:0", rnd(4)),
                          ("bn_top/moving_mean:0", rnd(4)), ("bn_top/moving_variance:0", rnd(4))]),
              ("dense_1", [("dense_1/kernel:0", rnd(4, 2, dtype=np.float64)),
                           ("dense_1/bias:0", rnd(2))])]
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(NESTED_CONFIG).encode()
        f.attrs["training_config"] = json.dumps({"loss": "categorical_crossentropy"}).encode()
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.8.0"
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = _strs([n for n, _ in layers])
        mw.attrs["backend"] = b"tensorflow"
        mw.attrs["keras_version"] = b"2.8.0"
        for n, ws in layers:
            write_layer(mw.create_group(n), ws)
        f.create_group("optimizer_weights")
    expected = {w[:-2]: a for _, ws in layers for w, a in ws}
    return expected, [w[:-2] for _, ws in layers for w, _ in ws]


class ConverterTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def convert_ok(self, src, out, *extra):
        rc, so, se = run_tool(src, out, *extra)
        self.assertEqual(rc, 0, "converter failed: " + se)
        return read_tfjs_raw(out)

    def check_common(self, model, ws, names):
        self.assertEqual(model["format"], "layers-model")
        self.assertEqual(model["generatedBy"], "kerascpp keras_h5_to_tfjs")
        self.assertIn("convertedBy", model)
        self.assertEqual(len(model["weightsManifest"]), 1)
        self.assertEqual([e["name"] for e, _, _ in ws], names)
        for p in model["weightsManifest"][0]["paths"]:
            self.assertRegex(p, r"^group1-shard\d+of\d+\.bin$")

    def test_weights_only_exact(self):
        h5 = os.path.join(self.d, "w.h5")
        expected, names = make_weights_only(h5)
        model, ws = self.convert_ok(h5, os.path.join(self.d, "out"))
        self.check_common(model, ws, names)
        self.assertIsNone(model["modelTopology"])
        self.assertEqual(model["weightsManifest"][0]["paths"], ["group1-shard1of1.bin"])
        for e, raw, dec in ws:
            ref = expected[e["name"]]
            self.assertEqual(e["shape"], list(ref.shape))
            self.assertEqual(e["dtype"], "int32" if ref.dtype == np.int32 else "float32")
            self.assertNotIn("quantization", e)
            self.assertEqual(raw.tobytes(), ref.astype(raw.dtype).tobytes())

    def test_full_nested_model(self):
        h5 = os.path.join(self.d, "m.h5")
        expected, names = make_full_model(h5)
        model, ws = self.convert_ok(h5, os.path.join(self.d, "out"))
        self.check_common(model, ws, names)
        topo = model["modelTopology"]
        self.assertEqual(topo["keras_version"], "2.8.0")
        self.assertEqual(topo["backend"], "tensorflow")
        self.assertEqual(topo["training_config"], {"loss": "categorical_crossentropy"})
        cfg = topo["model_config"]
        self.assertEqual(cfg["class_name"], "Sequential")
        # BatchNormalizationV1 -> BatchNormalization as tensorflowjs_converter does; rest unchanged.
        self.assertEqual(cfg["config"]["layers"][2]["class_name"], "BatchNormalization")
        self.assertEqual(cfg["config"]["layers"][1], NESTED_CONFIG["config"]["layers"][1])
        # nested model weights keep the inner names, no outer prefix
        self.assertIn("Conv1/kernel", [e["name"] for e, _, _ in ws])
        for e, raw, dec in ws:
            ref = expected[e["name"]]
            self.assertEqual(e["dtype"], "float32")  # float64 auto-converted like TF.js
            self.assertEqual(raw.tobytes(), ref.astype(np.float32).tobytes())

    def test_sharding(self):
        h5 = os.path.join(self.d, "w.h5")
        expected, names = make_weights_only(h5)
        total = sum(a.nbytes for a in expected.values())
        shard = 100
        out = os.path.join(self.d, "out")
        model, ws = self.convert_ok(h5, out, "--shard-mb", repr(shard / (1024.0 * 1024.0)))
        paths = model["weightsManifest"][0]["paths"]
        n = (total + shard - 1) // shard
        self.assertEqual(paths, ["group1-shard%dof%d.bin" % (i + 1, n) for i in range(n)])
        sizes = [os.path.getsize(os.path.join(out, p)) for p in paths]
        self.assertTrue(all(s == shard for s in sizes[:-1]) and 0 < sizes[-1] <= shard, sizes)
        self.assertEqual(sum(sizes), total)
        for e, raw, dec in ws:
            self.assertEqual(raw.tobytes(), expected[e["name"]].tobytes())
        # Re-converting into the same directory with one shard removes the stale shards.
        self.convert_ok(h5, out)
        self.assertEqual(sorted(os.listdir(out)), ["group1-shard1of1.bin", "model.json"])
        self.assertEqual([n for n in os.listdir(self.d) if n.startswith(".")], [])

    def test_quantization(self):
        h5 = os.path.join(self.d, "w.h5")
        expected, names = make_weights_only(h5)
        for q in ("float16", "uint8", "uint16"):
            model, ws = self.convert_ok(h5, os.path.join(self.d, q), "--quantize", q)
            for e, raw, dec in ws:
                ref = expected[e["name"]]
                if ref.dtype != np.float32:  # only float32 weights are quantized
                    self.assertNotIn("quantization", e)
                    self.assertEqual(raw.tobytes(), ref.tobytes())
                    continue
                qq = e["quantization"]
                self.assertEqual(e["dtype"], "float32")
                self.assertEqual(qq["dtype"], q)
                self.assertEqual(qq["original_dtype"], "float32")
                self.assertEqual(raw.dtype, np.dtype(q))
                if q == "float16":
                    self.assertEqual(set(qq), {"dtype", "original_dtype"})
                    np.testing.assert_array_equal(dec, ref.astype(np.float16).astype(np.float32))
                    continue
                lo, hi = float(ref.min()), float(ref.max())
                if lo == hi:
                    self.assertEqual(qq["scale"], 1.0)
                    self.assertTrue(np.all(raw == 0))
                    continue
                levels = 255 if q == "uint8" else 65535
                self.assertAlmostEqual(qq["scale"], (hi - lo) / levels, places=12)
                if lo <= 0 <= hi:  # zero exactly representable (TF-Lite style nudge)
                    zp = -qq["min"] / qq["scale"]
                    self.assertAlmostEqual(zp, round(zp), places=6)
                    self.assertLessEqual(abs(qq["min"] - lo), qq["scale"] / 2 + 1e-12)
                err = np.abs(dec.astype(np.float64) - ref)
                self.assertLessEqual(err.max(), qq["scale"] * 1.0 + 1e-6, e["name"])
                self.assertEqual(model["weightsManifest"][0]["paths"], ["group1-shard1of1.bin"])
        # bytes: uint8 = 1 per element
        m8, w8 = read_tfjs_raw(os.path.join(self.d, "uint8"))
        self.assertEqual(os.path.getsize(os.path.join(self.d, "uint8", "group1-shard1of1.bin")),
                         sum(r.nbytes for _, r, _ in w8))

    def test_quantize_constant_and_positive(self):
        sys.path.insert(0, os.path.join(REPO, "tools"))
        import keras_h5_to_tfjs as k
        q, m = k.quantize(np.full(5, 0.25, np.float32), np.uint8)
        self.assertEqual(m, {"min": 0.25, "scale": 1.0})
        self.assertTrue(np.all(q == 0))
        x = np.array([1.0, 2.0, 3.0], np.float32)  # 0 not in range: no nudge
        q, m = k.quantize(x, np.uint8)
        self.assertEqual(m["min"], 1.0)
        self.assertEqual(q.tolist(), [0, 128, 255])  # np.round: half to even (127.5 -> 128)
        x = np.array([-1.0, 0.0, 0.3, 2.0], np.float32)
        q, m = k.quantize(x, np.uint8)
        self.assertEqual(float(q[1]) * m["scale"] + m["min"], 0.0 if abs(m["min"]) > 0 else 0.0)
        self.assertAlmostEqual(q[1] * m["scale"] + m["min"], 0.0, places=12)

    def test_errors(self):
        out = os.path.join(self.d, "out")
        txt = os.path.join(self.d, "not.h5")
        with open(txt, "w") as f:
            f.write("this is not hdf5\n" * 100)
        rc, so, se = run_tool(txt, out)
        self.assertNotEqual(rc, 0)
        self.assertIn("not a readable HDF5 file", se)
        self.assertNotIn("Traceback", se)
        self.assertFalse(os.path.exists(out))

        h5 = os.path.join(self.d, "w.h5")
        make_weights_only(h5)
        data = open(h5, "rb").read()
        trunc = os.path.join(self.d, "trunc.h5")
        with open(trunc, "wb") as f:
            f.write(data[: len(data) // 2])
        rc, so, se = run_tool(trunc, out)
        self.assertNotEqual(rc, 0)
        self.assertIn("error:", se)
        self.assertNotIn("Traceback", se)
        self.assertFalse(os.path.exists(out))

        plain = os.path.join(self.d, "plain.h5")
        with h5py.File(plain, "w") as f:
            f.create_dataset("x", data=np.zeros(3))
        rc, so, se = run_tool(plain, out)
        self.assertNotEqual(rc, 0)
        self.assertIn("not a Keras 2 model or weights file", se)

        bad = os.path.join(self.d, "bad.h5")
        with h5py.File(bad, "w") as f:
            f.attrs["layer_names"] = _strs(["dense"])
            f.create_group("dense").attrs["weight_names"] = _strs(["dense/kernel:0"])
        rc, so, se = run_tool(bad, out)
        self.assertNotEqual(rc, 0)
        self.assertIn("no such dataset", se)

        rc, so, se = run_tool(os.path.join(self.d, "missing.h5"), out)
        self.assertNotEqual(rc, 0)
        self.assertIn("no such file", se)

        afile = os.path.join(self.d, "afile")
        open(afile, "w").close()
        rc, so, se = run_tool(h5, afile)
        self.assertNotEqual(rc, 0)
        self.assertIn("not a directory", se)
        self.assertEqual([n for n in os.listdir(self.d) if n.startswith(".")], [])

    @unittest.skipUnless(os.path.exists(MNV2_H5), "MobileNetV2 weights not in shared/")
    def test_real_mobilenet_v2(self):
        out = os.path.join(self.d, "mnv2")
        model, ws = self.convert_ok(MNV2_H5, out)
        self.assertIsNone(model["modelTopology"])
        ref = read_h5_weights(MNV2_H5)
        self.assertEqual(len(ws), 260)
        self.assertEqual(len(ref), 260)
        self.assertEqual(sum(int(np.prod(e["shape"])) for e, _, _ in ws), 2257984)
        self.assertEqual(ws[0][0]["name"], "Conv1/kernel")
        self.assertEqual(ws[0][0]["shape"], [3, 3, 3, 32])
        names = [e["name"] for e, _, _ in ws]
        for n in ("bn_Conv1/moving_mean", "expanded_conv_depthwise/depthwise_kernel",
                  "block_16_project_BN/moving_variance", "Conv_1/kernel", "Conv_1_bn/beta"):
            self.assertIn(n, names)
        for e, raw, dec in ws:
            self.assertEqual(e["dtype"], "float32")
            self.assertEqual(raw.tobytes(), ref[e["name"]].astype("<f4").tobytes(), e["name"])
        paths = model["weightsManifest"][0]["paths"]
        self.assertEqual(paths, ["group1-shard1of3.bin", "group1-shard2of3.bin", "group1-shard3of3.bin"])
        self.assertEqual(os.path.getsize(os.path.join(out, paths[0])), 4 * 1024 * 1024)
        # uint8: within one quantization step everywhere
        model8, ws8 = self.convert_ok(MNV2_H5, os.path.join(self.d, "mnv2_u8"), "--quantize", "uint8")
        for e, raw, dec in ws8:
            err = np.abs(dec.astype(np.float64) - ref[e["name"]]).max()
            self.assertLessEqual(err, e["quantization"]["scale"] + 1e-6, e["name"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
