#!/usr/bin/env bash
# Runs delta_reader.py (the independent reader of Sluice's Delta tables) in a virtual environment under
# target/, installing the pinned `deltalake` and `pyarrow` from PyPI the first time. Tests run it side by
# side, so the installation takes a lock.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${SLUICE_DELTA_VENV:-$root/target/delta-reader-venv}"
packages=(deltalake==1.6.6 pyarrow==26.0.1)

if ! "$venv/bin/python" -c "import deltalake, pyarrow" 2>/dev/null; then
  mkdir -p "$(dirname "$venv")"
  exec 9>"$venv.lock"
  flock 9
  if ! "$venv/bin/python" -c "import deltalake, pyarrow" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"
  fi
  exec 9>&-
fi
exec "$venv/bin/python" "$here/delta_reader.py" "$@"
