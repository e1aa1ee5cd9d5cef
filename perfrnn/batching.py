"""Batching: the rows of several requests sampled together, joining and
leaving between blocks.

Rows join the batch as others finish, between blocks of the compiled loop: a
request's rows wait only for room, never for a whole batch to end. Each row's
arithmetic and random streams are its own (`perfrnn.sampling_loop`), so a
request's music does not depend on what it was batched with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from perfrnn.candidates import finish
from perfrnn.errors import PerfRNNError
from perfrnn.request_plan import Generation, RequestPlan, RequestPlanner, SampleRequest
from perfrnn.sampling_loop import MAX_BATCH_ROWS, Row


def generate_batch(planner: RequestPlanner, requests: Sequence[SampleRequest],
                   more: Callable[[int], Sequence[SampleRequest]] | None = None
                   ) -> Iterator[tuple[int, Generation | PerfRNNError]]:
    """Samples `requests` as one batch of rows, at most MAX_BATCH_ROWS at a
    time, asking `more(room)` between blocks for requests to join (see
    `perfrnn.sampler.Sampler.generate_batch`). Yields (index, outcome) as
    each request is done."""
    waiting = list(enumerate(requests))
    taken = len(waiting)
    plans: dict[int, RequestPlan] = {}
    rows: list[Row] = []
    while True:
        if more is not None and not waiting and len(rows) < MAX_BATCH_ROWS:
            for request in more(MAX_BATCH_ROWS - len(rows)):
                waiting.append((taken, request))
                taken += 1
        while waiting and len(rows) < MAX_BATCH_ROWS:  # rows join while there is room
            index, request = waiting[0]
            if index not in plans:
                try:
                    plans[index] = planner.plan(request)
                except PerfRNNError as error:
                    waiting.pop(0)
                    yield index, error
                    continue
            plan = plans[index]
            joining = min(MAX_BATCH_ROWS - len(rows), plan.rows - plan.joined)
            rows += [planner.new_row(plan, index, row)
                     for row in range(plan.joined, plan.joined + joining)]
            plan.joined += joining
            if plan.joined == plan.rows:
                waiting.pop(0)
        if not rows:
            return
        for index in sorted({row.index for row in rows}):  # cancelled: its rows stop
            request = plans[index].request
            if request.cancelled is not None and request.cancelled():
                rows = [row for row in rows if row.index != index]
                waiting = [(i, r) for i, r in waiting if i != index]
                del plans[index]
                yield index, PerfRNNError("generation was cancelled")
        if rows:
            planner.loop.sample_rows(rows)
        for row in [row for row in rows if row.finished]:
            rows.remove(row)
            plans[row.index].generated[row.row] = np.concatenate(row.events)
        for index in sorted({row.index for row in rows} | set(plans)):
            plan = plans[index]
            if plan.request.progress is not None:
                plan.request.progress(share_done(plan, rows, index))
            if len(plan.generated) == plan.rows:
                del plans[index]
                yield index, finish(planner, plan)


def share_done(plan: RequestPlan, rows: list[Row], index: int) -> float:
    """How much of its music request `index` has, 0 to 1 (rows not yet begun count 0)."""
    running = sum(min(row.elapsed / row.target, 1.0) for row in rows if row.index == index)
    return (len(plan.generated) + running) / plan.rows
