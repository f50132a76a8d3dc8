#!/bin/sh
# Scaling of data-parallel training on this machine: bench_distributed on 1 process x 1 thread and
# on R processes x 1 thread, alternately (ROUNDS times each, so that a busy machine weighs on both
# alike), then the median throughputs, their ratio and the communication share (docs/distributed.md).
# NICE="nice -n -15" (as root) runs them ahead of other work on a shared machine.
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
    # setsid: each process its own session, hence its own scheduling group (Linux autogroup),
    # as the single process is; else the R processes of one mpirun share one process's CPU share
    ${NICE:-} mpirun $flags --bind-to none -np "$np" setsid -w "$build/bench/bench_distributed" "$net" "$b" "$steps" | tee -a "$out"
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
      f"{many[0]['gradient_mb_per_step']:.2f} MB of gradients per step")
e1 = statistics.median(r["samples_per_cpu_s"] for r in one)
eR = statistics.median(r["samples_per_cpu_s"] for r in many)
print(f"  per CPU-second: 1 x {e1:.2f}, {R} x {eR:.2f} samples: {eR / e1:.2f} (a spinning wait for a descheduled "
      f"replica counts as CPU: on a busy machine this falls with the load)")
print(f"  CPU time / wall (smallest replica): 1 process {', '.join(str(r['cpu_util']) for r in one)}; "
      f"{R} processes {', '.join(str(r['cpu_util']) for r in many)}; load {', '.join(str(r['load']) for r in rows)}")
PY
