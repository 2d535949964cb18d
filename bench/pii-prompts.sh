#!/usr/bin/env bash
# bench/pii-prompts.sh [BUILD]: how many prompts of the traffic a gateway routes the
# PII scanner flags, per type, with the labeller and with the rules: `switchyard pii
# --flag-rate --prompts SET` over each prompt set of $SY_SHARED/data (default
# ../shared), a prompt one message. A false PERSON there keeps a request on the edge
# under local_only; docs/pii.md reads the figures. Then the throughput of both on the
# same prompts, one thread, --seconds passes of SECONDS_PER_RUN (default 1): MB/s, us
# per prompt and the labeller's MB/s as a fraction of the rules' in the same run.
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
# speed OUTPUT: MB/s and us per prompt of the --seconds passes
speed() { awk '/^throughput:/ { printf "%s %s", $2, $4 }' <<<"$1"; }
S=${SECONDS_PER_RUN:-1}
printf '%-10s %9s | %-21s | %-21s | %-17s | %-17s | %s\n' set prompts "labeller PERSON/ADDR" \
  "rules PERSON/ADDR" "labeller MB/s, us" "rules MB/s, us" "labeller/rules"
for set in routing specbench banking77 clinc150; do
  lab=$("$B/switchyard" pii --names data/names --flag-rate --seconds "$S" --prompts "$set")
  rules=$("$B/switchyard" pii --names data/names --rules --flag-rate --seconds "$S" --prompts "$set")
  read -r lm lu <<<"$(speed "$lab")"
  read -r rm ru <<<"$(speed "$rules")"
  printf '%-10s %9s | %9s %11s | %9s %11s | %7.1f %9.2f | %7.1f %9.2f | %.2f\n' "$set" \
    "$(awk '/^messages:/ { print $2 }' <<<"$lab")" \
    "$(rate "$lab" PERSON)" "$(rate "$lab" STREET_ADDRESS)" \
    "$(rate "$rules" PERSON)" "$(rate "$rules" STREET_ADDRESS)" \
    "$lm" "$lu" "$rm" "$ru" "$(awk -v a="$lm" -v b="$rm" 'BEGIN { print a / b }')"
done
