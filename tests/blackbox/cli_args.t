#!/usr/bin/env bash
# Numeric option values of the subcommands: a value that is not wholly a number in
# its range exits 2 naming the option and the value, before any file is read (so no
# model is needed); atoi-style silent defaults ("abc" read as 0) are what this catches.
set -u
B=${SY_BUILD:-build/asan}
S=$B/switchyard
if [ ! -x "$S" ]; then echo "1..0 # SKIP build first ($S)"; exit 0; fi
T=$(mktemp -d /tmp/sy-cli-args-XXXXXX)
trap 'rm -rf "$T"' EXIT
n=0
cases=(
  "generate|-n|abc|generate -m none.gguf -p hi -n abc"
  "generate|--temp=1.5x|1.5x|generate -m none.gguf --temp=1.5x"
  "generate|--seed|-1|generate -m none.gguf --seed -1"
  "generate|--top-p|2|generate -m none.gguf --top-p 2"
  "generate|-t0|0|generate -m none.gguf -t0"
  "generate|--logprobs|999|generate -m none.gguf --logprobs 999"
  "generate|--draft-max|0|generate -m none.gguf --draft none --draft-max 0"
  "perplexity|--ctx|q|perplexity -m none -f none --ctx q"
  "perplexity|--threads|1.5|perplexity -m none -f none --threads 1.5"
  "distill|--steps|1e3|distill -m none -o none --steps 1e3"
  "distill|--lr|nan|distill -m none -o none --lr nan"
  "distill|--seed|x|distill -m none -o none --seed x"
  "prune|--ffn|2|prune -m none -o none --ffn 2"
  "prune|--recover|-5|prune -m none -o none --recover -5"
  "quantize|-t|x|quantize none none --type q4_0 -t x"
  "replay|--lambda|z|replay --lambda z none.csv"
  "replay|--seed|12ab|replay --seed 12ab none.csv"
  "calibrate|--quality|2|calibrate --quality 2 none.csv"
  "calibrate|--cloud-share|half|calibrate --cloud-share half none.csv"
  "pii|--generate|x|pii --generate x"
  "pii|--min-score|2|pii --min-score 2"
  "train pii|--epochs|abc|train pii --epochs abc"
  "train pii|--records|1e5|train pii --records 1e5"
  "train pii|--seed|-3|train pii --seed -3"
)
echo "1..${#cases[@]}"
for c in "${cases[@]}"; do
  IFS='|' read -r cmd opt val args <<<"$c"
  # shellcheck disable=SC2086
  $S $args </dev/null >"$T/out" 2>"$T/err"
  rc=$?
  n=$((n + 1))
  if [ "$rc" = 2 ] && grep -qF -- "bad value '$val' for $opt" "$T/err"; then
    echo "ok $n - $cmd $opt $val: exit 2 naming the option"
  else
    echo "not ok $n - $cmd $opt $val: exit $rc, stderr: $(head -c 200 "$T/err")"
  fi
done
