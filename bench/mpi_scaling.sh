#!/bin/sh
# Scaling of data-parallel training on this machine: bench_distributed on 1 process x 1 thread and
# on R processes x 1 thread, alternately (ROUNDS times each, so that a busy machine weighs on both
# alike), then the median throughputs, their ratio and the communication share (docs/distributed.md).
#   bench/mpi_scaling.sh BUILD_DIR [top|full] [R=2] [batch_per_replica=32] [steps=12] [ROUNDS=3]
set -eu
build=$1; net=${2:-top}; R=${3:-2}; b=${4:-32}; steps=${5:-12}; rounds=${6:-3}
flags="--oversubscribe"
[ "$(id -u)" -eq 0 ] && flags="$flags --allow-run-as-root"
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
out=$(mktemp); trap 'rm -f "$out"' EXIT
i=0
while [ $i -lt "$rounds" ]; do
  for np in 1 "$R"; do
    mpirun $flags --bind-to none -np "$np" "$build/bench/bench_distributed" "$net" "$b" "$steps" | tee -a "$out"
  done
  i=$((i + 1))
done
python3 - "$out" "$R" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
R = int(sys.argv[2])
one = [r for r in rows if r["replicas"] == 1]
many = [r for r in rows if r["replicas"] == R]
m1 = statistics.median(r["samples_per_s"] for r in one)
mR = statistics.median(r["samples_per_s"] for r in many)
pairs = [b["samples_per_s"] / a["samples_per_s"] for a, b in zip(one, many)]
print(f"{rows[0]['bench']}: batch {rows[0]['batch_per_replica']} per replica, {rows[0]['steps']} steps")
print(f"  1 x 1 thread : {m1:8.2f} samples/s (median of {len(one)})")
print(f"  {R} x 1 thread : {mR:8.2f} samples/s (median of {len(many)}); speed-up {mR / m1:.2f}x "
      f"(per round: {', '.join(f'{p:.2f}' for p in pairs)})")
print(f"  communication share on {R}: {statistics.median(r['comm_share'] for r in many):.3f} of the step "
      f"(gradients {statistics.median(r['gradient_share'] for r in many):.3f}), "
      f"{many[0]['gradient_mb_per_step']:.2f} MB of gradients per step; load {', '.join(str(r['load']) for r in rows)}")
PY
