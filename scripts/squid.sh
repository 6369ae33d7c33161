#!/usr/bin/env bash
# Squid for the integration tests. test/support/squid.ts starts its own Squid instances on
# loopback, each from a config it generates in a temporary directory, on a free port, with its own
# pid file, and stops each by its PID. This script only makes sure the squid package is installed:
# it never starts, stops, disables or reconfigures a Squid service of the system. If installing
# the package starts Debian's own service (port 3128), it is left running; the tests do not need
# that port.
#
#   scripts/squid.sh install   install Debian's squid with apt-get if it is missing
#   scripts/squid.sh check     exit 0 if everything the tests need is present
#
# Installing needs root or sudo, and apt-get (Debian, Ubuntu). Elsewhere it says what to install.
set -euo pipefail

NCSA_HELPER=/usr/lib/squid/basic_ncsa_auth
# shellcheck source=scripts/apt-install.sh
source "$(dirname "$0")/apt-install.sh"

WHAT_TO_INSTALL="Squid 5 or newer with its basic_ncsa_auth helper at $NCSA_HELPER (Debian/Ubuntu package: squid)"

have_squid() {
  { command -v squid >/dev/null 2>&1 || [ -x /usr/sbin/squid ]; } && [ -x "$NCSA_HELPER" ]
}

squid_version() {
  "$(command -v squid || echo /usr/sbin/squid)" -v | head -n 1
}

install_squid() {
  if have_squid; then
    echo "squid: already installed ($(squid_version))"
    return 0
  fi
  apt_install squid "$WHAT_TO_INSTALL" squid
  have_squid || { echo "squid: the install finished but squid or $NCSA_HELPER is missing" >&2; exit 1; }
  echo "squid: installed ($(squid_version))"
}

case "${1:-}" in
  install) install_squid ;;
  check)
    if have_squid; then echo "squid: ok ($(squid_version))"; else
      echo "squid: missing; run scripts/squid.sh install (or install $WHAT_TO_INSTALL)" >&2
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 install|check" >&2
    exit 2
    ;;
esac
