#!/usr/bin/env python3
"""PyTorch worker of the contention benchmark (bench/contention.py), the twin of bench_contention.

  /usr/bin/python3 bench/torch_contention.py infer|train [--batch B] [--threads T] [--seconds S] [--sync]
                                             [--peers ../shared/bench/peers]

  infer  MobileNetV2-192 features + GAP of ../shared/bench/peers/common.py, TorchScript frozen
         (trace + optimize_for_inference), no_grad, batch B (default 1)
  train  the same network + Linear(1280, 5), train mode, forward + backward + SGD step, batch B (default 32)
After 3 warm-up calls, with --sync it prints "ready" and waits for a line on stdin, then runs the
work for S seconds and prints one JSON line like bench_contention's (images/s of each call, total_ips).
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("what", choices=["infer", "train"])
ap.add_argument("--batch", type=int)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seconds", type=float, default=4.0)
ap.add_argument("--sync", action="store_true")
ap.add_argument("--peers", required=True, help="../shared/bench/peers (common.py)")
a = ap.parse_args()
sys.path.insert(0, a.peers)
import torch  # noqa: E402
from common import backbone, SIZE  # noqa: E402

torch.set_num_threads(a.threads)
torch.set_num_interop_threads(1)
B = a.batch or (1 if a.what == "infer" else 32)
x = torch.randn(B, 3, SIZE, SIZE)
if a.what == "infer":
    with torch.no_grad():
        net = torch.jit.optimize_for_inference(torch.jit.trace(backbone(), torch.randn(8, 3, SIZE, SIZE)))

    def step():
        with torch.no_grad():
            net(x)
else:
    net = torch.nn.Sequential(backbone(), torch.nn.Linear(1280, 5)).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    y = torch.randint(0, 5, (B,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()

for _ in range(3):
    step()
if a.sync:
    print("ready", flush=True)
    sys.stdin.readline()
ips = []
t0 = time.perf_counter()
while True:
    t = time.perf_counter()
    step()
    e = time.perf_counter()
    ips.append(B / (e - t))
    if e - t0 >= a.seconds and len(ips) >= 2:
        break
print(json.dumps({"tool": f"torch {a.what}", "threads": a.threads, "batch": B,
                  "total_ips": B * len(ips) / (e - t0), "ips": ips}), flush=True)
