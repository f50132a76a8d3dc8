#!/usr/bin/python3
"""Keras 3 model files written with h5py + zipfile, in the layout of keras/src/saving/saving_lib.py
(Keras 3.x), since TensorFlow / Keras cannot be installed here:

  NAME.keras = zip { config.json:   serialize_keras_object(model) -- {"module", "class_name",
                                     "config", "registered_name", "build_config", "compile_config"},
                     metadata.json: {"keras_version", "date_saved"},
                     model.weights.h5 }
  model.weights.h5 (and NAME.weights.h5 of save_weights): the model's own "vars" group, then for
  each layer of model.layers (Sequential's without its InputLayer) the group
  "layers/<snake_case(class name)>[_k]/vars" with datasets "0", "1", ... (trainable variables,
  then non-trainable, in creation order), nested models under ".../layers/...", recurrent cells
  under ".../cell"; the optimizer's variables under "optimizer/vars". Newer Keras (3.10+) puts an
  attribute "name" (the layer's name) on every vars group.

Each builder returns (keras3_config_dict, {layer_name: [arrays in Keras 3 storage order]}).
"""

import io
import json
import re
import zipfile

import h5py
import numpy as np


def snake(name):
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def policy(name="float32"):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}, "registered_name": None}


def init(cls, **config):
    return {"module": "keras.initializers", "class_name": cls, "config": dict({"seed": None}, **config) if cls.endswith(
        ("Uniform", "Normal")) else config, "registered_name": None}


def layer(cls, name, build_shape=None, **config):
    c = {"name": name, "trainable": True, "dtype": policy()}
    c.update(config)
    out = {"module": "keras.layers", "class_name": cls, "config": c, "registered_name": None}
    if build_shape is not None:
        out["build_config"] = {"input_shape": build_shape}
    return out


def input_layer(name, batch_shape):
    return {"module": "keras.layers", "class_name": "InputLayer",
            "config": {"batch_shape": batch_shape, "dtype": "float32", "sparse": False, "ragged": False, "name": name,
                       "optional": False},
            "registered_name": None}


def dense(name, units, activation="linear", use_bias=True, build_shape=None):
    return layer("Dense", name, build_shape, units=units, activation=activation, use_bias=use_bias,
                 kernel_initializer=init("GlorotUniform"), bias_initializer=init("Zeros"),
                 kernel_regularizer={"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.01},
                                     "registered_name": None},
                 bias_regularizer=None, kernel_constraint=None, bias_constraint=None, lora_rank=None)


def batch_norm(name, center=True, scale=True, build_shape=None):
    return layer("BatchNormalization", name, build_shape, axis=-1, momentum=0.99, epsilon=0.001, center=center,
                 scale=scale, beta_initializer=init("Zeros"), gamma_initializer=init("Ones"),
                 moving_mean_initializer=init("Zeros"), moving_variance_initializer=init("Ones"),
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 synchronized=False)


def kt(history, shape):
    """A Keras 3 serialized KerasTensor, as inbound node args hold them."""
    return {"class_name": "__keras_tensor__", "config": {"shape": shape, "dtype": "float32", "keras_history": history}}


def called(entry, *args):
    """A Functional config layer entry with its one inbound node (Keras 3 form)."""
    entry = dict(entry)
    entry["name"] = entry["config"]["name"]
    entry["inbound_nodes"] = [{"args": list(args), "kwargs": {}}]
    return entry


def compile_config(learning_rate=0.01):
    return {"optimizer": {"module": "keras.optimizers", "class_name": "Adam",
                          "config": {"name": "adam", "learning_rate": learning_rate, "weight_decay": None,
                                     "clipnorm": None, "global_clipnorm": None, "clipvalue": None, "use_ema": False,
                                     "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                                     "loss_scale_factor": None, "gradient_accumulation_steps": None, "beta_1": 0.9,
                                     "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False},
                          "registered_name": None},
            "loss": "categorical_crossentropy", "loss_weights": None, "metrics": ["accuracy"],
            "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def model_entry(cls, config, build_shape, compiled=False):
    out = {"module": "keras", "class_name": cls, "config": config,
           "registered_name": cls if cls == "Functional" else None, "build_config": {"input_shape": build_shape}}
    if compiled:
        out["compile_config"] = compile_config()
    return out


def _rnd(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def mlp(rng):
    """Sequential: InputLayer [None, 6] -> Dense 'hidden' (5, relu) -> BatchNormalization 'bn' ->
    Dense 'probs' (3, softmax). Layer names differ from the vars paths (dense, batch_normalization,
    dense_1), which come from the class names."""
    layers = [input_layer("input_layer", [None, 6]), dense("hidden", 5, "relu", build_shape=[None, 6]),
              batch_norm("bn", build_shape=[None, 5]), dense("probs", 3, "softmax", build_shape=[None, 5])]
    cfg = model_entry("Sequential", {"name": "mlp", "trainable": True, "dtype": policy(), "layers": layers,
                                     "build_input_shape": [None, 6]}, [None, 6], compiled=True)
    w = {"hidden": [_rnd(rng, 6, 5), _rnd(rng, 5)],
         "bn": [_rnd(rng, 5), _rnd(rng, 5), _rnd(rng, 5), np.abs(_rnd(rng, 5)) + 0.5],
         "probs": [_rnd(rng, 5, 3), _rnd(rng, 3)]}
    return cfg, w


def cnn_config(name="cnn"):
    """Functional: Input (8, 8, 3) -> Conv2D 'c1' (4, 3x3 same, relu) -> DepthwiseConv2D 'dw'
    (3x3 same, no bias) -> BatchNormalization 'dw_bn' (center=False) -> ReLU 'dw_relu' (6) ->
    Add 'add' (c1, dw_relu) -> GlobalAveragePooling2D 'gap' -> Dense 'logits' (2)."""
    s4 = [None, 8, 8, 4]
    layers = [
        dict(input_layer("img", [None, 8, 8, 3]), name="img", inbound_nodes=[]),
        called(layer("Conv2D", "c1", [None, 8, 8, 3], filters=4, kernel_size=[3, 3], strides=[1, 1], padding="same",
                     data_format="channels_last", dilation_rate=[1, 1], groups=1, activation="relu", use_bias=True,
                     kernel_initializer=init("GlorotUniform"), bias_initializer=init("Zeros"),
                     kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                     kernel_constraint=None, bias_constraint=None), kt(["img", 0, 0], [None, 8, 8, 3])),
        called(layer("DepthwiseConv2D", "dw", s4, kernel_size=[3, 3], strides=[1, 1], padding="same",
                     data_format="channels_last", dilation_rate=[1, 1], depth_multiplier=1, activation="linear",
                     use_bias=False, depthwise_initializer=init("GlorotUniform"), bias_initializer=init("Zeros"),
                     depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                     depthwise_constraint=None, bias_constraint=None), kt(["c1", 0, 0], s4)),
        called(batch_norm("dw_bn", center=False, build_shape=s4), kt(["dw", 0, 0], s4)),
        called(layer("ReLU", "dw_relu", s4, max_value=6.0, negative_slope=0.0, threshold=0.0),
               kt(["dw_bn", 0, 0], s4)),
        called(layer("Add", "add", [s4, s4]), [kt(["c1", 0, 0], s4), kt(["dw_relu", 0, 0], s4)]),
        called(layer("GlobalAveragePooling2D", "gap", s4, data_format="channels_last", keepdims=False),
               kt(["add", 0, 0], s4)),
        called(dense("logits", 2, build_shape=[None, 4]), kt(["gap", 0, 0], [None, 4])),
    ]
    return {"name": name, "trainable": True, "layers": layers, "input_layers": ["img", 0, 0],
            "output_layers": ["logits", 0, 0]}


def cnn_weights(rng):
    return {"c1": [_rnd(rng, 3, 3, 3, 4), _rnd(rng, 4)], "dw": [_rnd(rng, 3, 3, 4, 1)],
            "dw_bn": [_rnd(rng, 4), _rnd(rng, 4), np.abs(_rnd(rng, 4)) + 0.5],
            "logits": [_rnd(rng, 4, 2), _rnd(rng, 2)]}


def cnn(rng):
    return model_entry("Functional", cnn_config(), [None, 8, 8, 3]), cnn_weights(rng)


def nested(rng):
    """Sequential: InputLayer (8, 8, 3) -> the cnn as a nested Functional 'tiny' -> Dense 'head' (3, softmax)."""
    inner = model_entry("Functional", cnn_config("tiny"), [None, 8, 8, 3])
    inner["config"]["layers"][-1]["config"]["activation"] = "relu"
    layers = [input_layer("input_layer_1", [None, 8, 8, 3]), inner, dense("head", 3, "softmax", build_shape=[None, 2])]
    cfg = model_entry("Sequential", {"name": "outer", "trainable": True, "dtype": policy(), "layers": layers},
                      [None, 8, 8, 3])
    w = cnn_weights(rng)
    w["head"] = [_rnd(rng, 2, 3), _rnd(rng, 3)]
    return cfg, w


def _rnn(cls, name, units, build_shape, **extra):
    c = dict(units=units, activation="tanh", use_bias=True, kernel_initializer=init("GlorotUniform"),
             recurrent_initializer=init("Orthogonal", gain=1.0, seed=None), bias_initializer=init("Zeros"),
             kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
             kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
             recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False, go_backwards=False,
             stateful=False, unroll=False, zero_output_for_mask=False)
    c.update(extra)
    return layer(cls, name, build_shape, **c)


def text_rnn(rng):
    """Sequential: InputLayer [None, 5] -> Embedding 'emb' (10 -> 4) -> GRU 'gru' (3, reset_after=True,
    return_sequences, bias [2, 9]) -> LSTM 'lstm' (3, go_backwards) -> Dense 'probs' (2, softmax)."""
    emb = layer("Embedding", "emb", [None, 5], input_dim=10, output_dim=4,
                embeddings_initializer=init("RandomUniform", minval=-0.05, maxval=0.05), embeddings_regularizer=None,
                activity_regularizer=None, embeddings_constraint=None, mask_zero=False, lora_rank=None)
    gru = _rnn("GRU", "gru", 3, [None, 5, 4], recurrent_activation="sigmoid", reset_after=True,
               return_sequences=True, use_cudnn="auto")
    lstm = _rnn("LSTM", "lstm", 3, [None, 5, 3], recurrent_activation="sigmoid", unit_forget_bias=True,
                go_backwards=True, use_cudnn="auto")
    layers = [input_layer("tokens", [None, 5]), emb, gru, lstm, dense("probs", 2, "softmax", build_shape=[None, 3])]
    cfg = model_entry("Sequential", {"name": "text_rnn", "trainable": True, "dtype": policy(), "layers": layers,
                                     "build_input_shape": [None, 5]}, [None, 5])
    s = 0.5
    w = {"emb": [_rnd(rng, 10, 4)], "gru": [s * _rnd(rng, 4, 9), s * _rnd(rng, 3, 9), s * _rnd(rng, 2, 9)],
         "lstm": [s * _rnd(rng, 3, 12), s * _rnd(rng, 3, 12), s * _rnd(rng, 12)],
         "probs": [_rnd(rng, 3, 2), _rnd(rng, 2)]}
    return cfg, w


def _model_layers(cfg):
    layers = cfg["config"]["layers"]
    if cfg["class_name"] == "Sequential" and layers and layers[0]["class_name"] == "InputLayer":
        layers = layers[1:]
    return layers


def write_weights_h5(target, cfg, weights, names_attr=True, optimizer_vars=True):
    """model.weights.h5 / .weights.h5 of the model `cfg` with `weights` ({layer_name: arrays})."""
    with h5py.File(target, "w") as f:
        root = f.create_group("vars")
        if names_attr:
            root.attrs["name"] = cfg["config"]["name"]

        def walk(model_cfg, path):
            used = {}
            for lay in _model_layers(model_cfg):
                base = snake(lay["class_name"])
                key = base if base not in used else "%s_%d" % (base, used[base] + 1)
                used[base] = used.get(base, -1) + 1
                lpath = path + "/layers/" + key if path else "layers/" + key
                if lay["class_name"] in ("Sequential", "Functional"):
                    walk(lay, lpath)
                    continue
                arrays = weights.get(lay["config"]["name"], [])
                if not arrays and not names_attr:
                    continue  # older Keras 3 creates no group for a layer without variables
                # a recurrent layer's variables are its cell's
                cell = "/cell" if lay["class_name"] in ("LSTM", "GRU", "SimpleRNN") else ""
                g = f.create_group(lpath + cell + "/vars")
                if names_attr:
                    g.attrs["name"] = lay["config"]["name"]
                for i, a in enumerate(arrays):
                    g.create_dataset(str(i), data=a)

        walk(cfg, "")
        if optimizer_vars:
            g = f.create_group("optimizer/vars")
            g.create_dataset("0", data=np.array(3, np.int64))  # iterations
            g.create_dataset("1", data=np.array(0.01, np.float32))  # learning_rate


def write_keras(path, cfg, weights, names_attr=True, keras_version="3.6.0"):
    buf = io.BytesIO()
    write_weights_h5(buf, cfg, weights, names_attr)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": keras_version, "date_saved": "2026-12-01@12:00:00"}))
        zf.writestr("config.json", json.dumps(cfg))
        zf.writestr("model.weights.h5", buf.getvalue())
