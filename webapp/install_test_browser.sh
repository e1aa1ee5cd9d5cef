#!/usr/bin/env bash
# Installs what the browser tests drive: Debian's headless Chromium and its
# chromedriver. CI runs this; on a desktop, any Chromium or Chrome with a
# matching chromedriver on PATH does too (the tests skip without one).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "chromium and chromedriver are installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: no apt-get here; install Chromium and chromedriver with your package manager" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
echo "installed $(chromium --version)"
