#!/usr/bin/env bash
# make bench: every benchmark under bench/, each printing its own table with ratios
# against a baseline measured in the same run. Select with BENCH="route pii ..."
# (default: all). Figures on these 2-core machines are noisy: compare ratios
# within one run, not absolute numbers across runs.
set -uo pipefail
B=${1:-build/rel}
cd "$(dirname "$0")/.."
SEL=${BENCH:-"route pii pii-prompts pii-story-names pii-faker engine overhead grammar"}
rc=0
for b in $SEL; do
  echo "=== bench/$b ==="
  case $b in
    route) "$B/bench/route" --models models || rc=1 ;;
    pii) if [ -x bench/pii.sh ]; then bench/pii.sh "$B" || rc=1; else "$B/bench/pii" || rc=1; fi ;;
    pii-prompts) bench/pii-prompts.sh "$B" || rc=1 ;;
    pii-story-names) node bench/pii-story-names.mjs "$B" || rc=1 ;;
    pii-faker) node bench/pii-faker.mjs "$B" || rc=1 ;;
    engine) if [ -x bench/engine.sh ]; then bench/engine.sh "$B" || rc=1; else "$B/bench/engine" || rc=1; fi ;;
    overhead) bench/overhead.sh "$B" || rc=1 ;;
    speculative) "$B/bench/speculative" || rc=1 ;;
    grammar) "$B/bench/grammar" || rc=1 ;;
    starvation) node bench/starvation.mjs "$B" || rc=1 ;;
    otlp) "$B/bench/otlp" || rc=1 ;;
    local-path) node bench/local-path.mjs "$B" || rc=1 ;;
    *) echo "unknown benchmark '$b' (route, pii, pii-prompts, pii-story-names, pii-faker, engine, overhead, speculative, grammar, starvation, otlp, local-path)"; rc=1 ;;
  esac
done
exit $rc
