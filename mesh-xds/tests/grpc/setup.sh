#!/usr/bin/env bash
# Installs Python's grpcio (gRPC's own xDS client) into a virtual environment under target/,
# for the interop test (tests/grpc_interop.rs). Idempotent; prints the venv's python.
#
#   mesh-xds/tests/grpc/setup.sh [TARGET_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="${1:-${CARGO_TARGET_DIR:-$here/../../../target}}"
venv="$target/grpc-venv"
version="1.68.1"
if ! "$venv/bin/python" -c "import grpc, sys; sys.exit(grpc.__version__ != '$version')" 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "grpcio==$version" >&2
fi
echo "$venv/bin/python"
