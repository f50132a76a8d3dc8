#!/usr/bin/python3
"""Emit the Keras model config of tf.keras MobileNetV2 (alpha 1.0, include_top=False).

    /usr/bin/python3 tests/python/mobilenet_v2_topology.py [--size 224] [--pooling none|avg]
        [--output topology.json] [--merge CONVERTED_DIR]

Writes what ``model.to_json()`` of ``tf.keras.applications.MobileNetV2(input_shape=(S, S, 3),
include_top=False, pooling=...)`` gives in tf.keras 2.x: {"class_name": "Functional",
"config": {"name": "mobilenetv2_1.00_S", "layers": [...], "input_layers": [["input_1", 0, 0]],
"output_layers": [["out_relu", 0, 0]]}, "keras_version": ..., "backend": "tensorflow"}, with the
154 (155 with pooling avg) layers, their exact names and tf.keras 2.x configs (name, trainable,
dtype first; Conv2D with groups; BatchNormalization axis [3] as a built layer reports it; ReLU
max_value 6.0; GlorotUniform initializers).

--merge DIR puts it into DIR/model.json made by tools/keras_h5_to_tfjs.py from the weights-only
h5 (modelTopology null), wrapped as tensorflowjs_converter does for a full model file:
{"keras_version", "backend", "model_config": {"class_name", "config"}}; TF.js's
loadLayersModel unwraps model_config. The file is replaced atomically.
"""

import argparse
import json
import os
import sys
import tempfile

BLOCKS = [(1, 16, 1),
          (6, 24, 2), (6, 24, 1),
          (6, 32, 2), (6, 32, 1), (6, 32, 1),
          (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1),
          (6, 96, 1), (6, 96, 1), (6, 96, 1),
          (6, 160, 2), (6, 160, 1), (6, 160, 1),
          (6, 320, 1)]

GLOROT = {"class_name": "GlorotUniform", "config": {"seed": None}}
ZEROS = {"class_name": "Zeros", "config": {}}
ONES = {"class_name": "Ones", "config": {}}


def _base(name):
    return {"name": name, "trainable": True, "dtype": "float32"}


def conv2d(name, filters, k, s, padding):
    c = _base(name)
    c.update({"filters": filters, "kernel_size": [k, k], "strides": [s, s], "padding": padding,
              "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
              "activation": "linear", "use_bias": False, "kernel_initializer": GLOROT,
              "bias_initializer": ZEROS, "kernel_regularizer": None, "bias_regularizer": None,
              "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None})
    return "Conv2D", c


def depthwise(name, s, padding):
    c = _base(name)
    c.update({"kernel_size": [3, 3], "strides": [s, s], "padding": padding,
              "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
              "activation": "linear", "use_bias": False, "bias_initializer": ZEROS,
              "bias_regularizer": None, "activity_regularizer": None, "bias_constraint": None,
              "depth_multiplier": 1, "depthwise_initializer": GLOROT,
              "depthwise_regularizer": None, "depthwise_constraint": None})
    return "DepthwiseConv2D", c


def batchnorm(name):
    c = _base(name)
    c.update({"axis": [3], "momentum": 0.999, "epsilon": 0.001, "center": True, "scale": True,
              "beta_initializer": ZEROS, "gamma_initializer": ONES,
              "moving_mean_initializer": ZEROS, "moving_variance_initializer": ONES,
              "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
              "gamma_constraint": None})
    return "BatchNormalization", c


def relu6(name):
    c = _base(name)
    c.update({"max_value": 6.0, "negative_slope": 0.0, "threshold": 0.0})
    return "ReLU", c


def zeropad(name, pads):
    c = _base(name)
    c.update({"padding": [list(pads[0]), list(pads[1])], "data_format": "channels_last"})
    return "ZeroPadding2D", c


def add(name):
    return "Add", _base(name)


def correct_pad(h, w, k=3):
    adjust = (1 - h % 2, 1 - w % 2)
    return ((k // 2 - adjust[0], k // 2), (k // 2 - adjust[1], k // 2))


def make_divisible(v, divisor=8):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def mobilenet_v2_config(size=224, pooling=None, keras_version="2.13.1", alpha=1.0):
    if alpha != 1.0:
        raise ValueError("only alpha 1.0")
    layers = []

    def node(spec, inputs):
        cls, cfg = spec
        layers.append({"class_name": cls, "config": cfg, "name": cfg["name"],
                       "inbound_nodes": [[[i, 0, 0, {}] for i in inputs]]})
        return cfg["name"]

    layers.append({"class_name": "InputLayer",
                   "config": {"batch_input_shape": [None, size, size, 3], "dtype": "float32",
                              "sparse": False, "ragged": False, "name": "input_1"},
                   "name": "input_1", "inbound_nodes": []})
    h = w = size
    x = node(conv2d("Conv1", make_divisible(32 * alpha), 3, 2, "same"), ["input_1"])
    h, w = -(-h // 2), -(-w // 2)
    x = node(batchnorm("bn_Conv1"), [x])
    x = node(relu6("Conv1_relu"), [x])
    cin = make_divisible(32 * alpha)
    for bid, (t, c, s) in enumerate(BLOCKS):
        inp = x
        filters = make_divisible(int(c * alpha))
        if bid:
            p = "block_%d_" % bid
            x = node(conv2d(p + "expand", t * cin, 1, 1, "same"), [x])
            x = node(batchnorm(p + "expand_BN"), [x])
            x = node(relu6(p + "expand_relu"), [x])
        else:
            p = "expanded_conv_"
        if s == 2:
            pads = correct_pad(h, w)
            x = node(zeropad(p + "pad", pads), [x])
            h = (h + sum(pads[0]) - 3) // 2 + 1
            w = (w + sum(pads[1]) - 3) // 2 + 1
        x = node(depthwise(p + "depthwise", s, "same" if s == 1 else "valid"), [x])
        x = node(batchnorm(p + "depthwise_BN"), [x])
        x = node(relu6(p + "depthwise_relu"), [x])
        x = node(conv2d(p + "project", filters, 1, 1, "same"), [x])
        x = node(batchnorm(p + "project_BN"), [x])
        if cin == filters and s == 1:
            x = node(add(p + "add"), [inp, x])
        cin = filters
    x = node(conv2d("Conv_1", 1280, 1, 1, "valid"), [x])
    x = node(batchnorm("Conv_1_bn"), [x])
    x = node(relu6("out_relu"), [x])
    if pooling == "avg":
        c = _base("global_average_pooling2d")
        c.update({"data_format": "channels_last", "keepdims": False})
        x = node(("GlobalAveragePooling2D", c), [x])
    elif pooling == "max":
        c = _base("global_max_pooling2d")
        c.update({"data_format": "channels_last", "keepdims": False})
        x = node(("GlobalMaxPooling2D", c), [x])
    return {"class_name": "Functional",
            "config": {"name": "mobilenetv2_%0.2f_%s" % (alpha, size), "layers": layers,
                       "input_layers": [["input_1", 0, 0]], "output_layers": [[x, 0, 0]]},
            "keras_version": keras_version, "backend": "tensorflow"}


def merge_into(model_dir, topology):
    path = os.path.join(model_dir, "model.json")
    with open(path) as f:
        model = json.load(f)
    model["modelTopology"] = {"keras_version": topology["keras_version"],
                              "backend": topology["backend"],
                              "model_config": {"class_name": topology["class_name"],
                                               "config": topology["config"]}}
    fd, tmp = tempfile.mkstemp(prefix=".model.json.", dir=model_dir)
    with os.fdopen(fd, "w") as f:
        json.dump(model, f)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--pooling", choices=["none", "avg", "max"], default="none")
    ap.add_argument("--keras-version", default="2.13.1")
    ap.add_argument("--output", help="write the config JSON here (default: stdout unless --merge)")
    ap.add_argument("--merge", metavar="DIR", help="set modelTopology of DIR/model.json")
    a = ap.parse_args(argv)
    topo = mobilenet_v2_config(a.size, None if a.pooling == "none" else a.pooling, a.keras_version)
    if a.output:
        with open(a.output, "w") as f:
            json.dump(topo, f)
    if a.merge:
        merge_into(a.merge, topo)
    if not a.output and not a.merge:
        json.dump(topo, sys.stdout)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
