#!/usr/bin/env bash
# Installs Debian's chromium for the UI test tier (tests/ui). Idempotent: does nothing when
# /usr/bin/chromium is already there. Needs root (or passwordless sudo) and apt-get; CI runs
# it as root on a fresh Debian 12 machine. Playwright drives this system binary, so no
# browser download from the Playwright CDN is needed.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [[ -x "$CHROMIUM" ]]; then
  echo "chromium already installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium.sh: $CHROMIUM is missing and apt-get is not available;" \
    "install Chromium by hand (the UI tests are skipped without it)" >&2
  exit 1
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install_chromium.sh: need root (or sudo) to apt-get install chromium" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium fonts-liberation
echo "chromium installed: $("$CHROMIUM" --version)"
