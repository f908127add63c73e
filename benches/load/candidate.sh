#!/usr/bin/env bash
# Starts mesh-proxy as the candidate of ../shared/bench/proxy-compare.sh: writes the bench
# config from the script's environment (CANDIDATE_PORT, UPSTREAM_ADDR) and runs the release
# binary in the foreground. MESH_PROXY_ARGS (e.g. --concurrency 1) are passed on.
# BENCH_CONFIG picks the config (default bench.yaml; bench-100-routes.yaml is the variant with
# 100 routes and an access log, written to ACCESS_LOG, default $TMPDIR/mesh-bench-access.log,
# emptied at each start).
#
#   cargo build --release -p mesh-examples --bin mesh-proxy
#   CANDIDATE_CMD="$PWD/benches/load/candidate.sh" CANDIDATE_PORT=18090 CANDIDATE_H2=1 \
#     ROUNDS=3 ../shared/bench/proxy-compare.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cfg="$(mktemp --suffix=.yaml)"
access_log="${ACCESS_LOG:-${TMPDIR:-/tmp}/mesh-bench-access.log}"
: > "$access_log"
sed -e "s/\${CANDIDATE_PORT}/${CANDIDATE_PORT:?}/" \
    -e "s/\${UPSTREAM_PORT}/${UPSTREAM_ADDR##*:}/" \
    -e "s|\${ACCESS_LOG}|$access_log|" "$here/${BENCH_CONFIG:-bench.yaml}" > "$cfg"
# shellcheck disable=SC2086 # MESH_PROXY_ARGS is a list of flags
# bench.yaml has no access log; the variant keeps its own.
no_log=--no-access-log
[[ "${BENCH_CONFIG:-bench.yaml}" == bench.yaml ]] || no_log=
exec "${MESH_PROXY_BIN:-$root/target/release/mesh-proxy}" --config "$cfg" $no_log ${MESH_PROXY_ARGS:-}
