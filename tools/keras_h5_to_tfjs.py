#!/usr/bin/env python3
"""Convert a Keras model file to the TensorFlow.js "layers" format.

    keras_h5_to_tfjs.py INPUT OUTPUT_DIR [--config CONFIG.json] [--quantize float16|uint8|uint16] [--shard-mb N]

INPUT is a Keras 2 HDF5 file (model.save / Model.save_weights, ".h5"), a Keras 3 model file
(model.save, ".keras": a zip of config.json, metadata.json and model.weights.h5; an unzipped
folder with the same files is accepted too) or a Keras 3 weights file (model.save_weights,
".weights.h5"), which holds no architecture: as Keras's load_weights, it needs the model, given
with --config (model.to_json(), or the config.json of a .keras file).

Writes OUTPUT_DIR/model.json and the weight shards group1-shard<i>of<n>.bin, in the layout
that tensorflowjs_converter (--input_format keras) writes:

  * a weights-only file (Model.save_weights: root attribute ``layer_names``) gives
    ``"modelTopology": null``;
  * a full model file (model.save: root attribute ``model_config``, weights under
    ``/model_weights``) gives ``"modelTopology": {"keras_version", "backend",
    "model_config": {"class_name", "config"}[, "training_config"]}`` -- the converter wraps the
    Keras config in ``model_config`` and TF.js's loadLayersModel unwraps it.

Weight names are the HDF5 ``weight_names`` with the ":0" suffix removed ("Conv1/kernel",
"bn_Conv1/moving_mean"); for a model nested in another one the names are the inner layers'
weight names as Keras stored them (no outer-model prefix), again exactly as the converter.
All weights form one group, concatenated little-endian in layer order (the ``layer_names``
attribute), split into shards of at most --shard-mb MiB (default 4, as TF.js).

Keras 3 files (keras/src/saving/saving_lib.py) store each layer's variables as datasets
"0", "1", ... of a group "<path>/vars", where <path> is "layers/<snake_case(class name)>[_<k>]"
in the order of the model's `layers` (Sequential's omits its InputLayer), "<path>/layers/..."
inside a nested model and "<path>/cell" for a recurrent layer's cell. The converter walks the
config the same way, names each variable as Keras 2 / TF.js do ("dense/kernel",
"depthwise/depthwise_kernel", "bn/moving_mean", from the class and its config: use_bias,
center, scale) and checks the count (and the "name" attribute newer Keras writes on each vars
group). The Keras 3 config is rewritten into the Keras 2 form TF.js and kerascpp load:
"module" / "registered_name" / "build_config" dropped, dtype policies to their dtype name,
InputLayer "batch_shape" to "batch_input_shape", inbound nodes {"args": [...keras tensors...]}
to [[name, node, tensor, {}], ...], L1 / L2 regularizers to L1L2, and the compile_config to a
Keras 2 training_config (loss, metrics, optimizer_config).

Quantization follows tensorflowjs/quantization.py: float16 is a cast; uint8/uint16 use
scale = (max - min) / (2^bits - 1), a min "nudged" so that 0.0 is exactly representable when
min <= 0 <= max, q = round((clip(w, min, max) - min) / scale); decoded as q * scale + min.
Only float32 weights are quantized.

Needs h5py and numpy (Debian: python3-h5py; use /usr/bin/python3).
"""

import argparse
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
import zipfile

try:
    import numpy as np
    import h5py
except ImportError as e:  # pragma: no cover
    sys.stderr.write("keras_h5_to_tfjs: error: needs numpy and h5py (%s); on Debian: "
                     "apt-get install python3-h5py and run with /usr/bin/python3\n" % e)
    sys.exit(3)

VERSION = "0.1.0"
GENERATED_BY = "kerascpp keras_h5_to_tfjs"
CONVERTED_BY = "kerascpp keras_h5_to_tfjs.py v" + VERSION
SHARD_RE = re.compile(r"^group\d+-shard\d+of\d+\.bin$")

# As tensorflowjs_converter: class names some TF versions wrote that Keras/TF.js know otherwise.
_CLASS_NAME_MAP = {"BatchNormalizationV1": "BatchNormalization", "UnifiedGRU": "GRU",
                   "UnifiedLSTM": "LSTM"}
_AUTO_DTYPE = {np.dtype(np.float64): np.float32, np.dtype(np.int64): np.int32}
_MANIFEST_DTYPES = {"float32", "int32", "bool", "uint8", "uint16", "float16"}
_QUANT = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}


class ConversionError(Exception):
    pass


def _text(x):
    if isinstance(x, bytes):
        return x.decode("utf-8")
    if isinstance(x, np.bytes_):
        return bytes(x).decode("utf-8")
    if isinstance(x, str):
        return x
    raise ConversionError("expected a string attribute, got %r" % (x,))


def _json_attr(value):
    if isinstance(value, dict):
        return value
    try:
        return json.loads(_text(value))
    except ValueError as e:
        raise ConversionError("attribute is not valid JSON: %s" % e)


def normalize_weight_name(name):
    name = _text(name)
    return name[:-2] if name.endswith(":0") else name


def translate_class_names(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "class_name" and isinstance(v, str) and v in _CLASS_NAME_MAP:
                obj[k] = _CLASS_NAME_MAP[v]
            else:
                translate_class_names(v)
    elif isinstance(obj, list):
        for v in obj:
            translate_class_names(v)


def _convert_group(group, where):
    """Weights of one layer group: [(name, ndarray)], recursing like the TF.js converter."""
    out = []
    if "weight_names" in group.attrs:
        names = [_text(n) for n in np.asarray(group.attrs["weight_names"]).ravel().tolist()]
        for n in names:
            if n not in group:
                raise ConversionError("%s lists weight %r but has no such dataset" % (where, n))
            ds = group[n]
            if not isinstance(ds, h5py.Dataset):
                raise ConversionError("%s/%s is not a dataset" % (where, n))
            out.append((normalize_weight_name(n), np.asarray(ds[()])))
    else:
        for key in group.keys():
            sub = group[key]
            if isinstance(sub, h5py.Group):
                out += _convert_group(sub, where + "/" + key)
    return out


def _layer_order(group):
    if "layer_names" in group.attrs:
        return [_text(n) for n in np.asarray(group.attrs["layer_names"]).ravel().tolist()]
    return list(group.keys())


def read_keras_h5(path):
    """Returns (topology or None, [(name, ndarray)])."""
    if not os.path.isfile(path):
        raise ConversionError("%s: no such file" % path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ConversionError("%s: not a readable HDF5 file (%s)" % (path, e))
    try:
        with f:
            attrs = f.attrs
            if "model_config" in attrs:
                if "model_weights" not in f:
                    raise ConversionError("%s: has model_config but no /model_weights group" % path)
                root = f["model_weights"]
                config = _json_attr(attrs["model_config"])
                if not isinstance(config, dict) or "class_name" not in config:
                    raise ConversionError("%s: model_config has no class_name" % path)
                translate_class_names(config)
                topology = {}
                kv = attrs.get("keras_version", root.attrs.get("keras_version"))
                be = attrs.get("backend", root.attrs.get("backend"))
                if kv is not None:
                    topology["keras_version"] = _text(kv)
                if be is not None:
                    topology["backend"] = _text(be)
                topology["model_config"] = config
                if "training_config" in attrs:
                    topology["training_config"] = _json_attr(attrs["training_config"])
            elif "layer_names" in attrs:
                root = f
                topology = None
            else:
                raise ConversionError(
                    "%s: HDF5 file is not a Keras 2 model or weights file (no root attribute "
                    "'model_config' or 'layer_names', and not a Keras 3 weights file)" % path)
            kv = topology.get("keras_version") if topology else (
                _text(attrs["keras_version"]) if "keras_version" in attrs else None)
            if kv is not None and kv.split(".")[0] not in ("2",):
                sys.stderr.write("keras_h5_to_tfjs: warning: keras_version %s (expected 2.x)\n" % kv)
            weights = []
            for layer in _layer_order(root):
                if layer not in root:
                    raise ConversionError("%s: layer %r listed in layer_names has no group" % (path, layer))
                g = root[layer]
                if isinstance(g, h5py.Group):
                    weights += _convert_group(g, layer)
    except ConversionError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        raise ConversionError("%s: cannot read HDF5 content, file damaged or truncated? (%s)" % (path, e))
    seen = set()
    for n, _ in weights:
        if n in seen:
            raise ConversionError("%s: duplicate weight name %r" % (path, n))
        seen.add(n)
    return topology, weights


# ---------------------------------------------------------------------------------------------
# Keras 3: .keras (zip or folder) and .weights.h5

KERAS3_CONFIG = "config.json"
KERAS3_METADATA = "metadata.json"
KERAS3_WEIGHTS = "model.weights.h5"
_MODEL_CLASSES = ("Sequential", "Functional", "Model")
_RNN_CLASSES = ("LSTM", "GRU", "SimpleRNN")
# Keras 3 config keys that Keras 2 / TF.js do not know and that change nothing at inference.
_KERAS3_ONLY_KEYS = ("module", "registered_name", "build_config", "compile_config", "build_input_shape",
                     "lora_rank", "lora_alpha", "quantization_config", "optional")


def snake_case(name):
    """keras.src.utils.naming.to_snake_case."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def variable_names(class_name, config, where):
    """The Keras 2 / TF.js names of the variables a Keras 3 layer stores, in its storage order
    (trainable then non-trainable, as Layer.save_own_variables), and the sub-path they are under
    ("" for the layer's own vars group, "cell" for a recurrent layer). None: the class is not known
    (an error if it stores variables)."""
    c = config if isinstance(config, dict) else {}
    bias = ["bias"] if c.get("use_bias", True) else []
    if class_name in ("Dense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        return "", ["kernel"] + bias
    if class_name == "DepthwiseConv2D" or class_name == "DepthwiseConv1D":
        return "", ["depthwise_kernel"] + bias  # Keras 3 calls it "kernel"; Keras 2 / TF.js "depthwise_kernel"
    if class_name in ("SeparableConv1D", "SeparableConv2D"):
        return "", ["depthwise_kernel", "pointwise_kernel"] + bias
    if class_name in ("BatchNormalization", "LayerNormalization"):
        names = (["gamma"] if c.get("scale", True) else []) + (["beta"] if c.get("center", True) else [])
        if class_name == "BatchNormalization":
            if c.get("renorm"):
                raise ConversionError("%s: BatchNormalization with renorm=True is not supported" % where)
            names += ["moving_mean", "moving_variance"]
        return "", names
    if class_name == "Embedding":
        return "", ["embeddings"]
    if class_name == "PReLU":
        return "", ["alpha"]
    if class_name in _RNN_CLASSES:
        return "cell", ["kernel", "recurrent_kernel"] + bias
    return "", None


def _h5_vars(h5, path):
    """The datasets "0", "1", ... of group <path>/vars in index order, and the group (or None)."""
    full = (path + "/vars") if path else "vars"
    if full not in h5:
        return [], None
    g = h5[full]
    if not isinstance(g, h5py.Group):
        raise ConversionError("%s is not a group" % full)
    keys = list(g.keys())
    if sorted(keys, key=lambda k: (len(k), k)) != [str(i) for i in range(len(keys))]:
        raise ConversionError("%s holds %s; expected datasets named 0, 1, 2, ..." % (full, sorted(keys)))
    out = []
    for i in range(len(keys)):
        ds = g[str(i)]
        if not isinstance(ds, h5py.Dataset):
            raise ConversionError("%s/%d is not a dataset" % (full, i))
        out.append(np.asarray(ds[()]))
    return out, g


def _model_layers(class_name, config, where):
    layers = config.get("layers") if isinstance(config, dict) else None
    if not isinstance(layers, list):
        raise ConversionError("%s: %s config has no 'layers' list" % (where, class_name))
    for i, l in enumerate(layers):
        if not isinstance(l, dict) or not isinstance(l.get("class_name"), str) or not isinstance(l.get("config"), dict):
            raise ConversionError("%s: layer %d is not {\"class_name\": ..., \"config\": {...}}" % (where, i))
    if class_name == "Sequential" and layers and layers[0]["class_name"] == "InputLayer":
        layers = layers[1:]  # Sequential.layers omits its InputLayer (its vars paths do too)
    return layers


def keras3_weights(h5, model_json, where):
    """[(name, ndarray)] of a Keras 3 weights file, named from the model config, in layer order."""
    out = []

    def walk(class_name, config, path):
        used = {}
        for layer in _model_layers(class_name, config, where):
            cls, cfg = layer["class_name"], layer["config"]
            base = snake_case(cls)
            key = base if base not in used else "%s_%d" % (base, used[base] + 1)
            used[base] = used.get(base, -1) + 1
            lpath = "%s/layers/%s" % (path, key) if path else "layers/" + key
            name = cfg.get("name", layer.get("name"))
            if not isinstance(name, str):
                raise ConversionError("%s: layer at %s has no name in its config" % (where, lpath))
            if cls in _MODEL_CLASSES:
                walk(cls, cfg, lpath)
                continue
            sub, names = variable_names(cls, cfg, "%s: layer '%s'" % (where, name))
            vpath = lpath + "/" + sub if sub else lpath
            values, group = _h5_vars(h5, vpath)
            if group is not None and "name" in group.attrs and _text(group.attrs["name"]) != name and not sub:
                raise ConversionError("%s: %s/vars belongs to layer '%s', but the config's layer at that place is '%s' "
                                      "(config and weights are of different models?)"
                                      % (where, vpath, _text(group.attrs["name"]), name))
            if names is None:
                if values:
                    raise ConversionError("%s: layer '%s' (class %s) stores %d variables at %s/vars, and the converter "
                                          "does not know their names for this class" % (where, name, cls, len(values), vpath))
                continue
            if len(values) != len(names):
                raise ConversionError("%s: layer '%s' (class %s) expects %d variables (%s), the weights file has %d at %s/vars"
                                      % (where, name, cls, len(names), ", ".join(names), len(values), vpath))
            out.extend(("%s/%s" % (name, n), v) for n, v in zip(names, values))

    cls = model_json.get("class_name")
    if cls not in _MODEL_CLASSES:
        raise ConversionError("%s: the model config's class_name is %r, expected Sequential or Functional" % (where, cls))
    walk(cls, model_json.get("config"), "")
    return out


def _keras3_tensor_history(args, layer):
    """The [name, node, tensor] of every Keras tensor in a Keras 3 inbound node's args."""
    found = []
    todo = [args]
    while todo:
        a = todo.pop(0)
        if isinstance(a, dict) and a.get("class_name") == "__keras_tensor__":
            h = a.get("config", {}).get("keras_history")
            if not (isinstance(h, list) and len(h) == 3 and isinstance(h[0], str)):
                raise ConversionError("layer '%s': malformed keras_history %r" % (layer, h))
            found.append(h)
        elif isinstance(a, (list, tuple)):
            todo[0:0] = list(a)
    return found


def _keras2_dtype(v):
    if isinstance(v, dict) and v.get("class_name") in ("DTypePolicy", "Policy", "FloatDTypePolicy"):
        name = v.get("config", {}).get("name", "float32")
        return "float32" if str(name).startswith("mixed_") else name
    return v


def keras2_config(obj):
    """A Keras 3 serialized object rewritten in the Keras 2 form (see the module docstring)."""
    if isinstance(obj, list):
        return [keras2_config(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if obj.get("class_name") in ("DTypePolicy", "Policy", "FloatDTypePolicy"):
        return _keras2_dtype(obj)
    if obj.get("class_name") in ("L1", "L2") and isinstance(obj.get("config"), dict):
        c = obj["config"]
        return {"class_name": "L1L2", "config": {"l1": float(c.get("l1", 0.0)), "l2": float(c.get("l2", 0.0))}}
    out = {}
    for k, v in obj.items():
        if k in _KERAS3_ONLY_KEYS:
            continue
        if k == "inbound_nodes" and isinstance(v, list):
            nodes = []
            for node in v:
                if isinstance(node, dict) and "args" in node:
                    hist = _keras3_tensor_history(node["args"], obj.get("name", "?"))
                    nodes.append([[h[0], h[1], h[2], {}] for h in hist])
                else:
                    nodes.append(node)
            out[k] = nodes
        elif k in ("input_layers", "output_layers") and isinstance(v, list) and len(v) == 3 and isinstance(v[0], str):
            out[k] = [v]  # a single tensor: Keras 3 writes [name, 0, 0], Keras 2 / TF.js [[name, 0, 0]]
        else:
            out[k] = keras2_config(v)
    if out.get("class_name") == "Sequential" and isinstance(out.get("config"), dict) and isinstance(obj.get("config"), dict):
        # A Sequential whose config has no InputLayer keeps its input shape in build_input_shape
        # (or build_config): Keras 2 / TF.js read it from an InputLayer.
        layers = out["config"].get("layers")
        shape = obj["config"].get("build_input_shape") or (obj.get("build_config") or {}).get("input_shape")
        if isinstance(layers, list) and isinstance(shape, list) and (not layers or layers[0].get("class_name") != "InputLayer"):
            layers.insert(0, {"class_name": "InputLayer", "config": {"batch_input_shape": shape, "dtype": "float32",
                                                                      "sparse": False, "name": out["config"].get("name", "sequential") + "_input"}})
    if out.get("class_name") == "InputLayer" and isinstance(out.get("config"), dict):
        c = out["config"]
        if "batch_shape" in c:
            c["batch_input_shape"] = c.pop("batch_shape")
    return out


def _training_config(compile_config):
    """Keras 3 compile_config -> Keras 2 training_config (what kerascpp's and TF.js's loaders read)."""
    if not isinstance(compile_config, dict) or compile_config.get("optimizer") is None:
        return None
    opt = compile_config["optimizer"]
    if isinstance(opt, str):
        opt = {"class_name": opt, "config": {}}
    opt = keras2_config(opt)
    loss = compile_config.get("loss")
    tc = {"optimizer_config": {"class_name": opt.get("class_name"), "config": opt.get("config", {})}}
    if isinstance(loss, dict):
        loss = keras2_config(loss)
        tc["loss"] = snake_case(loss.get("class_name", ""))
        tc["loss_config"] = {"class_name": loss.get("class_name"), "config": loss.get("config", {})}
    elif loss is not None:
        tc["loss"] = loss
    metrics = compile_config.get("metrics")
    if isinstance(metrics, list):
        tc["metrics"] = [m if isinstance(m, str) else snake_case(m.get("class_name", "")) if isinstance(m, dict) else m
                         for m in metrics if m is not None]
    if compile_config.get("loss_weights") is not None:
        tc["loss_weights"] = compile_config["loss_weights"]
    return tc


def _read_json(text, where):
    try:
        return json.loads(text)
    except ValueError as e:
        raise ConversionError("%s: not valid JSON (%s)" % (where, e))


def _keras3_topology(model_json, metadata, where):
    if not isinstance(model_json, dict) or "class_name" not in model_json:
        raise ConversionError("%s: the model config has no class_name" % where)
    config = keras2_config(model_json)
    translate_class_names(config)
    topology = {}
    if isinstance(metadata, dict) and metadata.get("keras_version"):
        topology["keras_version"] = metadata["keras_version"]
    topology["backend"] = (metadata or {}).get("backend", "tensorflow") if isinstance(metadata, dict) else "tensorflow"
    topology["model_config"] = {"class_name": config["class_name"], "config": config.get("config", {})}
    tc = _training_config(model_json.get("compile_config"))
    if tc is not None:
        topology["training_config"] = tc
    return topology


def _open_h5_bytes(data, where):
    try:
        return h5py.File(io.BytesIO(data), "r")
    except OSError as e:
        raise ConversionError("%s: not a readable HDF5 file (%s)" % (where, e))


def read_keras3_model(path):
    """A Keras 3 .keras file (zip) or folder: (topology, [(name, ndarray)])."""
    if os.path.isdir(path):
        files = {n: os.path.join(path, n) for n in os.listdir(path)}

        def read(n):
            with open(files[n], "rb") as fh:
                return fh.read()
    else:
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise ConversionError("%s: not a Keras 3 .keras file (not a zip archive: %s)" % (path, e))
        files = {n: n for n in zf.namelist()}

        def read(n):
            info = zf.getinfo(n)
            if info.file_size > 8 << 30:
                raise ConversionError("%s: %s claims %d bytes (over 8 GiB)" % (path, n, info.file_size))
            return zf.read(n)
    for n in (KERAS3_CONFIG, KERAS3_WEIGHTS):
        if n not in files:
            extra = " (model.weights.npz is not supported: save with weights_format='h5')" if n == KERAS3_WEIGHTS and \
                "model.weights.npz" in files else ""
            raise ConversionError("%s: Keras 3 model file has no %s (it holds %s)%s" % (path, n, sorted(files), extra))
    model_json = _read_json(read(KERAS3_CONFIG).decode("utf-8"), path + ":" + KERAS3_CONFIG)
    metadata = _read_json(read(KERAS3_METADATA).decode("utf-8"), path + ":" + KERAS3_METADATA) \
        if KERAS3_METADATA in files else {}
    kv = metadata.get("keras_version") if isinstance(metadata, dict) else None
    if kv is not None and str(kv).split(".")[0] != "3":
        sys.stderr.write("keras_h5_to_tfjs: warning: %s: keras_version %s (expected 3.x)\n" % (path, kv))
    topology = _keras3_topology(model_json, metadata, path + ":" + KERAS3_CONFIG)
    where = path + ":" + KERAS3_WEIGHTS
    try:
        with _open_h5_bytes(read(KERAS3_WEIGHTS), where) as h5:
            weights = keras3_weights(h5, model_json, where)
    except ConversionError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        raise ConversionError("%s: cannot read HDF5 content, file damaged or truncated? (%s)" % (where, e))
    return topology, weights


def is_keras3_weights(h5):
    """A Keras 3 .weights.h5: a "layers" (or "vars") group and no Keras 2 root attributes."""
    return "layer_names" not in h5.attrs and "model_config" not in h5.attrs and ("layers" in h5 or "vars" in h5)


def read_model_config(path):
    """A model config for a Keras 3 .weights.h5: model.to_json() text, the config.json of a
    .keras file, or a .keras file itself."""
    if not os.path.isfile(path):
        raise ConversionError("--config %s: no such file" % path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            if KERAS3_CONFIG not in zf.namelist():
                raise ConversionError("--config %s: zip file without %s" % (path, KERAS3_CONFIG))
            return _read_json(zf.read(KERAS3_CONFIG).decode("utf-8"), path)
    with open(path, "r") as fh:
        c = _read_json(fh.read(), "--config " + path)
    if isinstance(c, dict) and "modelTopology" in c:  # a TF.js model.json
        c = c["modelTopology"]
    if isinstance(c, dict) and "model_config" in c:
        c = c["model_config"]
    if not isinstance(c, dict) or c.get("class_name") not in _MODEL_CLASSES:
        raise ConversionError("--config %s: expected a Keras model config {\"class_name\": \"Sequential\" | \"Functional\", "
                              "\"config\": {...}} (model.to_json()), got %s" % (path, json.dumps(c)[:120]))
    return c


def read_keras3_weights(path, config_path):
    if config_path is None:
        raise ConversionError("%s: a Keras 3 weights file (.weights.h5) holds no architecture: pass the model's config "
                              "with --config (model.to_json(), or the config.json of its .keras file)" % path)
    model_json = read_model_config(config_path)
    try:
        with h5py.File(path, "r") as h5:
            weights = keras3_weights(h5, model_json, path)
    except ConversionError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        raise ConversionError("%s: cannot read HDF5 content, file damaged or truncated? (%s)" % (path, e))
    return _keras3_topology(model_json, {}, "--config " + config_path), weights


def read_any(path, config_path=None):
    """(topology or None, [(name, ndarray)]) of any supported input (see the module docstring)."""
    if os.path.isdir(path):
        return read_keras3_model(path)
    if not os.path.isfile(path):
        raise ConversionError("%s: no such file" % path)
    if zipfile.is_zipfile(path):
        return read_keras3_model(path)
    try:
        with h5py.File(path, "r") as h5:
            keras3 = is_keras3_weights(h5)
    except OSError as e:
        raise ConversionError("%s: not a readable HDF5 file or .keras zip (%s)" % (path, e))
    if keras3:
        return read_keras3_weights(path, config_path)
    if config_path is not None:
        raise ConversionError("--config is for Keras 3 .weights.h5 files; %s is a Keras 2 HDF5 file" % path)
    return read_keras_h5(path)


def quantize(data, qdtype):
    """As tensorflowjs quantization.quantize_weights: returns (q, metadata)."""
    if qdtype == np.float16:
        return data.astype(np.float16), {}
    min_val = float(data.min()) if data.size else 0.0
    max_val = float(data.max()) if data.size else 0.0
    if min_val == max_val:
        return np.zeros_like(data, dtype=qdtype), {"min": min_val, "scale": 1.0}
    qmax = np.iinfo(qdtype).max
    scale = (max_val - min_val) / qmax
    if min_val <= 0 <= max_val:
        zero_point = np.round((0 - min_val) / scale)
        min_val = float(-zero_point * scale)
        max_val = float(qmax * scale + min_val)
    q = np.round((data.astype(np.float64).clip(min_val, max_val) - min_val) / scale)
    return q.clip(0, qmax).astype(qdtype), {"min": min_val, "scale": float(scale)}


def build_manifest_and_bytes(weights, quantization=None):
    entries, chunks = [], []
    for name, data in weights:
        data = np.asarray(data)
        if data.dtype in _AUTO_DTYPE:
            data = data.astype(_AUTO_DTYPE[data.dtype])
        if data.dtype == np.bool_:
            dt = "bool"
        else:
            dt = data.dtype.name
        if dt not in _MANIFEST_DTYPES:
            raise ConversionError("weight %s: dtype %s is not supported by TF.js" % (name, dt))
        entry = {"name": name, "shape": [int(s) for s in data.shape], "dtype": dt}
        if quantization and dt == "float32":
            q, meta = quantize(data, _QUANT[quantization])
            entry["quantization"] = dict({"dtype": quantization}, **meta)
            entry["quantization"]["original_dtype"] = "float32"
            data = q
        if data.dtype.byteorder == ">":
            data = data.astype(data.dtype.newbyteorder("<"))
        chunks.append(np.ascontiguousarray(data).tobytes())
        entries.append(entry)
    return entries, b"".join(chunks)


def write_tfjs(topology, weights, out_dir, quantization=None, shard_bytes=4 * 1024 * 1024):
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ConversionError("output %s exists and is not a directory" % out_dir)
    entries, blob = build_manifest_and_bytes(weights, quantization)
    nshards = max(1, int(math.ceil(len(blob) / float(shard_bytes)))) if blob else 0
    paths = ["group1-shard%dof%d.bin" % (i + 1, nshards) for i in range(nshards)]
    model = {
        "format": "layers-model",
        "generatedBy": GENERATED_BY,
        "convertedBy": CONVERTED_BY,
        "modelTopology": topology,
        "weightsManifest": [{"paths": paths, "weights": entries}],
    }
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(out_dir) + ".tmp-", dir=parent)
    try:
        for i, p in enumerate(paths):
            with open(os.path.join(tmp, p), "wb") as fh:
                fh.write(blob[i * shard_bytes:(i + 1) * shard_bytes])
                fh.flush()
                os.fsync(fh.fileno())
        with open(os.path.join(tmp, "model.json"), "w") as fh:
            json.dump(model, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if not os.path.exists(out_dir):
            os.chmod(tmp, 0o755)
            os.rename(tmp, out_dir)  # atomic: the directory appears complete
            tmp = None
        else:
            # Existing directory: shards first, model.json last (a reader never sees a
            # model.json whose shards are missing), then drop shards of an older conversion.
            old = [n for n in os.listdir(out_dir) if SHARD_RE.match(n) and n not in paths]
            for p in paths:
                os.replace(os.path.join(tmp, p), os.path.join(out_dir, p))
            os.replace(os.path.join(tmp, "model.json"), os.path.join(out_dir, "model.json"))
            for n in old:
                os.remove(os.path.join(out_dir, n))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return model


def convert(input_path, out_dir, quantization=None, shard_mb=4.0, config_path=None):
    if shard_mb <= 0:
        raise ConversionError("--shard-mb must be positive")
    shard_bytes = max(1, int(round(shard_mb * 1024 * 1024)))
    topology, weights = read_any(input_path, config_path)
    return write_tfjs(topology, weights, out_dir, quantization, shard_bytes)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Convert a Keras model or weights file (Keras 2 .h5, Keras 3 .keras "
                                 "or .weights.h5) to the TensorFlow.js layers format (model.json + binary shards).")
    ap.add_argument("input", help="Keras 2 .h5 (model.save or save_weights), Keras 3 .keras (model.save) "
                    "or Keras 3 .weights.h5 (save_weights, with --config)")
    ap.add_argument("output_dir", help="directory for model.json and group1-shard*.bin")
    ap.add_argument("--quantize", choices=sorted(_QUANT), default=None,
                    help="store float32 weights quantized (decoded by loaders on load)")
    ap.add_argument("--shard-mb", type=float, default=4.0,
                    help="maximum shard size in MiB (default 4, as TF.js)")
    ap.add_argument("--config", default=None,
                    help="the model config for a Keras 3 .weights.h5: model.to_json() output, or a .keras file / "
                    "its config.json")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    try:
        model = convert(a.input, a.output_dir, a.quantize, a.shard_mb, a.config)
    except ConversionError as e:
        sys.stderr.write("keras_h5_to_tfjs: error: %s\n" % e)
        return 1
    if not a.quiet:
        w = model["weightsManifest"][0]
        n = sum(int(np.prod(e["shape"])) for e in w["weights"])
        print("wrote %s: %d weights, %d parameters, %d shard(s)%s" % (
            os.path.join(a.output_dir, "model.json"), len(w["weights"]), n, len(w["paths"]),
            ", topology" if model["modelTopology"] else ", weights only"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
