"""Kill the server mid-job, start it again, and count what was lost.

On one instance folder, `--kills` times: start `python -m webapp` (the local
backend: worker threads in the server) on 127.0.0.1, ask for `--jobs`
generations, kill the server with SIGKILL after a random moment while they
run, and start it again. After every restart each job must be finished or
still on its way, never stuck as running; at the end every job must have
ended, and every stored result file must match the digest its job recorded
(whole) or be gone with its job (absent), never partial.

    .venv/bin/python benchmarks/kill_recovery.py --kills 20
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import signal
import sqlite3
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

from local_server import free_port, start_server


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="kills of the server (20)")
    parser.add_argument("--jobs", type=int, default=3, help="generations asked for per round")
    parser.add_argument("--seconds", type=float, default=300.0,
                        help="length of each piece (300: a few seconds of work)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    return parser.parse_args()


def start(instance: Path, port: int):
    # One client asks for every job: its share is lifted so the queue itself is tested.
    return start_server(instance, port, PRELOAD_STYLES="0", RENDER_AUDIO="0",
                        MAX_JOBS_PER_CLIENT="1000")


def submit(port: int, seconds: float, seed: int) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/generations", method="POST",
        data=json.dumps({"style": "piano", "seconds": seconds, "seed": seed}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["job"]["id"]


def jobs(instance: Path) -> dict[str, dict]:
    with sqlite3.connect(instance / "perfrnn.sqlite3") as db:
        db.row_factory = sqlite3.Row
        return {row["id"]: dict(row) for row in db.execute("SELECT * FROM jobs")}


def check_files(instance: Path, records: dict[str, dict]) -> Counter:
    """Whole (the digest matches), absent (its job has none) or partial files."""
    found: Counter = Counter()
    storage = instance / "storage"
    for job_id, record in records.items():
        folder = storage / "jobs" / job_id
        files = sorted(path for path in folder.rglob("*") if path.is_file()) \
            if folder.is_dir() else []
        result = json.loads(record["result"]) if record["result"] else None
        if record["state"] != "done":
            found["absent" if not files else "partial (job not done)"] += 1
            continue
        for variation in result["variations"]:
            for field, digest in variation.get("sha256", {}).items():
                path = storage / variation[field]
                if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
                    found["whole"] += 1
                else:
                    found["partial (digest)"] += 1
    return found


def main() -> int:
    args = parse_args()
    rng = random.Random(args.seed)
    instance = Path(tempfile.mkdtemp(prefix="kill-recovery-"))
    port = free_port()
    stuck_after_restart = 0
    running_at_kill: set[str] = set()
    started_at = time.monotonic()
    for kill in range(args.kills):
        server = start(instance, port)
        records = jobs(instance)  # what the killed server was running has ended now
        stuck_after_restart += sum(records[job_id]["state"] == "running"
                                   for job_id in running_at_kill)
        for number in range(args.jobs):
            submit(port, args.seconds, kill * 100 + number)
        time.sleep(rng.uniform(0.5, 8.0))  # somewhere in the work: compiling, sampling, writing
        server.send_signal(signal.SIGKILL)
        server.wait()
        running_at_kill = {job_id for job_id, record in jobs(instance).items()
                           if record["state"] == "running"}
        print(f"kill {kill + 1}/{args.kills}: states "
              f"{dict(Counter(record['state'] for record in jobs(instance).values()))}",
              flush=True)
    server = start(instance, port)  # the last restart: everything ends
    records = jobs(instance)
    stuck_after_restart += sum(records[job_id]["state"] == "running" for job_id in running_at_kill)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        records = jobs(instance)
        if all(record["state"] not in ("queued", "running") for record in records.values()):
            break
        time.sleep(1.0)
    server.terminate()
    server.wait(timeout=30)
    records = jobs(instance)
    states = Counter(record["state"] for record in records.values())
    reasons = Counter(record["error"] for record in records.values() if record["error"])
    files = check_files(instance, records)
    print(f"{args.kills} kills in {time.monotonic() - started_at:.0f} s, {len(records)} jobs: "
          f"{dict(states)}")
    print(f"jobs a killed server was running, still running after the restart: "
          f"{stuck_after_restart}; lost (no record): "
          f"{args.kills * args.jobs - len(records)}")
    print(f"why jobs ended without music: {dict(reasons)}")
    print(f"result files: {dict(files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
