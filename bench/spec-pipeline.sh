#!/usr/bin/env bash
# The compression pipeline on stories260K, measured: teacher -> distilled student ->
# pruned (with recovery) -> Q8_0 / Q4_0. For each model: file size, perplexity on
# TinyStories (in distribution) and Shakespeare (out of distribution), then
# bench/speculative with every model as a draft for the teacher (acceptance and
# tokens/s against the teacher alone in the same run).
#
#   bench/spec-pipeline.sh [BUILD_DIR]      (OUT=bench/out/pipeline CHUNKS=40 CTX=128)
#
# Models already in OUT are reused (the distillation takes minutes).
set -euo pipefail
B=${1:-build/rel}
S=$B/switchyard
SH=${SY_SHARED:-../shared}
M=$SH/data/models/llama2c
C=$SH/data/corpora
OUT=${OUT:-bench/out/pipeline}
CHUNKS=${CHUNKS:-40}
CTX=${CTX:-128} # the default student is trained on 128-token sequences
mkdir -p "$OUT"
[ -f "$OUT/teacher.gguf" ] || $S convert "$M/stories260K.bin" --tokenizer "$M/tok512.bin" "$OUT/teacher.gguf"
[ -f "$OUT/student.gguf" ] || $S distill -m "$OUT/teacher.gguf" -o "$OUT/student.gguf"
[ -f "$OUT/pruned.gguf" ] || $S prune -m "$OUT/student.gguf" -o "$OUT/pruned.gguf" \
    --ffn 0.33 --heads 0.25 --recover 150
[ -f "$OUT/pruned-q8_0.gguf" ] || $S quantize "$OUT/pruned.gguf" "$OUT/pruned-q8_0.gguf" --type q8_0
[ -f "$OUT/pruned-q4_0.gguf" ] || $S quantize "$OUT/pruned.gguf" "$OUT/pruned-q4_0.gguf" --type q4_0
echo
echo "| model | file bytes | ppl TinyStories | ppl Shakespeare |"
echo "|---|---|---|---|"
for m in teacher student pruned pruned-q8_0 pruned-q4_0; do
    f=$OUT/$m.gguf
    ts=$($S perplexity -m "$f" -f "$C/tinystories_val_subset.txt" --chunks "$CHUNKS" --ctx "$CTX" 2>/dev/null | awk 'END {print $(NF-1)}')
    sp=$($S perplexity -m "$f" -f "$C/tinyshakespeare_input.txt" --chunks "$CHUNKS" --ctx "$CTX" 2>/dev/null | awk 'END {print $(NF-1)}')
    echo "| $m | $(stat -c %s "$f") | $ts | $sp |"
done
echo
SY_SHARED=$SH "$B/bench/speculative" --k 4 --prompts 20 -n 128 --models /nonexistent \
    --drafts "$OUT/student.gguf,$OUT/pruned.gguf,$OUT/pruned-q8_0.gguf,$OUT/pruned-q4_0.gguf"
