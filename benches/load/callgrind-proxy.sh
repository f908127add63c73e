#!/usr/bin/env bash
# User-space instructions per proxied HTTP/1.1 request on the network path: the release
# mesh-proxy under callgrind, in front of ../shared/bench's upstream, loaded by wrk over
# loopback with the comparison's one-route config (benches/load/bench.yaml). The counts
# cover the proxy's own code, the libraries it links and libc, not the kernel; they do not
# drift with machine noise, so two builds compare exactly (MESH_PROXY_BIN picks one).
# TARGET=nginx counts nginx instead (one worker, no master, the same upstream with
# keep-alive, no access log): the bar the user-space path is measured against.
#
#   benches/load/callgrind-proxy.sh [SECONDS]     # default 10; prints Ir/request and the
#                                                 # functions that cost the most
#   TARGET=nginx benches/load/callgrind-proxy.sh
#
# Bounded: wrk runs for the given seconds (after 3 s of warm-up that is not counted), and
# every wait has a limit. All traffic is to 127.0.0.1.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SECONDS_LOADED="${1:-10}"
WORK_DIR="$(mktemp -d)"
PIN=none
# shellcheck source=lib.sh
source "$ROOT/benches/load/lib.sh"
trap 'cleanup; rm -rf "$WORK_DIR"' EXIT
TARGET="${TARGET:-mesh-proxy}"
need_packages valgrind:valgrind wrk:wrk callgrind_control:valgrind
[ "$TARGET" != nginx ] || need_packages nginx:nginx

BIN="${MESH_PROXY_BIN:-$ROOT/target/release/mesh-proxy}"
[ -n "${MESH_PROXY_BIN:-}" ] || [ "$TARGET" = nginx ] \
    || (cd "$ROOT" && cargo build --release -q -p mesh-examples --bin mesh-proxy)
UPSTREAM_DIR="${TMPDIR:-/tmp}/mesh-proxy-bench/upstream-target"
UPSTREAM="$UPSTREAM_DIR/release/bench-upstream"
if [ ! -x "$UPSTREAM" ]; then
    log "building ../shared/bench's upstream"
    (cd "$ROOT/../shared/bench/upstream" && CARGO_TARGET_DIR="$UPSTREAM_DIR" cargo build --release -q)
fi
UP_PORT=18180
PROXY_PORT=18190
sed -e "s/\${CANDIDATE_PORT}/$PROXY_PORT/" -e "s/\${UPSTREAM_PORT}/$UP_PORT/" \
    "$ROOT/benches/load/bench.yaml" > "$WORK_DIR/bench.yaml"

start upstream "$UPSTREAM" "127.0.0.1:$UP_PORT" 1
wait_port "$UP_PORT"
if [ "$TARGET" = nginx ]; then
    cat > "$WORK_DIR/nginx.conf" <<NGINX
worker_processes 1;
master_process off;
daemon off;
error_log $WORK_DIR/nginx-error.log warn;
pid $WORK_DIR/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  upstream up { server 127.0.0.1:$UP_PORT; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$PROXY_PORT;
    keepalive_requests 1000000;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
    start proxy valgrind --tool=callgrind --callgrind-out-file="$WORK_DIR/cg.out" \
        nginx -c "$WORK_DIR/nginx.conf" -p "$WORK_DIR"
else
    start proxy valgrind --tool=callgrind --callgrind-out-file="$WORK_DIR/cg.out" \
        "$BIN" --config "$WORK_DIR/bench.yaml" --no-access-log
fi
wait_port "$PROXY_PORT"
# The proxy itself, not setsid or valgrind's launcher: the process whose counters to reset.
proxy_pid="$(pgrep -n -f -- "--callgrind-out-file=$WORK_DIR/cg.out")"
timeout 30 wrk -t1 -c8 -d3s "http://127.0.0.1:$PROXY_PORT/" > /dev/null
timeout 10 callgrind_control -z "$proxy_pid" > /dev/null 2>&1
timeout $((SECONDS_LOADED + 30)) wrk -t1 -c8 -d"${SECONDS_LOADED}s" "http://127.0.0.1:$PROXY_PORT/" \
    > "$WORK_DIR/wrk.txt"
timeout 10 callgrind_control -d "$proxy_pid" > /dev/null 2>&1
requests="$(awk '/requests in/ { print $1 }' "$WORK_DIR/wrk.txt")"
[ "${requests:-0}" -gt 0 ] || die "wrk completed no request: $(cat "$WORK_DIR/wrk.txt")"
# The dump after the reset is the second part: it holds the loaded run alone.
dump="$(ls "$WORK_DIR"/cg.out.* | sort -V | tail -1)"
total="$(awk '/^summary:/ { print $2 }' "$dump")"
echo "$TARGET: requests: $requests  instructions: $total  Ir/request: $((total / requests))"
# Self cost per function (callgrind_annotate folds this thread's costs into `clone`): a
# cost line after `calls=` is the callee's inclusive cost, the others are the function's own.
python3 - "$dump" "$requests" <<'PY'
import collections, re, sys
names, own, fn, after_call = {}, collections.Counter(), None, False
def name(tok):
    m = re.match(r"\((\d+)\)(?: (.*))?", tok)
    if not m:
        return tok
    if m.group(2):
        names[m.group(1)] = m.group(2)
    return names.get(m.group(1), m.group(1))
for line in open(sys.argv[1]):
    if line.startswith("fn="):
        fn = name(line[3:].strip())
    elif line.startswith("cfn="):
        name(line[4:].strip())
    elif line.startswith("calls="):
        after_call = True
    elif line[:1].isdigit() or line[:1] in "+-*":
        cost = line.split()
        if len(cost) > 1:
            if after_call:
                after_call = False
            else:
                own[fn] += int(cost[1])
n = int(sys.argv[2])
for f, c in own.most_common(25):
    print(f"{c // n:8d}  {f[:110]}")
PY
