#!/bin/bash
# Runs once inside the influxdb:2 container, right after its first setup (the image runs every
# executable *.sh in /docker-entrypoint-initdb.d with the influx CLI already configured):
# applies the pivitals dashboards and variables from /pivitals/pivitals.json, with the bucket
# variable set to the bucket that setup created.
#
# A failure only skips the dashboards (never the setup); import the template by hand then:
#   docker compose exec influxdb influx apply --force yes --file /pivitals/pivitals.json
set -u
template=/tmp/pivitals-template.json
sed "s/\"node_vitals\"/\"${DOCKER_INFLUXDB_INIT_BUCKET:-node_vitals}\"/" /pivitals/pivitals.json >"$template"
if influx apply --force yes --org "${DOCKER_INFLUXDB_INIT_ORG}" --file "$template" >/dev/null; then
  echo "pivitals: dashboards 'pivitals: cluster' and 'pivitals: node' applied"
else
  echo "pivitals: could not apply the dashboard template; import influx/influxdb2/pivitals.json by hand" >&2
fi
rm -f "$template"
exit 0
