#!/bin/sh
# The MPI tests (tests/mpi/test_mpi.cpp) under mpirun on this machine (loopback, shared memory).
# usage: run.sh MPIEXEC TEST_MPI NP MODE WORK_DIR
#   equivalence | sharding | callbacks: one mpirun, which must succeed; callbacks also checks that
#     the progress bar printed once (rank 0 only)
#   faults: rank 1 killed by SIGKILL in epoch 3 -> mpirun ends (non-zero) within the time limit and
#     the last checkpoint (epoch 2) is loadable: resuming from it at initial_epoch 2 succeeds; then
#     rank 1 hangs in epoch 2 -> rank 0 times out with a clear error and the job ends.
set -u
mpiexec=$1; prog=$2; np=$3; mode=$4; work=$5
rm -rf "$work"; mkdir -p "$work"
# --oversubscribe: more ranks than cores; as root Open MPI also wants --allow-run-as-root.
flags="--oversubscribe -np $np"
[ "$(id -u)" -eq 0 ] && flags="$flags --allow-run-as-root"
# Loopback only; CMA single-copy is often not permitted in containers (ptrace), so plain copies.
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_btl_tcp_if_include=lo
export OMPI_MCA_rmaps_base_oversubscribe=1
fail() { echo "mpi $mode (np $np): $*" >&2; exit 1; }
run() {  # run LIMIT_SECONDS ARGS...: mpirun under a time limit; sets rc, out (stdout + stderr), secs and hung
  limit=$1; shift
  t0=$(date +%s)
  timeout -k 5 "$limit" "$mpiexec" $flags "$prog" "$@" > "$work/out.txt" 2>&1
  rc=$?
  secs=$(( $(date +%s) - t0 ))
  hung=0; [ $rc -eq 124 ] || [ $secs -ge "$limit" ] && hung=1
  out=$(cat "$work/out.txt")
  echo "$out"
}
case $mode in
equivalence|sharding)
  run 300 "$mode" "$work"; [ $rc -eq 0 ] || fail "exit code $rc" ;;
callbacks)
  run 300 callbacks "$work"; [ $rc -eq 0 ] || fail "exit code $rc"
  n=$(grep -c "^Epoch 1/20" "$work/out.txt")
  [ "$n" -eq 1 ] || fail "the progress bar printed 'Epoch 1/20' $n times (rank 0 only: once)" ;;
faults)
  run 120 dead "$work"
  [ $rc -ne 0 ] || fail "mpirun succeeded although rank 1 died"
  [ $hung -eq 0 ] || fail "mpirun hung after rank 1 died (killed by the time limit)"
  echo "faults: rank 1 died, mpirun ended in $secs s with exit code $rc"
  [ -f "$work/ckpt/model.json" ] || fail "no checkpoint left by the epochs before the fault"
  run 300 resume "$work"; [ $rc -eq 0 ] || fail "resuming from the last checkpoint failed (exit code $rc)"
  KERASCPP_MPI_TIMEOUT=4 run 120 hang "$work"
  [ $rc -ne 0 ] || fail "mpirun succeeded although rank 1 hung"
  [ $hung -eq 0 ] || fail "the job hung with rank 1 (killed by the time limit)"
  echo "$out" | grep -q "has not completed after 4 s: another replica has died or hangs" || fail "no clear timeout error"
  echo "faults: rank 1 hung, the job ended in $secs s with the timeout error" ;;
*) fail "unknown mode" ;;
esac
echo "mpi $mode (np $np): ok"
