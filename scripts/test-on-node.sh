#!/usr/bin/env bash
# Runs the compiled tests (build/, from `npm run build:test`; the package test also needs dist/)
# on another Node.js major, fetched by scripts/node-version.sh. With no filter, every test.
#
#   scripts/test-on-node.sh 26                        the whole suite on Node 26
#   scripts/test-on-node.sh 22 unit platform/ package/   only paths containing one of these
#
# That Node comes first on PATH, so child processes the tests start by name (and npm) use it too.
set -euo pipefail
major="${1:?usage: $0 <major> [test path substring ...]}"
shift
root="$(cd "$(dirname "$0")/.." && pwd)"
node_bin="$(bash "$root/scripts/node-version.sh" "$major")"
echo "== tests on Node $("$node_bin" --version)${*:+ (only: $*)}"
PATH="$(dirname "$node_bin"):$PATH" exec node "$root/scripts/run-tests.mjs" "$@"
