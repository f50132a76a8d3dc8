#!/usr/bin/env python3
"""Convert a Keras 2 HDF5 file to the TensorFlow.js "layers" format.

    keras_h5_to_tfjs.py INPUT.h5 OUTPUT_DIR [--quantize float16|uint8|uint16] [--shard-mb N]

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

Quantization follows tensorflowjs/quantization.py: float16 is a cast; uint8/uint16 use
scale = (max - min) / (2^bits - 1), a min "nudged" so that 0.0 is exactly representable when
min <= 0 <= max, q = round((clip(w, min, max) - min) / scale); decoded as q * scale + min.
Only float32 weights are quantized.

Needs h5py and numpy (Debian: python3-h5py; use /usr/bin/python3).
"""

import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile

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
                    "'model_config' or 'layer_names'; Keras 3 '.weights.h5' is not supported)" % path)
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


def convert(input_path, out_dir, quantization=None, shard_mb=4.0):
    if shard_mb <= 0:
        raise ConversionError("--shard-mb must be positive")
    shard_bytes = max(1, int(round(shard_mb * 1024 * 1024)))
    topology, weights = read_keras_h5(input_path)
    return write_tfjs(topology, weights, out_dir, quantization, shard_bytes)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Convert a Keras 2 HDF5 model or weights file to "
                                 "the TensorFlow.js layers format (model.json + binary shards).")
    ap.add_argument("input", help="Keras .h5 (model.save or Model.save_weights)")
    ap.add_argument("output_dir", help="directory for model.json and group1-shard*.bin")
    ap.add_argument("--quantize", choices=sorted(_QUANT), default=None,
                    help="store float32 weights quantized (decoded by loaders on load)")
    ap.add_argument("--shard-mb", type=float, default=4.0,
                    help="maximum shard size in MiB (default 4, as TF.js)")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    try:
        model = convert(a.input, a.output_dir, a.quantize, a.shard_mb)
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
