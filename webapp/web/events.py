"""Server-Sent Events: a job's progress pushed to the browser or an API client.

`job_events` is a generator of SSE text that polls the job store: it holds no
database connection between polls (each `store.get` opens and closes its
own), so an open stream costs one sleeping thread and nothing in SQLite.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

POLL_SECONDS = 0.2
KEEPALIVE_SECONDS = 15.0
MAX_SECONDS = 3600.0

# What marks a change worth sending.
_WATCHED = ("state", "progress", "stage", "detail", "error")


def sse(data: dict | str, event: str | None = None) -> str:
    """One event in the text/event-stream format."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    lines = [f"event: {event}"] if event else []
    lines += [f"data: {line}" for line in text.split("\n")]
    return "\n".join(lines) + "\n\n"


def job_events(store, job_id: str, describe: Callable[[object], dict] | None = None,
               poll_seconds: float = POLL_SECONDS,
               keepalive_seconds: float = KEEPALIVE_SECONDS,
               max_seconds: float = MAX_SECONDS,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
    """Yields `event: job` with the job's JSON at the start and whenever its
    state, progress, stage, detail or error changes; a `: keepalive` comment
    after `keepalive_seconds` of silence; ends once the job has finished (its
    final state sent) or after `max_seconds` (a client reconnects to go on).

    Args:
      store: A webapp.jobs.store.JobStore (or anything with `get(job_id)`).
      describe: Turns a job into the dict sent (default: `job.to_dict()`).
    """
    describe = describe or (lambda job: job.to_dict())
    started = last_sent = clock()
    previous = None
    yield f"retry: {int(max(poll_seconds, 1.0) * 1000)}\n\n"
    while True:
        job = store.get(job_id)
        if job is None:
            yield sse({"error": "not_found", "message": f"there is no job {job_id}"},
                      event="gone")
            return
        body = describe(job)
        marker = json.dumps([body.get(key) for key in _WATCHED], sort_keys=True, default=str)
        now = clock()
        if marker != previous:
            previous = marker
            last_sent = now
            yield sse(body, event="job")
        if job.finished:
            return
        if now - started >= max_seconds:
            yield ": the stream's time limit was reached; connect again to follow the job\n\n"
            return
        if now - last_sent >= keepalive_seconds:
            last_sent = now
            yield ": keepalive\n\n"
        sleep(poll_seconds)
