"""Results expire: a job's files are deleted RESULT_RETENTION_HOURS after it
was made, and the job is marked expired."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from webapp.services import Services


def remove_expired(services: Services, retention_hours: float) -> int:
    """Deletes the files of jobs older than the retention time; returns how many."""
    jobs = services.store.expire(time.time() - retention_hours * 3600)
    for job in jobs:
        services.storage.delete_prefix(f"jobs/{job.id}")
        uploads = [job.params["primer"]] if job.params.get("primer") else \
            job.params.get("uploads") or []
        if uploads:
            services.storage.delete_prefix(str(Path(uploads[0]).parent))
    return len(jobs)
