#!/usr/bin/env bash
# Builds the Python format plugin into a WebAssembly component:
#
#   bash examples/python-keyvalues/build.sh [OUT.wasm]     # default: target/plugins/python_keyvalues.wasm
#
# componentize-py (from PyPI, pinned) is installed into a virtual environment under target/ the first time.
# `--stub-wasi` replaces the WASI imports CPython makes (a filesystem among them) with trapping stubs, so the
# component imports nothing but Sluice's contract and the sandbox has nothing to refuse.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/target/plugins/python_keyvalues.wasm}"
venv="${SLUICE_PYTHON_VENV:-$root/target/python-venv}"
version="0.25.1"

if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version"
fi
mkdir -p "$(dirname "$out")"
cd "$here"
"$venv/bin/componentize-py" --wit-path "$root/wit" --world format componentize --stub-wasi parser \
  --output "$out"
