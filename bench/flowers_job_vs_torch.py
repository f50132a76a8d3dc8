#!/usr/bin/env python3
"""The whole flowers job, kerascpp's example against PyTorch's (../shared/bench/peers/torch_flowers_job.py,
recipe "best"), alternating in one script: wall time of each, the ratio, and the validation accuracies.

  /usr/bin/python3 bench/flowers_job_vs_torch.py [--rounds 2] [--example build/examples/flowers_transfer_learning]
        [--weights ~/.cache/kerascpp/mobilenet_v2_1.0_224_no_top] [--data ../shared/data/flower_photos]
        [--threads 2] [--torch-args "--cut block_13"] [-- example args...]

Both read the same photos and the same Keras weights, with Keras's 81/19 split of seed 123, at 192x192.
The machines are shared and noisy: compare the ratio within a round, not absolute seconds across runs.
Per stage, kerascpp's times come from its log lines ("Cached ... in Xs", the epoch lines, "Time: ...")
and torch's from its JSON "stages".
Needs Debian's python3-torch, python3-torchvision, python3-h5py, python3-pil.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def shared_dir():
    for up in ("..", os.path.join("..", "..")):
        d = os.path.normpath(os.path.join(ROOT, up, "shared"))
        if os.path.isdir(d):
            return d
    return os.path.join(ROOT, "..", "shared")


def run_ours(a, extra):
    cmd = [a.example, "--data", a.data, "--weights", a.weights, "--threads", str(a.threads), "--output", "/tmp/flowers_bench_out"] + extra
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t
    if p.returncode != 0:
        sys.exit("kerascpp job failed:\n" + p.stdout[-2000:] + p.stderr[-2000:])
    out = p.stdout
    acc = float(re.search(r"^val_accuracy: ([0-9.]+)", out, re.M).group(1))
    stages = {}
    for name, pat in (("frozen_pass_s", r"Cached the outputs.* in ([0-9.]+)s"), ("derive_s", r"Computed the outputs.* in ([0-9.]+)s")):
        m = re.search(pat, out)
        if m:
            stages[name] = float(m.group(1))
    m = re.search(r"Stages: head ([0-9.]+) s, fine-tuning ([0-9.]+) s", out)
    if m:
        stages["head_fit_s"], stages["fine_tune_s"] = float(m.group(1)), float(m.group(2))
    return {"wall_s": round(wall, 2), "val_accuracy": acc, "stages": stages}


def run_torch(a):
    env = dict(os.environ, MALLOC_MMAP_MAX_="0", MALLOC_TRIM_THRESHOLD_="68719476736", OPENBLAS_NUM_THREADS="1")
    script = os.path.join(a.peers, "torch_flowers_job.py")
    cmd = ["/usr/bin/python3", script, "--recipe", "best", "--threads", str(a.threads), "--data", a.data] + a.torch_args.split()
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=a.peers)
    wall = time.time() - t
    if p.returncode != 0:
        sys.exit("torch job failed:\n" + p.stderr[-3000:])
    last = json.loads(p.stdout.strip().splitlines()[-1])
    return {"wall_s": round(wall, 2), "val_accuracy": last["val_accuracy"], "stages": last["stages"]}


def main():
    sh = shared_dir()
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--example", default=os.path.join(ROOT, "build", "examples", "flowers_transfer_learning"))
    ap.add_argument("--weights", default=os.path.expanduser("~/.cache/kerascpp/mobilenet_v2_1.0_224_no_top"))
    ap.add_argument("--data", default=os.path.join(sh, "data", "flower_photos"))
    ap.add_argument("--peers", default=os.path.join(sh, "bench", "peers"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--torch-args", default="")
    a, extra = ap.parse_known_args()
    extra = [e for e in extra if e != "--"]
    rows = []
    for r in range(a.rounds):
        ours = run_ours(a, extra)
        torch = run_torch(a)
        ratio = torch["wall_s"] / ours["wall_s"]
        rows.append(ratio)
        print(json.dumps({"round": r + 1, "kerascpp": ours, "torch": torch, "torch_over_kerascpp": round(ratio, 3)}), flush=True)
    print(f"whole job: kerascpp is {statistics.median(rows):.2f}x PyTorch's speed (median of {len(rows)} rounds; target >= 2)")


if __name__ == "__main__":
    main()
