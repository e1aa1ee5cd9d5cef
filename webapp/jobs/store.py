"""Job records in SQLite: they survive a restart of the server.

One connection per call keeps threads independent; WAL lets the page read
while a worker writes progress.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

QUEUED, RUNNING, DONE, FAILED, CANCELLED, EXPIRED = (
    "queued", "running", "done", "failed", "cancelled", "expired")
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED, EXPIRED)
FINISHED_STATES = (DONE, FAILED, CANCELLED, EXPIRED)
JOB_KINDS = ("generation", "training")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT,
    client TEXT,
    params TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '{}',
    result TEXT,
    error TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, created_at);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
"""


@dataclass
class Job:
    id: str
    kind: str
    state: str
    owner: str | None
    params: dict
    client: str | None = None  # who sent it (a key of their address): their share
    progress: float = 0.0
    stage: str = ""
    detail: dict = field(default_factory=dict)
    result: dict | None = None
    error: str | None = None
    cancel_requested: bool = False
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float = 0.0

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    def to_dict(self) -> dict:
        """The job as the API shows it (without its owner)."""
        return {
            "id": self.id, "kind": self.kind, "state": self.state,
            "progress": round(self.progress, 4), "stage": self.stage, "detail": self.detail,
            "params": self.params, "result": self.result, "error": self.error,
            "created_at": self.created_at, "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"], kind=row["kind"], state=row["state"], owner=row["owner"],
        client=row["client"], params=json.loads(row["params"]), progress=row["progress"],
        stage=row["stage"],
        detail=json.loads(row["detail"]),
        result=json.loads(row["result"]) if row["result"] else None, error=row["error"],
        cancel_requested=bool(row["cancel_requested"]), created_at=row["created_at"],
        started_at=row["started_at"], finished_at=row["finished_at"],
        updated_at=row["updated_at"])


class JobStore:
    """Creates, reads and moves job records through their states."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            columns = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
            if "client" not in columns:  # a database made before jobs knew their client
                db.execute("ALTER TABLE jobs ADD COLUMN client TEXT")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    def _execute(self, sql: str, args: tuple = ()) -> int:
        """Runs a change; returns the number of rows it changed."""
        db = self._connect()
        try:
            return db.execute(sql, args).rowcount
        finally:
            db.close()

    def _scalar(self, sql: str, args: tuple = ()):
        db = self._connect()
        try:
            row = db.execute(sql, args).fetchone()
            return row[0] if row else None
        finally:
            db.close()

    def _query(self, sql: str, args: tuple = ()) -> list[Job]:
        db = self._connect()
        try:
            return [_job(row) for row in db.execute(sql, args).fetchall()]
        finally:
            db.close()

    # ----- creating and reading ----------------------------------------------

    def create(self, kind: str, params: dict, owner: str | None = None,
               client: str | None = None) -> Job:
        """A new queued job; `owner` sees it in their history, and `client` (who
        sent it: a key of their address) counts it against their share."""
        if kind not in JOB_KINDS:
            raise ValueError(f"unknown job kind {kind!r}")
        now = time.time()
        job_id = uuid.uuid4().hex[:16]
        self._execute(
            "INSERT INTO jobs (id, kind, state, owner, client, params, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, kind, QUEUED, owner, client, json.dumps(params), now, now))
        return self.get(job_id)

    def get(self, job_id: str) -> Job | None:
        jobs = self._query("SELECT * FROM jobs WHERE id = ?", (str(job_id),))
        return jobs[0] if jobs else None

    def recent(self, owner: str, kind: str | None = None, limit: int = 20) -> list[Job]:
        """An owner's newest jobs, newest first (expired ones left out)."""
        sql = "SELECT * FROM jobs WHERE owner = ? AND state != ?"
        args: tuple = (owner, EXPIRED)
        if kind:
            sql += " AND kind = ?"
            args += (kind,)
        return self._query(sql + " ORDER BY created_at DESC LIMIT ?", args + (limit,))

    def count(self, states: tuple[str, ...], kind: str | None = None,
              client: str | None = None) -> int:
        """Jobs in one of `states` (of one kind, from one client, if given)."""
        sql = f"SELECT COUNT(*) FROM jobs WHERE state IN ({','.join('?' * len(states))})"
        args: tuple = tuple(states)
        if client is not None:
            sql += " AND client = ?"
            args += (client,)
        if kind:
            sql += " AND kind = ?"
            args += (kind,)
        return self._scalar(sql, args)

    def active_training_names(self) -> set[str]:
        """Names of the styles being trained or waiting to be."""
        jobs = self._query("SELECT * FROM jobs WHERE kind = 'training' AND state IN (?, ?)",
                           (QUEUED, RUNNING))
        return {job.params.get("name") for job in jobs}

    # ----- moving through states ---------------------------------------------

    def start(self, job_id: str) -> bool:
        """queued -> running; False when the job is no longer queued (cancelled)."""
        now = time.time()
        return self._execute(
            "UPDATE jobs SET state = ?, started_at = ?, updated_at = ? "
            "WHERE id = ? AND state = ?", (RUNNING, now, now, job_id, QUEUED)) == 1

    def progress(self, job_id: str, fraction: float, stage: str | None = None,
                 detail: dict | None = None) -> None:
        sets, args = ["progress = ?", "updated_at = ?"], [min(1.0, max(0.0, fraction)),
                                                          time.time()]
        if stage is not None:
            sets.append("stage = ?")
            args.append(stage)
        if detail is not None:
            sets.append("detail = ?")
            args.append(json.dumps(detail))
        self._execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND state = ?",
                      (*args, job_id, RUNNING))

    def finish(self, job_id: str, result: dict) -> None:
        now = time.time()
        self._execute(
            "UPDATE jobs SET state = ?, progress = 1, result = ?, finished_at = ?, "
            "updated_at = ? WHERE id = ? AND state = ?",
            (DONE, json.dumps(result), now, now, job_id, RUNNING))

    def record_file(self, job_id: str, variation: int, field: str, key: str, sha256: str,
                    name: str | None = None) -> dict | None:
        """Records a file made for a finished generation after it finished (its
        audio, say, made on its first download) in variation `variation` of
        its result: the storage `key` as `field`, its SHA-256 and, if given,
        its download `name` as `field + "_name"`. The first file recorded for a
        field stays; returns the variation as recorded then, or None when the
        job is no longer done (expired, deleted)."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")  # no other writer between the read and the write
            row = db.execute("SELECT state, result FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["state"] != DONE or not row["result"]:
                db.execute("ROLLBACK")
                return None
            result = json.loads(row["result"])
            entry = result["variations"][variation]
            if not entry.get(field):
                entry[field] = key
                entry.setdefault("sha256", {})[field] = sha256
                if name is not None:
                    entry[f"{field}_name"] = name
                db.execute("UPDATE jobs SET result = ? WHERE id = ?",
                           (json.dumps(result), job_id))
            db.execute("COMMIT")
            return entry
        finally:
            db.close()

    def fail(self, job_id: str, message: str, state: str = FAILED) -> None:
        """Marks a job that has not finished as failed (or cancelled) with `message`."""
        now = time.time()
        self._execute(
            "UPDATE jobs SET state = ?, error = ?, finished_at = ?, updated_at = ? "
            "WHERE id = ? AND state IN (?, ?)",
            (state, message, now, now, job_id, QUEUED, RUNNING))

    def request_cancel(self, job_id: str) -> Job | None:
        """A queued job is cancelled at once; a running one is asked to stop."""
        now = time.time()
        self._execute(
            "UPDATE jobs SET state = ?, error = ?, finished_at = ?, updated_at = ? "
            "WHERE id = ? AND state = ?",
            (CANCELLED, "cancelled by the user", now, now, job_id, QUEUED))
        self._execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? "
                      "WHERE id = ? AND state = ?", (now, job_id, RUNNING))
        return self.get(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self._scalar("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)))

    def ids(self, states: tuple[str, ...]) -> list[str]:
        """The ids of the jobs in one of `states`."""
        return [job.id for job in self._query(
            f"SELECT * FROM jobs WHERE state IN ({','.join('?' * len(states))})",
            tuple(states))]

    def recover(self) -> list[Job]:
        """At start-up: jobs left running by a server that died are marked
        cancelled if their user had asked, else failed; queued ones that were
        cancelled become cancelled. Returns the other queued ones, to be queued
        again."""
        now = time.time()
        self._execute(
            "UPDATE jobs SET state = ?, error = ?, finished_at = ?, updated_at = ? "
            "WHERE state IN (?, ?) AND cancel_requested = 1",
            (CANCELLED, "cancelled by the user", now, now, RUNNING, QUEUED))
        self._execute(
            "UPDATE jobs SET state = ?, error = ?, finished_at = ?, updated_at = ? "
            "WHERE state = ?",
            (FAILED, "the server stopped while this job was running; start it again",
             now, now, RUNNING))
        return self._query("SELECT * FROM jobs WHERE state = ? ORDER BY created_at", (QUEUED,))

    def delete(self, job_id: str) -> None:
        self._execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def expire(self, older_than: float) -> list[Job]:
        """Finished jobs created before `older_than` become expired; returns them."""
        states = (DONE, FAILED, CANCELLED)
        jobs = self._query(
            "SELECT * FROM jobs WHERE created_at < ? AND state IN (?, ?, ?)",
            (older_than, *states))
        for job in jobs:
            self._execute("UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?",
                          (EXPIRED, time.time(), job.id))
        return jobs
