#!/usr/bin/env python3
"""kerascpp vs PyTorch on MobileNetV2-192 (random weights), interleaved in one script.

The machines are shared and noisy, so absolute images/s drift; what this reports is the ratio of
kerascpp to each PyTorch variant, measured round by round back to back (noise hits both alike).

  /usr/bin/python3 bench/compare_peers.py [--rounds 3] [--threads 1,2] [--bench build/bench/bench_mobilenet]
                                          [--peers ../shared/bench/peers]

Runs, per round: bench_mobilenet json (inference b=1/8/32, full training step b=32, 1 and 2
threads), then the peer scripts of ../shared/bench/peers (read in place):
  torch jit    trace + optimize_for_inference (BN folded), "tuned" malloc env    (the fastest torch)
  torch cl     channels_last eager, tuned env
  torch eager  NCHW eager, default env                                         (the plain way)
  torch train-full: whole network trainable, forward + backward + SGD step, tuned env
"tuned" = the env ../shared/bench/peers/README.md recommends for torch on this VM (glibc malloc
keeps freed memory; OpenBLAS single-threaded). kerascpp needs no such setting (it reuses buffers).
Needs Debian's python3-torch and python3-torchvision (tools/deps.sh python3-torch python3-torchvision).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TUNED = {"OPENBLAS_NUM_THREADS": "1", "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--threads", default="1,2")
ap.add_argument("--reps", type=int, default=3, help="timed repetitions per point and round (torch)")
ap.add_argument("--seconds", type=float, default=1.0, help="seconds per point and round (kerascpp)")
ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bench", "bench_mobilenet"))
ap.add_argument("--peers", default=os.path.join(ROOT, "..", "shared", "bench", "peers"))
ap.add_argument("--python", default="/usr/bin/python3", help="the Python that has torch (Debian's)")
a = ap.parse_args()
threads = [int(t) for t in a.threads.split(",")]
for path, what in [(a.bench, "bench_mobilenet (build it: cmake --build build --target bench_mobilenet)"),
                   (os.path.join(a.peers, "torch_infer.py"), "the peer scripts")]:
    if not os.path.exists(path):
        sys.exit(f"compare_peers: {what} not found at {path}")

samples = {}  # (tool, threads, batch) -> [images/s]


def run(cmd, env_extra=None, cwd=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"compare_peers: {' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    for line in out.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if "ips" not in r:
            continue
        tool = r["tool"]
        if tool.startswith("torch "):  # "torch 1.13.0a0 jit" -> "torch jit"
            tool = "torch " + " ".join(tool.split()[2:])
        key = (tool, r["threads"], r["batch"])
        samples.setdefault(key, []).extend(r["ips"])


for rnd in range(1, a.rounds + 1):
    print(f"round {rnd}/{a.rounds}", file=sys.stderr, flush=True)
    run([a.bench, str(max(threads)), str(a.seconds), "json"])
    for t in threads:
        common = ["--threads", str(t), "--batches", "1,8,32", "--reps", str(a.reps)]
        run([a.python, "torch_infer.py", *common, "--variant", "jit"], TUNED, a.peers)
        run([a.python, "torch_infer.py", *common, "--variant", "cl"], TUNED, a.peers)
        run([a.python, "torch_infer.py", *common, "--variant", "eager", "--warmup", "1"], None, a.peers)
        run([a.python, "torch_train.py", "--threads", str(t), "--what", "full", "--reps", str(a.reps)], TUNED, a.peers)

med = {k: statistics.median(v) for k, v in samples.items()}
ours = {k: v for k, v in med.items() if k[0].startswith("kerascpp")}
print("\nMobileNetV2-192, images/s (median over all rounds) and kerascpp / peer (> 1: kerascpp faster)")
print("| what | thr | batch | kerascpp | torch jit | torch cl | torch eager | vs jit | vs cl | vs eager |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (tool, t, b), v in sorted(ours.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
    if tool.endswith("infer"):
        peers = [med.get((f"torch {x}", t, b)) for x in ("jit", "cl", "eager")]
        what = "inference"
    else:
        peers = [med.get(("torch train-full", t, b)), None, None]
        what = "train step"
    cells = [f"{p:.1f}" if p else "-" for p in peers]
    ratios = [f"{v / p:.2f}" if p else "-" for p in peers]
    print(f"| {what} | {t} | {b} | {v:.1f} | {' | '.join(cells)} | {' | '.join(ratios)} |")
print("(train step: the torch column is train-full, SGD; kerascpp uses Adam. torch eager runs in the default env.)")
