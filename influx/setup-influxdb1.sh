#!/usr/bin/env sh
# Creates the pivitals database and its 365-day default retention policy on InfluxDB 1.x (1.8
# on 32-bit Raspberry Pi OS, or Debian's 1.6): the same ones the primary creates at start-up
# with PIVITALS_INFLUX__API=v1. Run it to prepare the server before the first primary starts,
# or again at any time: it is idempotent and brings an existing policy back to 365 days.
#
# Usage: influx/setup-influxdb1.sh [URL] [DATABASE]   (defaults: http://localhost:8086 pivitals)
# Set INFLUX_USERNAME and INFLUX_PASSWORD when authentication is on. Needs curl.
set -eu
url=${1:-http://localhost:8086}
db=${2:-pivitals}
rp=pivitals_365d

# query [-q] STATEMENT: prints InfluxDB's answer; returns 1 when it reports an error (printed
# to stderr unless -q).
query() {
  quiet=
  if [ "$1" = -q ]; then
    quiet=1
    shift
  fi
  answer=$(curl -sS -XPOST "$url/query" ${INFLUX_USERNAME:+-u "$INFLUX_USERNAME:${INFLUX_PASSWORD:-}"} \
    --data-urlencode "q=$1") || exit 1
  case $answer in
    *'"error"'*)
      [ -n "$quiet" ] || echo "$url: $1: $answer" >&2
      return 1
      ;;
  esac
  printf '%s\n' "$answer"
}

query "CREATE DATABASE \"$db\"" >/dev/null
# CREATE fails when the policy exists with other settings; ALTER then sets 365 days.
query -q "CREATE RETENTION POLICY \"$rp\" ON \"$db\" DURATION 365d REPLICATION 1 DEFAULT" >/dev/null ||
  query "ALTER RETENTION POLICY \"$rp\" ON \"$db\" DURATION 365d REPLICATION 1 DEFAULT" >/dev/null
query "SHOW RETENTION POLICIES ON \"$db\""
