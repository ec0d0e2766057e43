#!/usr/bin/env bash
# Side-by-side benchmark: fenghuo against a real Alertmanager, both on
# loopback, driven by examples/loadgen.rs over POST /api/v2/alerts.
#
#   examples/bench/compare.sh            # defaults: RUNS=3, 10 s per run
#   RUNS=5 DURATION=20 examples/bench/compare.sh
#   SCENARIOS=delivery examples/bench/compare.sh     # only the delivery latency
#
# Every run starts both servers afresh (new temp data dirs), so runs are
# independent samples. Three scenarios (SCENARIOS, default all three):
#
# * throughput: per configuration (CONFIGS) the median alerts/s and p99 of
#   each system and the ratio fenghuo/AM;
# * memory: MEM_ALERTS active alerts (MEM_GROUP_SIZE per `group` label),
#   grouping by `group` with group_wait 1s and a webhook to a local sink;
# * delivery: from POST to webhook. Both systems run the same config
#   (group_by [group], group_wait 0s, group_interval 5m, repeat_interval 4h,
#   one webhook receiver: loadgen's own, on a fresh port per run) and loadgen
#   --mode delivery posts DELIVERY_ALERTS firing alerts in DELIVERY_GROUPS
#   groups (one POST per group), DELIVERY_ROUNDS rounds per run, for each
#   concurrency in DELIVERY_CONCURRENCY. Per run, the figures are loadgen's
#   medians over its rounds; the table shows the median over runs of p50,
#   p99 and max latency (POST sent to webhook received), time from the first
#   POST to the last delivery, webhooks/s, and the ratio fenghuo/AM. Fenghuo
#   runs with its default storage (synchronous = full): each decision is
#   durably logged before it is sent.
#
# Environment (defaults): SCENARIOS ("throughput memory delivery"), RUNS (3),
# DURATION (10), WARMUP (2), CONCURRENCY (32), ALERTS (10000, the resend
# universe), CONFIGS ("resend 1;resend 100;new 100"), MEM_ALERTS (100000),
# MEM_GROUP_SIZE (5), MEM_RESEND (5, seconds of re-sends after loading),
# SETTLE (10, seconds for Alertmanager to flush its groups), DELIVERY_ALERTS
# (1000), DELIVERY_GROUPS (50), DELIVERY_ROUNDS (5), DELIVERY_CONCURRENCY
# ("1 8"), DELIVERY_TIMEOUT (5, seconds from a round's first POST until it
# stops waiting for deliveries: an alert that missed its group's first flush
# waits group_interval, 5m, so waiting longer shows nothing more),
# DELIVERY_SETTLE (0.5, seconds a round listens on for duplicates), SYSTEMS
# ("fenghuo am", which systems run), AM_BIN
# (/usr/bin/prometheus-alertmanager), FENGHUO_BIN (a fenghuo binary to run
# instead of this tree's release build, e.g. an older build copied aside, to
# compare builds), MEM_DRAIN_WAIT (120, seconds the memory scenario waits
# after settling for every group's webhook, to time the outbox's drain),
# MEM_SERIES (0; e.g. 30: after the drain, anonymous RSS, its part in
# transparent huge pages and RSS every 5 s for that many seconds — the
# server inherits this environment, so MIMALLOC_* options can be compared),
# LOADGEN_THREADS (1), BENCH_TMPDIR (where the temp data dirs go; $TMPDIR or
# /tmp).
# All traffic stays on 127.0.0.1; everything started here is stopped on exit.
set -euo pipefail

SCENARIOS=${SCENARIOS:-throughput memory delivery}
SYSTEMS=${SYSTEMS:-fenghuo am}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONCURRENCY=${CONCURRENCY:-32}
ALERTS=${ALERTS:-10000}
MEM_ALERTS=${MEM_ALERTS:-100000}
MEM_GROUP_SIZE=${MEM_GROUP_SIZE:-5}
MEM_RESEND=${MEM_RESEND:-5}
SETTLE=${SETTLE:-10}
MEM_DRAIN_WAIT=${MEM_DRAIN_WAIT:-120}
MEM_SERIES=${MEM_SERIES:-0}
DELIVERY_ALERTS=${DELIVERY_ALERTS:-1000}
DELIVERY_GROUPS=${DELIVERY_GROUPS:-50}
DELIVERY_ROUNDS=${DELIVERY_ROUNDS:-5}
DELIVERY_CONCURRENCY=${DELIVERY_CONCURRENCY:-1 8}
DELIVERY_TIMEOUT=${DELIVERY_TIMEOUT:-5}
DELIVERY_SETTLE=${DELIVERY_SETTLE:-0.5}
AM_BIN=${AM_BIN:-/usr/bin/prometheus-alertmanager}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

for scenario in $SCENARIOS; do
    case $scenario in
    throughput | memory | delivery) ;;
    *) die "unknown scenario $scenario in SCENARIOS (throughput, memory, delivery)" ;;
    esac
done
for system in $SYSTEMS; do
    [[ $system == fenghuo || $system == am ]] || die "unknown system $system in SYSTEMS (fenghuo, am)"
done
# wants SCENARIO: whether SCENARIOS includes it.
wants() { [[ " $SCENARIOS " == *" $1 "* ]]; }

for tool in cargo curl jq python3; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
if [[ ! -x $AM_BIN ]]; then
    log "installing prometheus-alertmanager"
    apt-get install -y prometheus-alertmanager >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y prometheus-alertmanager >/dev/null; } ||
        die "cannot install prometheus-alertmanager"
    AM_BIN=/usr/bin/prometheus-alertmanager
fi

WORK=$(mktemp -d -p "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}" fenghuo-bench.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build ------------------------------------------------------------------
log "building fenghuo and loadgen (release)"
cargo build --release --quiet --bin fenghuo --example loadgen
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
FENGHUO=${FENGHUO_BIN:-$TARGET_DIR/release/fenghuo}
LOADGEN=$TARGET_DIR/release/examples/loadgen
[[ -x $FENGHUO && -x $LOADGEN ]] || die "release binaries missing under $TARGET_DIR"

# --- helpers ----------------------------------------------------------------
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

forget_pid() {
    local pid=$1 keep=() p
    for p in "${PIDS[@]}"; do
        [[ $p == "$pid" ]] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
}

# alive PID: running and not a zombie waiting to be reaped.
alive() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ $state != Z* ]]
}

# stop PID: SIGTERM, up to 10 s to exit, then SIGKILL.
stop() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}

# wait_ready URL SECONDS
wait_ready() {
    local url=$1 secs=$2 i
    for ((i = 0; i < secs * 10; i++)); do
        curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
hwm_mib() { awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
# RSS in two parts: the heap and other anonymous memory, and pages of
# mapped files (SQLite's readers map the database).
anon_mib() { awk '/^RssAnon:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
file_mib() { awk '/^RssFile:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
huge_mib() { awk '/^AnonHugePages:/ {printf "%.1f", $2 / 1024}' "/proc/$1/smaps_rollup"; }

# start_am CONFIG NAME: sets SRV_PID and SRV_ADDR.
start_am() {
    local config=$1 name=$2 port
    port=$(free_port)
    mkdir -p "$WORK/$name"
    "$AM_BIN" --config.file="$config" --storage.path="$WORK/$name" \
        --web.listen-address="127.0.0.1:$port" --cluster.listen-address= \
        --log.level=warn >"$WORK/$name.log" 2>&1 &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    SRV_ADDR=127.0.0.1:$port
    wait_ready "http://$SRV_ADDR/-/ready" 20 || {
        tail -20 "$WORK/$name.log" >&2
        die "alertmanager did not become ready"
    }
}

# start_fenghuo NAME [CONFIG]: sets SRV_PID and SRV_ADDR. Fenghuo takes an
# alertmanager.yml's route and receivers unchanged, so both systems can run
# on the same config.
start_fenghuo() {
    local name=$1 config=${2:-} i
    local args=(serve --listen 127.0.0.1:0 --data-dir "$WORK/$name")
    [[ -n $config ]] && args+=(--config "$config")
    mkdir -p "$WORK/$name"
    # The background job opens its output files when it gets to run; on a
    # busy machine the address loop below could read before that (and
    # pipefail with set -e ended the script).
    : >"$WORK/$name.out"
    "$FENGHUO" "${args[@]}" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    SRV_ADDR=
    for ((i = 0; i < 200; i++)); do
        SRV_ADDR=$(sed -n 's|^listening on http://||p' "$WORK/$name.out" | head -1)
        [[ -n $SRV_ADDR ]] && break
        alive "$SRV_PID" || break
        sleep 0.1
    done
    [[ -n $SRV_ADDR ]] || {
        tail -20 "$WORK/$name.log" >&2
        die "fenghuo did not start"
    }
    wait_ready "http://$SRV_ADDR/-/ready" 20 || die "fenghuo did not become ready"
}

# start SYSTEM NAME [AM_CONFIG]
start() {
    case $1 in
    fenghuo) start_fenghuo "$2" "${3:-}" ;;
    am) start_am "${3:-$AM_CONFIG}" "$2" ;;
    esac
}

# Lines a server wrote at warning level or above (fenghuo: WARN/ERROR; AM: level=warn/error).
server_warnings() {
    grep -cE ' (WARN|ERROR) |level=(warn|error)' "$WORK/$1.log" 2>/dev/null || true
}

# Both servers and the load generator share this machine's cores: anything
# else running (a build, a test suite) skews the figures. Warns when more than
# 15% of the CPU was busy over 2 s before the runs.
cpu_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $5 + $6}' /proc/stat; }
busy_check() {
    local t1 i1 t2 i2 busy
    read -r t1 i1 < <(cpu_ticks)
    sleep 2
    read -r t2 i2 < <(cpu_ticks)
    busy=$((100 - 100 * (i2 - i1) / (t2 - t1 > 0 ? t2 - t1 : 1)))
    if ((busy > 15)); then
        log "warning: the CPU is ${busy}% busy with other work $1; the figures will be skewed"
    fi
}

# --- configs ----------------------------------------------------------------
AM_CONFIG=$WORK/alertmanager.yml
cat >"$AM_CONFIG" <<'EOF'
route:
  receiver: blackhole
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: blackhole
EOF

RESULTS=$WORK/results.jsonl
MEM_RESULTS=$WORK/memory.jsonl
DELIVERY_RESULTS=$WORK/delivery.jsonl
: >"$RESULTS"
: >"$MEM_RESULTS"
: >"$DELIVERY_RESULTS"
groups=0

# --- throughput runs --------------------------------------------------------
busy_check "before the runs"
# CONFIGS="resend 1;new 100" picks configurations; empty skips to memory.
IFS=';' read -r -a CONFIGS <<<"${CONFIGS-resend 1;resend 100;new 100}"
wants throughput || CONFIGS=()
log "fenghuo: $FENGHUO; alertmanager: $("$AM_BIN" --version 2>&1 | head -1)"
((${#CONFIGS[@]} == 0)) ||
    log "$RUNS runs x ${#CONFIGS[@]} configurations x systems {$SYSTEMS}, ${DURATION}s each (+${WARMUP}s warmup)"
for cfg in "${CONFIGS[@]}"; do
    read -r mode batch <<<"$cfg"
    for ((run = 1; run <= RUNS; run++)); do
        for system in $SYSTEMS; do
            name="$system-$mode-b$batch-r$run"
            start "$system" "$name"
            out=$("$LOADGEN" --target "http://$SRV_ADDR" --mode "$mode" --batch "$batch" \
                --concurrency "$CONCURRENCY" --alerts "$ALERTS" --duration "$DURATION" \
                --warmup "$WARMUP" --threads "$LOADGEN_THREADS" --pid "$SRV_PID" \
                2>"$WORK/$name.loadgen.err") || {
                cat "$WORK/$name.loadgen.err" >&2
                die "loadgen failed for $name"
            }
            warnings=$(server_warnings "$name")
            stop "$SRV_PID"
            result=$(sed -n 's/^RESULT //p' <<<"$out")
            [[ -n $result ]] || die "no RESULT from loadgen for $name"
            jq -c --arg system "$system" --arg config "$mode b$batch c$CONCURRENCY" \
                --argjson run "$run" --argjson warnings "${warnings:-0}" \
                '. + {system: $system, config: $config, run: $run, server_warnings: $warnings}' \
                <<<"$result" >>"$RESULTS"
            jq -r '"  \(.system) \(.config) run \(.run): \(.alerts_per_s|floor) alerts/s, " +
                "p50 \(.latency_p50_ms) ms, p99 \(.latency_p99_ms) ms, max \(.latency_max_ms) ms, " +
                "errors \(.errors), peak RSS \(.server_peak_rss_mib) MiB"' \
                <<<"$(tail -1 "$RESULTS")" >&2
            if [[ -s $WORK/$name.loadgen.err ]]; then
                sed 's/^/    /' "$WORK/$name.loadgen.err" >&2
            fi
            if [[ ${warnings:-0} -gt 0 ]]; then
                log "  $name: server logged $warnings warning/error lines:"
                grep -E ' (WARN|ERROR) |level=(warn|error)' "$WORK/$name.log" | head -3 >&2
            fi
        done
    done
done

# --- memory scenario --------------------------------------------------------
memory_scenario() {
    SINK_PY=$WORK/sink.py
    cat >"$SINK_PY" <<'EOF'
import http.server, sys, time
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
        sys.stdout.write(f"post {time.time():.3f}\n"); sys.stdout.flush()
    def log_message(self, *args): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
EOF
    : >"$WORK/sink.out" # read below, maybe before the background job opens it
    python3 "$SINK_PY" >"$WORK/sink.out" 2>"$WORK/sink.err" &
    SINK_PID=$!
    PIDS+=("$SINK_PID")
    for ((i = 0; i < 50; i++)); do
        SINK_PORT=$(head -1 "$WORK/sink.out")
        [[ -n $SINK_PORT ]] && break
        sleep 0.1
    done
    [[ -n ${SINK_PORT:-} ]] || die "webhook sink did not start"

    AM_MEM_CONFIG=$WORK/alertmanager-mem.yml
    cat >"$AM_MEM_CONFIG" <<EOF
route:
  receiver: sink
  group_by: [group]
  group_wait: 1s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: sink
    webhook_configs:
      - url: http://127.0.0.1:$SINK_PORT/
        send_resolved: false
EOF

    groups=$(((MEM_ALERTS + MEM_GROUP_SIZE - 1) / MEM_GROUP_SIZE))
    log "memory: $MEM_ALERTS active alerts in $groups groups, ${MEM_RESEND}s of re-sends, ${SETTLE}s settle"
    for system in $SYSTEMS; do
        name="$system-memory"
        start "$system" "$name" "$AM_MEM_CONFIG"
        idle=$(rss_mib "$SRV_PID")
        posts_before=$(($(wc -l <"$WORK/sink.out") - 1))
        load_started=$(date +%s.%N)
        out=$("$LOADGEN" --target "http://$SRV_ADDR" --mode resend --alerts "$MEM_ALERTS" \
            --group-size "$MEM_GROUP_SIZE" --batch 100 --concurrency "$CONCURRENCY" \
            --warmup 0 --duration "$MEM_RESEND" --threads "$LOADGEN_THREADS" --pid "$SRV_PID" \
            2>"$WORK/$name.loadgen.err") || {
            cat "$WORK/$name.loadgen.err" >&2
            die "loadgen failed for $name"
        }
        loaded=$(rss_mib "$SRV_PID")
        sleep "$SETTLE"
        settled=$(rss_mib "$SRV_PID")
        settled_anon=$(anon_mib "$SRV_PID")
        settled_file=$(file_mib "$SRV_PID")
        peak=$(hwm_mib "$SRV_PID")
        posts=$(($(wc -l <"$WORK/sink.out") - 1 - posts_before))
        # The drain: from the start of the load until every group's first
        # webhook was posted (null: not all within MEM_DRAIN_WAIT more seconds).
        for ((i = 0; i < MEM_DRAIN_WAIT * 10; i++)); do
            (($(wc -l <"$WORK/sink.out") - 1 - posts_before >= groups)) && break
            sleep 0.1
        done
        drain=$(tail -n +"$((posts_before + 2))" "$WORK/sink.out" | awk -v start="$load_started" -v want="$groups" \
            '{n++; last=$2} END {if (n >= want) printf "%.1f", last - start; else print "null"}')
        all_posts=$(($(wc -l <"$WORK/sink.out") - 1 - posts_before))
        # "settled" above is one reading, which a snapshot being written can
        # land on; the series shows such a reading as a one-off spike.
        for ((s = 5; s <= MEM_SERIES; s += 5)); do
            sleep 5
            log "  $system, ${s}s after the drain: anon $(anon_mib "$SRV_PID") MiB," \
                "in huge pages $(huge_mib "$SRV_PID") MiB, rss $(rss_mib "$SRV_PID") MiB"
        done
        prime=$(sed -n 's/^prime: //p' <<<"$out")
        result=$(sed -n 's/^RESULT //p' <<<"$out")
        warnings=$(server_warnings "$name")
        stop "$SRV_PID"
        jq -c --arg system "$system" --arg idle "$idle" --arg loaded "$loaded" \
            --arg settled "$settled" --arg peak "$peak" --arg prime "$prime" \
            --arg settled_anon "$settled_anon" --arg settled_file "$settled_file" \
            --argjson posts "$posts" --argjson warnings "${warnings:-0}" \
            --argjson drain "$drain" --argjson all_posts "$all_posts" \
            '{system: $system, idle_rss_mib: ($idle|tonumber), loaded_rss_mib: ($loaded|tonumber),
              settled_rss_mib: ($settled|tonumber),
              settled_anon_mib: ($settled_anon|tonumber), settled_file_mib: ($settled_file|tonumber), peak_rss_mib: ($peak|tonumber), prime: $prime,
              resend_alerts_per_s: .alerts_per_s, resend_p99_ms: .latency_p99_ms, errors: .errors,
              webhook_posts: $posts, server_warnings: $warnings, drain_s: $drain,
              webhook_posts_after_drain_wait: $all_posts}' <<<"$result" >>"$MEM_RESULTS"
        jq -r '"  \(.system): idle \(.idle_rss_mib) MiB, loaded \(.loaded_rss_mib) MiB, " +
            "settled \(.settled_rss_mib) MiB (anon \(.settled_anon_mib), file \(.settled_file_mib)), peak \(.peak_rss_mib) MiB; load \(.prime); " +
            "webhook posts \(.webhook_posts) when settled, \(.webhook_posts_after_drain_wait) in all; " +
            "all \(.webhook_posts_after_drain_wait) posted \(.drain_s) s after the load started"' <<<"$(tail -1 "$MEM_RESULTS")" >&2
    done
    stop "$SINK_PID"
}
if wants memory; then
    memory_scenario
fi

# --- delivery scenario ------------------------------------------------------
# delivery_config FILE PORT: both systems route everything to loadgen's
# receiver on PORT, one aggregation group per `group` label, flushed at its
# first alert. Fenghuo takes this alertmanager.yml as its config unchanged.
delivery_config() {
    cat >"$1" <<EOF
route:
  receiver: loadgen
  group_by: [group]
  group_wait: 0s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: loadgen
    webhook_configs:
      - url: http://127.0.0.1:$2/
EOF
}

delivery_scenario() {
    local c run system name port config out result warnings
    log "delivery: $DELIVERY_ALERTS alerts in $DELIVERY_GROUPS groups, $DELIVERY_ROUNDS rounds x $RUNS runs" \
        "x concurrency {$DELIVERY_CONCURRENCY} x systems {$SYSTEMS}"
    for c in $DELIVERY_CONCURRENCY; do
        for ((run = 1; run <= RUNS; run++)); do
            for system in $SYSTEMS; do
                name="$system-delivery-c$c-r$run"
                port=$(free_port)
                config=$WORK/$name.yml
                delivery_config "$config" "$port"
                start "$system" "$name" "$config"
                out=$("$LOADGEN" --target "http://$SRV_ADDR" --mode delivery \
                    --listen "127.0.0.1:$port" --alerts "$DELIVERY_ALERTS" \
                    --groups "$DELIVERY_GROUPS" --rounds "$DELIVERY_ROUNDS" --concurrency "$c" \
                    --timeout "$DELIVERY_TIMEOUT" --settle "$DELIVERY_SETTLE" \
                    --threads "$LOADGEN_THREADS" --pid "$SRV_PID" \
                    2>"$WORK/$name.loadgen.err") || {
                    cat "$WORK/$name.loadgen.err" >&2
                    die "loadgen failed for $name"
                }
                warnings=$(server_warnings "$name")
                stop "$SRV_PID"
                result=$(sed -n 's/^RESULT //p' <<<"$out")
                [[ -n $result ]] || die "no RESULT from loadgen for $name"
                jq -c --arg system "$system" --arg config "delivery c$c" \
                    --argjson run "$run" --argjson warnings "${warnings:-0}" \
                    '. + {system: $system, config: $config, run: $run, server_warnings: $warnings}' \
                    <<<"$result" >>"$DELIVERY_RESULTS"
                sed -n 's/^round /    round /p' <<<"$out" >&2
                jq -r '"  \(.system) \(.config) run \(.run), median of \(.rounds) rounds: " +
                    "p50 \(.latency_p50_ms) ms, p99 \(.latency_p99_ms) ms, max \(.latency_max_ms) ms, " +
                    "last delivery \(.last_delivery_ms) ms, \(.deliveries_per_s) webhooks/s, " +
                    "\(.alerts_per_s|floor) alerts/s; delivered \(.delivered)/\(.expected), " +
                    "webhooks \(.webhook_requests), duplicates \(.duplicates), POST errors \(.post_errors)"' \
                    <<<"$(tail -1 "$DELIVERY_RESULTS")" >&2
                if [[ -s $WORK/$name.loadgen.err ]]; then
                    sed 's/^/    /' "$WORK/$name.loadgen.err" >&2
                fi
                if jq -e '.delivered < .expected or .duplicates > 0 or .post_errors > 0' \
                    <<<"$result" >/dev/null; then
                    log "  $name: warning: not every alert was delivered exactly once"
                fi
                if [[ ${warnings:-0} -gt 0 ]]; then
                    log "  $name: server logged $warnings warning/error lines:"
                    grep -E ' (WARN|ERROR) |level=(warn|error)' "$WORK/$name.log" | head -3 >&2
                fi
            done
        done
    done
}
if wants delivery; then
    delivery_scenario
fi

# --- report -----------------------------------------------------------------
python3 - "$RESULTS" "$MEM_RESULTS" "$MEM_ALERTS" "$groups" "$DELIVERY_RESULTS" <<'EOF'
import json, statistics, sys

rows = [json.loads(l) for l in open(sys.argv[1])]
mem = {r["system"]: r for r in map(json.loads, open(sys.argv[2]))}
mem_alerts, groups = int(sys.argv[3]), int(sys.argv[4])
delivery = [json.loads(l) for l in open(sys.argv[5])]

def med(system, config, key, rows=rows):
    vals = [r[key] for r in rows
            if r["system"] == system and r["config"] == config and r.get(key) is not None]
    return statistics.median(vals) if vals else float("nan")

def tot(system, config, key, rows=rows):
    return sum(r[key] for r in rows if r["system"] == system and r["config"] == config)

def ratio(a, b):
    return f"{a / b:.2f}x" if b else "n/a"

configs = list(dict.fromkeys(r["config"] for r in rows))
runs = max((r["run"] for r in rows), default=0)
if rows:
    print()
    print(f"### Throughput and latency (median of {runs} runs; ratio = fenghuo / Alertmanager)")
    print()
    print("| configuration | fenghuo alerts/s | AM alerts/s | ratio | fenghuo p99 ms | AM p99 ms "
          "| p99 ratio | fenghuo peak RSS MiB | AM peak RSS MiB | errors fh/AM |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for c in configs:
    fa, aa = med("fenghuo", c, "alerts_per_s"), med("am", c, "alerts_per_s")
    fp, ap = med("fenghuo", c, "latency_p99_ms"), med("am", c, "latency_p99_ms")
    fm, am = med("fenghuo", c, "server_peak_rss_mib"), med("am", c, "server_peak_rss_mib")
    fe, ae = tot("fenghuo", c, "errors"), tot("am", c, "errors")
    print(f"| {c} | {fa:,.0f} | {aa:,.0f} | {ratio(fa, aa)} | {fp:.2f} | {ap:.2f} "
          f"| {ratio(fp, ap)} | {fm:.1f} | {am:.1f} | {fe}/{ae} |")
if mem:
    print()
    print(f"### Memory: {mem_alerts:,} active alerts, {groups:,} groups (RSS in MiB)")
    print()
    print("| system | idle | after load | after settle | peak | load | re-send alerts/s | webhook posts when settled "
          "| all groups posted after s |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
for s, label in (("fenghuo", "fenghuo"), ("am", "Alertmanager")):
    m = mem.get(s)
    if m:
        print(f"| {label} | {m['idle_rss_mib']:.1f} | {m['loaded_rss_mib']:.1f} | {m['settled_rss_mib']:.1f} "
              f"| {m['peak_rss_mib']:.1f} | {m['prime']} | {m['resend_alerts_per_s']:,.0f} | {m['webhook_posts']} "
              f"| {m['drain_s'] if m.get('drain_s') is not None else 'not all'} |")
if "fenghuo" in mem and "am" in mem:
    print()
    print(f"settled RSS ratio fenghuo/AM: {ratio(mem['fenghuo']['settled_rss_mib'], mem['am']['settled_rss_mib'])}")

if delivery:
    d0 = delivery[0]
    runs = max(r["run"] for r in delivery)
    print()
    print(f"### Delivery: {d0['alerts']:,} firing alerts in {d0['groups']} groups to a local webhook, "
          f"group_wait 0s (median over {runs} runs of each run's median over {d0['rounds']} rounds; "
          "ratio = fenghuo / Alertmanager)")
    print()
    print("| configuration | system | p50 ms | p99 ms | max ms | to last delivery ms | webhooks/s "
          "| alerts/s | delivered | webhooks | groups incomplete | duplicates | POST errors |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    dconfigs = list(dict.fromkeys(r["config"] for r in delivery))
    for c in dconfigs:
        for s, label in (("fenghuo", "fenghuo"), ("am", "Alertmanager")):
            m = lambda k: med(s, c, k, delivery)
            t = lambda k: tot(s, c, k, delivery)
            print(f"| {c} | {label} | {m('latency_p50_ms'):.2f} | {m('latency_p99_ms'):.2f} "
                  f"| {m('latency_max_ms'):.2f} | {m('last_delivery_ms'):.1f} | {m('deliveries_per_s'):,.0f} "
                  f"| {m('alerts_per_s'):,.0f} | {t('delivered')}/{t('expected')} | {t('webhook_requests')} "
                  f"| {t('groups_incomplete')} | {t('duplicates')} | {t('post_errors')} |")
        fm = lambda k: med("fenghuo", c, k, delivery)
        am = lambda k: med("am", c, k, delivery)
        print(f"| {c} | ratio | {ratio(fm('latency_p50_ms'), am('latency_p50_ms'))} "
              f"| {ratio(fm('latency_p99_ms'), am('latency_p99_ms'))} "
              f"| {ratio(fm('latency_max_ms'), am('latency_max_ms'))} "
              f"| {ratio(fm('last_delivery_ms'), am('last_delivery_ms'))} "
              f"| {ratio(fm('deliveries_per_s'), am('deliveries_per_s'))} "
              f"| {ratio(fm('alerts_per_s'), am('alerts_per_s'))} | | | | | |")
    print()
    print("Latency: from the POST of an alert's group being sent to the alert's first webhook; "
          "only delivered alerts count. Groups incomplete: groups with an alert that had not "
          "arrived when the round stopped waiting (it missed the group's first flush).")
    print()
    for c in dconfigs:
        for s, label in (("fenghuo", "fenghuo"), ("am", "Alertmanager")):
            per_run = [r for r in delivery if r["system"] == s and r["config"] == c]
            if per_run:
                print(f"{c} {label}, per run: p50/p99/max ms " +
                      ", ".join(f"{r['latency_p50_ms']}/{r['latency_p99_ms']}/{r['latency_max_ms']}"
                                for r in per_run) +
                      "; to last delivery ms " + ", ".join(str(r["last_delivery_ms"]) for r in per_run) +
                      "; webhooks/s " + ", ".join(str(r["deliveries_per_s"]) for r in per_run))
EOF
