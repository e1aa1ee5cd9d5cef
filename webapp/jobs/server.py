"""The job system's part in the web server: the queue it hands jobs to
(`build_queue`: its own worker threads, or the SQS queues) and the work it
does beside its requests (`start_background_work`: jobs a stopped server left
waiting go back on the queue, old results expire hourly, the styles are
preloaded). webapp.services starts these for the Flask app; nothing here
imports Flask.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from webapp.jobs.services import Services, limit_sampler_threads

log = logging.getLogger(__name__)

EXPIRY_INTERVAL_SECONDS = 3600.0


def build_queue(config: dict, services: Services):
    """The local worker pool, or the SQS queues."""
    if config["JOB_BACKEND"] == "sqs":
        from webapp.jobs.sqs import SqsQueue
        from webapp.storage.s3 import aws_client

        return SqsQueue(aws_client("sqs", config),
                        {"generation": config.get("SQS_GENERATION_QUEUE_URL"),
                         "training": config.get("SQS_TRAINING_QUEUE_URL")},
                        config["QUEUE_LIMIT"])
    from webapp.jobs.queues import LocalQueue
    from webapp.jobs.runner import run_jobs

    limit_sampler_threads(config)

    return LocalQueue(lambda job_ids, more: run_jobs(services, job_ids, more),
                      {"generation": config["GENERATION_WORKERS"],
                       "training": config["TRAINING_WORKERS"]},
                      config["QUEUE_LIMIT"],
                      count_waiting=lambda kind: services.store.count(("queued",), kind),
                      batch=config["GENERATION_BATCH"])


@dataclass
class Background:
    """The server's own threads (expiry, preloading) and the event that ends them."""

    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, target: Callable, *args, name: str) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=name)
        self.threads.append(thread)
        thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout)


def start_background_work(config: dict, services: Services, queue) -> Background:
    """Starts the server's work beside its requests: jobs a stopped server had
    waiting go back on `queue`, old results expire hourly, and the styles are
    preloaded if PRELOAD_STYLES is set. `Background.stop` ends it."""
    recover_jobs(services, queue)
    background = Background()
    background.start(_remove_expired_regularly, services, config["RESULT_RETENTION_HOURS"],
                     background.stopping, name="expire-results")
    if services.bundles is not None:
        services.bundles.sync(force=True)
    if config["PRELOAD_STYLES"]:
        background.start(_preload, services, background.stopping, name="preload-styles")
    return background


def recover_jobs(services: Services, queue) -> None:
    """Puts the jobs a stopped server had waiting back on `queue` (failing
    those it has no room for), and deletes the partial files of those it was
    running: a result is whole or absent."""
    from webapp.jobs.queues import QueueFull
    from webapp.jobs.runner import discard_leftovers
    from webapp.jobs.store import RUNNING

    stopped = services.store.ids((RUNNING,))  # jobs a stopped server was running
    for job in services.store.recover():  # jobs a stopped server had waiting
        try:
            queue.submit(job)
        except QueueFull:
            services.store.fail(job.id, "the server restarted with too many waiting jobs; "
                                        "start it again")
    for job_id in stopped:
        job = services.store.get(job_id)
        if job is not None and job.finished:  # (with SQS, running jobs are the workers')
            discard_leftovers(services, job)


def _remove_expired_regularly(services: Services, retention_hours: float,
                              stopping: threading.Event) -> None:
    """Deletes results older than the retention time, and training runs left
    idle as long, now and then hourly."""
    from webapp.jobs.expiry import remove_expired, remove_idle_training_runs

    while not stopping.is_set():
        try:
            removed = remove_expired(services, retention_hours)
            if removed:
                log.info("removed %d expired results", removed)
            runs = remove_idle_training_runs(services, retention_hours)
            if runs:
                log.info("removed the idle training runs of %s", ", ".join(runs))
        except Exception as error:  # a full disk or a locked database: try again later
            log.warning("could not remove expired results: %s", error)
        stopping.wait(EXPIRY_INTERVAL_SECONDS)


def _preload(services: Services, stopping: threading.Event) -> None:
    """Loads every style and compiles its sampler, so the first request is
    quick; then compiles the larger batches that requests arriving together
    are sampled in."""
    from perfrnn.options import GenerationOptions

    styles = [style.name for style in services.registry.styles(load=False)]
    for name in styles:
        if stopping.is_set():
            return
        try:
            services.registry.sampler(name).generate(GenerationOptions(seconds=1.0, seed=0))
        except Exception as error:  # a broken bundle shows on the bundles page instead
            log.warning("could not preload style %s: %s", name, error)
    try:
        services.renderer.warm_up(audio=services.render_audio)
    except Exception as error:  # the first job says what is wrong, in its own words
        log.warning("could not start the piano roll and audio renderer: %s", error)
    for name in styles:
        if stopping.is_set():
            return
        try:
            services.registry.sampler(name).compile()
        except Exception as error:
            log.warning("could not compile the batches of style %s: %s", name, error)
