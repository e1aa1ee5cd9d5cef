#!/usr/bin/env bash
# The first command of the README: set up, then start.
# Until the website lands (issue 5), this runs the command-line demo: it
# generates a short piece in every shipped style and says where the MIDI files are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash webapp/setup.sh

shopt -s nullglob
bundles=(bundles/*.mag)
if [ ${#bundles[@]} -eq 0 ]; then
  # No shipped style: Magenta's own tiny reference bundle (2 x 64 LSTM,
  # trained 30 steps) shows the whole path working, though not music yet.
  bundles=(tests/fixtures/performance_with_dynamics_tiny.mag)
fi
for bundle in "${bundles[@]}"; do
  echo "generating 20 seconds with $bundle"
  .venv/bin/python -m perfrnn generate --bundle "$bundle" --seconds 20 --out out/ "$@"
done
echo "open the files above in GarageBand, Logic, Ableton or any MIDI player"
