#!/usr/bin/env bash
# Installs what the notation test drives (tests/test_musescore.py): Debian's
# MuseScore 3 and a virtual X server to run it headless under xvfb-run.
# CI runs this; the test is skipped, and says so, where they are missing.
set -euo pipefail
if command -v mscore3 >/dev/null 2>&1 && command -v xvfb-run >/dev/null 2>&1; then
  echo "musescore3 and xvfb-run are installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: no apt-get here; install MuseScore 3 and Xvfb with your package manager" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  musescore3 xvfb xauth >/dev/null
echo "installed $(mscore3 --version 2>&1 | tail -1)"
