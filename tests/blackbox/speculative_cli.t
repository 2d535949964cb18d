#!/usr/bin/env bash
# The command line of speculative decoding, distillation and pruning on stories260K:
# refused pairs exit 1 with a message naming the problem, greedy output is reported
# identical to the target's, a few-step student and a pruned model load and draft.
set -u
B=${SY_BUILD:-build/asan}
S=$B/switchyard
SH=${SY_SHARED:-../shared}
M=$SH/data/models/llama2c
if [ ! -r "$M/stories260K.bin" ]; then echo "1..0 # SKIP $M/stories260K.bin is absent (../shared not here)"; exit 0; fi
if [ ! -x "$S" ]; then echo "1..0 # SKIP build first ($S)"; exit 0; fi
T=$(mktemp -d /tmp/sy-spec-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT
n=0 fails=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi; }
has() { grep -q -- "$1" "$2"; echo $?; }

echo "1..12"
$S convert "$M/stories260K.bin" --tokenizer "$M/tok512.bin" "$T/t.gguf" >/dev/null 2>&1
$S quantize "$T/t.gguf" "$T/q4.gguf" --type q4_0 >/dev/null 2>&1
ok $? "target and its q4_0 copy written"

A=$SH/data/models/aidreams260K
$S generate -m "$T/t.gguf" --draft "$A/aidreams260K.bin" --draft-tokenizer "$A/tok512_aidreams.bin" -p hi -n 4 >/dev/null 2>"$T/e1"
rc=$?
ok $(( rc == 1 ? $(has "does not share the target's vocabulary" "$T/e1") : 1 )) "another vocabulary: exit 1, says so"

$S generate -m "$T/q4.gguf" --draft "$T/t.gguf" -p hi -n 4 >/dev/null 2>"$T/e2"
rc=$?
ok $(( rc == 1 ? $(has "larger than the target" "$T/e2") : 1 )) "a draft larger than the target: exit 1, says so"

$S generate -m "$T/t.gguf" --draft "$T/q4.gguf" --draft-max 0 -p hi >/dev/null 2>"$T/e3"
rc=$?
ok $(( rc == 2 ? $(has "draft-max" "$T/e3") : 1 )) "--draft-max 0 refused"

$S generate -m "$T/t.gguf" --draft "$T/q4.gguf" --temp 0 -p "Once upon a time" -n 40 >"$T/o4" 2>"$T/e4"
ok $? "q4_0 draft generates"
ok $(has "greedy output identical to the target alone" "$T/e4") "greedy output identical"
ok $(has "^acceptance [01]\.[0-9][0-9]$" "$T/e4") "acceptance printed"

$S distill -m "$T/t.gguf" -o "$T/st.gguf" --dim 16 --layers 1 --heads 2 --steps 3 --batch 1 --seq 16 -q 2>"$T/e5"
ok $? "distill writes a student"
$S generate -m "$T/t.gguf" --draft "$T/st.gguf" --temp 0 -p "Once upon a time" -n 30 >/dev/null 2>"$T/e6"
ok $(has "greedy output identical to the target alone" "$T/e6") "the student drafts, output identical"

$S distill -m "$T/t.gguf" -o "$T/x.gguf" --steps abc 2>"$T/e7"
rc=$?
ok $(( rc == 2 ? $(has "bad value 'abc'" "$T/e7") : 1 )) "distill: a bad number is an error"

$S prune -m "$T/t.gguf" -o "$T/p.gguf" --ffn 0.5 --heads 0.5 --calib-tokens 64 -q 2>"$T/e8"
ok $? "prune writes a model"
$S generate -m "$T/t.gguf" --draft "$T/p.gguf" --temp 0 -p "Once upon a time" -n 30 >/dev/null 2>"$T/e9"
ok $(has "greedy output identical to the target alone" "$T/e9") "the pruned model drafts, output identical"
exit $((fails > 0))
