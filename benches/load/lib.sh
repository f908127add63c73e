# Shared by tcp-compare.sh and https-compare.sh (sourced): logging, pinning, and the
# bookkeeping of the servers a script starts (each in its own session, stopped on exit).
# Needs WORK_DIR and PIN set.

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Pinning prefixes (PIN=split: load on CPU 0, servers on CPU 1).
server_cpu() { if [ "$PIN" = split ]; then echo "taskset -c 1"; fi; }
load_cpu() { if [ "$PIN" = split ]; then echo "taskset -c 0"; fi; }

# Installs Debian packages for the missing ones among "command:package" pairs.
need_packages() {
    local need=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || [ -e "${pair%%:*}" ] || need+=("${pair##*:}")
    done
    [ ${#need[@]} -eq 0 ] && return 0
    log "installing ${need[*]}"
    if [ "$(id -u)" = 0 ]; then apt-get install -y -qq "${need[@]}" >/dev/null; else sudo apt-get install -y -qq "${need[@]}" >/dev/null; fi
}

declare -A PID=()
cleanup() {
    local p
    for p in "${PID[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PID[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$p" 2>/dev/null || true
    done
}
trap cleanup EXIT

# start NAME CMD...: in its own session (its process group is its pid), pinned.
start() {
    local name="$1"; shift
    # shellcheck disable=SC2046 # the pinning prefix is a word list
    setsid $(server_cpu) "$@" > "$WORK_DIR/$name.out" 2>&1 &
    PID[$name]=$!
}

# wait_port PORT: bounded wait until something accepts on 127.0.0.1:PORT.
wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "nothing listens on port $1"
}

# ticks NAME: user+system clock ticks of the target's process group.
ticks() {
    local total=0 p
    for p in $(pgrep -g "${PID[$1]}"); do
        read -r -a f < <(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null || echo)
        [ ${#f[@]} -gt 12 ] && total=$((total + f[11] + f[12]))
    done
    echo "$total"
}
