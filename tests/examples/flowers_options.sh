#!/bin/sh
# usage: flowers_options.sh FLOWERS_EXE
# Bad options of examples/flowers_transfer_learning give one line on stderr naming the option and the
# value, exit code 2, and stop before any data is looked for; --help lists the options, exit code 0.
set -u
exe=$1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
# expect CODE NEEDLE ARGS...: the exit code, a text stderr must contain, the arguments.
expect() {
  code=$1; needle=$2; shift 2
  "$exe" --data "$tmp/no_photos" --weights "$tmp/no_weights" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ "$rc" -ne "$code" ]; then
    echo "FAIL: $* -> exit $rc, expected $code"; cat "$tmp/err"; fail=1; return
  fi
  if ! grep -qF -- "$needle" "$tmp/err"; then
    echo "FAIL: $* -> stderr lacks '$needle':"; cat "$tmp/err"; fail=1; return
  fi
  if [ "$code" -eq 2 ] && [ "$(wc -l <"$tmp/err")" -ne 1 ]; then
    echo "FAIL: $* -> the error is not one line:"; cat "$tmp/err"; fail=1; return
  fi
  echo "ok: $* -> exit $rc: $(head -c 200 "$tmp/err")"
}
expect 2 "--epochs: needs an integer, got 'abc'" --epochs abc
expect 2 "--epochs: needs an integer, got '5x'" --epochs 5x          # std::stoi read it as 5
expect 2 "--epochs: needs an integer >= 1, got 0" --epochs 0
expect 2 "--epochs" --epochs                                           # no value
expect 2 "--batch-size: needs an integer, got '6.5'" --batch-size 6.5
expect 2 "--image-size: needs an integer >= 32" --image-size 16
expect 2 "--lr: needs a number, got '1e-3x'" --lr 1e-3x
expect 2 "--dropout: needs a number in [0, 1), got 1" --dropout 1
expect 2 "--validation-split: needs a number in (0, 1)" --validation-split 0
expect 2 "--head: pool not in {gap,flatten}" --head pool               # an unknown choice
expect 2 "--seed: needs an integer, got 'x1'" --seed x1
expect 2 "--recipee" --recipee codelab                                 # an unknown option
expect 2 "--fine-tune-lr: needs a number, got 'nan'" --fine-tune-lr nan
expect 2 "--recipe: fancy not in {default,codelab}" --recipe fancy          # an unknown recipe
expect 2 "--fine-tune-warmup: needs an integer, got '1.5'" --fine-tune-warmup 1.5
# good options get past parsing: the run stops at the missing photos (a runtime error, exit 1)
expect 1 "no_photos" --epochs 3 --lr 1e-4 --head flatten --no-cache --fine-tune-warmup 40 --quiet
"$exe" --help >"$tmp/out" 2>"$tmp/err"; rc=$?
if [ "$rc" -ne 0 ] || ! grep -q -- "--epochs" "$tmp/out" || ! grep -q -- "--fine-tune-lr" "$tmp/out" || ! grep -q "192" "$tmp/out"; then
  echo "FAIL: --help -> exit $rc"; cat "$tmp/out" "$tmp/err"; fail=1
else
  echo "ok: --help lists the options with their defaults"
fi
exit $fail
