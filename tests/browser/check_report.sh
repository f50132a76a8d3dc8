#!/bin/sh
# Loads a flowers report in headless Chromium and checks the rendered DOM: the two training curves,
# the confusion matrix and the photo grid (with its embedded images and a wrong prediction in red).
# Also writes a screenshot (report.png). Exit 77 (ctest: skipped) when Chromium is not installed
# (install it with: tools/deps.sh chromium).
# Usage: check_report.sh REPORT_GENERATOR OUT_DIR     (the generator is run as: GENERATOR OUT_DIR/report.html)
#        check_report.sh --html REPORT.html OUT_DIR   (check an existing report, e.g. runs/flowers/report.html)
set -eu
if [ "$1" = "--html" ]; then html=$(realpath "$2"); out=$3; mkdir -p "$out"
else gen=$1; out=$2; mkdir -p "$out"; html=$(realpath "$out")/report.html; "$gen" "$html" >/dev/null; fi

browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then echo "SKIP: no chromium (tools/deps.sh chromium installs it)"; exit 77; fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags="--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update --disable-sync --no-first-run --user-data-dir=$profile"
# shellcheck disable=SC2086
timeout 120 "$browser" $flags --dump-dom "file://$html" > "$out/dom.html" 2> "$out/chromium.log" || {
  echo "FAIL: chromium --dump-dom failed"; cat "$out/chromium.log"; exit 1; }
# shellcheck disable=SC2086
timeout 120 "$browser" $flags --hide-scrollbars --window-size=1200,2000 --screenshot="$out/report.png" "file://$html" \
  >> "$out/chromium.log" 2>&1 || { echo "FAIL: chromium --screenshot failed"; cat "$out/chromium.log"; exit 1; }

fail=0
need() {  # need MIN PATTERN DESCRIPTION: at least MIN matches of PATTERN in the rendered DOM
  n=$(grep -o -E "$2" "$out/dom.html" | wc -l)
  if [ "$n" -lt "$1" ]; then echo "FAIL: $3 (found $n, want >= $1)"; fail=1; else echo "ok: $3 ($n)"; fi
}
need 1 'id="curves"' "curves container"
need 1 '<svg id="loss-chart"' "loss chart (SVG)"
need 1 '<svg id="accuracy-chart"' "accuracy chart (SVG)"
need 4 '<polyline class="series (train|val)"' "train and validation series in both charts"
need 1 '<table id="confusion-matrix"' "confusion matrix table"
need 4 'class="cm-cell' "confusion matrix cells"
need 1 'id="photo-grid"' "photo grid"
need 1 '<figure class="photo (correct|wrong)"' "photos in the grid"
need 1 '<figure class="photo wrong"' "a wrong prediction (shown in red)"
need 1 'src="data:image/jpeg;base64,/9j/' "embedded JPEG photos"
if [ ! -s "$out/report.png" ]; then echo "FAIL: no screenshot"; fail=1; else echo "ok: screenshot $out/report.png"; fi
# The PNG must be a real image of the requested size (IHDR width/height: 1200 x 2000).
if [ -s "$out/report.png" ]; then
  dims=$(od -An -tu1 -j16 -N8 "$out/report.png" | tr -s ' ' | sed 's/^ //')
  [ "$dims" = "0 0 4 176 0 0 7 208" ] && echo "ok: screenshot is 1200x2000" || { echo "FAIL: screenshot size bytes: $dims"; fail=1; }
fi
exit $fail
