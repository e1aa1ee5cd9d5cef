"""The SQS job queue (JOB_BACKEND=sqs): the web server sends each job as a
message to the generation or training queue; workers on GPU instances
(`python -m webapp.jobs.worker`) receive them."""

from __future__ import annotations

import json

from webapp.jobs.queues import QueueFull
from webapp.jobs.store import Job


def job_message(job: Job) -> str:
    return json.dumps({"id": job.id, "kind": job.kind, "params": job.params})


class SqsQueue:
    """Sends jobs to SQS; refuses new ones while `limit` are already waiting."""

    kind = "sqs"

    def __init__(self, client, urls: dict[str, str], limit: int):
        missing = [kind for kind, url in urls.items() if not url]
        if missing:
            raise ValueError("JOB_BACKEND=sqs needs " + " and ".join(
                f"SQS_{kind.upper()}_QUEUE_URL" for kind in missing))
        self.client = client
        self.urls = dict(urls)
        self.limit = int(limit)

    def waiting(self, kind: str) -> int:
        attributes = self.client.get_queue_attributes(
            QueueUrl=self.urls[kind], AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    def submit(self, job: Job) -> None:
        if self.waiting(job.kind) >= self.limit:
            raise QueueFull(retry_after=30 if job.kind == "generation" else 120)
        self.client.send_message(QueueUrl=self.urls[job.kind], MessageBody=job_message(job))

    def stop(self) -> None:
        pass
