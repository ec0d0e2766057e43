#!/usr/bin/env bash
# Resident memory of a fenghuo server once the memory scenario is over, as a
# time series: 100,000 active alerts in 20,000 groups of 5 (loadgen --mode
# resend for LOAD seconds), all 20,000 webhooks posted, then anonymous RSS,
# the part of it in transparent huge pages, and RSS every 5 s for 30 s.
#
#   FENGHUO_BIN=target/release/fenghuo examples/bench/settled_memory.sh
#   MIMALLOC_ALLOW_THP=1 FENGHUO_BIN=… examples/bench/settled_memory.sh
#
# compare.sh's memory scenario reads "settled" once, 10 s after the
# re-sends, which a snapshot being written (tens of MiB of text for a few
# seconds) can land on; the series shows those as one-off spikes. The
# environment is passed to the server (mimalloc's MIMALLOC_* options).
#
# Environment (defaults): FENGHUO_BIN (target/release/fenghuo), LOADGEN
# (target/release/examples/loadgen), PORT (18571), LOAD (5), BENCH_TMPDIR
# ($TMPDIR or /tmp). Everything stays on 127.0.0.1; the server is killed at
# the end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${FENGHUO_BIN:-$TARGET_DIR/release/fenghuo}
LOADGEN=${LOADGEN:-$TARGET_DIR/release/examples/loadgen}
PORT=${PORT:-18571}
LOAD=${LOAD:-5}
[[ -x $BIN && -x $LOADGEN ]] || {
    echo "build first: cargo build --release --bin fenghuo --example loadgen" >&2
    exit 1
}
D=$(mktemp -d -p "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}" settled-memory.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$D"
}
trap cleanup EXIT

cat >"$D/sink.py" <<'PY'
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
        sys.stdout.write("post\n"); sys.stdout.flush()
    def log_message(self, *args): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
PY
: >"$D/sink.out"
python3 "$D/sink.py" >"$D/sink.out" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 50); do
    SINK_PORT=$(head -1 "$D/sink.out")
    [[ -n $SINK_PORT ]] && break
    sleep 0.1
done
cat >"$D/am.yml" <<YML
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
YML

"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$D/data" --config "$D/am.yml" >"$D/out" 2>"$D/log" &
SRV=$!
PIDS+=("$SRV")
for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$PORT/-/ready" >/dev/null && break
    sleep 0.2
done
mib() { awk -v k="$1:" '$1 == k {printf "%.1f", $2 / 1024}' "$2"; }
echo "idle: rss $(mib VmRSS /proc/$SRV/status) MiB"
"$LOADGEN" --target "http://127.0.0.1:$PORT" --mode resend --alerts 100000 --group-size 5 \
    --batch 100 --concurrency 32 --warmup 0 --duration "$LOAD" --pid "$SRV" 2>/dev/null |
    sed -n 's/^RESULT .*"server_peak_rss_mib":\([0-9.]*\).*/peak during load: \1 MiB/p'
for _ in $(seq 600); do
    (($(wc -l <"$D/sink.out") - 1 >= 20000)) && break
    sleep 0.2
done
echo "webhooks posted: $(($(wc -l <"$D/sink.out") - 1))"
for s in 5 10 15 20 25 30; do
    sleep 5
    echo "t+${s}s: anon $(mib RssAnon /proc/$SRV/status) MiB," \
        "in huge pages $(mib AnonHugePages /proc/$SRV/smaps_rollup) MiB," \
        "rss $(mib VmRSS /proc/$SRV/status) MiB"
done
echo "peak (VmHWM): $(mib VmHWM /proc/$SRV/status) MiB"
