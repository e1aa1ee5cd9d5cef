"""Fuzz the API of a real server with schemathesis, from its OpenAPI document.

Starts `python -m webapp` on 127.0.0.1 (fresh instance folder, shipped
styles, the per-client limits lifted so that every case reaches the API
rather than the rate limiter), then runs tests/test_api_fuzz.py against it
with FUZZ_EXAMPLES cases per operation and generation mode (valid and
invalid data). Every answer must be documented (status, content type,
headers, body schema) and none may be a server error but the documented 503.

    .venv/bin/python benchmarks/fuzz_api.py --examples 700    # ~10,000 cases
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from local_server import free_port, rss_mib, start_server, stop_server

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=700,
                        help="cases per operation and mode (default 700)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as instance:
        port = free_port()
        server = start_server(Path(instance), port, PRELOAD_STYLES="0", RENDER_AUDIO="0",
                              RATE_LIMIT_PER_SECOND="0", MAX_JOBS_PER_CLIENT="100000",
                              QUEUE_LIMIT="64")
        started = time.monotonic()
        try:
            result = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                 str(ROOT / "tests" / "test_api_fuzz.py")], cwd=ROOT,
                env=dict(os.environ, FUZZ_URL=f"http://127.0.0.1:{port}",
                         FUZZ_EXAMPLES=str(args.examples)))
            print(f"{time.monotonic() - started:.0f} s; server RSS at the end: "
                  f"{rss_mib(server.pid):.0f} MiB; server still up: {server.poll() is None}")
        finally:
            stop_server(server)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
