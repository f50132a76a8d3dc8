#!/usr/bin/python3
"""Keras 3 files (.keras, .weights.h5) through tools/keras_h5_to_tfjs.py: the manifest names and
values, the Keras 2 form of the topology, the errors; then the converted models predicted by
kerascpp (the `kerascpp` tool, env KERASCPP_CLI) and by TF.js (tests/tfjs, when node is there),
both against a NumPy float64 forward pass written here from the weights.

Run: KERASCPP_CLI=build/tools/kerascpp /usr/bin/python3 tests/python/test_keras3.py
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TOOL = os.path.join(REPO, "tools", "keras_h5_to_tfjs.py")
TFJS = os.path.join(REPO, "tests", "tfjs", "run_reference.sh")
sys.path.insert(0, HERE)
import keras3_files as k3  # noqa: E402
from mobilenet_v2_ref import conv2d, depthwise_conv2d  # noqa: E402
from tfjs_io import read_tfjs_raw  # noqa: E402

CLI = os.environ.get("KERASCPP_CLI")


def run_tool(*args):
    p = subprocess.run([sys.executable, TOOL] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    return p.returncode, p.stdout, p.stderr


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def bn(x, gamma, beta, mean, var, eps=1e-3):
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def f64(ws):
    return {k: [np.asarray(a, np.float64) for a in v] for k, v in ws.items()}


def ref_mlp(x, w):
    w = f64(w)
    h = np.maximum(x @ w["hidden"][0] + w["hidden"][1], 0)
    h = bn(h, *w["bn"])
    return softmax(h @ w["probs"][0] + w["probs"][1])


def ref_cnn(x, w, last="linear"):
    w = f64(w)
    c1 = np.maximum(conv2d(x, w["c1"][0], 1, "same", w["c1"][1]), 0)
    d = depthwise_conv2d(c1, w["dw"][0], 1, "same")
    g, mean, var = w["dw_bn"]
    d = np.clip(bn(d, g, 0.0, mean, var), 0, 6)
    y = (c1 + d).mean(axis=(1, 2)) @ w["logits"][0] + w["logits"][1]
    return np.maximum(y, 0) if last == "relu" else y


def ref_nested(x, w):
    h = ref_cnn(x, w, "relu")
    w = f64(w)
    return softmax(h @ w["head"][0] + w["head"][1])


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def ref_text_rnn(tokens, w):
    """Embedding -> GRU (reset_after=True, z r h, sequences) -> LSTM (i f c o, go_backwards) -> softmax."""
    w = f64(w)
    e = w["emb"][0][tokens.astype(np.int64)]  # [N, T, 4]
    n, steps = tokens.shape
    W, U, b = w["gru"]
    u = U.shape[0]
    h, seq = np.zeros((n, u)), []
    for t in range(steps):
        xw, hu = e[:, t] @ W + b[0], h @ U + b[1]
        z, r = sigmoid(xw[:, :u] + hu[:, :u]), sigmoid(xw[:, u:2 * u] + hu[:, u:2 * u])
        hh = np.tanh(xw[:, 2 * u:] + r * hu[:, 2 * u:])
        h = z * h + (1 - z) * hh
        seq.append(h)
    W, U, b = w["lstm"]
    h, c = np.zeros((n, u)), np.zeros((n, u))
    for t in reversed(range(steps)):
        g = seq[t] @ W + h @ U + b
        i, f, o = sigmoid(g[:, :u]), sigmoid(g[:, u:2 * u]), sigmoid(g[:, 3 * u:])
        c = f * c + i * np.tanh(g[:, 2 * u:3 * u])
        h = o * np.tanh(c)
    return softmax(h @ w["probs"][0] + w["probs"][1])


class Keras3Test(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name
        self.rng = np.random.default_rng(17)

    def tearDown(self):
        self.tmp.cleanup()

    def convert_ok(self, src, out, *extra):
        rc, so, se = run_tool(src, out, *extra)
        self.assertEqual(rc, 0, "converter failed: " + se)
        return read_tfjs_raw(out)

    def convert_fails(self, src, out, *needles, extra=()):
        rc, so, se = run_tool(src, out, *extra)
        self.assertEqual(rc, 1, "converter should fail; stderr: " + se)
        for n in needles:
            self.assertIn(n, se)
        self.assertFalse(os.path.exists(os.path.join(out, "model.json")))
        return se

    def check_weights(self, ws, expected):
        got = {e["name"]: dec for e, _, dec in ws}
        self.assertEqual(sorted(got), sorted(expected))
        for n, a in expected.items():
            np.testing.assert_array_equal(got[n], a, err_msg=n)

    def predict_both(self, out, x, ref, tol=2e-5, tfjs=True):
        """kerascpp (and TF.js when available) predictions of the converted model vs `ref`."""
        xp, yp = os.path.join(self.d, "x.npy"), os.path.join(self.d, "y.npy")
        np.save(xp, x.astype(np.float32))
        ran = []
        if CLI:
            p = subprocess.run([CLI, "predict", out, "--input", xp, "--output", yp], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, universal_newlines=True)
            self.assertEqual(p.returncode, 0, "kerascpp predict failed: " + p.stderr)
            np.testing.assert_allclose(np.load(yp), ref, rtol=tol, atol=tol, err_msg="kerascpp vs NumPy")
            ran.append("kerascpp")
        if tfjs and shutil.which("node"):
            p = subprocess.run(["sh", TFJS, "predict", out, xp, yp], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True)
            if p.returncode != 77:
                self.assertEqual(p.returncode, 0, "TF.js predict failed: " + p.stderr)
                np.testing.assert_allclose(np.load(yp), ref, rtol=tol, atol=tol, err_msg="TF.js vs NumPy")
                ran.append("tfjs")
        sys.stderr.write(" [predicted by: %s] " % (", ".join(ran) or "nothing: set KERASCPP_CLI, install node"))
        return ran

    # ---- .keras ------------------------------------------------------------------------------
    def test_sequential_keras_file(self):
        cfg, w = k3.mlp(self.rng)
        src = os.path.join(self.d, "mlp.keras")
        k3.write_keras(src, cfg, w)
        out = os.path.join(self.d, "mlp")
        model, ws = self.convert_ok(src, out)
        names = ["hidden/kernel", "hidden/bias", "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance",
                 "probs/kernel", "probs/bias"]
        self.assertEqual([e["name"] for e, _, _ in ws], names)
        flat = [a for k in ("hidden", "bn", "probs") for a in w[k]]
        self.check_weights(ws, dict(zip(names, flat)))
        topo = model["modelTopology"]
        self.assertEqual(topo["keras_version"], "3.6.0")
        mc = topo["model_config"]
        self.assertEqual(mc["class_name"], "Sequential")
        text = json.dumps(mc)
        for key in ("module", "registered_name", "build_config", "batch_shape", "DTypePolicy", "lora_rank"):
            self.assertNotIn('"%s"' % key, text)
        first = mc["config"]["layers"][0]
        self.assertEqual(first["class_name"], "InputLayer")
        self.assertEqual(first["config"]["batch_input_shape"], [None, 6])
        hidden = mc["config"]["layers"][1]["config"]
        self.assertEqual(hidden["dtype"], "float32")
        self.assertEqual(hidden["kernel_initializer"], {"class_name": "GlorotUniform", "config": {"seed": None}})
        self.assertEqual(hidden["kernel_regularizer"], {"class_name": "L1L2", "config": {"l1": 0.0, "l2": 0.01}})
        tc = topo["training_config"]
        self.assertEqual(tc["loss"], "categorical_crossentropy")
        self.assertEqual(tc["metrics"], ["accuracy"])
        self.assertEqual(tc["optimizer_config"]["class_name"], "Adam")
        self.assertEqual(tc["optimizer_config"]["config"]["learning_rate"], 0.01)
        x = self.rng.standard_normal((7, 6))
        self.predict_both(out, x, ref_mlp(x, w))

    def test_text_model_embedding_gru_lstm(self):
        cfg, w = k3.text_rnn(self.rng)
        src = os.path.join(self.d, "text.keras")
        k3.write_keras(src, cfg, w)
        out = os.path.join(self.d, "text")
        model, ws = self.convert_ok(src, out)
        names = ["emb/embeddings", "gru/kernel", "gru/recurrent_kernel", "gru/bias", "lstm/kernel",
                 "lstm/recurrent_kernel", "lstm/bias", "probs/kernel", "probs/bias"]
        self.assertEqual([e["name"] for e, _, _ in ws], names)
        self.check_weights(ws, dict(zip(names, [a for k in ("emb", "gru", "lstm", "probs") for a in w[k]])))
        gru = model["modelTopology"]["model_config"]["config"]["layers"][2]["config"]
        self.assertTrue(gru["reset_after"])
        x = self.rng.integers(0, 10, (6, 5)).astype(np.float64)
        # TF.js 4 has no GRU reset_after=True: kerascpp only
        self.predict_both(out, x, ref_text_rnn(x, w), tfjs=False)

    def test_sequential_without_input_layer_takes_build_input_shape(self):
        cfg, w = k3.mlp(self.rng)
        del cfg["config"]["layers"][0]  # built by model.build((None, 6)) in an older Keras 3: no InputLayer entry
        src = os.path.join(self.d, "noinput.keras")
        k3.write_keras(src, cfg, w)
        out = os.path.join(self.d, "noinput")
        model, ws = self.convert_ok(src, out)
        first = model["modelTopology"]["model_config"]["config"]["layers"][0]
        self.assertEqual(first["class_name"], "InputLayer")
        self.assertEqual(first["config"]["batch_input_shape"], [None, 6])
        self.assertEqual(len(ws), 8)
        x = self.rng.standard_normal((4, 6))
        self.predict_both(out, x, ref_mlp(x, w))

    def test_functional_keras_file_without_name_attributes(self):
        cfg, w = k3.cnn(self.rng)
        src = os.path.join(self.d, "cnn.keras")
        k3.write_keras(src, cfg, w, names_attr=False, keras_version="3.3.3")
        out = os.path.join(self.d, "cnn")
        model, ws = self.convert_ok(src, out)
        self.check_weights(ws, {"c1/kernel": w["c1"][0], "c1/bias": w["c1"][1], "dw/depthwise_kernel": w["dw"][0],
                                "dw_bn/gamma": w["dw_bn"][0], "dw_bn/moving_mean": w["dw_bn"][1],
                                "dw_bn/moving_variance": w["dw_bn"][2], "logits/kernel": w["logits"][0],
                                "logits/bias": w["logits"][1]})
        mc = model["modelTopology"]["model_config"]
        self.assertEqual(mc["class_name"], "Functional")
        self.assertEqual(mc["config"]["input_layers"], [["img", 0, 0]])
        self.assertEqual(mc["config"]["output_layers"], [["logits", 0, 0]])
        add = [l for l in mc["config"]["layers"] if l["name"] == "add"][0]
        self.assertEqual(add["inbound_nodes"], [[["c1", 0, 0, {}], ["dw_relu", 0, 0, {}]]])
        self.assertNotIn("training_config", model["modelTopology"])
        x = self.rng.standard_normal((3, 8, 8, 3))
        self.predict_both(out, x, ref_cnn(x, w))

    def test_nested_model_and_unzipped_folder(self):
        cfg, w = k3.nested(self.rng)
        src = os.path.join(self.d, "nested.keras")
        k3.write_keras(src, cfg, w)
        folder = os.path.join(self.d, "nested_dir")
        with zipfile.ZipFile(src) as zf:
            zf.extractall(folder)
        with zipfile.ZipFile(src) as zf:
            import h5py
            import io
            with h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as h5:
                self.assertIn("layers/functional/layers/conv2d/vars/0", h5)
                self.assertIn("layers/functional/layers/depthwise_conv2d/vars/0", h5)
                self.assertIn("layers/dense/vars/1", h5)
        for s in (src, folder):
            out = os.path.join(self.d, "nested_out_" + os.path.basename(s).replace(".", "_"))
            model, ws = self.convert_ok(s, out)
            self.assertEqual([e["name"] for e, _, _ in ws][:2], ["c1/kernel", "c1/bias"])
            self.assertEqual([e["name"] for e, _, _ in ws][-2:], ["head/kernel", "head/bias"])
            np.testing.assert_array_equal(ws[-2][2], w["head"][0])
            x = self.rng.standard_normal((2, 8, 8, 3))
            self.predict_both(out, x, ref_nested(x, w))

    # ---- .weights.h5 -------------------------------------------------------------------------
    def test_weights_h5_with_config(self):
        cfg, w = k3.cnn(self.rng)
        src = os.path.join(self.d, "cnn.weights.h5")
        k3.write_weights_h5(src, cfg, w, optimizer_vars=False)
        conf = os.path.join(self.d, "cnn.json")
        with open(conf, "w") as fh:
            json.dump(cfg, fh)  # model.to_json()
        self.convert_fails(src, os.path.join(self.d, "no_config"), "holds no architecture", "--config")
        out = os.path.join(self.d, "cnn_w")
        model, ws = self.convert_ok(src, out, "--config", conf)
        self.assertEqual(len(ws), 8)
        self.assertEqual(model["modelTopology"]["model_config"]["class_name"], "Functional")
        x = self.rng.standard_normal((2, 8, 8, 3))
        self.predict_both(out, x, ref_cnn(x, w))
        if CLI:  # the kerascpp tool's convert passes --config through
            out_cli = os.path.join(self.d, "cnn_cli")
            p = subprocess.run([CLI, "convert", src, out_cli, "--config", conf, "--quiet"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, universal_newlines=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual([e["name"] for e, _, _ in read_tfjs_raw(out_cli)[1]], [e["name"] for e, _, _ in ws])
            p = subprocess.run([CLI, "convert", src, os.path.join(self.d, "cnn_cli2")], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, universal_newlines=True)
            self.assertEqual(p.returncode, 1)
            self.assertIn("holds no architecture", p.stderr)
        # a .keras file as the config source works too
        keras_file = os.path.join(self.d, "cnn.keras")
        k3.write_keras(keras_file, cfg, w)
        _, ws2 = self.convert_ok(src, os.path.join(self.d, "cnn_w2"), "--config", keras_file)
        self.assertEqual([e["name"] for e, _, _ in ws2], [e["name"] for e, _, _ in ws])

    # ---- errors ------------------------------------------------------------------------------
    def test_errors_name_the_layer_and_what_differs(self):
        cfg, w = k3.mlp(self.rng)
        bad = dict(w, bn=w["bn"][:3])  # a BatchNormalization with 3 variables
        src = os.path.join(self.d, "bad.keras")
        k3.write_keras(src, cfg, bad)
        self.convert_fails(src, os.path.join(self.d, "o1"), "layer 'bn'", "expects 4 variables", "has 3",
                           "layers/batch_normalization/vars")
        # config and weights of different models: the name attribute tells
        other = json.loads(json.dumps(cfg))
        other["config"]["layers"][1]["config"]["name"] = "encoder"
        wfile = os.path.join(self.d, "mlp.weights.h5")
        k3.write_weights_h5(wfile, cfg, w)
        conf = os.path.join(self.d, "cnn.json")
        with open(conf, "w") as fh:
            json.dump(other, fh)
        self.convert_fails(wfile, os.path.join(self.d, "o2"), "layers/dense/vars belongs to layer 'hidden'",
                           "layer at that place is 'encoder'", extra=("--config", conf))
        # the mlp's weights for the cnn's config
        with open(conf, "w") as fh:
            json.dump(k3.cnn(self.rng)[0], fh)
        self.convert_fails(wfile, os.path.join(self.d, "o2b"), "layer 'c1' (class Conv2D) expects 2 variables",
                           "has 0 at layers/conv2d/vars", extra=("--config", conf))
        # an unknown class that stores variables
        cfg2, w2 = k3.mlp(self.rng)
        cfg2["config"]["layers"][2]["class_name"] = "MyNorm"
        src2 = os.path.join(self.d, "custom.keras")
        k3.write_keras(src2, cfg2, w2)
        self.convert_fails(src2, os.path.join(self.d, "o3"), "layer 'bn' (class MyNorm) stores 4 variables")
        # a zip that is not a Keras file
        src3 = os.path.join(self.d, "not_keras.keras")
        with zipfile.ZipFile(src3, "w") as zf:
            zf.writestr("readme.txt", "hello")
        self.convert_fails(src3, os.path.join(self.d, "o4"), "has no config.json")
        # --config with a Keras 2 file
        import h5py
        k2 = os.path.join(self.d, "k2.h5")
        with h5py.File(k2, "w") as f:
            f.attrs["layer_names"] = np.array([], dtype="S1")
        self.convert_fails(k2, os.path.join(self.d, "o5"), "--config is for Keras 3", extra=("--config", conf))


if __name__ == "__main__":
    unittest.main(verbosity=2)
