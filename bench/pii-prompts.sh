#!/usr/bin/env bash
# bench/pii-prompts.sh [BUILD]: how many prompts of the traffic a gateway routes the
# PII scanner flags, per type, with the labeller and with the rules: `switchyard pii
# --flag-rate --prompts SET` over each prompt set of $SY_SHARED/data (default
# ../shared), a prompt one message. A false PERSON there keeps a request on the edge
# under local_only; docs/pii.md reads the figures.
set -euo pipefail
B=${1:-build/rel}
cd "$(dirname "$0")/.."
export SY_SHARED=${SY_SHARED:-../shared}
if [ ! -d "$SY_SHARED/data/routing" ]; then
  echo "bench/pii-prompts: $SY_SHARED/data absent (set SY_SHARED): skipped"
  exit 0
fi
# rate OUTPUT TYPE: the rate --flag-rate prints for TYPE (0 when none is flagged)
rate() { awk -v t="$2" '$1 == t { print $4; f = 1 } END { if (!f) print "0.00000" }' <<<"$1"; }
printf '%-10s %9s | %-21s | %-21s\n' set prompts "labeller PERSON/ADDR" "rules PERSON/ADDR"
for set in routing specbench banking77 clinc150; do
  lab=$("$B/switchyard" pii --names data/names --flag-rate --prompts "$set")
  rules=$("$B/switchyard" pii --names data/names --rules --flag-rate --prompts "$set")
  printf '%-10s %9s | %9s %11s | %9s %11s\n' "$set" "$(awk '/^messages:/ { print $2 }' <<<"$lab")" \
    "$(rate "$lab" PERSON)" "$(rate "$lab" STREET_ADDRESS)" \
    "$(rate "$rules" PERSON)" "$(rate "$rules" STREET_ADDRESS)"
done
