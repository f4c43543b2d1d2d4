#!/usr/bin/env bash
# Runs one of the independent readers and writers beside it (delta_reader.py: delta-rs's Python binding
# reading Sluice's Delta tables; formats.py: pyarrow, fastavro, openpyxl, ElementTree and zipfile writing
# the files Sluice must read; fastavro's snappy and zstandard codecs need cramjam and backports.zstd) in a
# virtual environment under target/, installing the pinned packages from PyPI the first time. Tests run it
# side by side, so the installation takes a lock.
#
#   python.sh SCRIPT.py [ARGS...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${SLUICE_PYTHON_VENV:-$root/target/python-readers-venv}"
packages=(deltalake==1.6.6 pyarrow==26.0.1 fastavro==1.13.1 openpyxl==3.1.5 cramjam==2.14.0 backports.zstd==1.8.0)

if ! "$venv/bin/python" -c "import deltalake, pyarrow, fastavro, openpyxl, cramjam, backports.zstd" 2>/dev/null; then
  mkdir -p "$(dirname "$venv")"
  exec 9>"$venv.lock"
  flock 9
  if ! "$venv/bin/python" -c "import deltalake, pyarrow, fastavro, openpyxl, cramjam, backports.zstd" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"
  fi
  exec 9>&-
fi
script="$1"
shift
exec "$venv/bin/python" "$here/$script" "$@"
