"""The website on 127.0.0.1 for a benchmark: a free port, `python -m webapp` on an
instance folder of its own, and the server's memory.

Used by web_latency.py, web_load.py and kill_recovery.py (run them from the
project root: `.venv/bin/python benchmarks/NAME.py`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(base: str, server: subprocess.Popen | None = None,
               timeout: float = 600) -> None:
    """Until the API at `base` answers; SystemExit if `server` ends first or
    `timeout` seconds pass. A server busy loading its styles may take a
    connection and answer late: that is waited for too."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/v1/styles", timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if (server is not None and server.poll() is not None) \
                    or time.monotonic() > deadline:
                raise SystemExit(f"the server at {base} did not start") from None
            time.sleep(0.5)


def start_server(instance: Path, port: int, code: Path = ROOT,
                 **settings: str) -> subprocess.Popen:
    """`python -m webapp` of the checkout `code` (default this one) on
    127.0.0.1:`port` with `instance` as its instance folder and `settings` as
    environment variables (webapp/config.py), its output added to
    instance/server.log; returns once its API answers."""
    env = dict(os.environ, PERFRNN_INSTANCE=str(instance), **settings)
    Path(instance).mkdir(parents=True, exist_ok=True)
    with (Path(instance) / "server.log").open("a") as log:
        server = subprocess.Popen([sys.executable, "-m", "webapp", "--port", str(port)],
                                  cwd=code, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
    except BaseException:  # never leave a server behind
        stop_server(server)
        raise
    return server


def stop_server(server: subprocess.Popen, timeout: float = 30) -> None:
    """Asks `server` (or any child process) to stop, and kills it after `timeout` seconds."""
    server.terminate()
    try:
        server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def rss_mib(pid: int) -> float:
    """The resident memory of process `pid`, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int, children: bool = False) -> float:
    """CPU time (user + system) process `pid` has used, in seconds; with
    `children`, that of its living child processes too (render processes)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    if children:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                child = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # it ended meanwhile
                continue
            if int(child[1]) == pid:
                seconds += (int(child[11]) + int(child[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def wait_idle(pid: int, busy_share: float = 0.1, timeout: float = 300) -> float:
    """Waits until process `pid` uses less than `busy_share` of a core over a
    second (its background work, such as compiling, done); returns the
    seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_seconds(pid)
        time.sleep(1.0)
        if cpu_seconds(pid) - before < busy_share:
            break
    return time.monotonic() - started
