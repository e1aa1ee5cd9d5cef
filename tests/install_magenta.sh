#!/usr/bin/env bash
# Makes .venv-magenta: a Python 3.11 virtual environment with the released
# `magenta` package (requirements-magenta.txt, exact versions, installed with
# --no-deps because Magenta's own pins cannot install on Python 3.11), for the
# tests that run Magenta itself beside our model (tests/test_magenta_itself.py).
# CI runs this; those tests are skipped, and say so, without it.
# Safe to run again: it rebuilds the environment only when
# requirements-magenta.txt changed (about 2 GB, a minute or two to install).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-magenta
stamp=$venv/.requirements.sha256
wanted=$(sha256sum requirements-magenta.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  echo "$venv is ready (magenta $("$venv/bin/python" -c \
    'import importlib.metadata as m; print(m.version("magenta"))'))"
  exit 0
fi

# The project's own environment was made from Python 3.11 (webapp/setup.sh
# finds it); this one is made from the same interpreter.
python=.venv/bin/python
if [ ! -x "$python" ]; then
  echo "error: $venv is made from the project's .venv: run 'bash webapp/setup.sh' first." >&2
  exit 1
fi

# A fresh environment each time the list changes, so it holds exactly the list.
echo "creating $venv with $("$python" --version) and the packages of requirements-magenta.txt"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet --no-deps -r requirements-magenta.txt
# Without dependency resolution nothing else checks the list is complete:
# import Magenta's Performance RNN generator as the tests will run it.
TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=3 "$venv/bin/python" -W ignore -c \
  'import magenta.models.performance_rnn.performance_rnn_generate' 2>/dev/null || {
  echo "error: $venv cannot import Magenta's generator; the traceback:" >&2
  TF_USE_LEGACY_KERAS=1 "$venv/bin/python" -c \
    'import magenta.models.performance_rnn.performance_rnn_generate' >&2 || true
  exit 1
}
echo "$wanted" > "$stamp"
echo "$venv is ready (magenta $("$venv/bin/python" -c \
  'import importlib.metadata as m; print(m.version("magenta"))'))"
