#!/usr/bin/env python3
"""kerascpp vs PyTorch on the training step of MobileNetV2's top blocks (block_13 .. Conv_1 + GAP +
Dense(5), BatchNorm frozen, Adam, cross-entropy, batch 64): what the flowers fine-tuning runs per
step from the cut at block_13 (issue 19 part 4). Interleaved in one script, since the machine is
shared and noisy: every round runs bench_top_blocks and bench/torch_top_blocks.py back to back (the
order alternates), and the table gives the medians over all rounds and their ratio.

  /usr/bin/python3 bench/compare_top_blocks.py [--rounds 5] [--threads 1,2] [--sizes 192,160] [--seconds 2]
        [--bench build/bench/bench_top_blocks] [--old OLD/bench_top_blocks] [--random]

--old: a second bench_top_blocks (e.g. built from main) run in the same rounds: the table then
also gives new / old. PyTorch runs in the "tuned" env of ../shared/bench/peers/README.md (glibc
malloc keeps freed memory, OpenBLAS single-threaded); it needs Debian's python3-torch (/usr/bin/python3).
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
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--threads", default="1,2")
ap.add_argument("--sizes", default="192,160")
ap.add_argument("--seconds", type=float, default=2.0, help="seconds per point and round")
ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bench", "bench_top_blocks"))
ap.add_argument("--old", default=None)
ap.add_argument("--python", default="/usr/bin/python3")
ap.add_argument("--random", action="store_true", help="random weights on both sides")
ap.add_argument("--no-torch", action="store_true")
a = ap.parse_args()
for exe in [a.bench] + ([a.old] if a.old else []):
    if not os.path.exists(exe):
        sys.exit(f"compare_top_blocks: {exe} not found (cmake --build build --target bench_top_blocks)")
have_torch = not a.no_torch and subprocess.run([a.python, "-c", "import torch"], capture_output=True).returncode == 0
if not have_torch and not a.no_torch:
    print(f"compare_top_blocks: {a.python} cannot import torch: kerascpp only", file=sys.stderr)

samples = {}  # (tool, size, threads) -> [samples/s]


def run(tag, cmd, env_extra=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"compare_top_blocks: {' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            size = int(r["tool"].rsplit("-", 1)[1])
            samples.setdefault((tag, size, r["threads"]), []).extend(r["ips"])


weights = ["random"] if a.random else []
jobs = [("kerascpp", [a.bench, a.threads, str(a.seconds), "json", a.sizes] + weights, None)]
if a.old:
    jobs.append(("old", [a.old, a.threads, str(a.seconds), "json", a.sizes] + weights, None))
if have_torch:
    jobs.append(("torch", [a.python, os.path.join(HERE, "torch_top_blocks.py"), "--threads", a.threads, "--sizes", a.sizes,
                           "--seconds", str(a.seconds)] + (["--random"] if a.random else []), TUNED))
for rnd in range(a.rounds):
    order = jobs if rnd % 2 == 0 else jobs[::-1]
    for tag, cmd, env in order:
        print(f"round {rnd + 1}/{a.rounds}: {tag}", file=sys.stderr, flush=True)
        run(tag, cmd, env)

med = {k: statistics.median(v) for k, v in samples.items()}
print("\nMobileNetV2 top blocks (block_13 .. Conv_1 + GAP + Dense(5)), training step, batch 64, BN frozen, Adam;")
print(f"samples/s, medians over {a.rounds} interleaved rounds")
hdr = "| image | block_13 input | threads | kerascpp |" + (" old |" if a.old else "") + " PyTorch | kerascpp / PyTorch |" + (
    " new / old |" if a.old else "")
print(hdr)
print("|" + "---|" * (hdr.count("|") - 1))
for size in [int(s) for s in a.sizes.split(",")]:
    for t in [int(x) for x in a.threads.split(",")]:
        k, o, p = med.get(("kerascpp", size, t)), med.get(("old", size, t)), med.get(("torch", size, t))
        hw = size // 16
        row = f"| {size} | {hw}x{hw}x96 | {t} | {k:.1f} |"
        if a.old:
            row += f" {o:.1f} |"
        row += f" {p:.1f} | {k / p:.2f} |" if p else " - | - |"
        if a.old:
            row += f" {k / o:.2f} |"
        print(row)
