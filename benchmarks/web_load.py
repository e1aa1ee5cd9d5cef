"""Many clients at once against the real server on 127.0.0.1, and one abusive one.

Starts `python -m webapp` (waitress, the embedded defaults) on a fresh instance
folder and a free port, then runs for `--seconds`:

- `--clients` well-behaved clients, each from its own loopback address
  (127.0.0.2, 127.0.0.3, ...): it lists the styles, asks for a short piece,
  follows the job until it ends and downloads the MIDI file, pausing a little
  between steps, as a person on the page would;
- one abusive client on 127.0.0.200, asking for the style list as fast as it can.

It prints, per kind of client, the answers by status, how many 429 and 503
answers carried Retry-After, the latency (median and 95th percentile), the
pieces finished, and the server's memory (RSS) before, during and after. Every
loop is bounded in count and time and stays on loopback.

    .venv/bin/python benchmarks/web_load.py --clients 50 --seconds 60
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from local_server import free_port, rss_mib, start_server, stop_server


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="well-behaved clients (50)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run (60)")
    parser.add_argument("--style", default="piano", help="style the clients ask for (piano)")
    return parser.parse_args()


class Client:
    """HTTP requests from one loopback address, with what came back."""

    def __init__(self, port: int, address: str):
        self.port, self.address = port, address
        self.statuses: Counter = Counter()
        self.retry_after_missing = 0
        self.latencies: list[float] = []
        self.finished = 0

    def request(self, method: str, path: str, body: dict | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30,
                                                source_address=(self.address, 0))
        started = time.perf_counter()
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, json.dumps(body) if body is not None else None,
                               headers)
            response = connection.getresponse()
            data = response.read()
        except OSError:
            self.statuses["no answer"] += 1
            return None, b""
        finally:
            connection.close()
        self.latencies.append(time.perf_counter() - started)
        self.statuses[response.status] += 1
        if response.status in (429, 503) and not response.getheader("Retry-After"):
            self.retry_after_missing += 1
        return response.status, data


def polite(client: Client, style: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        client.request("GET", "/api/v1/styles")
        status, data = client.request("POST", "/api/v1/generations",
                                      {"style": style, "seconds": 5})
        if status != 202:
            time.sleep(2.0)  # busy: a person waits and tries again
            continue
        job_id = json.loads(data)["job"]["id"]
        while time.monotonic() < deadline:
            time.sleep(1.0)
            status, data = client.request("GET", f"/api/v1/jobs/{job_id}")
            if status != 200:
                continue
            body = json.loads(data)
            state = body.get("job", body)["state"]
            if state == "done":
                if client.request("GET", f"/api/v1/generations/{job_id}/midi")[0] == 200:
                    client.finished += 1
                break
            if state in ("failed", "cancelled", "expired"):
                break
        time.sleep(1.0)


def abusive(client: Client, deadline: float) -> None:
    while time.monotonic() < deadline:
        client.request("GET", "/api/v1/styles")


def summary(name: str, clients: list[Client]) -> str:
    statuses: Counter = Counter()
    latencies = []
    for client in clients:
        statuses.update(client.statuses)
        latencies += client.latencies
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan")
    median = statistics.median(latencies) if latencies else float("nan")
    missing = sum(client.retry_after_missing for client in clients)
    answers = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items(),
                                                                          key=str))
    return (f"{name}: {sum(statuses.values())} requests ({answers}); latency median "
            f"{median * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms; 429/503 without Retry-After: "
            f"{missing}; pieces finished: {sum(client.finished for client in clients)}")


def main() -> int:
    args = parse_args()
    instance = Path(tempfile.mkdtemp(prefix="web-load-"))
    port = free_port()
    server = start_server(instance, port, PRELOAD_STYLES="1", RENDER_AUDIO="0")
    try:
        time.sleep(5.0)  # let the preloading finish
        before = rss_mib(server.pid)
        deadline = time.monotonic() + args.seconds
        polite_clients = [Client(port, f"127.0.0.{2 + index}") for index in range(args.clients)]
        bad = Client(port, "127.0.0.200")
        threads = [threading.Thread(target=polite, args=(client, args.style, deadline))
                   for client in polite_clients]
        threads.append(threading.Thread(target=abusive, args=(bad, deadline)))
        for thread in threads:
            thread.start()
        peak = before
        while any(thread.is_alive() for thread in threads):
            peak = max(peak, rss_mib(server.pid))
            time.sleep(1.0)
        for thread in threads:
            thread.join()
        after = rss_mib(server.pid)
        print(f"{args.clients} clients and one abusive one for {args.seconds:.0f} s on "
              f"127.0.0.1 (style {args.style}, 5 s pieces)")
        print(summary("well-behaved", polite_clients))
        print(summary("abusive", [bad]))
        print(f"server memory (RSS): {before:.0f} MiB before, peak {peak:.0f} MiB, "
              f"{after:.0f} MiB after; server still up: {server.poll() is None}")
    finally:
        stop_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
