#!/usr/bin/env bash
# User-space instructions per proxied request on the network path: the release mesh-proxy
# under callgrind, in front of ../shared/bench's upstream, loaded over loopback with the
# comparison's one-route config (benches/load/bench.yaml). The counts cover the proxy's own
# code, the libraries it links and libc, not the kernel. They do not drift with machine noise
# (two runs of one build agree within about 0.5%), so two builds compare closely where wall
# clock cannot (MESH_PROXY_BIN picks one).
#
# TARGET picks what is counted: mesh-proxy (default); nginx (one worker, no master, the same
# upstream with keep-alive, no access log: the bar the user-space path is measured against);
# ceiling (benches' minimal hyper proxy, current-thread runtime). PROTO=h1 (default) loads
# with wrk -c8, PROTO=h2c with h2load -c4 -m8 (mesh-proxy and the ceiling).
#
#   benches/load/callgrind-proxy.sh [SECONDS]     # default 10; prints Ir/request and the
#                                                 # functions that cost the most
#   TARGET=nginx benches/load/callgrind-proxy.sh
#   TARGET=ceiling PROTO=h2c benches/load/callgrind-proxy.sh
#
# Bounded: the load runs for the given seconds (after 3 s of warm-up that is not counted),
# and every wait has a limit. All traffic is to 127.0.0.1.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SECONDS_LOADED="${1:-10}"
WORK_DIR="$(mktemp -d)"
PIN=none
# shellcheck source=lib.sh
source "$ROOT/benches/load/lib.sh"
trap 'cleanup; rm -rf "$WORK_DIR"' EXIT
TARGET="${TARGET:-mesh-proxy}"
PROTO="${PROTO:-h1}"
case "$TARGET/$PROTO" in
    mesh-proxy/h1 | mesh-proxy/h2c | ceiling/h1 | ceiling/h2c | nginx/h1) ;;
    *) die "TARGET=$TARGET PROTO=$PROTO: not a pair this script counts" ;;
esac
need_packages valgrind:valgrind wrk:wrk h2load:nghttp2-client callgrind_control:valgrind
[ "$TARGET" != nginx ] || need_packages nginx:nginx

BIN="${MESH_PROXY_BIN:-$ROOT/target/release/mesh-proxy}"
if [ "$TARGET" = mesh-proxy ] && [ -z "${MESH_PROXY_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p mesh-examples --bin mesh-proxy)
fi
[ "$TARGET" != ceiling ] || (cd "$ROOT" && cargo build --release -q -p mesh-benches --bin hyper_ceiling)
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
elif [ "$TARGET" = ceiling ]; then
    start proxy valgrind --tool=callgrind --callgrind-out-file="$WORK_DIR/cg.out" \
        "$ROOT/target/release/hyper_ceiling" "127.0.0.1:$PROXY_PORT" "127.0.0.1:$UP_PORT" \
        --current-thread
else
    start proxy valgrind --tool=callgrind --callgrind-out-file="$WORK_DIR/cg.out" \
        "$BIN" --config "$WORK_DIR/bench.yaml" --no-access-log
fi
wait_port "$PROXY_PORT"
# The proxy itself, not setsid or valgrind's launcher: the process whose counters to reset.
proxy_pid="$(pgrep -n -f -- "--callgrind-out-file=$WORK_DIR/cg.out")"
load() { # SECONDS: the load for that long, its output on stdout
    if [ "$PROTO" = h2c ]; then
        timeout $(($1 + 30)) h2load -t1 -c4 -m8 -D "$1" "http://127.0.0.1:$PROXY_PORT/"
    else
        timeout $(($1 + 30)) wrk -t1 -c8 -d"${1}s" "http://127.0.0.1:$PROXY_PORT/"
    fi
}
load 3 > /dev/null
timeout 10 callgrind_control -z "$proxy_pid" > /dev/null 2>&1
load "$SECONDS_LOADED" > "$WORK_DIR/load.txt"
timeout 10 callgrind_control -d "$proxy_pid" > /dev/null 2>&1
# wrk: "N requests in ..."; h2load: "requests: N total, ..., N succeeded, ...".
requests="$(awk '/requests in/ { print $1 } /^requests:/ { print $8 }' "$WORK_DIR/load.txt")"
[ "${requests:-0}" -gt 0 ] || die "the load completed no request: $(cat "$WORK_DIR/load.txt")"
# The dump after the reset is the second part: it holds the loaded run alone.
dump="$(ls "$WORK_DIR"/cg.out.* | sort -V | tail -1)"
total="$(awk '/^summary:/ { print $2 }' "$dump")"
echo "$TARGET $PROTO: requests: $requests  instructions: $total  Ir/request: $((total / requests))"
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
