#!/usr/bin/env bash
# The first command of the README: set up, then start.
# Until the website lands (issue 5), this runs the command-line demo: it
# generates a short piece with a bundle and says where the MIDI file is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash webapp/setup.sh

bundle=$(ls bundles/*.mag 2>/dev/null | head -n 1 || true)
if [ -z "$bundle" ]; then
  # No shipped style yet: Magenta's own tiny reference bundle (2 x 64 LSTM,
  # trained 30 steps) shows the whole path working, though not music yet.
  bundle=tests/fixtures/performance_with_dynamics_tiny.mag
fi
echo "generating 20 seconds with $bundle"
.venv/bin/python -m perfrnn generate --bundle "$bundle" --seconds 20 --variations 2 --out out/ "$@"
echo "open the files above in GarageBand, Logic, Ableton or any MIDI player"
