#!/usr/bin/env bash
# Installs what the network-namespace test (tests/sidecar_netns.rs) needs from Debian's
# packages: iptables, iproute2 (ip netns), util-linux (setpriv), curl and python3. Idempotent;
# needs root, as the test does. Exits non-zero when something cannot be installed.
set -euo pipefail
missing=()
command -v iptables >/dev/null || missing+=(iptables)
command -v ip >/dev/null || missing+=(iproute2)
command -v setpriv >/dev/null || missing+=(util-linux)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq "${missing[@]}" >&2; then
        apt-get update -qq >&2
        apt-get install -y -qq "${missing[@]}" >&2
    fi
fi
