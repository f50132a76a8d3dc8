#!/usr/bin/env bash
# Builds kerascpp's libFuzzer targets (tests/fuzz/, clang with ASan + UBSan) and runs them.
#
#   tools/fuzz.sh [SECONDS]       build, replay every seed corpus, then fuzz each target SECONDS (default 60)
#   tools/fuzz.sh --runs          build, replay, then fuzz each target a fixed number of inputs from a fixed
#                                 seed and an empty work corpus (what CI does: the same findings on every
#                                 run, so that a landing never depends on luck; FUZZ_SEED, default 1)
#   tools/fuzz.sh --replay        build and replay the seed corpora only (what CI does first)
#   tools/fuzz.sh --make-corpus   (re)write the seed corpora tests/fuzz/corpus/ (small files, kept in git)
#
# Environment: FUZZ_TARGETS="npy image" (default: all), FUZZ_DIR (build folder, default build-fuzz),
# FUZZ_PARALLEL (targets fuzzed at the same time, default 1).
# A finding is a crash, a sanitizer report, an uncaught non-keras exception, an input that runs over
# 10 s, or a peak RSS over 2 GiB: libFuzzer stops, saves the input in $FUZZ_DIR/artifacts/<target>/
# and this script exits non-zero. Fix it, then copy the input into tests/fuzz/corpus/<target>/ as
# regress_<what>.<ext> so that every later replay checks it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${FUZZ_DIR:-$ROOT/build-fuzz}
ALL_TARGETS="model_json weights npy image layer_config"
TARGETS=${FUZZ_TARGETS:-$ALL_TARGETS}
PAR=${FUZZ_PARALLEL:-1}
MODE=fuzz
SECONDS_PER_TARGET=60
case "${1:-}" in
  --replay) MODE=replay ;;
  --make-corpus) MODE=corpus ;;
  --runs) MODE=runs ;;
  "") ;;
  *) SECONDS_PER_TARGET=$1 ;;
esac

CXX=${FUZZ_CXX:-clang++}
command -v "$CXX" >/dev/null || { echo "fuzz.sh: $CXX not found (tools/deps.sh clang libclang-rt-14-dev)"; exit 1; }
COMMON=(-std=c++20 -g -O1 -fno-omit-frame-pointer -Wno-unknown-pragmas -I"$ROOT/include" -isystem /usr/include/eigen3 -isystem /usr/include/stb)
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=all)
mkdir -p "$OUT"

build() {  # build TARGET (only when a header or the source changed)
  local t=$1 bin=$OUT/fuzz_$t
  local newest
  newest=$(find "$ROOT/include" "$ROOT/tests/fuzz" -newer "$bin" \( -name '*.hpp' -o -name '*.cpp' \) 2>/dev/null | head -1 || true)
  if [ -x "$bin" ] && [ -z "$newest" ]; then return; fi
  echo "building fuzz_$t"
  "$CXX" "${COMMON[@]}" "${SAN[@]}" -fsanitize=fuzzer "$ROOT/tests/fuzz/fuzz_$t.cpp" -o "$bin.tmp" && mv "$bin.tmp" "$bin"
}

if [ "$MODE" = corpus ]; then
  "$CXX" "${COMMON[@]}" -O1 "$ROOT/tests/fuzz/make_corpus.cpp" -o "$OUT/make_corpus"
  # (files are overwritten, not removed: regressions found by fuzzing are kept)
  "$OUT/make_corpus" "$ROOT/tests/fuzz/corpus"
  exit 0
fi

dict_of() {
  case $1 in
    model_json|layer_config) echo "$ROOT/tests/fuzz/dict/json.dict" ;;
    npy) echo "$ROOT/tests/fuzz/dict/npy.dict" ;;
    image) echo "$ROOT/tests/fuzz/dict/image.dict" ;;
    *) echo "" ;;
  esac
}

# Build (two compilers at a time at most: the machine is shared).
pids=()
for t in $TARGETS; do
  build "$t" & pids+=($!)
  if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done
for t in $TARGETS; do [ -x "$OUT/fuzz_$t" ] || { echo "fuzz.sh: fuzz_$t failed to build"; exit 1; }; done

FLAGS=(-rss_limit_mb=2048 -timeout=10 -malloc_limit_mb=2048 -print_final_stats=1)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fail=0

# Replay: every seed and regression input once, with every target.
for t in $TARGETS; do
  mkdir -p "$OUT/artifacts/$t"
  echo "replay fuzz_$t: $(ls "$ROOT/tests/fuzz/corpus/$t" | wc -l) inputs"
  # (files, not the folder: each runs whole, however long, once)
  if ! "$OUT/fuzz_$t" "${FLAGS[@]}" -artifact_prefix="$OUT/artifacts/$t/" "$ROOT/tests/fuzz/corpus/$t"/* >"$OUT/replay_$t.log" 2>&1; then
    echo "FINDING: fuzz_$t fails on its corpus (log: $OUT/replay_$t.log)"; tail -40 "$OUT/replay_$t.log"; fail=1
  fi
done
[ "$MODE" = replay ] && exit $fail
[ $fail -ne 0 ] && exit $fail

run_one() {
  local t=$1 dict
  dict=$(dict_of "$t")
  mkdir -p "$OUT/corpus/$t" "$OUT/artifacts/$t"
  # -max_len 64 KiB: the 600 KB deep-nesting regression is replayed whole above, but mutating
  # inputs that large would slow the search 100-fold.
  local budget=(-max_total_time="$SECONDS_PER_TARGET")
  if [ "$MODE" = runs ]; then
    rm -rf "$OUT/corpus/$t" && mkdir -p "$OUT/corpus/$t"
    budget=(-runs="$(runs_of "$t")" -seed="${FUZZ_SEED:-1}")
  fi
  "$OUT/fuzz_$t" "${FLAGS[@]}" -max_len=65536 ${dict:+-dict="$dict"} "${budget[@]}" -artifact_prefix="$OUT/artifacts/$t/" \
    "$OUT/corpus/$t" "$ROOT/tests/fuzz/corpus/$t" >"$OUT/fuzz_$t.log" 2>&1
}
runs_of() {  # inputs per target in --runs mode: about 30 s each on a 2-core CI machine (2026-12-01)
  case $1 in
    npy|layer_config) echo 200000 ;;
    *) echo 8000 ;;
  esac
}
pids=(); names=()
for t in $TARGETS; do
  if [ "$MODE" = runs ]; then echo "fuzzing fuzz_$t: $(runs_of "$t") inputs from seed ${FUZZ_SEED:-1}"; else echo "fuzzing fuzz_$t for ${SECONDS_PER_TARGET}s"; fi
  run_one "$t" & pids+=($!); names+=("$t")
  if [ ${#pids[@]} -ge "$PAR" ]; then
    if ! wait "${pids[0]}"; then echo "FINDING: fuzz_${names[0]} (log: $OUT/fuzz_${names[0]}.log)"; tail -40 "$OUT/fuzz_${names[0]}.log"; fail=1; fi
    pids=("${pids[@]:1}"); names=("${names[@]:1}")
  fi
done
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then echo "FINDING: fuzz_${names[$i]} (log: $OUT/fuzz_${names[$i]}.log)"; tail -40 "$OUT/fuzz_${names[$i]}.log"; fail=1; fi
done
for t in $TARGETS; do
  echo "fuzz_$t: $(grep -E 'stat::number_of_executed_units' "$OUT/fuzz_$t.log" | awk '{print $2}') executions, $(grep -E '^#[0-9]+.*(cov|DONE)' "$OUT/fuzz_$t.log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+')"
done
exit $fail
