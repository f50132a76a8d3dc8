#!/usr/bin/env python3
"""Before/after: two builds of bench_mobilenet, run alternately round by round, and the ratio per point.

  python3 bench/ab_compare.py OLD_BENCH NEW_BENCH [--rounds 3] [--threads 2] [--seconds 1.0]

OLD_BENCH / NEW_BENCH are bench_mobilenet executables (e.g. one built from main, one from a branch).
Each round runs OLD then NEW (the order alternates every round) in "json" mode; the table gives the
median images/s of each over all rounds and NEW / OLD (> 1: NEW faster). The machine is shared, so
only ratios measured in one run mean anything.
"""
import argparse
import json
import statistics
import subprocess
import sys

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("old")
ap.add_argument("new")
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seconds", type=float, default=1.0)
a = ap.parse_args()

samples = {"old": {}, "new": {}}
for rnd in range(a.rounds):
    order = [("old", a.old), ("new", a.new)] if rnd % 2 == 0 else [("new", a.new), ("old", a.old)]
    for tag, exe in order:
        print(f"round {rnd + 1}/{a.rounds}: {tag}", file=sys.stderr, flush=True)
        out = subprocess.run([exe, str(a.threads), str(a.seconds), "json"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                samples[tag].setdefault((r["tool"], r["threads"], r["batch"]), []).extend(r["ips"])

print("| what | threads | batch | old img/s | new img/s | new / old |")
print("|---|---|---|---|---|---|")
for key in sorted(samples["old"], key=lambda k: (k[1], k[0], k[2])):
    if key not in samples["new"]:
        continue
    o, n = statistics.median(samples["old"][key]), statistics.median(samples["new"][key])
    print(f"| {key[0].replace('kerascpp ', '')} | {key[1]} | {key[2]} | {o:.1f} | {n:.1f} | {n / o:.3f} |")
