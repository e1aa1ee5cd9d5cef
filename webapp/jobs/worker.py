"""`python -m webapp.jobs.worker`: the program a GPU instance runs.

It long-polls the generation and training queues and runs each job with the
same code as the local worker threads (webapp.jobs.runner). It takes up to
GENERATION_BATCH generation messages at once (SQS hands out at most 10 a
receive) and samples those of one style as one batch, which is what a GPU is
good at. While it works it keeps extending each message's visibility (a
heartbeat), so no other worker takes the job; if the machine dies the
heartbeat stops, the message shows again and another worker does the job
from the start (training: from the last checkpoint in S3). The message is
deleted only after the result is stored. A job that fails is tried again
until the queue's maxReceiveCount; the last failure is recorded as the job's
error and SQS moves the message to the dead-letter queue. A message that
cannot be read at all (poison) is left alone and goes the same way, without
blocking the others.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from webapp.config import PROJECT_ROOT, load_settings
from webapp.jobs.store import JOB_KINDS

log = logging.getLogger("webapp.jobs.worker")

IMDS = "http://169.254.169.254/latest"


class Heartbeat:
    """Extends a message's visibility every `timeout / 3` seconds until stopped,
    and calls `beat()` each time (the job's status says it is alive)."""

    def __init__(self, client, queue_url: str, receipt: str, timeout: int,
                 beat: Callable[[], None] | None = None):
        self.client, self.queue_url, self.receipt = client, queue_url, receipt
        self.timeout = max(2, int(timeout))
        self.beat = beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="heartbeat")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.timeout / 3):
            try:
                self.client.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=self.receipt,
                    VisibilityTimeout=self.timeout)
                if self.beat is not None:
                    self.beat()
            except Exception as error:  # the next beat tries again
                log.warning("heartbeat failed: %s", error)


class SpotNotice:
    """True once EC2 has announced that this spot instance will be reclaimed
    (the instance metadata's spot/instance-action, read with IMDSv2). Not on
    EC2 (nothing answers) it stays false and stops asking."""

    def __init__(self, url: str | None = None, every: float = 5.0):
        self.url = url or f"{IMDS}/meta-data/spot/instance-action"
        self.token_url = f"{IMDS}/api/token" if url is None else None
        self.every = every
        self._last = 0.0
        self._noticed = False
        self._disabled = False

    def __call__(self) -> bool:
        if self._noticed or self._disabled:
            return self._noticed
        now = time.monotonic()
        if now - self._last < self.every:
            return False
        self._last = now
        headers = {}
        try:
            if self.token_url:
                request = urllib.request.Request(
                    self.token_url, method="PUT",
                    headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
                with urllib.request.urlopen(request, timeout=0.5) as response:
                    headers["X-aws-ec2-metadata-token"] = response.read().decode()
            with urllib.request.urlopen(urllib.request.Request(self.url, headers=headers),
                                        timeout=0.5) as response:
                self._noticed = response.status == 200
        except urllib.error.HTTPError:
            pass  # 404: no notice
        except OSError:
            self._disabled = True  # not on EC2
        if self._noticed:
            log.warning("spot interruption notice: stopping after this checkpoint")
        return self._noticed


class Worker:
    def __init__(self, config: dict, instance: str | Path):
        from webapp.jobs.services import build_services, limit_sampler_threads
        from webapp.storage.s3 import aws_client

        self.config = config
        limit_sampler_threads(config)
        self.services = build_services(config, instance, store=False)
        self.spot = SpotNotice(config.get("SPOT_NOTICE_URL"), config["SPOT_CHECK_SECONDS"])
        self.services.interrupted = self.spot
        self.sqs = aws_client("sqs", config)
        self.queues = {kind: config.get(f"SQS_{kind.upper()}_QUEUE_URL") for kind in JOB_KINDS}
        self.queues = {kind: url for kind, url in self.queues.items() if url}
        if not self.queues:
            raise ValueError("set SQS_GENERATION_QUEUE_URL and/or SQS_TRAINING_QUEUE_URL")
        self.settings = {kind: self._queue_settings(url) for kind, url in self.queues.items()}
        self.stopping = False

    def _queue_settings(self, url: str) -> tuple[int, int]:
        """(visibility timeout, maxReceiveCount) of a queue."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"])["Attributes"]
        redrive = json.loads(attributes.get("RedrivePolicy", "{}") or "{}")
        return int(attributes.get("VisibilityTimeout", 30)), \
            int(redrive.get("maxReceiveCount", 3))

    def poll(self, wait_seconds: int) -> int:
        """Receives and handles the messages waiting on each queue, up to a
        batch of generations and one training; returns how many came."""
        handled = 0
        for kind, url in self.queues.items():
            if self.stopping or self.spot():
                break
            most = min(10, self.config["GENERATION_BATCH"]) if kind == "generation" else 1
            answer = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=max(1, most), WaitTimeSeconds=wait_seconds,
                AttributeNames=["ApproximateReceiveCount"])
            messages = answer.get("Messages", [])
            handled += len(messages)
            by_style: dict[str, list[dict]] = {}
            for message in messages:
                by_style.setdefault(_style_of(message), []).append(message)
            groups = list(by_style.values())
            visibility, _ = self.settings[kind]
            with contextlib.ExitStack() as waiting:  # no message waits here without a heartbeat
                for message in [message for group in groups[1:] for message in group]:
                    waiting.enter_context(Heartbeat(self.sqs, url, message["ReceiptHandle"],
                                                    visibility))
                for number, group in enumerate(groups):
                    if self.stopping:  # interrupted: the rest go back for other workers
                        for message in [m for rest in groups[number:] for m in rest]:
                            self.sqs.change_message_visibility(
                                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"],
                                VisibilityTimeout=0)
                        break
                    self.handle(kind, url, group)
        return handled

    def handle(self, kind: str, url: str, messages: list[dict]) -> list[str]:
        """Runs the messages' jobs together (generations of one style, or one
        training); returns what became of each."""
        from webapp.jobs.remote import RemoteStatus, WorkerJobStore, WorkerJobStores
        from webapp.jobs.runner import run_jobs

        visibility, max_receives = self.settings[kind]
        jobs, outcomes = {}, {}
        for message in messages:
            job = self._read(kind, message)
            if job is None:
                outcomes[message["MessageId"]] = "poison"
            elif job.id in {known.id for known in jobs.values()}:  # delivered twice at once
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                outcomes[message["MessageId"]] = "duplicate"
            else:
                jobs[message["MessageId"]] = job
        if jobs:
            stores = {}
            for message in messages:
                job = jobs.get(message["MessageId"])
                if job is not None:
                    stores[job.id] = WorkerJobStore(
                        RemoteStatus(self.services.storage), job,
                        {"attempt": _receive_count(message), "attempts": max_receives,
                         "lease_seconds": visibility})
            self.services.store = WorkerJobStores(stores)
            with contextlib.ExitStack() as beating:
                for message in messages:
                    job = jobs.get(message["MessageId"])
                    if job is not None:
                        beating.enter_context(Heartbeat(
                            self.sqs, url, message["ReceiptHandle"], visibility,
                            beat=lambda job_id=job.id: stores[job_id].touch(job_id)))
                if self.services.bundles is not None:
                    self.services.bundles.sync(force=True)
                run_jobs(self.services, [job.id for job in jobs.values()])
            for message in messages:
                job = jobs.get(message["MessageId"])
                if job is not None:
                    outcomes[message["MessageId"]] = self._settle(kind, url, message,
                                                                  stores[job.id])
        return [outcomes[message["MessageId"]] for message in messages]

    def _read(self, kind: str, message: dict):
        """The message's job, or None for a message that cannot be read (poison)."""
        from webapp.jobs.store import QUEUED, Job

        _, max_receives = self.settings[kind]
        count = _receive_count(message)
        try:
            body = json.loads(message["Body"])
            job = Job(id=str(body["id"]), kind=str(body["kind"]), state=QUEUED, owner=None,
                      params=dict(body["params"]))
            if job.kind != kind:
                raise ValueError(f"a {job.kind} job on the {kind} queue")
        except (ValueError, KeyError, TypeError) as error:
            log.error("unreadable message %s (receive %d of %d): %s; it goes to the "
                      "dead-letter queue", message.get("MessageId"), count, max_receives, error)
            return None
        log.info("job %s (%s), receive %d of %d", job.id, kind, count, max_receives)
        return job

    def _settle(self, kind: str, url: str, message: dict, store) -> str:
        """Deletes, releases or keeps a handled message by its job's state."""
        from webapp.jobs.store import CANCELLED, DONE, QUEUED

        _, max_receives = self.settings[kind]
        receipt, count, job = message["ReceiptHandle"], _receive_count(message), store.job
        if job.state in (DONE, CANCELLED):
            self.sqs.delete_message(QueueUrl=url, ReceiptHandle=receipt)
            log.info("job %s %s", job.id, job.state)
            return job.state
        if job.state == QUEUED:  # interrupted: let another worker take it now
            self.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt,
                                               VisibilityTimeout=0)
            self.stopping = True
            return "interrupted"
        if count < max_receives:
            store.requeue(job.id, f"attempt {count} of {max_receives} failed: "
                                  f"{job.error}; trying again")
            self.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt,
                                               VisibilityTimeout=0)
            log.warning("job %s failed (attempt %d of %d): %s", job.id, count, max_receives,
                        job.error)
            return "retry"
        # The last try: the job stays failed; SQS moves the message to the DLQ.
        log.error("job %s failed for good: %s", job.id, job.error)
        return "failed"


def _receive_count(message: dict) -> int:
    return int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))


def _style_of(message: dict) -> str:
    """The style a generation message asks for ("" when it cannot be read: such
    messages are set apart by `Worker.handle` anyway)."""
    try:
        body = json.loads(message["Body"])
        if body["params"].get("edit"):  # an edit runs alone
            return f"edit:{message.get('MessageId', id(message))}"
        return str(body["params"]["style"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m webapp.jobs.worker",
        description="Run jobs from the SQS queues (JOB_BACKEND=sqs, STORAGE=s3); settings come "
                    "from the environment (S3_BUCKET, SQS_GENERATION_QUEUE_URL, "
                    "SQS_TRAINING_QUEUE_URL, AWS_REGION, ...) and the instance's config.py.")
    parser.add_argument("--idle-exit", type=float, metavar="SECONDS",
                        help="stop after this long without a message (default: never)")
    parser.add_argument("--max-jobs", type=int, help="stop after this many messages")
    parser.add_argument("--wait", type=int, default=20,
                        help="long-poll seconds per receive (default 20, the most SQS allows)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from perfrnn.console import import_libraries_quietly

    import_libraries_quietly()
    instance = os.environ.get("PERFRNN_INSTANCE") or str(PROJECT_ROOT / "instance")
    Path(instance).mkdir(parents=True, exist_ok=True)
    try:
        worker = Worker(load_settings(instance), instance)
    except Exception as error:  # bad settings or no AWS access: one clear line
        print(f"error: cannot start the worker: {error}", file=sys.stderr)
        return 2

    def stop(signum, frame):  # systemd's stop: finish the current job, then exit
        worker.stopping = True

    signal.signal(signal.SIGTERM, stop)
    handled, idle_since = 0, time.monotonic()
    log.info("worker started on %s", ", ".join(worker.queues))
    while not worker.stopping:
        received = worker.poll(args.wait)
        if received:
            handled += received
            idle_since = time.monotonic()
            if args.max_jobs and handled >= args.max_jobs:
                break
        elif args.idle_exit is not None and time.monotonic() - idle_since > args.idle_exit:
            log.info("idle for %.0f s: stopping", args.idle_exit)
            break
    log.info("worker stopped after %d messages", handled)
    return 0


if __name__ == "__main__":
    sys.exit(main())
