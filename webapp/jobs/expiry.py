"""Results expire: a job's files are deleted RESULT_RETENTION_HOURS after it
was made, and the job is marked expired. A training run's folder, kept after
a cancel or an interruption to resume from, goes when nothing has touched it
for as long (with S3, the bucket's lifecycle rule removes its checkpoints)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from webapp.jobs.services import Services


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


def remove_idle_training_runs(services: Services, retention_hours: float) -> list[str]:
    """Deletes the training folders that no waiting or running training uses and
    in which nothing changed for the retention time; returns their names."""
    folder = services.training_dir
    if not folder.is_dir():
        return []
    cutoff = time.time() - retention_hours * 3600
    active = services.store.active_training_names()
    removed = []
    for run in sorted(folder.iterdir()):
        if not run.is_dir() or run.name in active:
            continue
        newest = max((path.stat().st_mtime for path in run.rglob("*") if path.is_file()),
                     default=run.stat().st_mtime)
        if newest < cutoff:
            shutil.rmtree(run, ignore_errors=True)
            removed.append(run.name)
    return removed
