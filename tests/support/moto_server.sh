#!/usr/bin/env bash
# Runs moto's server (a stand-in for AWS's SQS, which the notification tests and bench talk to) on
# 127.0.0.1:PORT, from a virtual environment under target/, installing the pinned `moto[server]` from PyPI the
# first time. Tests start it side by side, so the installation takes a lock. With no PORT it only installs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${SLUICE_MOTO_VENV:-$root/target/moto-venv}"
package='moto[server]==5.2.6'

if ! "$venv/bin/moto_server" --help >/dev/null 2>&1; then
  mkdir -p "$(dirname "$venv")"
  exec 9>"$venv.lock"
  flock 9
  if ! "$venv/bin/moto_server" --help >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$package"
  fi
  exec 9>&-
fi
[[ $# -eq 0 ]] && exit 0
exec "$venv/bin/moto_server" -H 127.0.0.1 -p "$1"
