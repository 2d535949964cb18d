#!/usr/bin/env bash
# bench/pii-prompts.sh [BUILD]: how many prompts of the traffic a gateway routes the
# PII scanner flags, per type, with the labeller and with the rules. The prompt sets of
# $SY_SHARED (default ../shared) are written as text by bench/prompt-texts.mjs and
# scanned by `switchyard pii --flag-rate` (messages split at blank lines). A false
# PERSON there keeps a request on the edge under local_only; docs/pii.md reads the
# figures.
set -euo pipefail
B=${1:-build/rel}
cd "$(dirname "$0")/.."
SH=${SY_SHARED:-../shared}
if [ ! -d "$SH/data/routing" ]; then
  echo "bench/pii-prompts: $SH/data absent (set SY_SHARED): skipped"
  exit 0
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
SY_SHARED=$SH node bench/prompt-texts.mjs "$T" >/dev/null
printf '%-10s %9s | %-21s | %-21s\n' set messages "labeller PERSON/ADDR" "rules PERSON/ADDR"
for f in routing specbench banking77 clinc150; do
  for mode in lab rules; do
    args=(pii --names data/names --flag-rate "$T/$f.txt")
    [ $mode = rules ] && args+=(--rules)
    "$B/switchyard" "${args[@]}" > "$T/$f.$mode"
  done
  rate() { awk -v t="$2" '$1 == t { print $4; f = 1 } END { if (!f) print "0.00000" }' "$1"; }
  printf '%-10s %9s | %9s %11s | %9s %11s\n' "$f" "$(awk '/^messages:/ { print $2 }' "$T/$f.lab")" \
    "$(rate "$T/$f.lab" PERSON)" "$(rate "$T/$f.lab" STREET_ADDRESS)" \
    "$(rate "$T/$f.rules" PERSON)" "$(rate "$T/$f.rules" STREET_ADDRESS)"
done
