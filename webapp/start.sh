#!/usr/bin/env bash
# The first command of the README: set up, then start the website on its
# embedded defaults (local worker threads, SQLite, files in instance/, the
# styles in bundles/). Options go to `python -m webapp` (see --help), e.g.
#   bash webapp/start.sh --port 8080
set -euo pipefail
cd "$(dirname "$0")/.."
bash webapp/setup.sh
exec .venv/bin/python -m webapp "$@"
