#!/usr/bin/env python3
"""kerascpp vs ONNX Runtime and PyTorch on MobileNetV2-192 (random weights), interleaved in one script.

The machines are shared and noisy, so absolute images/s drift; what this reports is the ratio of
kerascpp to each peer, measured round by round back to back (noise hits both alike).

  /usr/bin/python3 bench/compare_peers.py [--rounds 3] [--threads 1,2] [--bench build/bench/bench_mobilenet]
                                          [--peers ../shared/bench/peers] [--ort-modules /tmp/ortbench/node_modules]
                                          [--contention-rounds 2] [--no-contention]

Runs, per round: bench_mobilenet json (inference b=1/8/32, full training step b=32, 1 and 2
threads), then the peer scripts of ../shared/bench/peers (read in place):
  torch jit    trace + optimize_for_inference (BN folded), "tuned" malloc env    (the fastest torch)
  torch cl     channels_last eager, tuned env
  torch eager  NCHW eager, default env                                         (the plain way)
  torch train-full: whole network trainable, forward + backward + SGD step, tuned env
  ort          ../shared/bench/peers/ort_infer.js: onnxruntime-node, CPU EP, intra-op threads = thr
               (needs node, onnxruntime-node installed with ONNXRUNTIME_NODE_INSTALL=skip npm install
               onnxruntime-node in --ort-modules' parent, and the ONNX export: made here with
               export_onnx.py into --ort-dir when torch is there)
Then the contention table of bench/contention.py (two processes at once, one process next to a spin
loop; kerascpp's bench_contention next to bench_mobilenet, and PyTorch).
Every peer is optional: one that is not installed is skipped with a message.
"tuned" = the env ../shared/bench/peers/README.md recommends for torch on this VM (glibc malloc
keeps freed memory; OpenBLAS single-threaded). kerascpp needs no such setting (it reuses buffers).
Needs Debian's python3-torch and python3-torchvision (tools/deps.sh python3-torch python3-torchvision).
"""
import argparse
import json
import os
import statistics
import shutil
import subprocess
import sys

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

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--threads", default="1,2")
ap.add_argument("--reps", type=int, default=3, help="timed repetitions per point and round (torch)")
ap.add_argument("--seconds", type=float, default=1.0, help="seconds per point and round (kerascpp)")
ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bench", "bench_mobilenet"))
ap.add_argument("--peers", default=default_peers())
ap.add_argument("--python", default="/usr/bin/python3", help="the Python that has torch (Debian's)")
ap.add_argument("--ort-modules", default="/tmp/ortbench/node_modules", help="node_modules holding onnxruntime-node")
ap.add_argument("--ort-dir", default="/tmp/peers-out", help="where export_onnx.py writes the ONNX model")
ap.add_argument("--contention-rounds", type=int, default=2)
ap.add_argument("--contention-seconds", type=float, default=4.0)
ap.add_argument("--no-contention", action="store_true")
a = ap.parse_args()
threads = [int(t) for t in a.threads.split(",")]
if not os.path.exists(a.bench):
    sys.exit(f"compare_peers: bench_mobilenet not found at {a.bench} (build it: cmake --build build --target bench_mobilenet)")


def note(msg):
    print(msg, file=sys.stderr, flush=True)


have_torch = os.path.exists(os.path.join(a.peers, "torch_infer.py")) and subprocess.run(
    [a.python, "-c", "import torch, torchvision"], capture_output=True).returncode == 0
if not have_torch:
    note(f"compare_peers: skipping PyTorch: {a.python} cannot import torch/torchvision or {a.peers}/torch_infer.py is missing "
         "(apt-get install python3-torch python3-torchvision)")
have_ort = False
onnx = os.path.join(a.ort_dir, "mobilenetv2_192.onnx")
if not os.path.exists(os.path.join(a.peers, "ort_infer.js")):
    note(f"compare_peers: skipping ONNX Runtime: {a.peers}/ort_infer.js not found")
elif not shutil.which("node"):
    note("compare_peers: skipping ONNX Runtime: node not found")
elif not os.path.isdir(os.path.join(a.ort_modules, "onnxruntime-node")):
    note(f"compare_peers: skipping ONNX Runtime: onnxruntime-node not in {a.ort_modules} (mkdir -p /tmp/ortbench && cd /tmp/ortbench "
         "&& npm init -y && ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node)")
else:
    if not os.path.exists(onnx) and have_torch:
        note(f"compare_peers: exporting the ONNX model to {a.ort_dir}")
        subprocess.run([a.python, "export_onnx.py", a.ort_dir], cwd=a.peers, capture_output=True)
    if os.path.exists(onnx):
        have_ort = True
    else:
        note(f"compare_peers: skipping ONNX Runtime: {onnx} missing (export_onnx.py needs torch)")

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
        if tool.startswith("onnxruntime-node"):  # "onnxruntime-node 1.30.0" -> "ort"
            tool = "ort"
        key = (tool, r["threads"], r["batch"])
        samples.setdefault(key, []).extend(r["ips"])


for rnd in range(1, a.rounds + 1):
    print(f"round {rnd}/{a.rounds}", file=sys.stderr, flush=True)
    run([a.bench, str(max(threads)), str(a.seconds), "json"])
    for t in threads:
        common = ["--threads", str(t), "--batches", "1,8,32", "--reps", str(a.reps)]
        if have_ort:
            run(["node", os.path.join(a.peers, "ort_infer.js"), *common, "--dir", a.ort_dir],
                {"NODE_PATH": a.ort_modules}, a.peers)
        if not have_torch:
            continue
        run([a.python, "torch_infer.py", *common, "--variant", "jit"], TUNED, a.peers)
        run([a.python, "torch_infer.py", *common, "--variant", "cl"], TUNED, a.peers)
        run([a.python, "torch_infer.py", *common, "--variant", "eager", "--warmup", "1"], None, a.peers)
        run([a.python, "torch_train.py", "--threads", str(t), "--what", "full", "--reps", str(a.reps)], TUNED, a.peers)

med = {k: statistics.median(v) for k, v in samples.items()}
ours = {k: v for k, v in med.items() if k[0].startswith("kerascpp")}
print("\nMobileNetV2-192, images/s (median over all rounds) and kerascpp / peer (> 1: kerascpp faster)")
print("| what | thr | batch | kerascpp | ORT | torch jit | torch cl | torch eager | vs ORT | vs jit | vs cl | vs eager |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for (tool, t, b), v in sorted(ours.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
    if tool.endswith("infer"):
        peers = [med.get(("ort", t, b))] + [med.get((f"torch {x}", t, b)) for x in ("jit", "cl", "eager")]
        what = "inference"
    else:
        peers = [None, med.get(("torch train-full", t, b)), None, None]
        what = "train step"
    cells = [f"{p:.1f}" if p else "-" for p in peers]
    ratios = [f"{v / p:.2f}" if p else "-" for p in peers]
    print(f"| {what} | {t} | {b} | {v:.1f} | {' | '.join(cells)} | {' | '.join(ratios)} |")
print("(train step: the torch column is train-full, SGD; kerascpp uses Adam. torch eager runs in the default env.)")
print("(ISA: " + ("AVX-512" if "avx512f" in open("/proc/cpuinfo").read() else "AVX2+FMA (no AVX-512)") + ")")

if not a.no_contention:
    sys.path.insert(0, HERE)
    import contention  # bench/contention.py

    cbench = os.path.join(os.path.dirname(a.bench), "bench_contention")
    loads = contention.workloads(cbench, a.python, a.peers, max(threads), a.contention_seconds, None, note)
    if loads:
        print()
        print(contention.table(contention.measure(loads, a.contention_rounds, note), max(threads)))
