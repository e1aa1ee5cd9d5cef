"""Job queues: where the website hands a job to a worker.

The local backend is a bounded pool of threads per kind of job inside the
server process, taking waiting jobs in turn across clients (`FairQueue`); a
thread takes the generations waiting for one style together, up to a batch,
so that their music is sampled as one batch, and those of the style that
come while it runs join it. A queue backend has one job:
`submit(job)`, raising `QueueFull` when it cannot take more, so the API can
answer 503.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from webapp.jobs.store import Job

log = logging.getLogger(__name__)

_STOP = object()  # tells a worker thread to end


class QueueFull(Exception):
    """The queue holds as many jobs as it may; try again later."""

    def __init__(self, retry_after: int = 10):
        super().__init__("the server is busy with other jobs; try again in a moment")
        self.retry_after = retry_after


class FairQueue:
    """Jobs waiting to run, taken in turn across clients: each `get` takes the
    oldest job of the client that waited longest for a turn, so one client's
    many jobs never hold back another client's one. An item may carry a batch
    key: `get` then takes, with it, more items of that key (in the same turns)."""

    def __init__(self):
        self._by_client: OrderedDict[str | None, deque] = OrderedDict()
        self._ready = threading.Condition()

    def put(self, item, client: str | None = None, batch_key: str | None = None) -> None:
        with self._ready:
            self._by_client.setdefault(client, deque()).append((item, batch_key))
            self._ready.notify()

    def get(self, batch: int = 1) -> tuple[list, str | None]:
        """The next item, and up to `batch - 1` more of its batch key, with the
        key; waits for one."""
        with self._ready:
            while not self._by_client:
                self._ready.wait()
            item, key = self._take_turn(lambda key: True)
            return [item] + (self.take(key, batch - 1) if key is not None else []), key

    def take(self, key: str, limit: int, unless_others: bool = False) -> list:
        """Up to `limit` waiting items of batch key `key`, in turn; waits for none.
        With `unless_others`, none while an item of another key waits (a batch
        that keeps taking its style must not hold back another style)."""
        with self._ready:
            if unless_others and any(other != key for items in self._by_client.values()
                                     for _, other in items):
                return []
            taken = []
            while len(taken) < limit:
                found = self._take_turn(lambda other: other == key)
                if found is None:
                    break
                taken.append(found[0])
            return taken

    def _take_turn(self, wanted):
        """The first item whose key is `wanted` of the first client in turn that
        has one (that client's turn ends), or None."""
        for client, items in self._by_client.items():
            found = next((entry for entry in items if wanted(entry[1])), None)
            if found is None:
                continue
            items.remove(found)
            del self._by_client[client]
            if items:  # the client's turn ends: its next job goes behind the others
                self._by_client[client] = items
            return found
        return None

    def qsize(self) -> int:
        with self._ready:
            return sum(len(items) for items in self._by_client.values())


class LocalQueue:
    """Runs jobs on worker threads in this process.

    Args:
      run_jobs: Called on a worker thread with job ids (several generations of
        one style to run together, or one job) and `more(count)`, which hands
        over up to `count` more generations of that style that wait now (or
        None); it must record the outcomes in the job store itself and not
        raise.
      workers: Threads per kind of job, e.g. {"generation": 2, "training": 1}.
      limit: Jobs waiting per kind beyond which `submit` raises QueueFull.
      batch: The most generations one thread takes together.
    """

    kind = "local"

    def __init__(self, run_jobs: Callable[[list[str], Callable | None], None],
                 workers: dict[str, int],
                 limit: int, count_waiting: Callable[[str], int] | None = None, batch: int = 1):
        """`count_waiting(kind)`, if given, counts the jobs really waiting (a
        cancelled job's id stays in the thread queue until a worker skips it)."""
        self.run_jobs = run_jobs
        self.limit = int(limit)
        self.batch = max(1, int(batch))
        self.count_waiting = count_waiting
        self._queues = {kind: FairQueue() for kind in workers}
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        for kind, count in workers.items():
            for number in range(max(1, int(count))):
                thread = threading.Thread(target=self._work, args=(kind,), daemon=True,
                                          name=f"{kind}-worker-{number + 1}")
                self._threads.append(thread)
                thread.start()

    def submit(self, job: Job) -> None:
        waiting = self._queues[job.kind]
        count = waiting.qsize() if self.count_waiting is None else \
            self.count_waiting(job.kind) - 1  # the job itself is already recorded as queued
        if count >= self.limit:
            raise QueueFull(retry_after=10 if job.kind == "generation" else 60)
        # an edit runs alone: it continues one stored piece
        style = job.params.get("style") if job.kind == "generation" \
            and not job.params.get("edit") else None
        waiting.put(job.id, getattr(job, "client", None), batch_key=style)

    def waiting(self, kind: str) -> int:
        return self._queues[kind].qsize()

    def _work(self, kind: str) -> None:
        waiting = self._queues[kind]
        while not self._stopping.is_set():
            items, key = waiting.get(self.batch)
            job_ids = [job_id for job_id in items if job_id is not _STOP]
            more = None
            if key is not None and not self._stopping.is_set():
                def more(count, key=key):
                    return [] if self._stopping.is_set() else waiting.take(
                        key, count, unless_others=True)
            try:
                if job_ids and not self._stopping.is_set():
                    self.run_jobs(job_ids, more)
            except Exception:  # run_jobs records failures; this is the last net
                log.exception("jobs %s failed outside their handler", ", ".join(job_ids))

    def stop(self, timeout: float = 30.0) -> None:
        """Stops the worker threads and waits up to `timeout` seconds in all for
        them to end (a running job finishes first). Jobs still waiting, and
        any submitted after, stay queued in the job store, to be taken up
        again on the next start (`JobStore.recover`)."""
        self._stopping.set()
        for kind, waiting in self._queues.items():
            for _ in range(sum(thread.name.startswith(f"{kind}-") for thread in self._threads)):
                waiting.put(_STOP)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
