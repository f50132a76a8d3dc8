#!/usr/bin/python3
"""Independent NumPy (float64) reference of tf.keras MobileNetV2, alpha 1.0, include_top=False.

    /usr/bin/python3 tests/python/mobilenet_v2_ref.py --weights W --input X.npy --output Y.npy \
        [--pooling avg|none] [--dtype float32|float64]
    /usr/bin/python3 tests/python/mobilenet_v2_ref.py --self-test

W is the Keras weights .h5 (save_weights layout) or a TF.js layers directory / model.json made by
tools/keras_h5_to_tfjs.py. X is float32 NHWC already preprocessed to [-1, 1] (x / 127.5 - 1).
Y is [N, H/32, W/32, 1280] (pooling none) or [N, 1280] (pooling avg), float32 unless --dtype.

Architecture as keras/applications/mobilenet_v2.py (TF 2.x): Conv1 3x3/2 'same' no bias ->
bn_Conv1 -> ReLU6; 17 inverted residual blocks (expand 1x1 -> BN -> ReLU6 unless block 0;
stride 2: ZeroPadding2D(correct_pad) + DepthwiseConv2D 'valid', else 'same'; BN; ReLU6;
project 1x1; BN; Add if stride 1 and in == out channels); Conv_1 1x1 1280 -> Conv_1_bn ->
out_relu. BatchNormalization in inference mode, epsilon 1e-3.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

BN_EPS = 1e-3
# (expansion t, output channels c, stride s) for blocks 0..16, as keras's _inverted_res_block calls
BLOCKS = [(1, 16, 1),
          (6, 24, 2), (6, 24, 1),
          (6, 32, 2), (6, 32, 1), (6, 32, 1),
          (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1),
          (6, 96, 1), (6, 96, 1), (6, 96, 1),
          (6, 160, 2), (6, 160, 1), (6, 160, 1),
          (6, 320, 1)]


# ----------------------------------------------------------------------------- primitives
def same_pads(size, k, s):
    """TF 'same': out = ceil(in/s), total = max((out-1)*s + k - in, 0), before = total // 2."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def correct_pad(h, w, k=3):
    """keras.applications.imagenet_utils.correct_pad for channels_last."""
    adjust = (1 - h % 2, 1 - w % 2)
    c = (k // 2, k // 2)
    return (c[0] - adjust[0], c[0]), (c[1] - adjust[1], c[1])


def zero_pad(x, pads):
    (t, b), (l, r) = pads
    return np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))


def _pad_for(x, k, s, padding):
    if padding == "same":
        return zero_pad(x, (same_pads(x.shape[1], k[0], s), same_pads(x.shape[2], k[1], s)))
    if padding != "valid":
        raise ValueError(padding)
    return x


def conv2d(x, kernel, stride=1, padding="same", bias=None):
    """x [N,H,W,Cin], kernel [kh,kw,Cin,Cout]; im2col + one matmul."""
    kh, kw, cin, cout = kernel.shape
    if kh == 1 and kw == 1 and stride == 1:
        y = x.reshape(-1, cin) @ kernel.reshape(cin, cout)
        y = y.reshape(x.shape[:3] + (cout,))
    else:
        x = _pad_for(x, (kh, kw), stride, padding)
        n, h, w, _ = x.shape
        oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
        cols = np.empty((n, oh, ow, kh, kw, cin), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                cols[:, :, :, i, j, :] = x[:, i:i + stride * (oh - 1) + 1:stride,
                                           j:j + stride * (ow - 1) + 1:stride, :]
        y = cols.reshape(-1, kh * kw * cin) @ kernel.reshape(kh * kw * cin, cout)
        y = y.reshape(n, oh, ow, cout)
    return y if bias is None else y + bias


def depthwise_conv2d(x, kernel, stride=1, padding="same", bias=None):
    """x [N,H,W,C], kernel [kh,kw,C,M] -> [N,OH,OW,C*M] (channel c*M+m, as TF)."""
    kh, kw, c, m = kernel.shape
    x = _pad_for(x, (kh, kw), stride, padding)
    n, h, w, _ = x.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    y = np.zeros((n, oh, ow, c, m), dtype=np.result_type(x, kernel))
    for i in range(kh):
        for j in range(kw):
            tap = x[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride, :]
            y += tap[..., None] * kernel[i, j]
    y = y.reshape(n, oh, ow, c * m)
    return y if bias is None else y + bias


def batch_norm(x, gamma, beta, mean, var, eps=BN_EPS):
    inv = gamma / np.sqrt(var + eps)
    return x * inv + (beta - mean * inv)


def relu6(x):
    return np.clip(x, 0.0, 6.0)


# ----------------------------------------------------------------------------- the network
def make_divisible(v, divisor=8, min_value=None):
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class MobileNetV2Ref:
    def __init__(self, weights):
        """weights: dict name -> array (names like 'Conv1/kernel'), or a path (.h5 / TF.js dir)."""
        if isinstance(weights, str):
            from tfjs_io import load_weights
            weights = load_weights(weights)
        self.w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
        self.used = set()

    def _get(self, name):
        if name not in self.w:
            raise KeyError("weight %s missing" % name)
        self.used.add(name)
        return self.w[name]

    def _bn(self, x, layer):
        g = lambda n: self._get("%s/%s" % (layer, n))  # noqa: E731
        return batch_norm(x, g("gamma"), g("beta"), g("moving_mean"), g("moving_variance"))

    def _block(self, x, t, c, s, block_id):
        inp = x
        cin = x.shape[-1]
        filters = make_divisible(int(c * 1.0), 8)
        if block_id:
            p = "block_%d_" % block_id
            x = conv2d(x, self._get(p + "expand/kernel"), 1, "same")
            assert x.shape[-1] == t * cin
            x = relu6(self._bn(x, p + "expand_BN"))
        else:
            p = "expanded_conv_"
        if s == 2:
            x = zero_pad(x, correct_pad(x.shape[1], x.shape[2], 3))
        x = depthwise_conv2d(x, self._get(p + "depthwise/depthwise_kernel"), s,
                             "same" if s == 1 else "valid")
        x = relu6(self._bn(x, p + "depthwise_BN"))
        x = conv2d(x, self._get(p + "project/kernel"), 1, "same")
        x = self._bn(x, p + "project_BN")
        if cin == filters and s == 1:
            x = inp + x
        return x

    def features(self, x, pooling=None):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError("input must be [N,H,W,3], got %s" % (x.shape,))
        x = conv2d(x, self._get("Conv1/kernel"), 2, "same")
        x = relu6(self._bn(x, "bn_Conv1"))
        for bid, (t, c, s) in enumerate(BLOCKS):
            x = self._block(x, t, c, s, bid)
        x = conv2d(x, self._get("Conv_1/kernel"), 1, "same")
        x = relu6(self._bn(x, "Conv_1_bn"))
        if pooling == "avg":
            x = x.mean(axis=(1, 2))
        elif pooling == "max":
            x = x.max(axis=(1, 2))
        return x


# ----------------------------------------------------------------------------- self test
def _conv_loop(x, k, stride, pads):
    """Direct loops, independent of the vectorised code: explicit padding then valid conv."""
    (t, b), (l, r) = pads
    n, h, w, cin = x.shape
    kh, kw, _, cout = k.shape
    xp = np.zeros((n, h + t + b, w + l + r, cin))
    xp[:, t:t + h, l:l + w, :] = x
    oh, ow = (h + t + b - kh) // stride + 1, (w + l + r - kw) // stride + 1
    y = np.zeros((n, oh, ow, cout))
    for bi in range(n):
        for oi in range(oh):
            for oj in range(ow):
                for co in range(cout):
                    acc = 0.0
                    for i in range(kh):
                        for j in range(kw):
                            for ci in range(cin):
                                acc += xp[bi, oi * stride + i, oj * stride + j, ci] * k[i, j, ci, co]
                    y[bi, oi, oj, co] = acc
    return y


def _dw_loop(x, k, stride, pads):
    (t, b), (l, r) = pads
    n, h, w, c = x.shape
    kh, kw, _, m = k.shape
    xp = np.zeros((n, h + t + b, w + l + r, c))
    xp[:, t:t + h, l:l + w, :] = x
    oh, ow = (h + t + b - kh) // stride + 1, (w + l + r - kw) // stride + 1
    y = np.zeros((n, oh, ow, c * m))
    for bi in range(n):
        for oi in range(oh):
            for oj in range(ow):
                for ci in range(c):
                    for mi in range(m):
                        acc = 0.0
                        for i in range(kh):
                            for j in range(kw):
                                acc += xp[bi, oi * stride + i, oj * stride + j, ci] * k[i, j, ci, mi]
                        y[bi, oi, oj, ci * m + mi] = acc
    return y


def _tf_same_loop(size, k, s):
    """'same' padding by brute force: smallest total so that out = ceil(in/s) windows fit."""
    out = -(-size // s)
    total = 0
    while (size + total - k) // s + 1 < out or size + total < k:
        total += 1
    return total // 2, total - total // 2


def self_test(verbose=True):
    rng = np.random.default_rng(0)
    worst = 0.0
    # known TF facts
    assert same_pads(224, 3, 2) == (0, 1) and same_pads(7, 3, 2) == (1, 1)
    assert same_pads(8, 3, 1) == (1, 1) and same_pads(5, 1, 1) == (0, 0)
    assert correct_pad(112, 112) == ((0, 1), (0, 1)) and correct_pad(7, 9) == ((1, 1), (1, 1))
    assert correct_pad(6, 7) == ((0, 1), (1, 1))
    for size in range(1, 12):
        for k in (1, 2, 3, 5):
            for s in (1, 2, 3):
                assert same_pads(size, k, s) == _tf_same_loop(size, k, s), (size, k, s)
    for (h, w) in ((5, 5), (6, 6), (7, 4), (8, 9)):
        for k in (1, 3):
            for s in (1, 2):
                for padding in ("same", "valid"):
                    if padding == "valid" and (h < k or w < k):
                        continue
                    x = rng.standard_normal((2, h, w, 3))
                    pads = (same_pads(h, k, s), same_pads(w, k, s)) if padding == "same" else ((0, 0), (0, 0))
                    kc = rng.standard_normal((k, k, 3, 4))
                    d = np.abs(conv2d(x, kc, s, padding) - _conv_loop(x, kc, s, pads)).max()
                    worst = max(worst, d)
                    kd = rng.standard_normal((k, k, 3, 2))
                    d = np.abs(depthwise_conv2d(x, kd, s, padding) - _dw_loop(x, kd, s, pads)).max()
                    worst = max(worst, d)
        # MobileNetV2's stride-2 path: ZeroPadding2D(correct_pad) then 'valid'
        x = rng.standard_normal((1, h, w, 3))
        kd = rng.standard_normal((3, 3, 3, 1))
        cp = correct_pad(h, w)
        d = np.abs(depthwise_conv2d(zero_pad(x, cp), kd, 2, "valid") - _dw_loop(x, kd, 2, cp)).max()
        worst = max(worst, d)
        if h % 2 == 0 and w % 2 == 0:  # on even sizes, identical to TF 'same'
            d = np.abs(depthwise_conv2d(zero_pad(x, cp), kd, 2, "valid") -
                       depthwise_conv2d(x, kd, 2, "same")).max()
            worst = max(worst, d)
    # BN and ReLU6 elementwise
    x = rng.standard_normal((2, 3, 3, 4)) * 5
    g, b, m, v = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(4), rng.random(4)
    ref = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        c = idx[-1]
        ref[idx] = (x[idx] - m[c]) / np.sqrt(v[c] + 1e-3) * g[c] + b[c]
    worst = max(worst, np.abs(batch_norm(x, g, b, m, v) - ref).max())
    r6 = relu6(x)
    assert r6.min() >= 0 and r6.max() <= 6 and np.all(r6[(x > 0) & (x < 6)] == x[(x > 0) & (x < 6)])
    if verbose:
        print("self-test: conv/depthwise/pad/BN vs direct loops, max abs diff %.3g" % worst)
    if worst > 1e-12:
        raise AssertionError("self-test failed: max abs diff %g" % worst)
    return worst


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights")
    ap.add_argument("--input")
    ap.add_argument("--output")
    ap.add_argument("--pooling", choices=["none", "avg", "max"], default="none")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args(argv)
    if a.self_test:
        self_test()
        if not a.weights:
            return 0
    if not (a.weights and a.input and a.output):
        ap.error("--weights, --input and --output are required")
    net = MobileNetV2Ref(a.weights)
    x = np.load(a.input)
    t0 = time.time()
    y = net.features(x, None if a.pooling == "none" else a.pooling)
    dt = time.time() - t0
    unused = set(net.w) - net.used
    if unused:
        sys.stderr.write("warning: %d weights not used: %s\n" % (len(unused), sorted(unused)[:5]))
    np.save(a.output, y.astype(a.dtype))
    print("input %s -> output %s in %.2f s" % (x.shape, y.shape, dt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
