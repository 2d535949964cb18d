#!/usr/bin/env bash
# overhead.sh — what switchyard adds on the way to an upstream, side by side with
# nginx as a plain keep-alive reverse proxy, all in one run.
#
#   bench/overhead.sh [BUILD_DIR]        (default build/rel; needs wrk and nginx)
#
# One fast stand-in upstream (tests/tools/upstream) answers everything. In front of
# it, each on the same single core (PROXY_CPU), run in turn:
#   switchyard  the real gateway, routing on (`switchyard serve`, one worker)
#   netlayer    switchyard's network layer alone (bench/overhead_proxy: server +
#               upstream client, no routing), to split the overhead
#   nginx       Debian's nginx, one worker, keep-alive upstream pool, no access log
# wrk (POST, bench/overhead.lua) and the upstream share the other core (LOAD_CPU).
# For concurrency 1, 16 and 64, non-streamed and streamed, each cell runs DURATION
# seconds and prints requests/s, p50/p99 latency, the latency added over calling the
# upstream directly, and proxy CPU time per request (from /proc/PID/stat
# utime+stime), with ratios against nginx. switchyard-auth is the gateway with API
# keys, rate limits and a budget on, switchyard-key the gateway with a key and nothing
# else (compare their cpu_us/req with switchyard's). Env:
# DURATION (5), CONNS ("1 16 64"), MODES ("plain stream"), PROXY_CPU (0), LOAD_CPU (1),
# TARGETS, BASELINE (a build directory whose switchyard runs too, as "baseline"),
# ROUNDS (1; more repeats every cell with the targets in rotated order and prints the
# median CPU per request of each target and its difference to switchyard's),
# BENCH_MODEL (the body's model, "bench"; "auto" for a BASELINE without aliases).
set -euo pipefail

B=${1:-build/rel}
DUR=${DURATION:-5}
CONNS=${CONNS:-"1 16 64"}
MODES=${MODES:-"plain stream"}
ROUNDS=${ROUNDS:-1}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
TICK=$(getconf CLK_TCK)

for tool in wrk nginx taskset; do
    command -v "$tool" >/dev/null || { echo "overhead: $tool is not installed" >&2; exit 1; }
done
[ -x "$B/tools/upstream" ] || { echo "overhead: $B/tools/upstream missing (make MODE=rel)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
    sleep 0.2
    rm -rf "$tmp"
}
trap cleanup EXIT

wait_file() { # file pid what
    for _ in $(seq 1 100); do
        [ -s "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || { echo "overhead: $3 exited early" >&2; return 1; }
        sleep 0.05
    done
    echo "overhead: $3 did not start" >&2
    return 1
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# CPU ticks (user+system) of a process and its children's threads, summed.
ticks() {
    local sum=0 p
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] || continue
        local rest
        rest=$(sed 's/^.*) //' "/proc/$p/stat")
        set -- $rest
        sum=$((sum + ${12} + ${13}))
    done
    echo "$sum"
}

# ---------------------------------------------------------------- start everything

taskset -c "$LOAD_CPU" "$B/tools/upstream" --port 0 --port-file "$tmp/up.port" --name bench \
    --chunks 8 --quiet --no-record &
pids+=($!)
wait_file "$tmp/up.port" "$!" "stand-in upstream"
UP=$(cat "$tmp/up.port")

declare -A PORT CPUPIDS
TARGETS=${TARGETS:-"switchyard switchyard-key switchyard-auth netlayer nginx"}
active=()

if [[ " $TARGETS " == *" switchyard "* ]]; then
    if [ -x "$B/switchyard" ]; then
        cat >"$tmp/switchyard.yaml" <<EOF
listen: 127.0.0.1:0
workers: 1
store: sqlite:$tmp/ledger.db
log_level: warn
tiers:
  cloud:
    kind: openai
    base_url: http://127.0.0.1:$UP/v1
    model: bench
    privacy: external
    max_concurrency: 4096
    max_queue: 4096
    cost: { usd_per_mtok_in: 0.15, usd_per_mtok_out: 0.6 }
    timeout_ms: 30000
    ttft_timeout_ms: 10000
models: { bench: auto }
routing:
  pii: { action: local_only, min_score: 0.5 }
  token_budget: { cloud_above: 1024 }
  policy: rules
EOF
        cfg=${SWITCHYARD_BENCH_CONFIG:-$tmp/switchyard.yaml}
        taskset -c "$PROXY_CPU" "$B/switchyard" serve -c "$cfg" --listen 127.0.0.1:0 \
            --port-file "$tmp/sy.port" 2>"$tmp/switchyard.log" &
        p=$!
        pids+=($p)
        if wait_file "$tmp/sy.port" "$p" "switchyard"; then
            PORT[switchyard]=$(cat "$tmp/sy.port")
            CPUPIDS[switchyard]=$p
            active+=(switchyard)
        else
            tail -5 "$tmp/switchyard.log" >&2
        fi
    else
        echo "overhead: $B/switchyard not built; skipping it" >&2
    fi
fi

# switchyard-key: the same gateway with API keys on and a key without limits or
# budget (the price of authentication alone). switchyard-auth: a key whose limits and
# budget are all on (rpm, tpm, a budget far from exhausted), to price auth + rate
# limits + budget reservations. With either, every wrk request carries the key
# (BENCH_KEY), to every target.
if [[ " $TARGETS " == *" switchyard-key "* || " $TARGETS " == *" switchyard-auth "* ]]; then
    export BENCH_KEY=sk-bench-overhead SY_BENCH_KEY=sk-bench-overhead SY_BENCH_ADMIN=admin-bench
fi
if [[ " $TARGETS " == *" switchyard-key "* ]] && [ -x "$B/switchyard" ]; then
    sed -e "s#ledger.db#ledger-key.db#" "$tmp/switchyard.yaml" >"$tmp/switchyard-key.yaml"
    cat >>"$tmp/switchyard-key.yaml" <<EOF
auth:
  admin_key_env: SY_BENCH_ADMIN
  keys:
    - { name: bench, key_env: SY_BENCH_KEY, team: bench, tenant: bench }
EOF
    taskset -c "$PROXY_CPU" "$B/switchyard" serve -c "$tmp/switchyard-key.yaml" \
        --listen 127.0.0.1:0 --port-file "$tmp/syk.port" 2>"$tmp/switchyard-key.log" &
    p=$!
    pids+=($p)
    if wait_file "$tmp/syk.port" "$p" "switchyard-key"; then
        PORT[switchyard-key]=$(cat "$tmp/syk.port")
        CPUPIDS[switchyard-key]=$p
        active+=(switchyard-key)
    else
        tail -5 "$tmp/switchyard-key.log" >&2
    fi
fi
if [[ " $TARGETS " == *" switchyard-auth "* ]] && [ -x "$B/switchyard" ]; then
    sed -e "s#ledger.db#ledger-auth.db#" "$tmp/switchyard.yaml" >"$tmp/switchyard-auth.yaml"
    cat >>"$tmp/switchyard-auth.yaml" <<EOF
auth:
  admin_key_env: SY_BENCH_ADMIN
  keys:
    - { name: bench, key_env: SY_BENCH_KEY, team: bench, tenant: bench,
        budget_usd: 1000000, budget_period: month, rpm: 100000000, tpm: 4000000000 }
EOF
    taskset -c "$PROXY_CPU" "$B/switchyard" serve -c "$tmp/switchyard-auth.yaml" \
        --listen 127.0.0.1:0 --port-file "$tmp/sya.port" 2>"$tmp/switchyard-auth.log" &
    p=$!
    pids+=($p)
    if wait_file "$tmp/sya.port" "$p" "switchyard-auth"; then
        PORT[switchyard-auth]=$(cat "$tmp/sya.port")
        CPUPIDS[switchyard-auth]=$p
        active+=(switchyard-auth)
    else
        tail -5 "$tmp/switchyard-auth.log" >&2
    fi
fi

# BASELINE=DIR: a second switchyard built from another tree (DIR holds its binary),
# same config, as target "baseline": a change measured against its parent in one run.
if [ -n "${BASELINE:-}" ] && [ -x "$BASELINE/switchyard" ] && [ -n "${PORT[switchyard]:-}" ]; then
    # A baseline older than model aliases refuses the models: key; with
    # BENCH_MODEL=auto neither needs it.
    # Its own ledger file: an older build may not open a newer schema.
    sed -e "s#ledger.db#ledger-base.db#" "${SWITCHYARD_BENCH_CONFIG:-$tmp/switchyard.yaml}" |
        if [ "${BENCH_MODEL:-}" = auto ]; then grep -v '^models:'; else cat; fi >"$tmp/baseline.yaml"
    taskset -c "$PROXY_CPU" "$BASELINE/switchyard" serve -c "$tmp/baseline.yaml" \
        --listen 127.0.0.1:0 --port-file "$tmp/base.port" 2>"$tmp/baseline.log" &
    p=$!
    pids+=($p)
    wait_file "$tmp/base.port" "$p" "baseline switchyard"
    PORT[baseline]=$(cat "$tmp/base.port")
    CPUPIDS[baseline]=$p
    active+=(baseline)
fi

if [[ " $TARGETS " == *" netlayer "* ]] && [ -x "$B/bench/overhead_proxy" ]; then
    taskset -c "$PROXY_CPU" "$B/bench/overhead_proxy" --port 0 --port-file "$tmp/np.port" \
        --upstream "http://127.0.0.1:$UP" &
    p=$!
    pids+=($p)
    wait_file "$tmp/np.port" "$p" "overhead_proxy"
    PORT[netlayer]=$(cat "$tmp/np.port")
    CPUPIDS[netlayer]=$p
    active+=(netlayer)
fi

if [[ " $TARGETS " == *" nginx "* ]]; then
    NP=$(free_port)
    mkdir -p "$tmp/logs"
    sed -e "s#@DIR@#$tmp#g" -e "s#@PORT@#$NP#g" -e "s#@UPSTREAM_PORT@#$UP#g" \
        "$HERE/overhead-nginx.conf.in" >"$tmp/nginx.conf"
    taskset -c "$PROXY_CPU" nginx -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log"
    for _ in $(seq 1 100); do [ -s "$tmp/nginx.pid" ] && break; sleep 0.05; done
    master=$(cat "$tmp/nginx.pid")
    sleep 0.2
    PORT[nginx]=$NP
    CPUPIDS[nginx]="$master $(ps -o pid= --ppid "$master" | tr '\n' ' ')"
    active+=(nginx)
fi

# ---------------------------------------------------------------- measure

# run PORT MODE CONNS SECONDS -> "requests seconds p50 p99 errors non2xx"
run_wrk() {
    local threads=1
    taskset -c "$LOAD_CPU" wrk -t"$threads" -c"$3" -d"$4"s --latency -s "$HERE/overhead.lua" \
        "http://127.0.0.1:$1/v1/chat/completions" -- "$2" | awk '/^RESULT/ {print $2,$3,$4,$5,$6,$7}'
}

printf '# overhead: %ss per cell; proxies on cpu %s, wrk + upstream on cpu %s\n' "$DUR" "$PROXY_CPU" "$LOAD_CPU"
printf '%-6s %4s %-11s %9s %8s %8s %8s %8s %10s %6s\n' \
    mode conc target rps p50_us p99_us +p50_us +p99_us cpu_us/req errors
for mode in $MODES; do
    for t in "${active[@]}"; do run_wrk "${PORT[$t]}" "$mode" 16 1 >/dev/null; done # warm pools
    for c in $CONNS; do
        read -r dn dsec dp50 dp99 derr dnon <<<"$(run_wrk "$UP" "$mode" "$c" "$DUR")"
        drps=$(awk -v n="$dn" -v s="$dsec" 'BEGIN{printf "%.0f", n/s}')
        printf '%-6s %4s %-11s %9s %8s %8s %8s %8s %10s %6s\n' \
            "$mode" "$c" direct "$drps" "$dp50" "$dp99" - - - "$((derr + dnon))"
        declare -A R=() C=() A50=() A99=() CS=()
        n_act=${#active[@]}
        for ((round = 0; round < ROUNDS; round++)); do
        # Each round starts one target later: on a loaded machine the order of the
        # cells matters (the second one measured was faster in every run).
        for ((k = 0; k < n_act; k++)); do
            t=${active[$(((k + round) % n_act))]}
            t0=$(ticks ${CPUPIDS[$t]})
            read -r n sec p50 p99 err non <<<"$(run_wrk "${PORT[$t]}" "$mode" "$c" "$DUR")"
            t1=$(ticks ${CPUPIDS[$t]})
            rps=$(awk -v n="$n" -v s="$sec" 'BEGIN{printf "%.0f", n/s}')
            cpu=$(awk -v d=$((t1 - t0)) -v hz="$TICK" -v n="$n" 'BEGIN{printf "%.1f", n ? d*1e6/hz/n : 0}')
            R[$t]=$rps
            C[$t]=$cpu
            CS[$t]="${CS[$t]:-} $cpu"
            A50[$t]=$((p50 - dp50))
            A99[$t]=$((p99 - dp99))
            printf '%-6s %4s %-11s %9s %8s %8s %8s %8s %10s %6s\n' \
                "$mode" "$c" "$t" "$rps" "$p50" "$p99" "${A50[$t]}" "${A99[$t]}" \
                "$cpu" "$((err + non))"
        done
        done
        if [ "$ROUNDS" -gt 1 ]; then
            # The median of the rounds, and each target against switchyard.
            for t in "${active[@]}"; do
                C[$t]=$(echo ${CS[$t]} | tr ' ' '\n' | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}')
            done
        fi
        for t in "${active[@]}"; do
            awk -v m="$mode" -v c="$c" -v t="$t" -v cp="${C[$t]}" -v cs="${C[switchyard]:-0}" -v all="${CS[$t]}" \
                'BEGIN{printf "%-6s %4s %-11s cpu_us/req median %.1f (rounds:%s)", m, c, t, cp, all;
                       if (cs > 0 && t != "switchyard") printf ", %+.1f%% vs switchyard", (cp / cs - 1) * 100;
                       printf "\n"}'
        done
        if [ -n "${R[nginx]:-}" ]; then
            for t in "${active[@]}"; do
                [ "$t" = nginx ] && continue
                awk -v m="$mode" -v c="$c" -v t="$t" -v r="${R[$t]}" -v rn="${R[nginx]}" \
                    -v cp="${C[$t]}" -v cn="${C[nginx]}" -v a="${A99[$t]}" -v an="${A99[nginx]}" \
                    'BEGIN{printf "%-6s %4s %-11s vs nginx: rps %.2fx, cpu/req %.2fx, added p99 %+d us\n", m, c, t, rn ? r/rn : 0, cn ? cp/cn : 0, a - an}'
            done
        fi
        unset R C A50 A99
    done
done
