#!/usr/bin/python3
"""PyTorch's twin of bench_top_blocks: the training step of MobileNetV2's top blocks as the flowers
fine-tuning runs it from the cut at block_13, with the model and loop of
../shared/bench/peers/torch_flowers_job.py (mnv2_torch.py, channels_last, Adam eps 1e-7,
zero_grad(set_to_none=True), every BatchNorm in inference mode): stages block_13 .. Conv_1 +
out_relu, mean over H, W, Linear(1280, 5), cross-entropy, batch 64. As in bench_top_blocks the
BatchNorm layers are frozen (Keras's fine-tuning recipe: BN non-trainable, inference mode), so
their gamma/beta take no gradient; the convolutions and the head train.

  MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 OPENBLAS_NUM_THREADS=1 \
    /usr/bin/python3 bench/torch_top_blocks.py [--threads 1,2] [--sizes 192,160] [--seconds 2] [--random]
        [--peers ../shared/bench/peers]
One JSON line per point: {"tool": "torch top-blocks-<size>", "threads", "batch", "ips": [...]}.
"""
import argparse, json, os, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))


def default_peers():
    for up in (("..",), ("..", "..")):
        d = os.path.normpath(os.path.join(HERE, "..", *up, "shared", "bench", "peers"))
        if os.path.isdir(d):
            return d
    return os.path.normpath(os.path.join(HERE, "..", "..", "shared", "bench", "peers"))


ap = argparse.ArgumentParser()
ap.add_argument("--threads", default="1,2")
ap.add_argument("--sizes", default="192,160")
ap.add_argument("--seconds", type=float, default=2.0)
ap.add_argument("--random", action="store_true", help="random init instead of the Keras weights")
ap.add_argument("--peers", default=default_peers())
a = ap.parse_args()
sys.path.insert(0, a.peers)
import torch
import torch.nn as nn
import torch.nn.functional as F
import mnv2_torch

torch.manual_seed(42)
torch.set_num_interop_threads(1)
B = 64
have_weights = os.path.exists(mnv2_torch.WEIGHTS) and not a.random
model = mnv2_torch.load() if have_weights else mnv2_torch.MobileNetV2NoTop().eval()
model = model.to(memory_format=torch.channels_last)
cut = mnv2_torch.MobileNetV2NoTop.stage_index("block_13")
head = mnv2_torch.glorot_(nn.Linear(1280, 5))
for p in model.parameters():
    p.requires_grad_(False)
params = list(head.parameters())
for i in range(cut, 19):
    for m in ([model.blocks[i - 1]] if i <= 17 else [model.conv_1]):
        for mod in m.modules():
            if isinstance(mod, nn.Conv2d):
                mod.weight.requires_grad_(True)
                params.append(mod.weight)
model.eval()   # BatchNorm in inference mode
head.train()
opt = torch.optim.Adam(params, lr=1e-4, eps=1e-7)

for size in [int(s) for s in a.sizes.split(",")]:
    hw = size // 16
    x = (torch.randn(B, 96, hw, hw) * 2.0).contiguous(memory_format=torch.channels_last)
    y = torch.arange(B) % 5

    def step():
        loss = F.cross_entropy(head(model(x, cut, 19).mean((2, 3))), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for th in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(th)
        for _ in range(3):
            step()
        ips = []
        t_start = time.perf_counter()
        while len(ips) < 5 or (len(ips) < 200 and time.perf_counter() - t_start < a.seconds):
            t0 = time.perf_counter()
            step()
            ips.append(B / (time.perf_counter() - t0))
        print(json.dumps({"tool": f"torch top-blocks-{size}", "threads": th, "batch": B,
                          "weights": "keras" if have_weights else "random", "torch": torch.__version__,
                          "ips": [round(v, 2) for v in ips]}), flush=True)
