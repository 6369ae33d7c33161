#!/usr/bin/env bash
# Squid for the integration tests (test/support/squid.ts starts its own
# instances on loopback with a generated config; nothing here configures one).
#
#   scripts/squid.sh install   install Debian's squid if missing, keep its service from running
#   scripts/squid.sh check     exit 0 if everything the tests need is present
#
# Works as root (CI) or through sudo when not root.
set -euo pipefail

NCSA_HELPER=/usr/lib/squid/basic_ncsa_auth
DEBIAN_PID_FILE=/run/squid.pid # Debian's compiled-in pid_filename

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

have_squid() {
  command -v squid >/dev/null 2>&1 && [ -x "$NCSA_HELPER" ]
}

# Only Debian's own instance: it is started from /etc/squid/squid.conf and
# writes $DEBIAN_PID_FILE. Our test instances use their own pid files.
stop_packaged_service() {
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now squid.service >/dev/null 2>&1 || true
  elif command -v update-rc.d >/dev/null 2>&1 && [ -e /etc/init.d/squid ]; then
    as_root update-rc.d squid disable >/dev/null 2>&1 || true
  fi
  if [ -s "$DEBIAN_PID_FILE" ]; then
    local pid
    pid="$(cat "$DEBIAN_PID_FILE")"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      as_root squid -k shutdown -f /etc/squid/squid.conf >/dev/null 2>&1 || as_root kill -TERM "$pid" || true
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
    fi
  fi
}

install_squid() {
  if have_squid; then
    stop_packaged_service
    echo "squid: already installed ($(squid -v | head -n 1))"
    return 0
  fi
  # Keep dpkg from starting the service during the install (policy-rc.d
  # convention, man invoke-rc.d); only if the machine has no policy already.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    added_policy=1
  fi
  # shellcheck disable=SC2064 # expand now: the trap must remove what we added
  trap "[ $added_policy -eq 1 ] && as_root rm -f '$policy'" EXIT
  if ! apt-cache show squid >/dev/null 2>&1; then
    as_root apt-get update -qq
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends squid >/dev/null
  if [ "$added_policy" -eq 1 ]; then
    as_root rm -f "$policy"
  fi
  trap - EXIT
  stop_packaged_service
  have_squid || { echo "squid: install finished but squid or $NCSA_HELPER is missing" >&2; exit 1; }
  echo "squid: installed ($(squid -v | head -n 1))"
}

case "${1:-}" in
  install) install_squid ;;
  check)
    if have_squid; then echo "squid: ok ($(squid -v | head -n 1))"; else
      echo "squid: missing; run scripts/squid.sh install" >&2; exit 1
    fi
    ;;
  *)
    echo "usage: $0 install|check" >&2
    exit 2
    ;;
esac
