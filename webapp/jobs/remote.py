"""Job status that a web server and GPU workers on other machines share.

With JOB_BACKEND=sqs the web server keeps its job records in SQLite (who
asked, with what parameters) and the worker that runs a job writes the job's
state, progress and result to `status/<id>.json` in the bucket; a cancel is
a `status/<id>.cancel` marker. S3 was chosen over DynamoDB because results
already live there: one service, one IAM policy, nothing to provision per
table, and a status object is written a few times a second at most, which
S3's read-after-write consistency serves well (see docs/design-notes.md).
"""

from __future__ import annotations

import json
import threading
import time

from perfrnn.errors import PerfRNNError
from webapp.jobs.store import (
    CANCELLED,
    DONE,
    FAILED,
    FINISHED_STATES,
    QUEUED,
    RUNNING,
    Job,
    JobStore,
)

STATUS_FIELDS = ("state", "progress", "stage", "detail", "result", "error", "started_at",
                 "finished_at")


class RemoteStatus:
    """Status objects of jobs in a storage (S3, or a local folder in tests)."""

    def __init__(self, storage):
        self.storage = storage

    @staticmethod
    def key(job_id: str) -> str:
        return f"status/{job_id}.json"

    def write(self, job: Job, attempt: dict | None = None) -> None:
        """Writes the job's status; `attempt` is the worker's try: {"attempt": n,
        "attempts": the queue's most, "lease_seconds": its visibility timeout}."""
        self.storage.put(self.key(job.id), json.dumps(
            {**job.to_dict(), **(attempt or {}), "updated_at": time.time()}).encode())

    def read(self, job_id: str) -> dict | None:
        try:
            return json.loads(self.storage.get(self.key(job_id)))
        except PerfRNNError:
            return None

    def request_cancel(self, job_id: str) -> None:
        self.storage.put(f"status/{job_id}.cancel", b"cancel")

    def cancel_requested(self, job_id: str) -> bool:
        return self.storage.exists(f"status/{job_id}.cancel")


class WorkerJobStore:
    """The job store a worker uses for the one job it runs: the job came in
    the queue's message; its status goes to the shared status object, with
    which try this is (`attempt`, see RemoteStatus.write)."""

    def __init__(self, status: RemoteStatus, job: Job, attempt: dict | None = None):
        self.status = status
        self.job = job
        self.attempt = attempt
        # The heartbeat's thread and the job's write in turn: a renewal never
        # lands after the final state.
        self._writing = threading.RLock()

    def _write(self) -> None:
        with self._writing:
            self.job.updated_at = time.time()
            self.status.write(self.job, self.attempt)

    def touch(self, job_id: str) -> None:
        """Says again that the job is being worked on (the heartbeat calls it)."""
        with self._writing:
            if self.job.state == RUNNING:
                self._write()

    def start(self, job_id: str) -> bool:
        """False when the job was cancelled or has its result already (a message
        seen twice); a job left running by a worker that died is taken over."""
        remote = self.status.read(job_id) or {}
        if remote.get("state") in (DONE, CANCELLED):
            self.job.state = remote["state"]
            return False
        if self.status.cancel_requested(job_id):
            self.fail(job_id, "cancelled by the user", CANCELLED)
            return False
        self.job.state, self.job.started_at = RUNNING, time.time()
        self.job.error = None
        self._write()
        return True

    def get(self, job_id: str) -> Job:
        return self.job

    def progress(self, job_id: str, fraction: float, stage: str | None = None,
                 detail: dict | None = None) -> None:
        with self._writing:
            self.job.progress = min(1.0, max(0.0, fraction))
            if stage is not None:
                self.job.stage = stage
            if detail is not None:
                self.job.detail = detail
            self._write()

    def finish(self, job_id: str, result: dict) -> None:
        with self._writing:
            self.job.state, self.job.progress, self.job.result = DONE, 1.0, result
            self.job.finished_at = time.time()
            self._write()

    def fail(self, job_id: str, message: str, state: str = FAILED) -> None:
        with self._writing:
            self.job.state, self.job.error, self.job.finished_at = state, message, time.time()
            self._write()

    def requeue(self, job_id: str, message: str) -> None:
        """Back to waiting (another worker will take it), with why."""
        with self._writing:
            self.job.state, self.job.error, self.job.finished_at = QUEUED, message, None
            self._write()

    def cancel_requested(self, job_id: str) -> bool:
        return self.status.cancel_requested(job_id)


class WorkerJobStores:
    """The job store a worker uses for the jobs it runs together: each call
    goes to the WorkerJobStore of the job it names."""

    def __init__(self, stores: dict[str, WorkerJobStore]):
        self.stores = stores

    def __getattr__(self, name: str):
        def call(job_id: str, *args, **kwargs):
            return getattr(self.stores[job_id], name)(job_id, *args, **kwargs)

        return call


class SyncedJobStore(JobStore):
    """The web server's job store when workers run elsewhere: a job that has
    not finished is brought up to date from its status object when read."""

    def __init__(self, path, status: RemoteStatus, on_new_style=None):
        """`on_new_style` is called when a training job is seen finished (to
        fetch the style it made at once)."""
        super().__init__(path)
        self.status = status
        self.on_new_style = on_new_style

    def _refresh(self, job: Job | None) -> Job | None:
        if job is None or job.state in FINISHED_STATES:
            return job
        remote = self.status.read(job.id)
        if remote and _died_on_its_last_try(remote):
            message = (f"the worker running this job stopped on its last try (attempt "
                       f"{remote['attempt']} of {remote['attempts']}); generate again")
            self.fail(job.id, message)
            self.status.write(self.get_local(job.id))  # workers and other servers agree
            # what the killed worker had written: a result is whole or absent
            self.status.storage.delete_prefix(f"jobs/{job.id}")
            return self.get_local(job.id)
        if not remote or remote.get("updated_at", 0) <= job.updated_at:
            return job
        stored = {**remote, "detail": json.dumps(remote.get("detail") or {}),
                  "result": None if remote.get("result") is None else json.dumps(remote["result"])}
        values = [stored.get(name) for name in STATUS_FIELDS]
        sets = ", ".join(f"{name} = ?" for name in STATUS_FIELDS)
        self._execute(f"UPDATE jobs SET {sets}, updated_at = ? WHERE id = ? AND state NOT IN "
                      f"({','.join('?' * len(FINISHED_STATES))})",
                      (*values, remote["updated_at"], job.id, *FINISHED_STATES))
        if job.kind == "training" and remote.get("state") == DONE and self.on_new_style:
            self.on_new_style()
        return super().get(job.id)

    def get(self, job_id: str) -> Job | None:
        return self._refresh(super().get(job_id))

    def get_local(self, job_id: str) -> Job | None:
        """The record as this server has it, without asking the bucket."""
        return super().get(job_id)

    def recent(self, owner: str, kind: str | None = None, limit: int = 20) -> list[Job]:
        return [self._refresh(job) for job in super().recent(owner, kind, limit)]

    def request_cancel(self, job_id: str) -> Job | None:
        self.get(job_id)  # a worker may have started it since we last looked
        job = super().request_cancel(job_id)
        if job is not None:
            self.status.request_cancel(job_id)
        return self.get(job_id)

    def recover(self) -> list[Job]:
        """Nothing to recover here: running jobs belong to the workers, and
        waiting ones are in the queue, which outlives this server."""
        return []


# A running job's status not renewed for this many leases (the queue's
# visibility timeout, which the heartbeat renews every third of) has lost its worker.
LEASES_BEFORE_LOST = 3


def _died_on_its_last_try(remote: dict) -> bool:
    """Whether a status says running on the queue's last try with no heartbeat
    for LEASES_BEFORE_LOST leases: its message has gone to the dead-letter
    queue, and no worker will take the job again."""
    attempt, attempts = remote.get("attempt"), remote.get("attempts")
    lease = remote.get("lease_seconds")
    return (remote.get("state") == RUNNING and attempt is not None and attempts is not None
            and lease is not None and attempt >= attempts
            and time.time() - remote.get("updated_at", 0) > LEASES_BEFORE_LOST * lease)
