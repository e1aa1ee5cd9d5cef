#!/usr/bin/env bash
# Sets up everything the project needs on this machine: a Python 3.11 virtual
# environment in .venv with the pinned packages of requirements.txt (and
# requirements-nodeps.txt, installed without their dependencies).
# Safe to run again: it reinstalls only when those files changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=""
for candidate in python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    python="$candidate"; break
  fi
done
if [ -z "$python" ]; then
  echo "error: Python 3.11 is needed (TensorFlow 2.21 and note-seq are pinned for it)." >&2
  echo "       Install it (e.g. 'apt-get install python3.11 python3.11-venv') and rerun." >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi

stamp=.venv/.requirements.sha256
wanted=$(cat requirements.txt requirements-nodeps.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "installing Python packages from requirements.txt (first time: a few minutes)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.txt
  .venv/bin/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
  echo "$wanted" > "$stamp"
fi
echo "setup done: .venv is ready"
