#!/usr/bin/env sh
# Creates the pivitals database and its 365-day default retention policy on InfluxDB 1.x.
# Usage: influx/setup-influxdb1.sh [URL] [DATABASE]   (defaults: http://localhost:8086 pivitals)
# Set INFLUX_USERNAME and INFLUX_PASSWORD when authentication is on.
set -eu
url=${1:-http://localhost:8086}
db=${2:-pivitals}
query() {
  curl -fsS -XPOST "$url/query" ${INFLUX_USERNAME:+-u "$INFLUX_USERNAME:${INFLUX_PASSWORD:-}"} \
    --data-urlencode "q=$1"
  echo
}
query "CREATE DATABASE \"$db\""
query "CREATE RETENTION POLICY \"pivitals_365d\" ON \"$db\" DURATION 365d REPLICATION 1 DEFAULT"
query "SHOW RETENTION POLICIES ON \"$db\""
