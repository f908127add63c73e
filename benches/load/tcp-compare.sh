#!/usr/bin/env bash
# TCP proxying side by side (issue #14's target: throughput >= HAProxy's, CPU per byte <=
# HAProxy's): mesh-proxy's tcp_proxy, HAProxy `mode tcp` and nginx `stream`, each one process
# (one thread) in front of the same echo upstream, on 127.0.0.1.
#
#   benches/load/tcp-compare.sh
#
# Two loads from benches/src/bin/tcp_load.rs, each for DURATION seconds:
#   bulk    BULK_CONNS connections streaming 64 KiB writes and reading the echo back
#           (throughput in MiB/s of echoed bytes; a proxy moves twice that);
#   conns   CONNS_WORKERS loops of connect, 5 bytes, half-close, read the echo, close
#           (connections per second).
# Targets run interleaved, in a rotated order each round; the summary gives medians over
# ROUNDS and per-round ratios to HAProxy. CPU is the proxy's own (its process group's user and
# system time from /proc), per MiB moved and per connection. With PIN=split (default) the load
# generator runs on CPU 0 and the upstream and proxy share CPU 1, as ../shared/bench does.
#
# Environment: ROUNDS [3] DURATION [8] BULK_CONNS [8] CONNS_WORKERS [16] PIN [split]
#   TARGETS [mesh haproxy nginx]  WORK_DIR [$TMPDIR/mesh-tcp-bench]  MESH_PROXY_BIN
# Installs nginx, its stream module and HAProxy from Debian when missing (as root). Every
# loop is bounded; only the processes this script started are stopped.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-8}"
BULK_CONNS="${BULK_CONNS:-8}"
CONNS_WORKERS="${CONNS_WORKERS:-16}"
PIN="${PIN:-split}"
TARGETS="${TARGETS:-mesh haproxy nginx}"
WORK_DIR="${WORK_DIR:-${TMPDIR:-/tmp}/mesh-tcp-bench}"
mkdir -p "$WORK_DIR"
WORK_DIR="$(cd "$WORK_DIR" && pwd)"
UP_PORT=19180
declare -A PORT=([mesh]=19181 [haproxy]=19182 [nginx]=19183)

# shellcheck source=lib.sh
source "$ROOT/benches/load/lib.sh"

need_packages haproxy:haproxy nginx:nginx /usr/lib/nginx/modules/ngx_stream_module.so:libnginx-mod-stream

if [ -z "${MESH_PROXY_BIN:-}" ]; then
    cargo build --release -q -p mesh-examples --bin mesh-proxy
fi
cargo build --release -q -p mesh-benches --bin tcp_load
MESH="${MESH_PROXY_BIN:-target/release/mesh-proxy}"
LOAD=target/release/tcp_load


cat > "$WORK_DIR/mesh.yaml" <<YAML
static_resources:
  listeners:
  - name: tcp
    address: { socket_address: { address: 127.0.0.1, port_value: ${PORT[mesh]} } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: upstream
  clusters:
  - name: upstream
    connect_timeout: 1s
    load_assignment:
      cluster_name: upstream
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $UP_PORT } } } }] }]
YAML
cat > "$WORK_DIR/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen tcp
    bind 127.0.0.1:${PORT[haproxy]}
    server up 127.0.0.1:$UP_PORT
CFG
cat > "$WORK_DIR/nginx.conf" <<CFG
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
daemon off;
pid $WORK_DIR/nginx.pid;
error_log $WORK_DIR/nginx-error.log;
events { worker_connections 4000; }
stream {
    server { listen 127.0.0.1:${PORT[nginx]}; proxy_pass 127.0.0.1:$UP_PORT; proxy_half_close on; }
}
CFG

start upstream "$LOAD" serve "127.0.0.1:$UP_PORT"
wait_port "$UP_PORT"
for t in $TARGETS; do
    case "$t" in
        mesh) start mesh "$MESH" --config "$WORK_DIR/mesh.yaml" --no-access-log --concurrency 1 ;;
        haproxy) start haproxy haproxy -db -f "$WORK_DIR/haproxy.cfg" ;;
        nginx) start nginx nginx -c "$WORK_DIR/nginx.conf" -p "$WORK_DIR" ;;
        *) die "unknown target $t" ;;
    esac
    wait_port "${PORT[$t]}"
done
log "targets: $TARGETS; rounds $ROUNDS x ${DURATION}s; pin $PIN"

hz=$(getconf CLK_TCK)
raw="$WORK_DIR/raw.tsv"
printf 'round\ttarget\tmode\tamount\tsecs\tticks\n' > "$raw"
read -r -a order <<< "$TARGETS"
for r in $(seq 1 "$ROUNDS"); do
    for mode in bulk conns; do
        for i in "${!order[@]}"; do
            t="${order[$(( (i + r - 1) % ${#order[@]} ))]}"
            before=$(ticks "$t")
            if [ "$mode" = bulk ]; then
                # shellcheck disable=SC2046
                out=$(timeout $((DURATION + 30)) $(load_cpu) "$LOAD" bulk "127.0.0.1:${PORT[$t]}" "$BULK_CONNS" "$DURATION")
            else
                # shellcheck disable=SC2046
                out=$(timeout $((DURATION + 30)) $(load_cpu) "$LOAD" conns "127.0.0.1:${PORT[$t]}" "$CONNS_WORKERS" "$DURATION")
            fi
            after=$(ticks "$t")
            read -r _ amount _ secs <<< "$out"
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "$mode" "$amount" "$secs" "$((after - before))" >> "$raw"
            log "round $r $mode $t: $out, $((after - before)) ticks"
        done
    done
done

python3 - "$raw" "$hz" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
hz = int(sys.argv[2])
def figures(r):
    amount, secs, ticks = int(r["amount"]), float(r["secs"]), int(r["ticks"])
    cpu = ticks / hz
    if r["mode"] == "bulk":
        moved = 2 * amount / 2**20           # MiB through the proxy, both directions
        return {"rate": amount / 2**20 / secs, "cpu": cpu * 1e3 / moved if moved else 0}
    return {"rate": amount / secs, "cpu": cpu * 1e6 / amount if amount else 0}
by = {}
for r in rows:
    by.setdefault((r["mode"], r["target"]), {})[r["round"]] = figures(r)
units = {"bulk": ("MiB/s echoed", "CPU ms/MiB moved"), "conns": ("conns/s", "CPU us/conn")}
for mode in ("bulk", "conns"):
    print(f"\n{mode}: {units[mode][0]}, {units[mode][1]} (median of rounds; ratio to haproxy paired per round)")
    targets = sorted({t for (m, t) in by if m == mode})
    base = by.get((mode, "haproxy"), {})
    for t in targets:
        runs = by[(mode, t)]
        rate = statistics.median(v["rate"] for v in runs.values())
        cpu = statistics.median(v["cpu"] for v in runs.values())
        line = f"  {t:8} {rate:10.1f} {cpu:10.3f}"
        if base and t != "haproxy":
            rr = [runs[k]["rate"] / base[k]["rate"] for k in runs if k in base and base[k]["rate"]]
            cr = [runs[k]["cpu"] / base[k]["cpu"] for k in runs if k in base and base[k]["cpu"]]
            if rr and cr:
                line += f"   throughput x{statistics.median(rr):.2f} [{min(rr):.2f}-{max(rr):.2f}]"
                line += f"  cpu x{statistics.median(cr):.2f} [{min(cr):.2f}-{max(cr):.2f}]"
        print(line)
PY
log "raw figures: $raw"
