#!/usr/bin/env bash
# bench/run.sh: the pivitals benchmark, one command, loopback only, bounded in time.
#
#   bash bench/run.sh                  # all phases, about 16 minutes after the builds
#   BENCH_PROFILE=1 bash bench/run.sh  # also profile the primary with perf (one more build)
#   BENCH_PHASES=a bash bench/run.sh   # only the phases named (a, b, c, r, l, x; default abcx)
#   bash bench/run.sh --check          # the same, exiting 1 when a goal of the summary is missed
#
# a. The agent at a 1 s interval for BENCH_WINDOW (60) s beside collectd (cpu, memory, swap, df,
#    interface, load, uptime, thermal; network plugin sending every 1 s to a second collectd on
#    127.0.0.1) and beside prometheus-node-exporter scraped by curl every 1 s, all three at once:
#    peak RSS (VmHWM) and CPU time per sample (utime+stime from /proc/PID/stat over the window,
#    divided by the samples taken in it); the stripped release agent's size.
# b. The primary into a real InfluxDB 1.x: BENCH_NODES (2000) simulated nodes at 1 s for
#    BENCH_DURATION (30) s (`pivitals-simulate`): pushes, failures, latency, primary CPU
#    per push, and every push counted back in InfluxDB; then BENCH_B_REPEAT (5) alternating
#    pairs: a saturation run (BENCH_SAT_NODES nodes pushing back to back for BENCH_SAT_DURATION
#    s into a fresh primary and database) for the pipeline's end-to-end lines/s, and the same
#    number of lines written straight to a fresh database by one bulk client (curl, 5000-line
#    bodies). The pair with the median ratio is reported, with every pair's ratio.
# c. The primary's peak memory with BENCH_BIG_NODES (10000) registered nodes: pushing every 60 s
#    for 60 s (one push each, connections closed), then with a primary of its own every 10 s for
#    70 s (seven pushes each, every connection kept open and parked between its pushes, across a
#    minute's rollup).
# r. Alert rules: BENCH_NODES (2000) nodes at 1 s for BENCH_DURATION (30) s into the archive,
#    once with no rule and once with 10 (bench/alert-rules.toml), primary CPU per push each
#    (schedstat) and the ratio. Not in the default phases: BENCH_PHASES=r.
# l. Action long polls: BENCH_LP_NODES (2000) nodes pushing every BENCH_LP_INTERVAL (10) s for
#    BENCH_LP_DURATION (60) s into the archive, twice, each run with a primary of its own: once
#    pushing only, once with every node also holding the action long poll open
#    (`GET /api/v1/agent/actions?wait=25s` with its node token, polled again as soon as it is
#    answered; `pivitals-simulate --poll-actions`), where an admin asks `ping` of all nodes
#    halfway (`--ask-action`). Primary RSS (the highest VmRSS seen while the nodes push, and
#    VmHWM) and CPU (schedstat, over the pushing) of both runs; how long from the ask until each
#    node's poll answered (p50/p99/max) and how many nodes got it; pushes accepted and failed,
#    `cpu` lines in the archive against pushes accepted, and the `action` lines stored. Not in
#    the default phases: BENCH_PHASES=l.
# x. Alert rules and action long polls together, as the goal of the summary states it:
#    BENCH_NODES (2000) nodes at 1 s for BENCH_DURATION (30) s into the archive, twice, each run
#    with a primary of its own: once plain (no rule, no poll), once with the 10 rules of
#    bench/alert-rules.toml and every node holding the action long poll open. Primary CPU per
#    accepted push (schedstat) of both, the `cpu` lines archived against the pushes accepted,
#    and the push latency p99; BENCH_X_REPEAT (5) pairs of runs, alternating, the CPU figures
#    their medians.
#
# The run ends with one summary table: each goal's figure, the peer's figure from the same run,
# the ratio, the goal and whether it was met, for the phases that ran. With --check the script
# exits 1 when a goal is missed (a benchmark, not a test: the suite never runs it).
#
# Installs what it needs with apt-get (root). Prints a table and writes it to
# bench/results/latest.txt. Every server it starts listens on 127.0.0.1 and is stopped at the
# end (or on any error) by its process id.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS_DIR=$ROOT/bench/results
WINDOW=${BENCH_WINDOW:-60}
NODES=${BENCH_NODES:-2000}
DURATION=${BENCH_DURATION:-30}
SAT_NODES=${BENCH_SAT_NODES:-1000}
SAT_DURATION=${BENCH_SAT_DURATION:-20}
BIG_NODES=${BENCH_BIG_NODES:-10000}
LP_NODES=${BENCH_LP_NODES:-2000}
LP_INTERVAL=${BENCH_LP_INTERVAL:-10}
LP_DURATION=${BENCH_LP_DURATION:-60}
X_REPEAT=${BENCH_X_REPEAT:-5}
B_REPEAT=${BENCH_B_REPEAT:-5}
ADMIN_TOKEN=bench-admin-token-0000000000000001
PROFILE=${BENCH_PROFILE:-0}
PHASES=${BENCH_PHASES:-abcx}
CHECK=0
TOKEN=bench-enrollment-token-000001
CLK_TCK=$(getconf CLK_TCK)
# The static agent's figures stay 0 when it could not be built.
AGENT_STATIC= AGENT_STATIC_SIZE=0 S_HWM=0 S_NS=0 S_TICKS=0 S_SPLIT=

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- processes: every one started here is remembered and stopped by its id --------------------

PIDS=()
WORK=
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # Give each a moment, then SIGKILL.
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    if [[ -n $WORK && -d $WORK && ${BENCH_KEEP:-0} != 1 ]]; then
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop PID: SIGTERM, wait up to 20 s, SIGKILL.
stop() {
    local pid=$1
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# --- /proc readers ----------------------------------------------------------------------------

# utime+stime of PID in clock ticks (fields 14 and 15; the name in field 2 has no spaces here).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# CPU time of PID's threads in ns (schedstat: exact, where utime+stime count whole ticks).
cpu_ns() { cat "/proc/$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'; }
# Peak resident set (VmHWM) of PID in KiB.
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# Resident anonymous (private heap and stacks) and file-backed (code, libraries) KiB of PID.
anon_kib() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }
file_kib() { awk '/^RssFile:/ {print $2}' "/proc/$1/status"; }
now_s() { date +%s.%N; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
# median [COLUMN]: of lines on stdin sorted by their first number, COLUMN (1) of the middle one.
median() { sort -n | awk -v column="${1:-1}" '{v[NR] = $column} END {print v[int((NR + 1) / 2)]}'; }

# --- ports and HTTP ---------------------------------------------------------------------------

USED_PORTS=" "
# A port below the ephemeral range (which 10,000 simulated connections use up), free now.
free_port() {
    local port low
    low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    while :; do
        port=$((10000 + RANDOM % (low - 10000)))
        [[ $USED_PORTS == *" $port "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            USED_PORTS+="$port "
            echo "$port"
            return
        fi
    done
}

# wait_http URL STATUS SECONDS
wait_http() {
    local deadline=$((SECONDS + $3))
    until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true) == "$2" ]]; do
        ((SECONDS < deadline)) || die "$1 did not answer $2 within $3 s"
        sleep 0.2
    done
}

metric() { # metric URL NAME: the value of an unlabelled metric of the primary
    curl -s --max-time 5 "$1/metrics" | awk -v name="$2" '$1 == name {print $2}'
}

influx_count() { # influx_count URL DB QUERY: the first count, 0 without series
    curl -s --max-time 30 -G "$1/query" --data-urlencode "db=$2" --data-urlencode "q=$3" |
        grep -o '"values":\[\[[^]]*\]' | head -1 | sed 's/.*,//' | tr -d ']' | grep -E '^[0-9]+$' ||
        echo 0
}

field() { # field LINE KEY: the value of KEY= in a summary line
    tr ' ' '\n' <<<"$1" | awk -F= -v key="$2" '$1 == key {print $2}' | sed 's/ms$//; s/s$//'
}

# --- setup ------------------------------------------------------------------------------------

install_packages() {
    local need=()
    command -v collectd >/dev/null || [[ -x /usr/sbin/collectd ]] || need+=(collectd-core)
    command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
    command -v influxd >/dev/null || need+=(influxdb)
    command -v curl >/dev/null || need+=(curl)
    command -v pgrep >/dev/null || need+=(procps)
    # For the static agent (ring's C code is compiled with musl-gcc).
    command -v musl-gcc >/dev/null || need+=(musl-tools)
    if [[ $PROFILE == 1 ]] && ! command -v perf >/dev/null; then
        need+=(linux-perf)
    fi
    if ((${#need[@]})); then
        [[ $(id -u) == 0 ]] || die "run as root to install: ${need[*]}"
        log "installing ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
}

build() {
    log "building the release agent, primary and simulator (and the line generator)"
    # Each on its own, as a user builds it: built together, the primary's features (a
    # multi-thread runtime, ...) would be unified into the agent.
    (cd "$ROOT" && cargo build --release -q -p pivitals-agent)
    (cd "$ROOT" && cargo build --release -q -p pivitals-primary)
    (cd "$ROOT" && cargo build --release -q -p pivitals-bench)
    (cd "$ROOT" && cargo build -q -p pivitals-primary --example bench_lines)
    AGENT=$ROOT/target/release/pivitals-agent
    SIMULATE=$ROOT/target/release/pivitals-simulate
    PRIMARY=$ROOT/target/release/pivitals-primary
    LINES_GEN=$ROOT/target/debug/examples/bench_lines
    # The agent also as a static musl binary, the build README recommends for boards: no
    # dynamic loader, libc or libgcc_s pages of its own. Measured beside the glibc one.
    AGENT_STATIC=
    if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl ||
        rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1; then
        log "building the static (musl) agent"
        if (cd "$ROOT" && cargo build --release -q -p pivitals-agent --target x86_64-unknown-linux-musl); then
            AGENT_STATIC=$ROOT/target/x86_64-unknown-linux-musl/release/pivitals-agent
        fi
    fi
    [[ -n $AGENT_STATIC ]] || log "no static agent: the x86_64-unknown-linux-musl target could not be installed or built"
    if [[ $PROFILE == 1 ]]; then
        log "building a primary with symbols for perf (target/bench-profile)"
        (cd "$ROOT" && CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
            cargo build --release -q -p pivitals-primary --target-dir target/bench-profile)
        PRIMARY_SYMBOLS=$ROOT/target/bench-profile/release/pivitals-primary
    fi
}

# start_primary NAME PORT [VAR=VALUE...]: a release primary in $WORK/NAME, sets PRIMARY_PID.
start_primary() {
    local name=$1 port=$2 binary=${PRIMARY_BINARY:-$PRIMARY}
    shift 2
    mkdir -p "$WORK/$name"
    env PIVITALS_LISTEN="127.0.0.1:$port" PIVITALS_DATA_DIR="$WORK/$name/data" \
        PIVITALS_ENROLL_TOKEN="$TOKEN" PIVITALS_SELF_MONITOR=false PIVITALS_LOG=warn "$@" \
        "$binary" ${PRIMARY_CONFIG:+--config "$PRIMARY_CONFIG"} >"$WORK/$name/primary.log" 2>&1 &
    PRIMARY_PID=$!
    PIDS+=("$PRIMARY_PID")
    local deadline=$((SECONDS + 60))
    until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/healthz" || true) == 200 ]]; do
        kill -0 "$PRIMARY_PID" 2>/dev/null || die "the primary exited: $(tail -3 "$WORK/$name/primary.log")"
        ((SECONDS < deadline)) || die "the primary did not answer within 60 s"
        sleep 0.2
    done
}

# start_influx: an InfluxDB 1.x in $WORK/influx on free loopback ports, sets INFLUX and
# INFLUX_PID (the config is the one testkit/src/influx_v1.rs writes).
start_influx() {
    local dir=$WORK/influx http_port rpc_port
    http_port=$(free_port)
    rpc_port=$(free_port)
    mkdir -p "$dir"
    cat >"$dir/influxdb.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:$rpc_port"

[meta]
  dir = "$dir/meta"
  logging-enabled = false

[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false
  log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:$http_port"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false
  max-body-size = 0

[logging]
  level = "warn"
  suppress-logo = true
EOF
    influxd -config "$dir/influxdb.conf" >"$dir/influxd.log" 2>&1 &
    INFLUX_PID=$!
    PIDS+=("$INFLUX_PID")
    INFLUX=http://127.0.0.1:$http_port
    wait_http "$INFLUX/ping" 204 60
}

# simulate OUT ARGS...: runs `pivitals-simulate` in the background (SIM_PID), stdout in
# OUT.out, stderr in OUT.err.
simulate() {
    local out=$1
    shift
    PIVITALS_LOG=info "$SIMULATE" --enroll-token "$TOKEN" "$@" >"$out.out" 2>"$out.err" &
    SIM_PID=$!
    PIDS+=("$SIM_PID")
}

# wait_sim SECONDS: until the simulation ends (killed after SECONDS); fails if it failed. While
# it runs, SIM_TICKS is its CPU time so far.
wait_sim() {
    local deadline=$((SECONDS + $1)) ticks
    while [[ $(ps -o stat= -p "$SIM_PID" 2>/dev/null || true) != Z* ]] && kill -0 "$SIM_PID" 2>/dev/null; do
        ticks=$(cpu_ticks "$SIM_PID" 2>/dev/null || true)
        [[ -n $ticks ]] && SIM_TICKS=$ticks
        if ((SECONDS >= deadline)); then
            log "simulate did not end within $1 s: stopping it"
            stop "$SIM_PID"
            return 1
        fi
        sleep 0.2
    done
    wait "$SIM_PID"
}

# wait_pushing FILE SECONDS: until the simulation says its nodes are registered.
wait_pushing() {
    local deadline=$((SECONDS + $2))
    until grep -q 'all nodes registered' "$1.err" 2>/dev/null; do
        kill -0 "$SIM_PID" 2>/dev/null || die "simulate ended early: $(tail -5 "$1.err")"
        ((SECONDS < deadline)) || die "the nodes did not register within $2 s"
        sleep 0.1
    done
}

# --- a. the agent beside collectd and node-exporter --------------------------------------------

phase_agent() {
    log "a. agent vs collectd vs node-exporter, ${WINDOW} s at 1 s"
    local port recv_port nx_port dir=$WORK/a
    mkdir -p "$dir"
    port=$(free_port)
    start_primary a-primary "$port"

    # The agent.
    env PIVITALS_PRIMARY_URL="http://127.0.0.1:$port" PIVITALS_ENROLL_TOKEN="$TOKEN" \
        PIVITALS_NODE_NAME=bench-agent PIVITALS_INTERVAL=1s PIVITALS_START_JITTER=false \
        PIVITALS_STATE_DIR="$dir/agent-state" PIVITALS_LOG=warn \
        "$AGENT" >"$dir/agent.log" 2>&1 &
    local agent_pid=$!
    PIDS+=("$agent_pid")
    # The agent as installed by default: a push every 60 s, the fast vitals (CPU, load,
    # memory, temperatures, frequency, under-voltage) read every second for their peaks.
    env PIVITALS_PRIMARY_URL="http://127.0.0.1:$port" PIVITALS_ENROLL_TOKEN="$TOKEN" \
        PIVITALS_NODE_NAME=bench-agent-default PIVITALS_INTERVAL=60s PIVITALS_SAMPLE_EVERY=1s \
        PIVITALS_START_JITTER=false PIVITALS_STATE_DIR="$dir/default-agent-state" PIVITALS_LOG=warn \
        "$AGENT" >"$dir/default-agent.log" 2>&1 &
    local default_pid=$!
    PIDS+=("$default_pid")
    local static_pid=
    if [[ -n $AGENT_STATIC ]]; then
        env PIVITALS_PRIMARY_URL="http://127.0.0.1:$port" PIVITALS_ENROLL_TOKEN="$TOKEN" \
            PIVITALS_NODE_NAME=bench-agent-static PIVITALS_INTERVAL=1s PIVITALS_START_JITTER=false \
            PIVITALS_STATE_DIR="$dir/static-agent-state" PIVITALS_LOG=warn \
            "$AGENT_STATIC" >"$dir/static-agent.log" 2>&1 &
        static_pid=$!
        PIDS+=("$static_pid")
    fi

    # A receiving collectd, then the sending one (the one measured).
    recv_port=$(free_port)
    local common="FQDNLookup false
PluginDir \"/usr/lib/collectd\"
TypesDB \"/usr/share/collectd/types.db\"
Interval 1
LoadPlugin logfile
"
    mkdir -p "$dir/recv" "$dir/send"
    cat >"$dir/recv.conf" <<EOF
Hostname "bench-receiver"
BaseDir "$dir/recv"
PIDFile "$dir/recv/collectd.pid"
$common
<Plugin logfile>
  LogLevel warning
  File "$dir/recv/collectd.log"
</Plugin>
LoadPlugin network
<Plugin network>
  Listen "127.0.0.1" "$recv_port"
</Plugin>
EOF
    cat >"$dir/send.conf" <<EOF
Hostname "bench-sender"
BaseDir "$dir/send"
PIDFile "$dir/send/collectd.pid"
$common
<Plugin logfile>
  LogLevel warning
  File "$dir/send/collectd.log"
</Plugin>
LoadPlugin cpu
<Plugin cpu>
  ReportByCpu false
  ValuesPercentage true
</Plugin>
LoadPlugin memory
LoadPlugin swap
LoadPlugin df
LoadPlugin interface
LoadPlugin load
LoadPlugin uptime
LoadPlugin thermal
LoadPlugin network
<Plugin network>
  Server "127.0.0.1" "$recv_port"
</Plugin>
EOF
    collectd -f -C "$dir/recv.conf" &
    local receiver_pid=$!
    PIDS+=("$receiver_pid")
    collectd -f -C "$dir/send.conf" &
    local collectd_pid=$!
    PIDS+=("$collectd_pid")

    # node-exporter and its 1 s scraper (each scrape appends a line to the scrapes file).
    nx_port=$(free_port)
    prometheus-node-exporter --web.listen-address="127.0.0.1:$nx_port" \
        --collector.textfile.directory="$dir" >"$dir/node-exporter.log" 2>&1 &
    local nx_pid=$!
    PIDS+=("$nx_pid")
    wait_http "http://127.0.0.1:$nx_port/metrics" 200 30
    : >"$dir/scrapes"
    (
        for _ in $(seq 1 $((WINDOW + 30))); do
            curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$nx_port/metrics" && echo >>"$dir/scrapes"
            sleep 1
        done
    ) &
    local scraper_pid=$!
    PIDS+=("$scraper_pid")

    # Let all three start up, then measure over the window.
    sleep 5
    for pid in "$agent_pid" "$default_pid" "$collectd_pid" "$nx_pid" $static_pid; do
        kill -0 "$pid" 2>/dev/null || die "a measured process died; see $dir"
    done
    local dn0
    dn0=$(cpu_ns "$default_pid")
    local a0 c0 n0 s0 r0 t0 t1 an0 cn0 nn0 st0 sn0
    if [[ -n $static_pid ]]; then
        st0=$(cpu_ticks "$static_pid")
        sn0=$(cpu_ns "$static_pid")
    fi
    a0=$(cpu_ticks "$agent_pid")
    c0=$(cpu_ticks "$collectd_pid")
    n0=$(cpu_ticks "$nx_pid")
    an0=$(cpu_ns "$agent_pid")
    cn0=$(cpu_ns "$collectd_pid")
    nn0=$(cpu_ns "$nx_pid")
    s0=$(wc -l <"$dir/scrapes")
    r0=$(metric "http://127.0.0.1:$port" pivitals_samples_received_total)
    t0=$(now_s)
    sleep "$WINDOW"
    A_TICKS=$(($(cpu_ticks "$agent_pid") - a0))
    A_NS=$(($(cpu_ns "$agent_pid") - an0))
    D_NS=$(($(cpu_ns "$default_pid") - dn0))
    if [[ -n $static_pid ]]; then
        S_TICKS=$(($(cpu_ticks "$static_pid") - st0))
        S_NS=$(($(cpu_ns "$static_pid") - sn0))
    fi
    C_NS=$(($(cpu_ns "$collectd_pid") - cn0))
    N_NS=$(($(cpu_ns "$nx_pid") - nn0))
    C_TICKS=$(($(cpu_ticks "$collectd_pid") - c0))
    N_TICKS=$(($(cpu_ticks "$nx_pid") - n0))
    N_SAMPLES=$(($(wc -l <"$dir/scrapes") - s0))
    A_RECEIVED=$(($(metric "http://127.0.0.1:$port" pivitals_samples_received_total) - r0))
    t1=$(now_s)
    A_HWM=$(hwm_kib "$agent_pid")
    D_HWM=$(hwm_kib "$default_pid")
    D_SPLIT="$(anon_kib "$default_pid") + $(file_kib "$default_pid")"
    if [[ -n $static_pid ]]; then
        S_HWM=$(hwm_kib "$static_pid")
        S_SPLIT="$(anon_kib "$static_pid") + $(file_kib "$static_pid")"
        AGENT_STATIC_SIZE=$(stat -c %s "$AGENT_STATIC")
    fi
    C_HWM=$(hwm_kib "$collectd_pid")
    N_HWM=$(hwm_kib "$nx_pid")
    A_SPLIT="$(anon_kib "$agent_pid") + $(file_kib "$agent_pid")"
    C_SPLIT="$(anon_kib "$collectd_pid") + $(file_kib "$collectd_pid")"
    N_SPLIT="$(anon_kib "$nx_pid") + $(file_kib "$nx_pid")"
    WINDOW_S=$(calc '%.1f' "$t1 - $t0")
    # Samples in the window: one a second for the agent and collectd (both tick at 1 s).
    A_SAMPLES=$WINDOW
    C_SAMPLES=$WINDOW
    AGENT_SIZE=$(stat -c %s "$AGENT")
    local pid
    for pid in "$scraper_pid" "$nx_pid" "$collectd_pid" "$receiver_pid" "$agent_pid" \
        "$default_pid" $static_pid "$PRIMARY_PID"; do
        stop "$pid"
    done
}

# --- b. the primary into InfluxDB ---------------------------------------------------------------

phase_primary() {
    log "b. primary into InfluxDB 1.x: $NODES nodes at 1 s for $DURATION s"
    start_influx
    local port url cpu0 cpu1 t0 t1 line deadline landed=0
    port=$(free_port)
    url=http://127.0.0.1:$port
    # The per-node push limit (10 back to back, then 1 a second) would answer the saturation
    # run's back-to-back pushes 429: lift it for this primary.
    start_primary b-primary "$port" PIVITALS_INFLUX__API=v1 PIVITALS_INFLUX__URL="$INFLUX" \
        PIVITALS_INFLUX__DATABASE=pivitals PIVITALS_LIMITS__PUSH_BURST=1000000 \
        PIVITALS_LIMITS__PUSH_REFILL=1ms PIVITALS_BATCH__FLUSH_INTERVAL=1s
    local influx_cpu0 influx_cpu1
    simulate "$WORK/b1" --nodes "$NODES" --interval 1s --duration "${DURATION}s" \
        --primary-url "$url"
    wait_pushing "$WORK/b1" 600
    cpu0=$(cpu_ticks "$PRIMARY_PID")
    influx_cpu0=$(cpu_ticks "$INFLUX_PID")
    t0=$(now_s)
    wait_sim $((DURATION + 120)) || die "simulate failed: $(tail -5 "$WORK/b1.err")"
    cpu1=$(cpu_ticks "$PRIMARY_PID")
    influx_cpu1=$(cpu_ticks "$INFLUX_PID")
    line=$(grep '^simulate:' "$WORK/b1.out") || die "no summary line: $(tail -5 "$WORK/b1.err")"
    B_LINE=$line
    B_ACCEPTED=$(field "$line" accepted)
    B_SENT=$(field "$line" sent)
    B_FAILED=$(field "$line" failed)
    B_RATE=$(field "$line" pushes/s)
    B_P50=$(field "$line" p50)
    B_P99=$(field "$line" p99)
    B_CPU_US=$(calc '%.0f' "($cpu1 - $cpu0) / $CLK_TCK * 1000000 / $B_ACCEPTED")
    B_INFLUX_CPU_US=$(calc '%.0f' "($influx_cpu1 - $influx_cpu0) / $CLK_TCK * 1000000 / $B_ACCEPTED")
    # Every accepted push is one sample, so one cpu point: wait until all are in InfluxDB.
    deadline=$((SECONDS + 120))
    while ((SECONDS < deadline)); do
        landed=$(influx_count "$INFLUX" pivitals 'SELECT count(usage_percent) FROM cpu')
        ((landed >= B_ACCEPTED)) && break
        sleep 0.5
    done
    t1=$(now_s)
    B_LANDED=$landed
    B_POINTS=$(metric "$url" pivitals_points_written_total)
    B_LINES_PER_S=$(calc '%.0f' "$B_POINTS / ($t1 - $t0)")
    B_HWM=$(hwm_kib "$PRIMARY_PID")

    stop "$PRIMARY_PID"

    # One pair moves by ±5 % on a shared machine, more than the goal's margin: alternating
    # pairs, the median ratio's pair reported. Five: the medians of three moved between 0.88
    # and 0.96 over four runs of the same build (its twelve pairs 0.87-0.96).
    local i field ratios=() ratio_list=()
    B_LOST_PAIRS=()
    for i in $(seq 1 "$B_REPEAT"); do
        saturation_run "$i"
        direct_run "$i"
        ratios+=("$(calc '%.4f' "$S_LINES_PER_S / $D_LINES_PER_S") $i")
        ratio_list+=("$(calc '%.2f' "$S_LINES_PER_S / $D_LINES_PER_S")")
        ((S_LANDED >= S_ACCEPTED)) || B_LOST_PAIRS+=("$i")
        for field in "${PAIR_FIELDS[@]}"; do
            printf -v "${field}_$i" '%s' "${!field}"
        done
    done
    local middle source
    middle=$(printf '%s\n' "${ratios[@]}" | median 2)
    for field in "${PAIR_FIELDS[@]}"; do
        source=${field}_$middle
        printf -v "$field" '%s' "${!source}"
    done
    RATIO=$(calc '%.2f' "$S_LINES_PER_S / $D_LINES_PER_S")
    B_PAIRS="pair $middle of $B_REPEAT, the median; ratios ${ratio_list[*]}"

    if [[ $PROFILE == 1 ]]; then
        profile_primary
    fi
    stop "$INFLUX_PID"
}

# What saturation_run and direct_run set: kept per pair, the median pair's copied back.
PAIR_FIELDS=(S_LINE S_ACCEPTED S_FAILED S_RATE S_LANDED S_WRITES S_WRITE_S S_LINES S_SECONDS
    S_LINES_PER_S S_PRIMARY_CORES S_INFLUX_CORES S_SIM_CORES S_CPU_US D_LINES LINES_PER_SAMPLE
    D_SECONDS D_LINES_PER_S D_INFLUX_CORES D_LANDED)

# saturation_run I: SAT_NODES nodes pushing back to back for SAT_DURATION s into a fresh
# primary writing database sat_I; sets S_* (lines delivered per second from the first push to
# InfluxDB's last answer, cores of each process over that time, CPU per push).
saturation_run() {
    local i=$1 port url cpu0 cpu1 influx_cpu0 influx_cpu1 sim_cpu0 t0 t1 line deadline
    local landed written received
    log "b. saturation $i/$B_REPEAT: $SAT_NODES nodes pushing back to back for $SAT_DURATION s"
    port=$(free_port)
    url=http://127.0.0.1:$port
    start_primary "b2-primary-$i" "$port" PIVITALS_INFLUX__API=v1 PIVITALS_INFLUX__URL="$INFLUX" \
        PIVITALS_INFLUX__DATABASE="sat_$i" PIVITALS_LIMITS__PUSH_BURST=1000000 \
        PIVITALS_LIMITS__PUSH_REFILL=1ms PIVITALS_BATCH__FLUSH_INTERVAL=1s
    simulate "$WORK/b2-$i" --nodes "$SAT_NODES" --interval 10ms \
        --duration "${SAT_DURATION}s" --primary-url "$url"
    wait_pushing "$WORK/b2-$i" 600
    cpu0=$(cpu_ticks "$PRIMARY_PID")
    influx_cpu0=$(cpu_ticks "$INFLUX_PID")
    sim_cpu0=$(cpu_ticks "$SIM_PID")
    SIM_TICKS=$sim_cpu0
    t0=$(now_s)
    wait_sim $((SAT_DURATION + 120)) || die "simulate failed: $(tail -5 "$WORK/b2-$i.err")"
    line=$(grep '^simulate:' "$WORK/b2-$i.out") || die "no summary line"
    S_LINE=$line
    S_ACCEPTED=$(field "$line" accepted)
    S_FAILED=$(field "$line" failed)
    S_RATE=$(field "$line" pushes/s)
    # Landed when InfluxDB has answered 204 for every point the primary spooled, as the direct
    # client's run ends with its last 204. Watched through the primary's own counters: counting
    # in InfluxDB several times a second would charge the pipeline with the queries' cost.
    received=$(metric "$url" pivitals_points_received_total)
    deadline=$((SECONDS + 180))
    while ((SECONDS < deadline)); do
        written=$(metric "$url" pivitals_points_written_total)
        ((written >= received)) && break
        sleep 0.1
    done
    t1=$(now_s)
    cpu1=$(cpu_ticks "$PRIMARY_PID")
    influx_cpu1=$(cpu_ticks "$INFLUX_PID")
    landed=$(influx_count "$INFLUX" "sat_$i" 'SELECT count(usage_percent) FROM cpu')
    S_LANDED=$landed
    written=$(metric "$url" pivitals_points_written_total)
    S_WRITES=$(metric "$url" pivitals_write_requests_total)
    S_WRITE_S=$(calc '%.2f' "$(metric "$url" pivitals_write_seconds_total)")
    S_LINES=$written
    S_SECONDS=$(calc '%.2f' "$t1 - $t0")
    S_LINES_PER_S=$(calc '%.0f' "$written / ($t1 - $t0)")
    S_PRIMARY_CORES=$(calc '%.2f' "($cpu1 - $cpu0) / $CLK_TCK / ($t1 - $t0)")
    S_INFLUX_CORES=$(calc '%.2f' "($influx_cpu1 - $influx_cpu0) / $CLK_TCK / ($t1 - $t0)")
    S_SIM_CORES=$(calc '%.2f' "($SIM_TICKS - $sim_cpu0) / $CLK_TCK / ($t1 - $t0)")
    S_CPU_US=$(calc '%.0f' "($cpu1 - $cpu0) / $CLK_TCK * 1000000 / $S_ACCEPTED")
    stop "$PRIMARY_PID"
}

# direct_run I: the lines of as many samples as saturation run I accepted, written by one
# bulk client (curl, 5000-line bodies) into database direct_I; sets D_*.
direct_run() {
    local i=$1 samples lines_out f first=1 args=() status influx_cpu0 influx_cpu1 t0 t1
    log "b. direct $i/$B_REPEAT: the same number of lines with one bulk client"
    samples=$(((S_ACCEPTED + NODES - 1) / NODES))
    rm -rf "$WORK/lines"
    lines_out=$("$LINES_GEN" --nodes "$NODES" --samples "$samples" --out "$WORK/lines")
    D_LINES=$(sed 's/.*lines=\([0-9]*\).*/\1/' <<<"$lines_out")
    LINES_PER_SAMPLE=$(sed 's/.*lines_per_sample=\([0-9]*\).*/\1/' <<<"$lines_out")
    curl -s -o /dev/null -XPOST "$INFLUX/query" --data-urlencode "q=CREATE DATABASE direct_$i"
    for f in "$WORK"/lines/lines-*.lp; do
        ((first)) || args+=(--next)
        first=0
        args+=(-s -o /dev/null -w '%{http_code}\n' --data-binary "@$f"
            "$INFLUX/write?db=direct_$i&precision=ns")
    done
    influx_cpu0=$(cpu_ticks "$INFLUX_PID")
    t0=$(now_s)
    status=$(curl "${args[@]}" | sort | uniq -c | tr -s ' ' | tr '\n' ';')
    t1=$(now_s)
    influx_cpu1=$(cpu_ticks "$INFLUX_PID")
    [[ $status =~ ^\ ?[0-9]+\ 204\;$ ]] || die "direct writes answered: $status"
    D_SECONDS=$(calc '%.2f' "$t1 - $t0")
    D_LINES_PER_S=$(calc '%.0f' "$D_LINES / ($t1 - $t0)")
    D_INFLUX_CORES=$(calc '%.2f' "($influx_cpu1 - $influx_cpu0) / $CLK_TCK / ($t1 - $t0)")
    D_LANDED=$(influx_count "$INFLUX" "direct_$i" 'SELECT count(usage_percent) FROM cpu')
}

# The primary with symbols under perf while NODES nodes push at 1 s for 20 s.
profile_primary() {
    log "b. profile: perf record on the primary, $NODES nodes at 1 s for 20 s"
    local port url perf_pid
    port=$(free_port)
    url=http://127.0.0.1:$port
    PRIMARY_BINARY=$PRIMARY_SYMBOLS start_primary p-primary "$port" PIVITALS_INFLUX__API=v1 \
        PIVITALS_INFLUX__URL="$INFLUX" PIVITALS_INFLUX__DATABASE=profile
    simulate "$WORK/p" --nodes "$NODES" --interval 1s --duration 20s --primary-url "$url"
    wait_pushing "$WORK/p" 600
    perf record -q -F 499 -g -o "$WORK/perf.data" -p "$PRIMARY_PID" -- sleep 20 \
        >"$WORK/perf.log" 2>&1 &
    perf_pid=$!
    wait "$perf_pid" || true
    wait_sim 200 || true
    stop "$PRIMARY_PID"
    # Self time per symbol (frame-pointer call graphs are too broken in this build to trust).
    perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
        grep -E '^ +[0-9.]+%' | sed 's/ *- *- *$//; s/ *$//' >"$WORK/profile-self.txt" || true
    head -25 "$WORK/profile-self.txt" | cut -c1-150 >"$WORK/profile-top.txt"
    # The same, summed by what the symbols belong to.
    awk '{
        pct = $1; sub(/%/, "", pct); line = $0
        if (line ~ /\[k\]/) group = "kernel (TCP, epoll, fdatasync, scheduling)"
        else if (line ~ /malloc|_int_free|cfree|unlink_chunk|consolidate|realloc|RawVec.*drop|drop_in_place<alloc/) group = "allocator (malloc, free)"
        else if (line ~ /memmove|memcpy|memset|memcmp|extend_from_slice|rep_movs/) group = "memory copies"
        else if (line ~ /fmt|line_protocol|Escaped|FormattedField|flt2dec|grisu|dragon|write_char|write_str/) group = "line protocol encoding (core::fmt)"
        else if (line ~ /flate2|miniz|crc32|adler/) group = "gzip"
        else if (line ~ /redb/) group = "spool and registry (redb)"
        else if (line ~ /serde|from_utf8/) group = "JSON decoding (serde_json)"
        else if (line ~ /hyper|axum|http::|tower|httparse|reqwest/) group = "HTTP (hyper, axum, reqwest)"
        else if (line ~ /tokio|mio|epoll|futex|syscall|Mutex|pthread|clock_gettime|vdso/) group = "runtime, locks, clocks"
        else if (line ~ /pivitals_(primary|common)::/) group = "pivitals code (state, ingest, routes)"
        else group = "other (hash maps, futures, libm, ...)"
        sum[group] += pct
    } END { for (g in sum) printf "%6.1f%%  %s\n", sum[g], g }' "$WORK/profile-self.txt" |
        sort -rn >"$WORK/profile-groups.txt"
    PROFILE_LINE=$(grep '^simulate:' "$WORK/p.out" || true)
}

# --- c. memory with many nodes ------------------------------------------------------------------

phase_memory() {
    log "c. primary memory with $BIG_NODES registered nodes pushing every 60 s (the default)"
    local port url
    port=$(free_port)
    url=http://127.0.0.1:$port
    start_primary c-primary "$port" PIVITALS_LIMITS__MAX_NODES=$((BIG_NODES + 100))
    local idle
    idle=$(rss_kib "$PRIMARY_PID")
    simulate "$WORK/c" --nodes "$BIG_NODES" --interval 60s --duration 60s --threads 2 \
        --primary-url "$url"
    wait_sim 900 || die "simulate failed: $(tail -5 "$WORK/c.err")"
    C_LINE=$(grep '^simulate:' "$WORK/c.out") || die "no summary line"
    C_NODES=$(curl -s --max-time 30 "$url/healthz" | sed 's/.*"nodes":\([0-9]*\).*/\1/')
    C_IDLE_MIB=$(calc '%.1f' "$idle / 1024")
    C_HWM_MIB=$(calc '%.1f' "$(hwm_kib "$PRIMARY_PID") / 1024")
    C_RSS_MIB=$(calc '%.1f' "$(rss_kib "$PRIMARY_PID") / 1024")
    stop "$PRIMARY_PID"

    # Nodes pushing every 10 s keep their connections open between pushes: what 10,000 open
    # connections add.
    log "c. the same nodes pushing every 10 s for 70 s (connections kept open, parked between pushes)"
    port=$(free_port)
    url=http://127.0.0.1:$port
    start_primary c2-primary "$port" PIVITALS_LIMITS__MAX_NODES=$((BIG_NODES + 100))
    simulate "$WORK/c2" --nodes "$BIG_NODES" --interval 10s --duration 70s --threads 2 \
        --primary-url "$url"
    wait_sim 900 || die "simulate failed: $(tail -5 "$WORK/c2.err")"
    C2_LINE=$(grep '^simulate:' "$WORK/c2.out") || die "no summary line"
    C2_HWM_MIB=$(calc '%.1f' "$(hwm_kib "$PRIMARY_PID") / 1024")
    stop "$PRIMARY_PID"
}

# --- report -----------------------------------------------------------------------------------

verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo "NOT met"; fi; }

has_phase() { [[ $PHASES == *"$1"* ]]; }

# The static agent's row of table a, when it was built.
static_row() {
    [[ -n $AGENT_STATIC ]] || { echo "  pivitals-agent (musl)   not built (see the log)"; return; }
    local mib ms ns
    mib=$(calc '%.1f' "$S_HWM / 1024")
    ms=$(calc '%.2f' "$S_TICKS * 1000 / $CLK_TCK / $A_SAMPLES")
    ns=$(calc '%.3f' "$S_NS / 1000000 / $A_SAMPLES")
    echo "  pivitals-agent (musl)   $(printf '%5s MiB' "$mib")     $(printf '%5s ms' "$ms")   $(printf '%6s ms' "$ns")    $(printf '%-19s' "$A_SAMPLES") $S_SPLIT"
    echo "  musl agent / collectd   $(printf '%5s' "$(calc '%.2f' "$S_HWM / $C_HWM")")x                  $(printf '%6s' "$(calc '%.2f' "$S_NS / ($C_NS > 0 ? $C_NS : 1)")")x"
}

# static_verdict CONDITION DETAIL: "; static musl build met (DETAIL)", or nothing without one.
static_verdict() {
    [[ -n $AGENT_STATIC ]] || return 0
    echo "; static musl build $(verdict "$1") ($2)"
}

report() {
    local a_ms c_ms n_ms a_mib c_mib n_mib a_ns c_ns n_ns
    if has_phase a; then
        a_ms=$(calc '%.2f' "$A_TICKS * 1000 / $CLK_TCK / $A_SAMPLES")
        c_ms=$(calc '%.2f' "$C_TICKS * 1000 / $CLK_TCK / $C_SAMPLES")
        n_ms=$(calc '%.2f' "$N_TICKS * 1000 / $CLK_TCK / ($N_SAMPLES > 0 ? $N_SAMPLES : 1)")
        a_ns=$(calc '%.3f' "$A_NS / 1000000 / $A_SAMPLES")
        c_ns=$(calc '%.3f' "$C_NS / 1000000 / $C_SAMPLES")
        n_ns=$(calc '%.3f' "$N_NS / 1000000 / ($N_SAMPLES > 0 ? $N_SAMPLES : 1)")
        a_mib=$(calc '%.1f' "$A_HWM / 1024")
        c_mib=$(calc '%.1f' "$C_HWM / 1024")
        n_mib=$(calc '%.1f' "$N_HWM / 1024")
    fi
    cat <<EOF
pivitals benchmark, $(date -u +%Y-%m-%dT%H:%MZ), commit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD -- . ':(exclude)bench/results' 2>/dev/null || echo ' (with uncommitted changes)')
machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -h | awk '/^Mem:/ {print $2}') memory; load average before the run: $LOAD_BEFORE
command: bash bench/run.sh$([[ $CHECK == 1 ]] && echo " --check") (BENCH_WINDOW=$WINDOW BENCH_NODES=$NODES BENCH_DURATION=$DURATION BENCH_SAT_NODES=$SAT_NODES BENCH_SAT_DURATION=$SAT_DURATION BENCH_BIG_NODES=$BIG_NODES BENCH_PHASES=$PHASES)
EOF
    if has_phase a; then
        echo
        cat <<EOF
a. one node at a 1 s interval, ${WINDOW_S} s window, all three at once
                          peak RSS      CPU per sample          samples in window   RSS at the end KiB
                          (VmHWM)       stat       schedstat                         anon + file
  pivitals-agent (glibc)  $(printf '%5s MiB' "$a_mib")     $(printf '%5s ms' "$a_ms")   $(printf '%6s ms' "$a_ns")    $(printf '%-19s' "$A_SAMPLES") $A_SPLIT
$(static_row)
  agent 60 s, peaks 1 s   $(printf '%5s MiB' "$(calc '%.1f' "$D_HWM / 1024")")                $(printf '%6s ms' "$(calc '%.3f' "$D_NS / 1000000 / $WINDOW")")    $(printf '%-19s' "$WINDOW (readings)") $D_SPLIT
  collectd (sender)       $(printf '%5s MiB' "$c_mib")     $(printf '%5s ms' "$c_ms")   $(printf '%6s ms' "$c_ns")    $(printf '%-19s' "$C_SAMPLES") $C_SPLIT
  node-exporter + scrape  $(printf '%5s MiB' "$n_mib")     $(printf '%5s ms' "$n_ms")   $(printf '%6s ms' "$n_ns")    $(printf '%-19s' "$N_SAMPLES (scrapes)") $N_SPLIT
  agent / collectd        $(printf '%5s' "$(calc '%.2f' "$A_HWM / $C_HWM")")x                  $(printf '%6s' "$(calc '%.2f' "$A_NS / $A_SAMPLES / ($C_NS > 0 ? $C_NS / $C_SAMPLES : 1)")")x
  default agent / collectd $(printf '%4s' "$(calc '%.2f' "$D_HWM / $C_HWM")")x                  $(printf '%6s' "$(calc '%.2f' "$D_NS / $WINDOW / ($C_NS > 0 ? $C_NS / $C_SAMPLES : 1)")")x   (CPU a second, both reading every second)
  agent / node-exporter   $(printf '%5s' "$(calc '%.2f' "$A_HWM / $N_HWM")")x                  $(printf '%6s' "$(calc '%.2f' "$A_NS / $A_SAMPLES / ($N_NS > 0 ? $N_NS / ($N_SAMPLES > 0 ? $N_SAMPLES : 1) : 1)")")x
  (CPU over the window ÷ samples: "stat" is utime+stime from /proc/PID/stat, whole 1/$CLK_TCK s ticks
   (agent $A_TICKS, collectd $C_TICKS, node-exporter $N_TICKS), so ±1 tick is ±$(calc '%.2f' "1000 / $CLK_TCK / $WINDOW") ms a sample;
   "schedstat" sums /proc/PID/task/*/schedstat, exact to the ns; the verdicts use it)
  the primary received $A_RECEIVED samples from the agents in the window
  stripped release agent binary: $AGENT_SIZE bytes ($(calc '%.2f' "$AGENT_SIZE / 1048576") MiB) glibc, dynamic$([[ -n $AGENT_STATIC ]] && echo "; $AGENT_STATIC_SIZE bytes ($(calc '%.2f' "$AGENT_STATIC_SIZE / 1048576") MiB) musl, static")
EOF
    fi
    if has_phase b; then
        echo
        cat <<EOF
b. primary into InfluxDB 1.x ($(influxd version 2>/dev/null | head -1)); primary: 5000-point batches, flush interval 1 s, per-node push limit lifted
  $NODES nodes at 1 s for $DURATION s:  $B_LINE
    pushes accepted $B_ACCEPTED, failed $B_FAILED, $B_RATE pushes/s; latency p50 $B_P50 ms, p99 $B_P99 ms
    cpu points in InfluxDB: $B_LANDED of $B_ACCEPTED pushes; lines written $B_POINTS ($LINES_PER_SAMPLE a sample); end to end $B_LINES_PER_S lines/s (offered load)
    primary CPU per push: $B_CPU_US µs (influxd: $B_INFLUX_CPU_US µs); primary peak RSS $(calc '%.1f' "$B_HWM / 1024") MiB
  saturation and direct, $B_PAIRS; the median pair:
  saturation, $SAT_NODES nodes pushing back to back for $SAT_DURATION s:  $S_LINE
    pushes accepted $S_ACCEPTED, failed $S_FAILED, $S_RATE pushes/s; cpu points landed $S_LANDED
    end to end: $S_LINES lines in $S_SECONDS s (from the first push to the last line in InfluxDB) = $S_LINES_PER_S lines/s; primary CPU per push $S_CPU_US µs
    the primary's writes to InfluxDB: $S_WRITES requests, $S_WRITE_S s waiting for their answers ($(calc '%.0f' "$S_LINES / ($S_WRITES > 0 ? $S_WRITES : 1)") lines a request)
    cores busy: primary $S_PRIMARY_CORES, influxd $S_INFLUX_CORES, simulator $S_SIM_CORES (of $(nproc))
  direct, one bulk client (curl, 5000-line bodies): $D_LINES lines in $D_SECONDS s = $D_LINES_PER_S lines/s (influxd $D_INFLUX_CORES cores); cpu points landed $D_LANDED
  pipeline / direct: ${RATIO}x
EOF
    fi
    if has_phase c; then
        echo
        cat <<EOF
c. primary memory with $BIG_NODES nodes registered, pushing every 60 s (the default; connections closed after each push):  $C_LINE
    nodes known: $C_NODES; RSS idle before $C_IDLE_MIB MiB; peak RSS (VmHWM) $C_HWM_MIB MiB; RSS at the end $C_RSS_MIB MiB
  the same $BIG_NODES nodes pushing every 10 s for 70 s (each keeps its connection open):  $C2_LINE
    peak RSS $C2_HWM_MIB MiB
EOF
    fi
    if has_phase l; then
        echo
        cat <<EOF
l. action long polls: $LP_NODES nodes pushing every $LP_INTERVAL s for $LP_DURATION s into the archive
  pushes only:                    $L0_LINE
    primary RSS max $(calc '%.1f' "$L0_MAX_RSS / 1024") MiB (VmHWM $(calc '%.1f' "$L0_HWM / 1024") MiB); CPU $L0_CPU_MS ms over the pushing; cpu lines archived $L0_CPU_LINES of $(field "$L0_LINE" accepted) pushes accepted
  pushes and $LP_NODES polls held: $L1_LINE
    primary RSS max $(calc '%.1f' "$L1_MAX_RSS / 1024") MiB (VmHWM $(calc '%.1f' "$L1_HWM / 1024") MiB); CPU $L1_CPU_MS ms over the pushing; cpu lines archived $L1_CPU_LINES of $(field "$L1_LINE" accepted) pushes accepted
    ping asked of all: received by $(field "$L1_LINE" received) of $(field "$L1_LINE" asked) nodes; from the ask to each poll's answer p50 $(field "$L1_LINE" deliver_p50) ms, p99 $(field "$L1_LINE" deliver_p99) ms, max $(field "$L1_LINE" deliver_max) ms; action lines archived $L1_ACTION_LINES
  polls / pushes only: RSS max +$(calc '%.1f' "($L1_MAX_RSS - $L0_MAX_RSS) / 1024") MiB ($(calc '%.2f' "$L1_MAX_RSS / $L0_MAX_RSS")x), CPU $(calc '%.2f' "$L1_CPU_MS / ($L0_CPU_MS > 0 ? $L0_CPU_MS : 1)")x
EOF
    fi
    echo
    echo targets
    if has_phase a; then
        cat <<EOF
  agent peak RSS <= collectd's:               glibc build $(verdict "$A_HWM <= $C_HWM") ($a_mib vs $c_mib MiB)$(static_verdict "$S_HWM <= $C_HWM" "$(calc '%.1f' "${S_HWM:-0} / 1024") vs $c_mib MiB")
  agent CPU per sample <= collectd's:         glibc build $(verdict "$A_NS / $A_SAMPLES <= $C_NS / $C_SAMPLES") ($a_ns vs $c_ns ms, schedstat)$(static_verdict "$S_NS / $A_SAMPLES <= $C_NS / $C_SAMPLES" "$(calc '%.3f' "${S_NS:-0} / 1000000 / $A_SAMPLES") vs $c_ns ms")
  stripped agent <= 4 MB:                     glibc build $(verdict "$AGENT_SIZE <= 4000000") ($AGENT_SIZE bytes)$(static_verdict "$AGENT_STATIC_SIZE <= 4000000" "$AGENT_STATIC_SIZE bytes")
EOF
    fi
    if has_phase b; then
        cat <<EOF
  primary 2,000 pushes/s, every push landing: $(verdict "$B_SENT >= $NODES * $DURATION && $B_FAILED == 0 && $B_LANDED == $B_ACCEPTED && $NODES >= 2000") ($B_SENT of $((NODES * DURATION)) scheduled pushes sent, $B_FAILED failed, $B_LANDED of $B_ACCEPTED landed; $B_RATE pushes/s)
  pipeline >= 0.9x direct write:              $(verdict "$RATIO >= 0.9") (${RATIO}x)
EOF
    fi
    if has_phase c; then
        cat <<EOF
  primary <= 64 MiB with 10,000 nodes:        $(verdict "$C_HWM_MIB <= 64 && $BIG_NODES >= 10000") ($C_HWM_MIB MiB peak at the default interval)
EOF
    fi
    if has_phase r; then
        echo "  10 alert rules add <= 10 % CPU per push:    $(verdict "$R_RATIO <= 1.10") ($R_TEN_US vs $R_NONE_US µs a push, ${R_RATIO}x; $NODES nodes at 1 s)"
    fi
    if has_phase l; then
        echo "  an action reaches all $LP_NODES polling nodes within 2 s: $(verdict "$(field "$L1_LINE" received) == $LP_NODES && $(field "$L1_LINE" deliver_max) <= 2000") ($(field "$L1_LINE" received) received, max $(field "$L1_LINE" deliver_max) ms)"
        echo "  every push lands with the polls held:       $(verdict "$(field "$L1_LINE" failed) == 0 && $L1_CPU_LINES == $(field "$L1_LINE" accepted)") ($(field "$L1_LINE" failed) failed, $L1_CPU_LINES of $(field "$L1_LINE" accepted) archived)"
    fi
    summary
    if [[ $PROFILE == 1 ]]; then
        echo
        echo "profile of the primary (perf, $NODES nodes at 1 s, 20 s): $PROFILE_LINE"
        echo "  self time by kind:"
        sed 's/^/  /' "$WORK/profile-groups.txt"
        echo "  self time, top symbols:"
        sed 's/^/  /' "$WORK/profile-top.txt"
    fi
}

# --- l. action long polls ------------------------------------------------------------------------

# archived NAME PREFIX: the lines starting with PREFIX in the archive of the primary NAME.
archived() {
    cat "$WORK/$1/data/archive/"*.lp 2>/dev/null | grep -c "^$2" || true
}

# longpoll_run NAME [SIMULATE ARGS...]: $LP_NODES nodes pushing every $LP_INTERVAL s for
# $LP_DURATION s into a fresh primary NAME writing the archive, with the extra arguments. Sets
# LP_LINE (the summary line), LP_MAX_RSS (KiB, the highest VmRSS seen while pushing), LP_HWM
# (KiB), LP_CPU_MS (primary CPU over the pushing, schedstat), LP_CPU_LINES and LP_ACTION_LINES
# (archived after the primary stopped, so everything it accepted is written).
longpoll_run() {
    local name=$1 port url ns0 ns1 rss
    shift
    port=$(free_port)
    url=http://127.0.0.1:$port
    start_primary "$name" "$port" PIVITALS_ADMIN_TOKEN="$ADMIN_TOKEN" \
        PIVITALS_BATCH__FLUSH_INTERVAL=1s
    simulate "$WORK/$name" --nodes "$LP_NODES" --interval "${LP_INTERVAL}s" \
        --duration "${LP_DURATION}s" --threads 2 --primary-url "$url" "$@"
    wait_pushing "$WORK/$name" 600
    ns0=$(cpu_ns "$PRIMARY_PID")
    LP_MAX_RSS=0
    while kill -0 "$SIM_PID" 2>/dev/null && [[ $(ps -o stat= -p "$SIM_PID" 2>/dev/null || true) != Z* ]]; do
        rss=$(rss_kib "$PRIMARY_PID")
        ((rss > LP_MAX_RSS)) && LP_MAX_RSS=$rss
        sleep 0.5
    done
    ns1=$(cpu_ns "$PRIMARY_PID")
    wait_sim 60 || die "simulate failed: $(tail -5 "$WORK/$name.err")"
    LP_LINE=$(grep '^simulate:' "$WORK/$name.out") || die "no summary line"
    LP_HWM=$(hwm_kib "$PRIMARY_PID")
    LP_CPU_MS=$(calc '%.0f' "($ns1 - $ns0) / 1000000")
    stop "$PRIMARY_PID"
    LP_CPU_LINES=$(archived "$name" 'cpu,')
    LP_ACTION_LINES=$(archived "$name" 'action,action=ping,')
}

phase_longpoll() {
    log "l. $LP_NODES nodes pushing every $LP_INTERVAL s for $LP_DURATION s: without action polls"
    longpoll_run l-push
    L0_LINE=$LP_LINE L0_MAX_RSS=$LP_MAX_RSS L0_HWM=$LP_HWM L0_CPU_MS=$LP_CPU_MS
    L0_CPU_LINES=$LP_CPU_LINES
    log "l. the same with every node holding the action long poll, ping asked of all halfway"
    longpoll_run l-poll --poll-actions --ask-action ping --admin-token "$ADMIN_TOKEN" \
        --ask-after "$((LP_DURATION / 2))s"
    L1_LINE=$LP_LINE L1_MAX_RSS=$LP_MAX_RSS L1_HWM=$LP_HWM L1_CPU_MS=$LP_CPU_MS
    L1_CPU_LINES=$LP_CPU_LINES L1_ACTION_LINES=$LP_ACTION_LINES
}

# --- r. the cost of alert rules ------------------------------------------------------------------

# rules_run NAME: $NODES nodes at 1 s for $DURATION s into a primary writing the archive (with
# PRIMARY_CONFIG when set); prints the primary's CPU per accepted push in µs (schedstat).
rules_run() {
    local name=$1 port url ns0 ns1 line accepted
    port=$(free_port)
    url=http://127.0.0.1:$port
    start_primary "$name" "$port" PIVITALS_LIMITS__PUSH_BURST=1000000 PIVITALS_LIMITS__PUSH_REFILL=1ms
    simulate "$WORK/$name" --nodes "$NODES" --interval 1s --duration "${DURATION}s" --primary-url "$url"
    wait_pushing "$WORK/$name" 600
    ns0=$(cpu_ns "$PRIMARY_PID")
    wait_sim $((DURATION + 120)) || die "simulate failed: $(tail -5 "$WORK/$name.err")"
    ns1=$(cpu_ns "$PRIMARY_PID")
    line=$(grep '^simulate:' "$WORK/$name.out") || die "no summary line"
    accepted=$(field "$line" accepted)
    stop "$PRIMARY_PID"
    calc '%.1f' "($ns1 - $ns0) / 1000 / $accepted"
}

phase_rules() {
    log "r. alert rules: $NODES nodes at 1 s for $DURATION s, without rules and with 10"
    local config=$WORK/no-rules.toml
    printf '[alert]\ndefault_rules = false\n' >"$config"
    R_NONE_US=$(PRIMARY_CONFIG=$config rules_run r-none)
    R_TEN_US=$(PRIMARY_CONFIG=$ROOT/bench/alert-rules.toml rules_run r-ten)
    R_RATIO=$(calc '%.3f' "$R_TEN_US / $R_NONE_US")
}

# --- x. alert rules and action long polls together -------------------------------------------------

# combined_run NAME [SIMULATE ARGS...]: $NODES nodes at 1 s for $DURATION s into a fresh primary
# NAME writing the archive (with PRIMARY_CONFIG when set). Sets X_LINE (the summary line), X_US
# (primary CPU per accepted push, µs, schedstat) and X_LINES (cpu lines archived, counted after
# the primary stopped, so everything it accepted is written).
combined_run() {
    local name=$1 port url ns0 ns1
    shift
    port=$(free_port)
    url=http://127.0.0.1:$port
    start_primary "$name" "$port" PIVITALS_ADMIN_TOKEN="$ADMIN_TOKEN" \
        PIVITALS_LIMITS__PUSH_BURST=1000000 PIVITALS_LIMITS__PUSH_REFILL=1ms
    simulate "$WORK/$name" --nodes "$NODES" --interval 1s --duration "${DURATION}s" \
        --primary-url "$url" "$@"
    wait_pushing "$WORK/$name" 600
    ns0=$(cpu_ns "$PRIMARY_PID")
    wait_sim $((DURATION + 120)) || die "simulate failed: $(tail -5 "$WORK/$name.err")"
    ns1=$(cpu_ns "$PRIMARY_PID")
    X_LINE=$(grep '^simulate:' "$WORK/$name.out") || die "no summary line"
    X_US=$(calc '%.1f' "($ns1 - $ns0) / 1000 / $(field "$X_LINE" accepted)")
    stop "$PRIMARY_PID"
    X_LINES=$(archived "$name" 'cpu,')
}

phase_combined() {
    log "x. $NODES nodes at 1 s for $DURATION s, $X_REPEAT times each, alternating: plain, then with 10 alert rules and every node polling for actions"
    local config=$WORK/no-rules.toml i plain_us=() loaded_us=()
    printf '[alert]\ndefault_rules = false\n' >"$config"
    # Alternating runs, the median of each kind: one pair moves by ±10 % on a shared machine,
    # as much as the goal. Five of each: with three, two slow loaded runs in a row made 1.11x
    # of a difference measured at 1.04-1.06x in the other full runs of the day.
    for i in $(seq 1 "$X_REPEAT"); do
        PRIMARY_CONFIG=$config combined_run "x-plain-$i"
        X0_LINE=$X_LINE X0_LINES=$X_LINES
        plain_us+=("$X_US")
        PRIMARY_CONFIG=$ROOT/bench/alert-rules.toml combined_run "x-loaded-$i" --poll-actions
        X1_LINE=$X_LINE X1_LINES=$X_LINES
        loaded_us+=("$X_US")
    done
    X0_US=$(printf '%s\n' "${plain_us[@]}" | median)
    X1_US=$(printf '%s\n' "${loaded_us[@]}" | median)
    X_RUNS="plain ${plain_us[*]}; loaded ${loaded_us[*]} µs"
}

# --- the summary: one row a goal ------------------------------------------------------------------

# pad TEXT WIDTH: TEXT and spaces up to WIDTH characters (printf pads bytes, and µ is two).
pad() {
    local chars
    chars=$(printf '%s' "$1" | LC_ALL=C.UTF-8 wc -m)
    printf '%s%*s' "$1" $(($2 > chars ? $2 - chars : 1)) ''
}

# row FIGURE OURS PEER RATIO GOAL CONDITION: one line of the summary; CONDITION is an awk
# expression. A missed goal is also counted in $WORK/missed for --check.
row() {
    local met
    if awk "BEGIN { exit !($6) }"; then
        met=met
    else
        met=MISSED
        echo "$1" >>"$WORK/missed"
    fi
    echo "  $(pad "$1" 46)$(pad "$2" 12)$(pad "$3" 26)$(pad "$4" 9)$(pad "$5" 11)$met"
}

summary() {
    echo
    echo "summary: the goals of the performance issue, each against its peer in this run"
    echo "  $(pad figure 46)$(pad ours 12)$(pad peer 26)$(pad ratio 9)$(pad goal 11)verdict"
    local r
    if has_phase b; then
        r=$(calc '%.2f' "$B_CPU_US / ($B_INFLUX_CPU_US > 0 ? $B_INFLUX_CPU_US : 1)")
        row "primary CPU per push ($NODES nodes at 1 s)" "$B_CPU_US µs" "influxd $B_INFLUX_CPU_US µs" "${r}x" "<= 0.5x" "$r <= 0.5"
        r=$(calc '%.2f' "$S_CPU_US / ($B_INFLUX_CPU_US > 0 ? $B_INFLUX_CPU_US : 1)")
        echo "    (at saturation: primary $S_CPU_US µs a push, ${r}x influxd's at 1 s; not a goal)"
        row "delivered lines/s: pipeline vs direct" "$S_LINES_PER_S" "direct $D_LINES_PER_S" "${RATIO}x" ">= 0.9x" "$RATIO >= 0.9 && ${#B_LOST_PAIRS[@]} == 0"
        echo "    ($B_PAIRS; median pair: $S_LANDED cpu points landed of $S_ACCEPTED pushes accepted; pairs with points missing: ${#B_LOST_PAIRS[@]})"
        r=$(calc '%.1f' "$B_LANDED * 100 / ($B_ACCEPTED > 0 ? $B_ACCEPTED : 1)")
        row "$NODES nodes at 1 s into InfluxDB: landed" "$r %" "$B_LANDED of $B_ACCEPTED" "-" "100 %" "$B_LANDED >= $B_ACCEPTED && $B_FAILED == 0 && $NODES >= 2000"
        row "$NODES nodes at 1 s into InfluxDB: p99" "$B_P99 ms" "-" "-" "< 50 ms" "$B_P99 < 50"
    fi
    if has_phase a; then
        r=$(calc '%.2f' "$A_HWM / $C_HWM")
        row "agent peak RSS, glibc build" "$(calc '%.1f' "$A_HWM / 1024") MiB" "collectd $(calc '%.1f' "$C_HWM / 1024") MiB" "${r}x" "<= 1.0x" "$r <= 1.0"
        local c_per=$((C_NS / C_SAMPLES))
        r=$(calc '%.2f' "$A_NS / $A_SAMPLES / ($c_per > 0 ? $c_per : 1)")
        row "agent CPU per sample, glibc build" "$(calc '%.3f' "$A_NS / 1000000 / $A_SAMPLES") ms" "collectd $(calc '%.3f' "$C_NS / 1000000 / $C_SAMPLES") ms" "${r}x" "<= 1.0x" "$r <= 1.0"
        if [[ -n $AGENT_STATIC ]]; then
            r=$(calc '%.2f' "$S_HWM / $C_HWM")
            row "agent peak RSS, static build (installed)" "$(calc '%.1f' "$S_HWM / 1024") MiB" "collectd $(calc '%.1f' "$C_HWM / 1024") MiB" "${r}x" "<= 1.0x" "$r <= 1.0"
            r=$(calc '%.2f' "$S_NS / $A_SAMPLES / ($c_per > 0 ? $c_per : 1)")
            row "agent CPU per sample, static build" "$(calc '%.3f' "$S_NS / 1000000 / $A_SAMPLES") ms" "collectd $(calc '%.3f' "$C_NS / 1000000 / $C_SAMPLES") ms" "${r}x" "<= 1.0x" "$r <= 1.0"
        else
            row "agent, static build" "not built" "-" "-" "<= 1.0x" "0"
        fi
    fi
    if has_phase c; then
        local peak
        peak=$(awk "BEGIN { print ($C_HWM_MIB > $C2_HWM_MIB ? $C_HWM_MIB : $C2_HWM_MIB) }")
        row "primary peak RSS, $BIG_NODES nodes, either run" "$peak MiB" "60 s $C_HWM_MIB, 10 s $C2_HWM_MIB MiB" "$(calc '%.2f' "$peak / 64")x" "<= 64 MiB" "$peak <= 64 && $BIG_NODES >= 10000"
    fi
    if has_phase x; then
        r=$(calc '%.3f' "$X1_US / ($X0_US > 0 ? $X0_US : 1)")
        row "CPU per push, 10 rules + polls held" "$X1_US µs" "plain $X0_US µs" "${r}x" "<= 1.10x" "$r <= 1.10"
        echo "    (medians of $X_REPEAT alternating runs each: $X_RUNS; landed and p99 from the last run)"
        local accepted p99
        accepted=$(field "$X1_LINE" accepted)
        p99=$(field "$X1_LINE" p99)
        r=$(calc '%.1f' "$X1_LINES * 100 / ($accepted > 0 ? $accepted : 1)")
        row "$NODES nodes at 1 s, rules + polls: landed" "$r %" "$X1_LINES of $accepted" "-" "100 %" "$X1_LINES >= $accepted && $(field "$X1_LINE" failed) == 0 && $NODES >= 2000"
        row "$NODES nodes at 1 s, rules + polls: p99" "$p99 ms" "plain $(field "$X0_LINE" p99) ms" "-" "< 50 ms" "$p99 < 50"
    fi
    if has_phase r; then
        row "CPU per push, 10 rules (phase r)" "$R_TEN_US µs" "no rule $R_NONE_US µs" "${R_RATIO}x" "<= 1.10x" "$R_RATIO <= 1.10"
    fi
    if has_phase l; then
        r=$(calc '%.2f' "$L1_CPU_MS / ($L0_CPU_MS > 0 ? $L0_CPU_MS : 1)")
        row "CPU, polls held (phase l, $LP_INTERVAL s pushes)" "$L1_CPU_MS ms" "pushes only $L0_CPU_MS ms" "${r}x" "<= 1.10x" "$r <= 1.10"
    fi
}

main() {
    local arg
    for arg in "$@"; do
        case $arg in
        --check) CHECK=1 ;;
        *) die "unknown argument $arg (the only one is --check; phases and sizes are BENCH_* variables)" ;;
        esac
    done
    install_packages
    build
    WORK=$(mktemp -d /tmp/pivitals-bench.XXXXXX)
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    if has_phase a; then phase_agent; fi
    if has_phase b; then phase_primary; fi
    if has_phase c; then phase_memory; fi
    if has_phase r; then phase_rules; fi
    if has_phase l; then phase_longpoll; fi
    if has_phase x; then phase_combined; fi
    mkdir -p "$RESULTS_DIR"
    # Only a run of every phase replaces the committed figures.
    local out=$RESULTS_DIR/latest.txt
    [[ $PHASES == abcx ]] || out=$RESULTS_DIR/partial-$PHASES.txt
    : >"$WORK/missed"
    report | tee "$out"
    if [[ $CHECK == 1 && -s $WORK/missed ]]; then
        log "--check: $(wc -l <"$WORK/missed") goal(s) missed: $(paste -sd ';' "$WORK/missed")"
        exit 1
    fi
}

main "$@"
