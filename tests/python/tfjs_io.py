"""Small readers shared by the Python tests: TF.js layers-format directories and Keras 2 h5."""

import json
import os

import numpy as np

_DT = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QDT = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


def read_tfjs_raw(model_dir):
    """Returns (model_json, [(entry, raw ndarray as stored, decoded float/int ndarray)])."""
    with open(os.path.join(model_dir, "model.json")) as f:
        model = json.load(f)
    out = []
    for group in model["weightsManifest"]:
        parts = []
        for p in group["paths"]:
            with open(os.path.join(model_dir, p), "rb") as fh:
                parts.append(fh.read())
        blob = b"".join(parts)
        off = 0
        for e in group["weights"]:
            n = int(np.prod(e["shape"], dtype=np.int64))
            q = e.get("quantization")
            stored = np.dtype(_QDT[q["dtype"]] if q else _DT[e["dtype"]]).newbyteorder("<")
            nbytes = n * stored.itemsize
            if off + nbytes > len(blob):
                raise ValueError("weight %s runs past the end of the shards" % e["name"])
            raw = np.frombuffer(blob, dtype=stored, count=n, offset=off).reshape(e["shape"])
            off += nbytes
            if q is None:
                dec = raw.astype(_DT[e["dtype"]])
            elif q["dtype"] == "float16":
                dec = raw.astype(np.float32)
            else:
                dec = (raw.astype(np.float64) * q["scale"] + q["min"]).astype(np.float32)
            out.append((e, raw, dec))
        if off != len(blob):
            raise ValueError("shards hold %d bytes, manifest describes %d" % (len(blob), off))
    return model, out


def read_tfjs_weights(model_dir):
    """name -> decoded ndarray."""
    _, ws = read_tfjs_raw(model_dir)
    return {e["name"]: dec for e, _, dec in ws}


def read_h5_weights(path):
    """name (without ':0') -> ndarray, for weights-only and full-model Keras 2 h5 files."""
    import h5py

    def txt(x):
        return x.decode() if isinstance(x, bytes) else str(x)

    def walk(g, out):
        if "weight_names" in g.attrs:
            for n in g.attrs["weight_names"]:
                n = txt(n)
                out[n[:-2] if n.endswith(":0") else n] = np.asarray(g[n][()])
        else:
            for k in g.keys():
                if isinstance(g[k], h5py.Group):
                    walk(g[k], out)

    out = {}
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_config" in f.attrs else f
        for ln in root.attrs["layer_names"]:
            walk(root[txt(ln)], out)
    return out


def load_weights(path):
    """Weights from a .h5 file or a TF.js model directory (or its model.json)."""
    if os.path.isdir(path):
        return read_tfjs_weights(path)
    if path.endswith(".json"):
        return read_tfjs_weights(os.path.dirname(os.path.abspath(path)))
    return read_h5_weights(path)
