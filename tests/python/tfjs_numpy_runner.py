#!/usr/bin/python3
"""Run a TF.js layers model (model.json + shards) with NumPy float64 -- a third, independent
executor of the Keras config, for checking TF.js's and our C++ predictions.

    /usr/bin/python3 tests/python/tfjs_numpy_runner.py MODEL_DIR X.npy Y.npy

Supports Sequential / Model / Functional (nested too), InputLayer, Dense, Conv2D,
DepthwiseConv2D, BatchNormalization (inference), ReLU (max_value), Activation, ZeroPadding2D,
Add, GlobalAveragePooling2D, Dropout (identity), Flatten. Weights are looked up by name
"<layer>/<weight>", as TF.js and tensorflowjs_converter write them (no outer-model prefix).
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mobilenet_v2_ref import conv2d, depthwise_conv2d, batch_norm, zero_pad  # noqa: E402
from tfjs_io import read_tfjs_raw  # noqa: E402

ACT = {
    "linear": lambda x: x, None: lambda x: x,
    "relu": lambda x: np.maximum(x, 0), "relu6": lambda x: np.clip(x, 0, 6),
    "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "softmax": lambda x: (lambda e: e / e.sum(-1, keepdims=True))(np.exp(x - x.max(-1, keepdims=True))),
}


class Runner:
    def __init__(self, weights):
        self.w = weights
        self.used = set()

    def get(self, layer, name):
        key = "%s/%s" % (layer, name)
        self.used.add(key)
        return self.w[key]

    def layer(self, cls, cfg, inputs):
        n = cfg.get("name")
        x = inputs[0] if len(inputs) == 1 else None
        if cls in ("Sequential", "Model", "Functional"):
            return self.model({"class_name": cls, "config": cfg}, inputs)
        if cls in ("InputLayer", "Dropout"):
            return x
        if cls == "Dense":
            y = x @ self.get(n, "kernel")
            if cfg.get("use_bias", True):
                y = y + self.get(n, "bias")
            return ACT[cfg.get("activation")](y)
        if cls == "Conv2D":
            assert cfg.get("dilation_rate", [1, 1]) == [1, 1] and cfg["strides"][0] == cfg["strides"][1]
            y = conv2d(x, self.get(n, "kernel"), cfg["strides"][0], cfg["padding"],
                       self.get(n, "bias") if cfg.get("use_bias", True) else None)
            return ACT[cfg.get("activation")](y)
        if cls == "DepthwiseConv2D":
            assert cfg["strides"][0] == cfg["strides"][1]
            y = depthwise_conv2d(x, self.get(n, "depthwise_kernel"), cfg["strides"][0], cfg["padding"],
                                 self.get(n, "bias") if cfg.get("use_bias", True) else None)
            return ACT[cfg.get("activation")](y)
        if cls == "BatchNormalization":
            ax = cfg.get("axis", -1)
            assert ax in (-1, x.ndim - 1, [x.ndim - 1], [-1]), ax
            c = x.shape[-1]
            g = self.get(n, "gamma") if cfg.get("scale", True) else np.ones(c)
            b = self.get(n, "beta") if cfg.get("center", True) else np.zeros(c)
            return batch_norm(x, g, b, self.get(n, "moving_mean"), self.get(n, "moving_variance"),
                              cfg.get("epsilon", 1e-3))
        if cls == "ReLU":
            y = np.maximum(x, 0)
            return y if cfg.get("max_value") is None else np.minimum(y, cfg["max_value"])
        if cls == "Activation":
            return ACT[cfg["activation"]](x)
        if cls == "ZeroPadding2D":
            p = cfg["padding"]
            if isinstance(p, int):
                p = [[p, p], [p, p]]
            elif isinstance(p[0], int):
                p = [[p[0], p[0]], [p[1], p[1]]]
            return zero_pad(x, p)
        if cls == "Add":
            return sum(inputs)
        if cls == "GlobalAveragePooling2D":
            return x.mean(axis=(1, 2), keepdims=bool(cfg.get("keepdims", False)))
        if cls == "Flatten":
            return x.reshape(x.shape[0], -1)
        raise NotImplementedError(cls)

    def model(self, topo, inputs):
        cls, cfg = topo["class_name"], topo["config"]
        if cls == "Sequential":
            layers = cfg["layers"] if isinstance(cfg, dict) else cfg
            x = inputs[0]
            for l in layers:
                x = self.layer(l["class_name"], l["config"], [x])
            return x
        values = {}
        for (name, _, _), x in zip(cfg["input_layers"], inputs):
            values[name] = x
        for l in cfg["layers"]:
            if l["class_name"] == "InputLayer":
                continue
            nodes = l["inbound_nodes"]
            assert len(nodes) == 1, "shared layers not supported"
            ins = [values[i[0]] for i in nodes[0]]
            values[l["name"]] = self.layer(l["class_name"], l["config"], ins)
        return values[cfg["output_layers"][0][0]]


def run(model_dir, x):
    model, ws = read_tfjs_raw(model_dir)
    topo = model["modelTopology"]
    if "model_config" in topo:
        topo = topo["model_config"]
    r = Runner({e["name"]: dec.astype(np.float64) for e, _, dec in ws})
    y = r.model(topo, [np.asarray(x, np.float64)])
    unused = set(r.w) - r.used
    if unused:
        raise ValueError("weights not used: %s" % sorted(unused))
    return y


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    y = run(sys.argv[1], np.load(sys.argv[2]))
    np.save(sys.argv[3], y.astype(np.float32))
    print("output", y.shape)
