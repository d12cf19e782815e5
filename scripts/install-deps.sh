#!/usr/bin/env bash
# Installs the Debian 12 packages agentroot needs to build, test and demo.
#
# Idempotent: it asks dpkg which packages are already installed and calls apt
# only for the missing ones, so a second run costs well under a second.
# Uses sudo when not run as root. Touches nothing but the package set.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config ccache git python3
  clang libclang-rt-14-dev
  # libraries
  libssl-dev openssl
  libtss2-dev
  libboost-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libtomlplusplus-dev
  libsqlite3-dev sqlite3
  libpq-dev
  libmbedtls-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  # real peers and services used by the tests and the demo
  tpm2-tools swtpm swtpm-tools
  tpm2-abrmd libtss2-tcti-tabrmd0 dbus-daemon dbus-bin
  curl
  libfaketime           # clock-skew tests (THREATS.md #7)
  postgresql
  softhsm2 opensc
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  SUDO=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
