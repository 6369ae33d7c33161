#!/usr/bin/env bash
# Dante (a SOCKS5 server) for the integration tests and benchmarks. test/support/dante.ts starts its
# own `danted` instances on loopback with a generated config; nothing here configures one.
#
#   scripts/dante.sh install   install Debian's dante-server and libnss-wrapper if missing
#   scripts/dante.sh check     exit 0 if everything the tests need is present
#
# libnss-wrapper lets each test instance have its own users (Dante's `socksmethod: username` checks
# the system password database through getpwnam/getspnam): LD_PRELOAD with NSS_WRAPPER_PASSWD,
# NSS_WRAPPER_SHADOW and NSS_WRAPPER_HOSTS pointing into the instance's temporary directory. So the
# tests create no system user and touch nothing under /etc.
#
# The packaged danted service is never enabled, started, stopped, disabled or reconfigured. Debian's
# stock /etc/danted.conf has no `internal:` address, so its service does not listen; should a
# machine's service run anyway (it would use port 1080), the tests do not care: each instance
# listens on a free ephemeral port.
#
# Works as root (CI) or through sudo when not root.
set -euo pipefail

# shellcheck source=scripts/apt-install.sh
source "$(dirname "$0")/apt-install.sh"

PACKAGES=(dante-server libnss-wrapper)

find_danted() {
  command -v danted 2>/dev/null || { [ -x /usr/sbin/danted ] && echo /usr/sbin/danted; } || return 1
}

find_nss_wrapper() {
  local candidate
  for candidate in /usr/lib/*/libnss_wrapper.so /usr/lib/libnss_wrapper.so /usr/lib64/libnss_wrapper.so; do
    if [ -e "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  return 1
}

have_all() {
  find_danted >/dev/null && find_nss_wrapper >/dev/null
}

describe() {
  echo "$("$(find_danted)" -v 2>&1 | head -n 1 | sed 's/\. *Copyright.*//'), nss_wrapper at $(find_nss_wrapper)"
}

install_dante() {
  if have_all; then
    echo "dante: already installed ($(describe))"
    return 0
  fi
  apt_install dante "Dante (danted) and nss_wrapper (Debian/Ubuntu packages: ${PACKAGES[*]})" "${PACKAGES[@]}"
  have_all || { echo "dante: install finished but danted or libnss_wrapper.so is missing" >&2; exit 1; }
  echo "dante: installed ($(describe))"
}

case "${1:-}" in
  install) install_dante ;;
  check)
    if have_all; then echo "dante: ok ($(describe))"; else
      echo "dante: missing; run scripts/dante.sh install" >&2; exit 1
    fi
    ;;
  *)
    echo "usage: $0 install|check" >&2
    exit 2
    ;;
esac
