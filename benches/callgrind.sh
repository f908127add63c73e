#!/usr/bin/env bash
# Instruction counts per request for each request-path variant (see
# benches/src/lib.rs `request_path`), under callgrind: counts do not drift with machine noise,
# so the ratios to the baseline are exact for this build.
#
#   benches/callgrind.sh [N]        # N requests per run (default 2000)
#
# Each variant runs twice, with N and 2N requests; (Ir(2N) - Ir(N)) / N is the cost of one
# request with set-up and runtime start cancelled out.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-2000}"
if ! command -v valgrind >/dev/null; then
    echo "installing valgrind" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y valgrind >/dev/null; else sudo apt-get install -y valgrind >/dev/null; fi
fi
cargo build --release -q -p mesh-benches --bin request_path_count
BIN="${CARGO_TARGET_DIR:-target}/release/request_path_count"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

instructions() { # variant n
    valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" "$BIN" "$1" "$2" 2>"$OUT/log" >/dev/null
    awk '/^summary:/ { print $2 }' "$OUT/cg.out"
}

printf '%-20s %14s %8s\n' variant "Ir/request" ratio
base=""
for v in baseline fault_at_0pct retry_untriggered; do
    a=$(instructions "$v" "$N")
    b=$(instructions "$v" $((2 * N)))
    per=$(( (b - a) / N ))
    [ -z "$base" ] && base=$per
    printf '%-20s %14d %8s\n' "$v" "$per" "$(awk -v p="$per" -v b="$base" 'BEGIN { printf "%.3f", p / b }')"
done
