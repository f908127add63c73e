#!/usr/bin/env bash
# Memory of idle keep-alive downstream connections (issue #12 targets: idle RSS <= 10 MB,
# <= 16 KiB per connection at 10,000 connections). Starts the release mesh-proxy on loopback
# with a one-route config that answers directly, reads its RSS, opens N connections that each
# carry one request and then stay idle, and reads the RSS again.
#
#   benches/load/idle-connections.sh [N]      # default 10000
#
# Bounded: the client gives up holding after 120 s, and every step has a timeout.
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-10000}"
ulimit -n $((N + 4096)) 2>/dev/null || { echo "cannot raise the open-file limit to $((N + 4096))" >&2; exit 1; }
[ -n "${MESH_PROXY_BIN:-}" ] || cargo build --release -q -p mesh-examples --bin mesh-proxy
bin="${MESH_PROXY_BIN:-target/release/mesh-proxy}"
cargo build --release -q -p mesh-benches --bin idle_conns
work="$(mktemp -d)"
proxy_pid=""
cleanup() {
    [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/idle.yaml" <<YAML
static_resources:
  listeners:
  - name: idle
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: idle
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: / }
                direct_response: { status: 200, body: { inline_string: ok } }
YAML

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

mkfifo "$work/out"
"$bin" --config "$work/idle.yaml" --no-access-log > "$work/out" &
proxy_pid=$!
exec 3< "$work/out"
addr=""
while IFS= read -r -t 60 line <&3; do
    case "$line" in
        "mesh-proxy: listener idle on "*) addr="${line#mesh-proxy: listener idle on }" ;;
        "mesh-proxy: ready") break ;;
    esac
done
[ -n "$addr" ] || { echo "mesh-proxy did not start" >&2; exit 1; }
# Drain the rest of the proxy's output so it never blocks on a full pipe.
cat <&3 > /dev/null &

idle_before=$(rss_kib "$proxy_pid")
mkfifo "$work/hold"
target/release/idle_conns "$addr" "$N" 120 < "$work/hold" > "$work/client" &
client_pid=$!
exec 4> "$work/hold"
for _ in $(seq 1 1200); do
    grep -q '^held' "$work/client" 2>/dev/null && break
    kill -0 "$client_pid" 2>/dev/null || { echo "client failed" >&2; exit 1; }
    sleep 0.1
done
grep -q '^held' "$work/client" || { echo "connections not established in time" >&2; exit 1; }
with_conns=$(rss_kib "$proxy_pid")
exec 4>&-
wait "$client_pid" || true

per_conn=$(awk -v a="$with_conns" -v b="$idle_before" -v n="$N" 'BEGIN { printf "%.1f", (a - b) / n }')
printf '%-36s %12s\n' "measure" "value"
printf '%-36s %9.1f MB\n' "idle RSS (no connections)" "$(awk -v k="$idle_before" 'BEGIN { print k / 1024 }')"
printf '%-36s %9.1f MB\n' "RSS with $N idle connections" "$(awk -v k="$with_conns" 'BEGIN { print k / 1024 }')"
printf '%-36s %8s KiB\n' "per idle connection" "$per_conn"
