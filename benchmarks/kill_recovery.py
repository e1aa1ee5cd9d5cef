"""Kill the server or a worker mid-job, start it again, and count what was lost.

Local backend (`--backend local`): on one instance folder, `--kills` times,
start `python -m webapp` (worker threads in the server) on 127.0.0.1, ask
for `--jobs` generations, kill the server with SIGKILL after a random moment
while they run, and start it again. After every restart each job must be
finished or still on its way, never stuck as running.

SQS backend (`--backend sqs`): moto's S3 and SQS on 127.0.0.1, one web
server, and `--kills` times a worker (`python -m webapp.jobs.worker`) that
is killed with SIGKILL after a random moment while it works; the next
worker takes the killed worker's messages once their visibility lapses.

At the end every job must have ended, and every stored result file must
match the digest its job recorded (whole) or be gone with its job
(absent), never partial.

    .venv/bin/python benchmarks/kill_recovery.py --kills 20
    .venv/bin/python benchmarks/kill_recovery.py --kills 20 --backend sqs
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

from local_server import ROOT, free_port, start_server, stop_server

sys.path.insert(0, str(ROOT))  # the results are read with the website's own storage


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="kills of the server (20)")
    parser.add_argument("--jobs", type=int, default=3, help="generations asked for per round")
    parser.add_argument("--seconds", type=float, default=300.0,
                        help="length of each piece (300: a few seconds of work)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--backend", choices=("local", "sqs"), default="local",
                        help="kill the server (local) or workers (sqs, on moto); default local")
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


def check_results(storage, records: dict[str, dict]) -> Counter:
    """Whole (the digest matches), absent (its job has none) or partial result
    files, in the server's storage (a folder or the bucket)."""
    found: Counter = Counter()
    for job_id, record in records.items():
        keys = storage.keys(f"jobs/{job_id}/")
        if record["state"] != "done":
            found["absent" if not keys else "partial (job not done)"] += 1
            continue
        for variation in json.loads(record["result"])["variations"]:
            for field, digest in variation.get("sha256", {}).items():
                data = storage.get(variation[field]) if variation[field] in keys else b""
                found["whole" if hashlib.sha256(data).hexdigest() == digest
                      else "partial (digest)"] += 1
    return found


def ended(records: dict[str, dict]) -> tuple[Counter, Counter]:
    """How many jobs are in each state, and why those that failed did."""
    return (Counter(record["state"] for record in records.values()),
            Counter(record["error"] for record in records.values() if record["error"]))


def main() -> int:
    args = parse_args()
    return kill_workers(args) if args.backend == "sqs" else kill_servers(args)


def kill_servers(args: argparse.Namespace) -> int:
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
    stop_server(server)
    records = jobs(instance)
    states, reasons = ended(records)
    from webapp.storage.local import LocalStorage

    files = check_results(LocalStorage(instance / "storage"), records)
    print(f"{args.kills} kills in {time.monotonic() - started_at:.0f} s, {len(records)} jobs: "
          f"{dict(states)}")
    print(f"jobs a killed server was running, still running after the restart: "
          f"{stuck_after_restart}; lost (no record): "
          f"{args.kills * args.jobs - len(records)}")
    print(f"why jobs ended without music: {dict(reasons)}")
    print(f"result files: {dict(files)}")
    return 0


# ----- the SQS backend ------------------------------------------------------------

VISIBILITY_SECONDS = 5  # a killed worker's message shows again this soon
MAX_RECEIVES = 5  # a message killed this often goes to the dead-letter queue, its job failed


def moto_aws(folder: Path) -> tuple[dict, object]:
    """moto's server on 127.0.0.1 with a bucket and the two queues; returns the
    settings for the web server and workers, and the server (to stop)."""
    import os

    import boto3
    from moto.server import ThreadedMotoServer

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint)
    s3.create_bucket(Bucket="kills")
    urls = {}
    for kind in ("generation", "training"):
        dlq = sqs.create_queue(QueueName=f"{kind}-dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        urls[kind] = sqs.create_queue(QueueName=kind, Attributes={
            "VisibilityTimeout": str(VISIBILITY_SECONDS),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn,
                                         "maxReceiveCount": str(MAX_RECEIVES)})})["QueueUrl"]
    return {"JOB_BACKEND": "sqs", "STORAGE": "s3", "S3_BUCKET": "kills",
            "SQS_GENERATION_QUEUE_URL": urls["generation"],
            "SQS_TRAINING_QUEUE_URL": urls["training"], "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint}, server


def start_worker(folder: Path, number: int, settings: dict, *args: str):
    import os
    import subprocess

    instance = folder / f"worker{number}"
    instance.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PERFRNN_INSTANCE=str(instance), RENDER_AUDIO="0",
               SPOT_NOTICE_URL="http://127.0.0.1:9/", **settings)
    return subprocess.Popen([sys.executable, "-m", "webapp.jobs.worker", "--wait", "1", *args],
                            cwd=Path(__file__).resolve().parent.parent, env=env,
                            stdout=(instance / "worker.log").open("a"),
                            stderr=subprocess.STDOUT)


def job_state(port: int, job_id: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/jobs/{job_id}",
                                timeout=30) as response:
        return json.loads(response.read())


def kill_workers(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="kill-workers-"))
    settings, moto = moto_aws(folder)
    port = free_port()
    server = start_server(folder / "web", port, PRELOAD_STYLES="0", RENDER_AUDIO="0",
                          MAX_JOBS_PER_CLIENT="1000", QUEUE_LIMIT="1000",
                          RATE_LIMIT_PER_SECOND="0", **settings)
    started_at = time.monotonic()
    submitted: list[str] = []
    try:
        for kill in range(args.kills):
            worker = start_worker(folder, kill + 1, settings)
            round_jobs = [submit(port, args.seconds, kill * 100 + number)
                          for number in range(args.jobs)]
            submitted += round_jobs
            log = folder / f"worker{kill + 1}" / "worker.log"
            deadline = time.monotonic() + 120  # until this worker has taken a job
            while time.monotonic() < deadline and "receive " not in log.read_text():
                time.sleep(0.2)
            time.sleep(rng.uniform(0.2, 5.0))  # sampling, drawing or writing
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            states = Counter(job_state(port, job_id)["state"] for job_id in submitted)
            print(f"kill {kill + 1}/{args.kills}: states {dict(states)}", flush=True)
        last = start_worker(folder, args.kills + 1, settings, "--idle-exit", "30")
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            records = {job_id: job_state(port, job_id) for job_id in submitted}
            if all(record["state"] not in ("queued", "running") for record in records.values()):
                break
            time.sleep(2.0)
        stop_server(last, timeout=60)
        for job_id in submitted:  # (brings the web server's records up to date)
            job_state(port, job_id)
        records = jobs(folder / "web")
        states, reasons = ended(records)
        from webapp.storage.s3 import S3Storage, aws_client

        files = check_results(S3Storage("kills", aws_client("s3", settings)), records)
        print(f"{args.kills} worker kills in {time.monotonic() - started_at:.0f} s, "
              f"{len(records)} jobs: {dict(states)}")
        print(f"stuck (queued or running at the end): "
              f"{states['queued'] + states['running']}; lost (no record): "
              f"{args.kills * args.jobs - len(records)}")
        print(f"why jobs ended without music: {dict(reasons)}")
        print(f"result objects: {dict(files)}")
    finally:
        stop_server(server)
        moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
