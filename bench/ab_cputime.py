#!/usr/bin/env python3
"""Before/after in CPU time: two builds of bench_cputime (MobileNetV2-192 inference, 1 thread), run
alternately round by round; medians of the per-image CPU milliseconds and old / new (> 1: new faster).

  python3 bench/ab_cputime.py OLD/bench_cputime NEW/bench_cputime [--rounds 4] [--reps 10]

CPU time (CLOCK_THREAD_CPUTIME_ID) is what a prediction costs the core; on a shared machine it is far
steadier than wall time, which also counts the time slices other programs took.
"""
import argparse
import json
import statistics
import subprocess
import sys

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("old")
ap.add_argument("new")
ap.add_argument("--rounds", type=int, default=4)
ap.add_argument("--reps", type=int, default=10)
ap.add_argument("--batches", default="1,8,32")
a = ap.parse_args()

ms = {"old": {}, "new": {}}
for rnd in range(a.rounds):
    order = [("old", a.old), ("new", a.new)] if rnd % 2 == 0 else [("new", a.new), ("old", a.old)]
    for tag, exe in order:
        print(f"round {rnd + 1}/{a.rounds}: {tag}", file=sys.stderr, flush=True)
        out = subprocess.run([exe, str(a.reps), a.batches], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                ms[tag].setdefault(r["batch"], []).extend(r["ms_per_image"])

print("| batch | old ms/img (CPU) | new ms/img (CPU) | old / new |")
print("|---|---|---|---|")
for b in sorted(ms["old"]):
    o, n = statistics.median(ms["old"][b]), statistics.median(ms["new"][b])
    print(f"| {b} | {o:.2f} | {n:.2f} | {o / n:.3f} |")
