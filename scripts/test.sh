#!/usr/bin/env bash
# Runs every test of the workspace. The integration tests start real servers on free loopback
# ports: InfluxDB 1.x (Debian package influxdb), VictoriaMetrics (Debian package
# victoria-metrics) and Prometheus (Debian package prometheus), and drive the dashboard in a
# headless Chromium through chromedriver (Debian packages chromium and chromium-driver). The storage-side tests run docker-compose
# (config only, no Docker engine needed), curl and Python's yaml module. They are installed here
# when missing (as root, or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v influxd >/dev/null 2>&1 || missing+=(influxdb)
command -v victoria-metrics >/dev/null 2>&1 || missing+=(victoria-metrics)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} for the integration tests"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The e-mail alert test talks to a real SMTP server, Python's aiosmtpd (from PyPI).
python3 -c 'import aiosmtpd' >/dev/null 2>&1 || python3 -m pip install -q aiosmtpd

# The end-to-end tests run the real binaries; build them first so a filtered run finds them.
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
