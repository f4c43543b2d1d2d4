#!/usr/bin/env bash
# Builds the JavaScript data template into a WebAssembly component:
#
#   bash examples/js-keep/build.sh [OUT.wasm]      # default: target/plugins/js_keep.wasm
#
# componentize-js (from npm, pinned in package-lock.json) is installed into examples/js-keep/node_modules
# the first time. Every WASI feature is disabled, so the component imports nothing but Sluice's contract.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/target/plugins/js_keep.wasm}"

cd "$here"
if [ ! -x node_modules/.bin/componentize-js ]; then
  npm ci --no-audit --no-fund --silent
fi
mkdir -p "$(dirname "$out")"
node_modules/.bin/componentize-js keep.js --wit "$root/wit" --world-name template \
  --disable stdio random clocks http fetch-event --out "$out"
