#!/usr/bin/env bash
# Installs Debian's chromium for the UI test tier (tests/ui); `make test` runs it first.
# Idempotent: does nothing when /usr/bin/chromium is already there. Playwright drives this
# system binary, so nothing is downloaded from Playwright's CDN.
#
# Needs apt-get and root (CI runs as root on a fresh Debian 12 machine) or passwordless sudo.
# Where it cannot install, it warns and exits 0 (the UI tests then skip, saying why), except
# under CI (the CI variable set, as CI services do), where a missing browser is an error.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [[ -x "$CHROMIUM" ]]; then
  echo "install_chromium.sh: $CHROMIUM is already installed"
  exit 0
fi

cannot_install() {
  echo "install_chromium.sh: $1; the UI tests (tests/ui) will be skipped" >&2
  if [[ -n "${CI:-}" ]]; then
    exit 1
  fi
  exit 0
}

command -v apt-get >/dev/null 2>&1 || cannot_install "apt-get is not available"

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    cannot_install "installing chromium needs root or passwordless sudo"
  fi
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium fonts-liberation
test -x "$CHROMIUM" || cannot_install "apt-get installed chromium but $CHROMIUM is missing"
echo "install_chromium.sh: installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
