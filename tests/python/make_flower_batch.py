#!/usr/bin/python3
"""Make a small float32 batch of flower photos for reference comparisons.

    /usr/bin/python3 tests/python/make_flower_batch.py OUT.npy [--per-class 2] [--size 192]
        [--data DIR] [--decoder auto|pil|jpegjs] [--list OUT.txt]

Takes the first --per-class files (sorted by name) of each class (sorted sub-folder names) of
shared/data/flower_photos, decodes them to RGB uint8, resizes to size x size with TF's bilinear
resize (half-pixel centers, no antialias, as tf.image.resize / image_dataset_from_directory) and
writes float32 [N, size, size, 3] in [0, 255] (not preprocessed; MobileNetV2 wants x/127.5 - 1).

Decoders: PIL (Debian package python3-pil, libjpeg-turbo) when importable; otherwise the pure-JS
jpeg-js through node (tests/tfjs, `npm ci` there). Different JPEG decoders (libjpeg, jpeg-js,
stb_image) may differ by a few grey levels on some pixels, so compare models on the same .npy.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get("KERASCPP_SHARED_DIR", os.path.join(os.path.dirname(REPO), "shared"))
TFJS_DIR = os.path.join(REPO, "tests", "tfjs")
EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def have_pil():
    try:
        import PIL.Image  # noqa: F401
        return True
    except ImportError:
        return False


def decode_pil(path):
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def decode_jpegjs(path):
    script = os.path.join(TFJS_DIR, "decode_jpeg.js")
    if not os.path.isdir(os.path.join(TFJS_DIR, "node_modules", "jpeg-js")):
        raise RuntimeError("no PIL and no jpeg-js: apt-get install python3-pil, or "
                           "run `npm ci` in tests/tfjs")
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "img.npy")
        subprocess.run(["node", script, path, out], check=True)
        return np.load(out)


def resize_bilinear_tf(img, out_h, out_w):
    """tf.image.resize(method='bilinear', antialias=False): ResizeBilinear, half_pixel_centers.

    Float32 arithmetic in the kernel's order: in = (i + 0.5) * scale - 0.5; lower =
    max(floor(in), 0); upper = min(ceil(in), size - 1); lerp = in - floor(in);
    top = tl + (tr - tl) * xl; bottom = bl + (br - bl) * xl; out = top + (bottom - top) * yl.
    """
    img = np.asarray(img, dtype=np.float32)
    in_h, in_w = img.shape[:2]

    def weights(out_size, in_size):
        scale = np.float32(in_size) / np.float32(out_size)
        src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
        fl = np.floor(src)
        lower = np.maximum(fl.astype(np.int64), 0)
        upper = np.minimum(np.ceil(src).astype(np.int64), in_size - 1)
        return lower, upper, (src - fl).astype(np.float32)

    y0, y1, yl = weights(out_h, in_h)
    x0, x1, xl = weights(out_w, in_w)
    xl = xl[None, :, None]
    top = img[y0][:, x0] + (img[y0][:, x1] - img[y0][:, x0]) * xl
    bot = img[y1][:, x0] + (img[y1][:, x1] - img[y1][:, x0]) * xl
    return (top + (bot - top) * yl[:, None, None]).astype(np.float32)


def list_photos(data_dir, per_class):
    classes = sorted(d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d)))
    files = []
    for c in classes:
        names = sorted(n for n in os.listdir(os.path.join(data_dir, c)) if n.lower().endswith(EXTS))
        files += [(c, os.path.join(data_dir, c, n)) for n in names[:per_class]]
    return classes, files


def make_batch(per_class=2, size=192, data_dir=None, decoder="auto"):
    data_dir = data_dir or os.path.join(SHARED, "data", "flower_photos")
    if decoder == "auto":
        decoder = "pil" if have_pil() else "jpegjs"
    dec = decode_pil if decoder == "pil" else decode_jpegjs
    classes, files = list_photos(data_dir, per_class)
    batch = np.stack([resize_bilinear_tf(dec(p), size, size) for _, p in files])
    return batch, files, decoder


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("output")
    ap.add_argument("--per-class", type=int, default=2)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--data", default=None)
    ap.add_argument("--decoder", choices=["auto", "pil", "jpegjs"], default="auto")
    ap.add_argument("--list", help="also write the chosen files, one 'class<TAB>path' a line")
    a = ap.parse_args(argv)
    batch, files, decoder = make_batch(a.per_class, a.size, a.data, a.decoder)
    np.save(a.output, batch)
    if a.list:
        with open(a.list, "w") as f:
            f.writelines("%s\t%s\n" % cp for cp in files)
    print("wrote %s %s float32 [0,255] from %d photos (decoder %s)" % (
        a.output, batch.shape, len(files), decoder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
