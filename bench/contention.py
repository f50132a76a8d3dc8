#!/usr/bin/env python3
"""Throughput on a shared machine: each program's speed next to another one, relative to alone.

  python3 bench/contention.py [--rounds 2] [--seconds 4] [--threads 2] [--only kerascpp|torch]
                              [--bench build/bench/bench_contention] [--peers ../shared/bench/peers]

Scenarios, per workload, run round by round (each round: alone, then the two others):
  alone   one process
  two     two identical processes at once (each with --threads threads; 1/2 of alone is the fair share)
  spin    one process next to a plain single-threaded spin loop (another program holding one core)
The processes build their model and warm up, say "ready", and all start their timed window (S
seconds) together. A process's throughput is images / wall time of its window; its ratio is that
over the alone throughput measured in the same round. Reported: the median over the rounds, of
the worse of the two processes for "two".

Workloads: kerascpp (bench_contention): the flowers model (Rescaling -> MobileNetV2-160 -> GAP ->
Dropout -> Dense(1, sigmoid)) predict at batch 1 and 32, a small CNN's training step (batch 32),
MobileNetV2-160's full training step (batch 32). PyTorch (bench/torch_contention.py, Debian's
python3-torch, skipped with a message if missing): MobileNetV2-192 TorchScript-frozen inference at
batch 1 and 32, the full training step (batch 32), in the "tuned" malloc env of compare_peers.py.
Targets (issue 14): two processes >= 0.33x alone each, spin loop >= 0.45x at 2 threads.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
def default_peers():
    """../shared/bench/peers next to the checkout (also from a worktree one level deeper)."""
    for up in (("..",), ("..", "..")):
        d = os.path.normpath(os.path.join(ROOT, *up, "shared", "bench", "peers"))
        if os.path.isdir(d):
            return d
    return os.path.normpath(os.path.join(ROOT, "..", "shared", "bench", "peers"))


TUNED = {"OPENBLAS_NUM_THREADS": "1", "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
SPIN = [sys.executable, "-c", "while True: pass"]


def workloads(bench, python, peers, threads, seconds, only=None, log=print):
    """[(tool, work, batch, argv, env)] of the available tools."""
    out = []
    common = ["--threads", str(threads), "--seconds", str(seconds), "--sync"]
    if only in (None, "kerascpp"):
        if os.path.exists(bench):
            out += [("kerascpp", "predict (flowers model, 160)", 1, [bench, "infer", "--batch", "1", *common], None),
                    ("kerascpp", "predict (flowers model, 160)", 32, [bench, "infer", "--batch", "32", *common], None),
                    ("kerascpp", "train step, small CNN 64x64", 32, [bench, "train-cnn", "--batch", "32", *common], None),
                    ("kerascpp", "train step, MobileNetV2-160", 32, [bench, "train", "--batch", "32", *common], None)]
        else:
            log(f"contention: skipping kerascpp: {bench} not found (cmake --build build --target bench_contention)")
    if only in (None, "torch"):
        worker = os.path.join(HERE, "torch_contention.py")
        ok = subprocess.run([python, "-c", "import torch, torchvision"], capture_output=True).returncode == 0
        if not ok:
            log(f"contention: skipping PyTorch: {python} cannot import torch and torchvision "
                "(apt-get install python3-torch python3-torchvision)")
        elif not os.path.exists(os.path.join(peers, "common.py")):
            log(f"contention: skipping PyTorch: {peers}/common.py not found")
        else:
            tc = [python, worker, "--peers", peers, *common]
            out += [("torch", "inference, TorchScript frozen (192)", 1, tc[:2] + ["infer", "--batch", "1"] + tc[2:], TUNED),
                    ("torch", "inference, TorchScript frozen (192)", 32, tc[:2] + ["infer", "--batch", "32"] + tc[2:], TUNED),
                    ("torch", "train step, MobileNetV2-192", 32, tc[:2] + ["train", "--batch", "32"] + tc[2:], TUNED)]
    return out


def run_scenario(argv, env_extra, copies, spin, timeout=900):
    """Starts `copies` processes of argv (and a spin loop if asked), releases them together; returns
    their total_ips."""
    env = dict(os.environ)
    env.update(env_extra or {})
    procs = [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(copies)]
    spinner = None
    try:
        for p in procs:
            line = p.stdout.readline()
            if line.strip() != "ready":
                p.wait(timeout=60)
                raise RuntimeError(f"{' '.join(argv)} did not start: {line}{p.stderr.read()[-2000:]}")
        if spin:
            spinner = subprocess.Popen(SPIN)
            time.sleep(0.2)  # the spin loop is running before the window opens
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        ips = []
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            if p.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}):\n{err[-2000:]}")
            rec = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
            ips.append(rec[-1]["total_ips"])
        return ips
    finally:
        if spinner:
            spinner.kill()
            spinner.wait()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def measure(loads, rounds, log=print):
    """{(tool, work, batch): {"alone": [ips per round], "two": [[ips, ips] per round], "spin": [ips per round]}}"""
    res = {}
    for rnd in range(1, rounds + 1):
        for tool, work, batch, argv, env in loads:
            key = (tool, work, batch)
            log(f"contention round {rnd}/{rounds}: {tool} {work} b{batch}")
            r = res.setdefault(key, {"alone": [], "two": [], "spin": []})
            r["alone"] += run_scenario(argv, env, 1, False)
            r["two"].append(run_scenario(argv, env, 2, False))
            r["spin"] += run_scenario(argv, env, 1, True)
    return res


def table(res, threads):
    lines = [f"Contention ({threads} threads per process, 2 cores): images/s alone, next to a second copy of itself, "
             "next to a spin loop; ratio = x alone (median over rounds; for two processes, the worse of the two)",
             "| tool | work | batch | alone | 2 processes: each | x alone (>= 0.33) | + spin loop | x alone (>= 0.45) |",
             "|---|---|---|---|---|---|---|---|"]
    for (tool, work, batch), r in res.items():
        alone = r["alone"]
        two_ratio = [min(pair) / a for pair, a in zip(r["two"], alone)]
        spin_ratio = [s / a for s, a in zip(r["spin"], alone)]
        two_each = statistics.median([statistics.mean(p) for p in r["two"]])
        lines.append(f"| {tool} | {work} | {batch} | {statistics.median(alone):.1f} | {two_each:.1f} | "
                     f"{statistics.median(two_ratio):.2f} | {statistics.median(r['spin']):.1f} | {statistics.median(spin_ratio):.2f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0, help="timed window per process and scenario")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=["kerascpp", "torch"])
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bench", "bench_contention"))
    ap.add_argument("--peers", default=default_peers())
    ap.add_argument("--python", default="/usr/bin/python3", help="the Python that has torch (Debian's)")
    a = ap.parse_args()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    loads = workloads(a.bench, a.python, a.peers, a.threads, a.seconds, a.only, log)
    if not loads:
        sys.exit("contention: nothing to run")
    print(table(measure(loads, a.rounds, log), a.threads))


if __name__ == "__main__":
    main()
