#!/usr/bin/env bash
# Runs every test through prove: the cmocka suites (TAP) built under ASan+UBSan in
# $1/tests, then the black-box scripts in tests/blackbox (which start the real binary).
set -euo pipefail
B=${1:-build/asan}
export CMOCKA_MESSAGE_OUTPUT=TAP
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export SY_BUILD=$B
export SY_SHARED=${SY_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
files=()
for t in "$B"/tests/*; do [ -x "$t" ] && files+=("$t"); done
for t in tests/blackbox/*.t; do [ -x "$t" ] && files+=("$t"); done
prove -j2 --exec tests/tap-run.sh "${files[@]}"
