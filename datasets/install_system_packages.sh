#!/usr/bin/env bash
# Installs the Debian packages the offline corpus builders read (python -m datasets build):
#   mma                     accompaniment grooves rendered to MIDI (drums, rock, electronic)
#   freedoom                songs stored as MIDI lumps in its WAD files (drums, rock, electronic)
#   planetblupi-music-midi  the Planet Blupi soundtrack as General MIDI (electronic)
#   lmms-common             LMMS demo projects, converted from their note patterns (electronic)
# Non-interactive; needs root (or sudo). Safe to run again: installed packages are kept.
set -euo pipefail
PACKAGES=(mma freedoom planetblupi-music-midi lmms-common)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "datasets: Debian packages already installed: ${PACKAGES[*]}"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "datasets: installed ${missing[*]}"
