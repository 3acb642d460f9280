# shellcheck shell=bash
# Installs the Debian packages Ferry needs when they are missing. Sourced by scripts/test and scripts/run.

# Build and run: the C libraries the Swift wrappers link, pkg-config to find them, and the broker.
# bubblewrap and util-linux (setpriv, prlimit) contain the jobs.
# libseccomp builds the system-call filter every sandbox loads.
FERRY_PACKAGES=(pkg-config librabbitmq-dev libzip-dev libcurl4-openssl-dev libseccomp-dev rabbitmq-server procps curl zip unzip python3 python3-venv python3-pip bubblewrap util-linux)

ferry_install_packages() {
  local missing=() package
  for package in "${FERRY_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null || { echo "install: missing ${missing[*]}; run as root or install them" >&2; return 1; }
      sudo=sudo
    fi
    echo "install: ${missing[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # Debian starts rabbitmq-server's system service on install; Ferry runs its own node instead.
    $sudo env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    $sudo systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true
  fi
  # uv builds Python environments about ten times faster than venv + pip; without it Ferry uses venv + pip.
  # It goes to /usr/local/bin, under /usr, the only part of the machine a sandboxed build sees.
  if [ ! -x /usr/local/bin/uv ] && [ ! -x /usr/bin/uv ]; then
    echo "install: uv (from PyPI, into /usr/local/bin)"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo=sudo
    $sudo /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --break-system-packages uv 2>/dev/null \
      || $sudo /usr/bin/python3 -m pip install --quiet --disable-pip-version-check uv 2>/dev/null \
      || echo "install: uv could not be installed; environments will be built with venv + pip" >&2
    hash -r
  fi
  ferry_create_user "$FERRY_JOB_USER"
  ferry_create_user "$FERRY_BUILD_USER"
  if ! command -v swift >/dev/null; then
    echo "install: Swift 6 is not on PATH. Install the Swift toolchain from swift.org (it is not a Debian package) and retry." >&2
    return 1
  fi
}

# Jobs run as one unprivileged user and environments are built as another, never as Ferry's own
# (see the README's security section).
FERRY_JOB_USER=${FERRY_UNIT_JOB_USER:-ferry-job}
FERRY_BUILD_USER=${FERRY_UNIT_BUILD_USER:-ferry-build}
ferry_create_user() {
  local user=$1
  id "$user" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "install: the user $user is missing; create it as root:" \
      "useradd --system --user-group --no-create-home --shell /usr/sbin/nologin $user" >&2
    return 0
  fi
  echo "install: user $user"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
}
