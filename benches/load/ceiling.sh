#!/usr/bin/env bash
# Starts the minimal hyper proxy (benches/src/bin/hyper_ceiling.rs, the performance issue's
# reference target) as the candidate of ../shared/bench/proxy-compare.sh. CEILING_ARGS
# (e.g. --current-thread) are passed on.
#
#   cargo build --release -p mesh-benches --bin hyper_ceiling
#   CANDIDATE_CMD="$PWD/benches/load/ceiling.sh" CANDIDATE_PORT=18090 CANDIDATE_H2=1 \
#     ROUNDS=3 ../shared/bench/proxy-compare.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck disable=SC2086 # CEILING_ARGS is a list of flags
exec "$root/target/release/hyper_ceiling" "127.0.0.1:${CANDIDATE_PORT:?}" "${UPSTREAM_ADDR:?}" ${CEILING_ARGS:-}
