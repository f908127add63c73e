#!/usr/bin/env bash
# The control plane at scale (issue #13): STREAMS ADS streams of a SERVICES-service Istio config
# on loopback, all sidecars sharing one view. Prints the time from a config change (the YAML
# read, translated and pushed) to every stream having ACKed it (median, p99 over CHANGES
# changes, alternating an EDS-only and an RDS-only change) and the server's memory per stream.
#
#   benches/load/xds-scale.sh [STREAMS] [SERVICES] [CHANGES]     # default 1000 100 20
#
# Bounded: every wait gives up after 120 s; the clients run in a child process that exits with
# the server.
set -euo pipefail
cd "$(dirname "$0")/../.."
STREAMS="${1:-1000}"
ulimit -n $((STREAMS + 4096)) 2>/dev/null || true
cargo build --release -q -p mesh-benches --bin xds_scale
timeout 600 target/release/xds_scale "$STREAMS" "${2:-100}" "${3:-20}"
