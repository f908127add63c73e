#!/usr/bin/env bash
# HTTPS side by side (issue #15's targets: keep-alive HTTPS throughput >= 1.05x nginx's, new
# handshakes per second >= nginx's): mesh-proxy, nginx and HAProxy terminating TLS with the same
# ECDSA P-256 certificate and key, one worker each, in front of ../shared/bench's upstream
# (plain HTTP/1.1), on 127.0.0.1.
#
#   benches/load/https-compare.sh
#
# Loads (wrk, WRK_THREADS threads, DURATION seconds each):
#   keepalive   WRK_CONNS keep-alive connections: requests per second over established TLS;
#   handshake   HS_CONNS connections with `Connection: close`: every request a new connection
#               and a full handshake, so requests/s = handshakes/s. wrk resumes sessions when a
#               server offers tickets, so all three run without resumption (tickets and session
#               caches off).
# Targets run interleaved, in a rotated order each round; the summary gives medians over
# ROUNDS, the proxy's CPU per request (its process group's user+system time from /proc), and
# per-round ratios to nginx. PIN=split (default) puts wrk on CPU 0 and upstream + proxy on
# CPU 1, as ../shared/bench does.
#
# Environment: ROUNDS [3] DURATION [6] WRK_THREADS [2] WRK_CONNS [64] HS_CONNS [16] PIN [split]
#   TARGETS [mesh nginx haproxy]  WORK_DIR [$TMPDIR/mesh-https-bench]  MESH_PROXY_BIN
# Installs nginx, HAProxy, wrk and openssl from Debian when missing (as root). Every loop is
# bounded; only the processes this script started are stopped.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-6}"
WRK_THREADS="${WRK_THREADS:-2}"
WRK_CONNS="${WRK_CONNS:-64}"
HS_CONNS="${HS_CONNS:-16}"
PIN="${PIN:-split}"
TARGETS="${TARGETS:-mesh nginx haproxy}"
WORK_DIR="${WORK_DIR:-${TMPDIR:-/tmp}/mesh-https-bench}"
mkdir -p "$WORK_DIR"
WORK_DIR="$(cd "$WORK_DIR" && pwd)"
UP_PORT=19280
declare -A PORT=([mesh]=19281 [nginx]=19282 [haproxy]=19283)

# shellcheck source=lib.sh
source "$ROOT/benches/load/lib.sh"

need_packages haproxy:haproxy nginx:nginx wrk:wrk openssl:openssl

[ -n "${MESH_PROXY_BIN:-}" ] || cargo build --release -q -p mesh-examples --bin mesh-proxy
MESH="${MESH_PROXY_BIN:-target/release/mesh-proxy}"
UPSTREAM="$WORK_DIR/upstream-target/release/bench-upstream"
if [ ! -x "$UPSTREAM" ]; then
    (cd "$ROOT/../shared/bench/upstream" && CARGO_TARGET_DIR="$WORK_DIR/upstream-target" cargo build --release -q)
fi


# One certificate and key for all three.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$WORK_DIR/key.pem" -out "$WORK_DIR/cert.pem" -subj /CN=bench.local -days 2 2>/dev/null
cat "$WORK_DIR/cert.pem" "$WORK_DIR/key.pem" > "$WORK_DIR/haproxy.pem"

cat > "$WORK_DIR/mesh.yaml" <<YAML
static_resources:
  listeners:
  - name: https
    address: { socket_address: { address: 127.0.0.1, port_value: ${PORT[mesh]} } }
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          # No resumption anywhere: the handshake load measures full handshakes.
          disable_stateless_session_resumption: true
          disable_stateful_session_resumption: true
          common_tls_context:
            tls_certificates:
            - certificate_chain: { filename: $WORK_DIR/cert.pem }
              private_key: { filename: $WORK_DIR/key.pem }
            alpn_protocols: [h2, http/1.1]
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: https
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{ match: { prefix: / }, route: { cluster: upstream } }]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: upstream
    connect_timeout: 1s
    load_assignment:
      cluster_name: upstream
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $UP_PORT } } } }] }]
YAML
cat > "$WORK_DIR/nginx.conf" <<CFG
worker_processes 1;
daemon off;
pid $WORK_DIR/nginx.pid;
error_log $WORK_DIR/nginx-error.log;
events { worker_connections 4000; }
http {
    access_log off;
    upstream up { server 127.0.0.1:$UP_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:${PORT[nginx]} ssl;
        http2 on;
        ssl_certificate $WORK_DIR/cert.pem;
        ssl_certificate_key $WORK_DIR/key.pem;
        ssl_session_tickets off;
        ssl_session_cache off;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CFG
# nginx before 1.25 has no `http2 on;`: it goes on the listen line.
if ! nginx -t -c "$WORK_DIR/nginx.conf" -p "$WORK_DIR" >/dev/null 2>&1; then
    sed -i -e 's/^        http2 on;$//' -e "s/listen 127.0.0.1:${PORT[nginx]} ssl;/listen 127.0.0.1:${PORT[nginx]} ssl http2;/" "$WORK_DIR/nginx.conf"
fi
cat > "$WORK_DIR/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 4000
    tune.ssl.cachesize 0
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend fe
    bind 127.0.0.1:${PORT[haproxy]} ssl crt $WORK_DIR/haproxy.pem alpn h2,http/1.1 no-tls-tickets
    default_backend be
backend be
    server up 127.0.0.1:$UP_PORT
CFG

start upstream "$UPSTREAM" "127.0.0.1:$UP_PORT" 1
wait_port "$UP_PORT"
for t in $TARGETS; do
    case "$t" in
        mesh) start mesh "$MESH" --config "$WORK_DIR/mesh.yaml" --no-access-log --concurrency 1 ;;
        nginx) start nginx nginx -c "$WORK_DIR/nginx.conf" -p "$WORK_DIR" ;;
        haproxy) start haproxy haproxy -db -f "$WORK_DIR/haproxy.cfg" ;;
        *) die "unknown target $t" ;;
    esac
    wait_port "${PORT[$t]}"
done
log "targets: $TARGETS; rounds $ROUNDS x ${DURATION}s; pin $PIN"

hz=$(getconf CLK_TCK)
raw="$WORK_DIR/raw.tsv"
printf 'round\ttarget\tmode\trequests\tsecs\tticks\n' > "$raw"
read -r -a order <<< "$TARGETS"
for r in $(seq 1 "$ROUNDS"); do
    for mode in keepalive handshake; do
        for i in "${!order[@]}"; do
            t="${order[$(( (i + r - 1) % ${#order[@]} ))]}"
            url="https://127.0.0.1:${PORT[$t]}/"
            before=$(ticks "$t")
            if [ "$mode" = keepalive ]; then
                # shellcheck disable=SC2046
                out=$(timeout $((DURATION + 30)) $(load_cpu) wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${DURATION}s" "$url")
            else
                # shellcheck disable=SC2046
                out=$(timeout $((DURATION + 30)) $(load_cpu) wrk -t"$WRK_THREADS" -c"$HS_CONNS" -d"${DURATION}s" -H "Connection: close" "$url")
            fi
            after=$(ticks "$t")
            requests=$(awk '/requests in/ { print $1 }' <<< "$out")
            errors=$(awk '/Non-2xx|Socket errors/ { print }' <<< "$out" | tr '\n' ' ')
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "$mode" "${requests:-0}" "$DURATION" "$((after - before))" >> "$raw"
            log "round $r $mode $t: ${requests:-0} requests, $((after - before)) ticks ${errors}"
        done
    done
done

python3 - "$raw" "$hz" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
hz = int(sys.argv[2])
by = {}
for r in rows:
    n, secs, ticks = int(r["requests"]), float(r["secs"]), int(r["ticks"])
    fig = {"rate": n / secs, "cpu": (ticks / hz) * 1e6 / n if n else 0}
    by.setdefault((r["mode"], r["target"]), {})[r["round"]] = fig
for mode, unit in (("keepalive", "req/s over kept connections"), ("handshake", "new connections (full handshakes)/s")):
    print(f"\n{mode}: {unit}, proxy CPU us/request (median of rounds; ratio to nginx paired per round)")
    base = by.get((mode, "nginx"), {})
    for t in sorted({t for (m, t) in by if m == mode}):
        runs = by[(mode, t)]
        rate = statistics.median(v["rate"] for v in runs.values())
        cpu = statistics.median(v["cpu"] for v in runs.values())
        line = f"  {t:8} {rate:10.1f} {cpu:9.1f}"
        if base and t != "nginx":
            rr = [runs[k]["rate"] / base[k]["rate"] for k in runs if k in base and base[k]["rate"]]
            cr = [runs[k]["cpu"] / base[k]["cpu"] for k in runs if k in base and base[k]["cpu"]]
            if rr and cr:
                line += f"   rate x{statistics.median(rr):.2f} [{min(rr):.2f}-{max(rr):.2f}]"
                line += f"  cpu x{statistics.median(cr):.2f} [{min(cr):.2f}-{max(cr):.2f}]"
        print(line)
PY
log "raw figures: $raw"
