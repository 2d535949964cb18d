#!/usr/bin/env bash
# `switchyard replay DATA.csv` says when its figures are in-sample: rows the
# committed need-of-cloud model was trained on (fingerprints in models/router.bin)
# give a warning on stderr and in_sample.warning in --json; prompts it never saw
# give neither.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN="$ROOT/${SY_BUILD:-build/asan}/switchyard"
SHARED="${SY_SHARED:-$ROOT/../shared}"
CSV="$SHARED/data/routing/routing_train.csv"
[ -x "$BIN" ] || { echo "1..0 # SKIP build $BIN first (make asan)"; exit 0; }
echo "1..3"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$ROOT"

# Fresh prompts with made-up scores: never trained on.
{
  echo "source,benchmark,subset,prompt,weak_model,weak_score,strong_model,strong_score,weak_cost,strong_cost"
  i=0
  for p in "Translate to French: the garden is full of roses" "Prove that 7 divides 8^n - 1 for all n" \
           "Write a haiku about a quiet harbour" "What is the tallest mountain in Africa?" \
           "Summarize the plot of The Odyssey" "hi, how are you doing?" \
           "Write a Go function that merges two sorted slices" "Classify this review: loved it"; do
    i=$((i + 1))
    echo "hand,hand,x,\"$p\",w,$((i % 2)),s,1,,"
  done
} > "$tmp/fresh.csv"
out=$("$BIN" replay --json "$tmp/fresh.csv" 2>"$tmp/err"); rc=$?
if [ $rc -eq 0 ] && ! grep -q "warning" "$tmp/err" &&
   printf '%s' "$out" | grep -q '"in_sample":{"warning":false,"model":"models/router.bin","rows":0,'; then
  echo "ok 1 - new prompts: no in-sample warning"
else
  echo "not ok 1 - new prompts: no in-sample warning (rc $rc)"
  { printf '%s\n' "$out"; cat "$tmp/err"; } | sed 's/^/# /'
fi

if [ ! -f "$CSV" ]; then
  echo "ok 2 - training rows warn # SKIP $CSV absent"
else
  # The first 40 rows of the training file (header + records; prompts may span
  # lines, so cut by records with the CSV-aware reader of python's stdlib).
  python3 - "$CSV" "$tmp/train40.csv" <<'PY'
import csv, sys
csv.field_size_limit(1 << 30)
r = csv.reader(open(sys.argv[1], newline=''))
w = csv.writer(open(sys.argv[2], 'w', newline=''))
for i, row in enumerate(r):
    if i > 40: break
    w.writerow(row)
PY
  out=$("$BIN" replay --json "$tmp/train40.csv" 2>"$tmp/err"); rc=$?
  if [ $rc -eq 0 ] && grep -q "warning: 40 of 40 rows (100.0%) are prompts the need-of-cloud model" "$tmp/err" &&
     printf '%s' "$out" | grep -q '"in_sample":{"warning":true,"model":"models/router.bin","rows":40,"share":1,'; then
    echo "ok 2 - training rows: warning on stderr and in --json"
  else
    echo "not ok 2 - training rows: warning on stderr and in --json (rc $rc)"
    { printf '%s\n' "$out"; cat "$tmp/err"; } | sed 's/^/# /'
  fi
fi

"$BIN" replay --json --scores "$tmp/fresh.csv" >/dev/null 2>&1; rc=$?
if [ $rc -eq 2 ]; then echo "ok 3 - --json with --scores is refused"; else echo "not ok 3 - --json with --scores is refused (rc $rc)"; fi
