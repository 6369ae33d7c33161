# Sourced by scripts/squid.sh and scripts/dante.sh: install Debian packages for the tests, as root or
# through sudo, and say what to install where that cannot be done. Never starts, stops, enables or
# disables a service.
#
#   apt_install <label> <what to install, in words> <package>...

apt_as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "$APT_LABEL: installing needs root, and sudo is not available; as root, install $APT_WHAT" >&2
    exit 1
  fi
}

apt_install() {
  APT_LABEL=$1
  APT_WHAT=$2
  shift 2
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$APT_LABEL: apt-get not found, so this script cannot install it here." >&2
    echo "$APT_LABEL: install $APT_WHAT with your system's package manager, then run the tests again." >&2
    echo "$APT_LABEL: (npm run test:unit needs neither Squid nor Dante.)" >&2
    exit 1
  fi
  if ! apt-cache show "$@" >/dev/null 2>&1; then
    apt_as_root apt-get update -qq
  fi
  # A package list that is present but stale names versions the mirror no longer has: refresh it
  # and try once more.
  if ! apt_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; then
    apt_as_root apt-get update -qq
    apt_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  fi
}
