#!/usr/bin/env bash
# Writes agent/link/hot-functions.txt again: the functions the release agent runs, which
# agent/build.rs has the linker place together (see its `//!` doc).
#
#   scripts/agent-hot-functions.sh            # adds to the list the functions it lacks
#   scripts/agent-hot-functions.sh --fresh    # starts from an empty list
#
# Needs valgrind, perf and python3 (root, for perf's page faults). Builds the release agent
# and primary, starts the primary on 127.0.0.1, then:
# 1. runs the agent under valgrind's lackey for 30 s twice (a push every second; a push every
#    minute with the vitals read every second), each registering afresh, and lists the
#    functions whose code ran, in the order they first ran;
# 2. valgrind's CPU lacks some instructions (SHA, AVX-512), so the code chosen for this CPU
#    is found natively: the agent, linked with the list, runs under `perf record -e
#    page-faults` (fresh, at 60 s, restarted with its credential); each fault on code beyond
#    the placed functions names one more, added to the list, until a round finds none. Each
#    round does this for the three ordinary builds in turn (the agent alone, the whole
#    workspace, the agent with the primary): the features unified with the other packages
#    change some of the generic code that is made, and so the functions that run.
# A round finds at most one function per 64 KiB block of code, so a fresh list takes some runs
# to settle: without --fresh the list already there is kept, first, and only added to. The
# list holds the symbols of the build it was made with; build.rs matches them with their
# hashes as `*`, so the list stays valid in other directories and with other features, and
# only a dependency or toolchain update that changes or renames the code that runs calls for a
# new one: run it --fresh, then again without, review the diff, then compare
# `BENCH_PHASES=a bash bench/run.sh` before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LIST=$ROOT/agent/link/hot-functions.txt
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
for tool in valgrind perf python3; do
    command -v "$tool" >/dev/null || { echo "agent-hot-functions: $tool is needed" >&2; exit 1; }
done

# The three ordinary builds: the agent alone (as installed), the whole workspace, the agent with
# the primary (the .deb).
BUILDS=("-p pivitals-agent" "--workspace" "-p pivitals-agent -p pivitals-primary")

# build [N]: the agent of build N (default 0) in $WORK/agent, its map in $WORK/agent.map.
build() {
    # shellcheck disable=SC2086 # the packages are words
    PIVITALS_AGENT_LINK_MAP=$WORK/agent.map cargo build --release -q ${BUILDS[${1:-0}]}
    cp target/release/pivitals-agent "$WORK/agent"
}

cargo build --release -q -p pivitals-primary
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TOKEN=hot-functions-enrollment-token-01
PIVITALS_LISTEN=127.0.0.1:$PORT PIVITALS_DATA_DIR=$WORK/primary PIVITALS_ENROLL_TOKEN=$TOKEN \
    PIVITALS_SELF_MONITOR=false PIVITALS_LOG=warn target/release/pivitals-primary \
    >"$WORK/primary.log" 2>&1 &
PIDS+=($!)
sleep 2

# agent SECONDS STATE WRAPPER... [-- VAR=VALUE...]: the agent for SECONDS under WRAPPER.
agent() {
    local seconds=$1 state=$2 wrapper=() vars=()
    shift 2
    while (($#)) && [[ $1 != -- ]]; do wrapper+=("$1") && shift; done
    (($#)) && shift && vars=("$@")
    env PIVITALS_PRIMARY_URL="http://127.0.0.1:$PORT" PIVITALS_ENROLL_TOKEN=$TOKEN \
        PIVITALS_NODE_NAME="$(basename "$state")" PIVITALS_STATE_DIR="$state" \
        PIVITALS_INTERVAL=1s PIVITALS_START_JITTER=false PIVITALS_LOG=warn "${vars[@]}" \
        timeout -s TERM "$seconds" "${wrapper[@]}" "$WORK/agent" >>"$WORK/agent.log" 2>&1 || true
}

# The functions of the code addresses in FILES (one hexadecimal address a line), by the map.
MAPPER='
import bisect, re, sys
map_file, list_file, *files = sys.argv[1:]
sections, out = [], None
for line in open(map_file):
    f = line.split()
    if len(f) != 5 or f[0] == "VMA":
        continue
    column = line.rfind(" " + f[4]) + 1
    if column == 49:
        out = f[4]
    elif column == 57 and out == ".text":
        m = re.search(r":\(\.text\.(?:(?:unlikely|hot|startup|exit|split)\.)?(.+)\)$", f[4])
        if m:
            sections.append((int(f[0], 16), int(f[2], 16), m.group(1)))
sections.sort()
starts = [s[0] for s in sections]
names = [l.strip() for l in open(list_file) if l.strip()] if list_file != "-" else []
known, new = set(names), []
for file in files:
    for line in open(file):
        address = int(line, 16)
        i = bisect.bisect_right(starts, address) - 1
        if i >= 0 and address < starts[i] + sections[i][1] and sections[i][2] not in known:
            known.add(sections[i][2])
            new.append(sections[i][2])
print(f"{len(new)} more functions", file=sys.stderr)
sys.stdout.write("".join(n + "\n" for n in names + new))
'

# 1. Under lackey, with the list there is (--fresh: none), the order the functions first ran.
[[ ${1:-} == --fresh ]] && : >"$LIST"
cp "$LIST" "$WORK/kept"
build
for run in every-second every-minute; do
    vars=()
    [[ $run == every-minute ]] && vars=(PIVITALS_INTERVAL=60s PIVITALS_SAMPLE_EVERY=1s)
    # Every superblock run is a line: only the first of each address is kept.
    mkfifo "$WORK/$run.sb"
    awk '$1 == "SB" && !seen[$2]++ { print $2 }' "$WORK/$run.sb" >"$WORK/$run.addresses" &
    agent 30 "$WORK/$run" valgrind --tool=lackey --trace-superblocks=yes --log-file="$WORK/$run.sb" \
        -- "${vars[@]}"
    wait $!
done
python3 -c "$MAPPER" "$WORK/agent.map" "$WORK/kept" "$WORK/every-second.addresses" \
    "$WORK/every-minute.addresses" >"$WORK/list"
cp "$WORK/list" "$LIST"

# 2. Natively, in each build, until the page faults on code name no function beyond the list.
for round in $(seq 1 12); do
    changed=false
    for b in "${!BUILDS[@]}"; do
        build "$b"
        rm -rf "$WORK/fresh" "$WORK/minute"
        : >"$WORK/faults"
        for run in fresh minute restart; do
            vars=()
            state=$WORK/fresh
            [[ $run == minute ]] && state=$WORK/minute && vars=(PIVITALS_INTERVAL=60s PIVITALS_SAMPLE_EVERY=1s)
            agent 6 "$state" perf record -q -e page-faults -c 1 -d -o "$WORK/$run.data" -- "${vars[@]}"
            perf script -i "$WORK/$run.data" -F addr 2>/dev/null >>"$WORK/faults" || true
        done
        python3 -c "$MAPPER" "$WORK/agent.map" "$LIST" "$WORK/faults" >"$WORK/list" 2>"$WORK/more"
        echo "round $round, cargo build --release ${BUILDS[$b]}: $(cat "$WORK/more")" >&2
        cmp -s "$WORK/list" "$LIST" || changed=true
        cp "$WORK/list" "$LIST"
    done
    $changed || break
done
build
echo "agent-hot-functions: $(wc -l <"$LIST") functions in agent/link/hot-functions.txt (round $round)" >&2
