"""The server's resources: the job store, storage, styles and job queue.

`build_services` and `build_queue` make them from the settings, for the web
server and for the worker (`python -m webapp.jobs.worker`). `init_app`
attaches them to the app and starts the background work (jobs a stopped
server left waiting, hourly expiry, style preloading); `shutdown` stops it.
A request gets them from `get_services` and `get_queue`, the way flaskr's
db.py hands out its connection.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask, current_app

from perfrnn.registry import StyleRegistry, StyleSource
from webapp.config import instance_file
from webapp.jobs.rendering import Renderer
from webapp.jobs.store import JobStore
from webapp.storage.base import Storage

log = logging.getLogger(__name__)

JOB_BACKENDS = ("local", "sqs")
STORAGES = ("local", "s3")
EXPIRY_INTERVAL_SECONDS = 3600.0


@dataclass
class Services:
    """Everything a job needs, built once per process."""

    store: JobStore
    storage: Storage
    registry: StyleRegistry
    styles_dir: Path
    training_dir: Path
    render_audio: bool = True
    # Draws piano rolls and audio (webapp.jobs.rendering.Renderer); None: in the job's thread.
    renderer: object | None = None
    # The most generations one sampling batch holds at a time (GENERATION_BATCH).
    generation_batch: int = 8
    training_presets: dict = field(default_factory=dict)  # name: training.pipeline.Preset
    # With STORAGE=s3: the styles' local copies (webapp.storage.style_sync.StyleSync).
    bundles: object | None = None
    # On a worker: true once the machine is about to go (a spot notice).
    interrupted: Callable[[], bool] | None = None
    checkpoint_seconds: float = 30.0


def build_storage(config: dict, instance: str | Path) -> Storage:
    if config["STORAGE"] not in STORAGES:
        raise ValueError(f"STORAGE must be one of {', '.join(STORAGES)}, "
                         f"got {config['STORAGE']!r}")
    if config["STORAGE"] == "s3":
        from webapp.storage.s3 import S3Storage, aws_client

        return S3Storage(config.get("S3_BUCKET"), aws_client("s3", config))
    from webapp.storage.local import LocalStorage

    return LocalStorage(instance_file(instance, config["STORAGE_DIR"]))


def build_services(config: dict, instance: str | Path, store: bool = True) -> Services:
    """Services for the settings; `store=False` for a worker, whose job
    records are the shared status objects (see webapp.jobs.remote)."""
    if config["JOB_BACKEND"] not in JOB_BACKENDS:
        raise ValueError(f"JOB_BACKEND must be one of {', '.join(JOB_BACKENDS)}, "
                         f"got {config['JOB_BACKEND']!r}")
    if config["JOB_BACKEND"] == "sqs" and config["STORAGE"] != "s3":
        raise ValueError("JOB_BACKEND=sqs needs STORAGE=s3: workers on other machines "
                         "read uploads and write results there")
    storage = build_storage(config, instance)
    styles_dir = instance_file(instance, config["STYLES_DIR"])
    sources = [StyleSource(Path(config["BUNDLES_DIR"]), "shipped")]
    bundles = None
    if storage.kind == "s3":
        from webapp.storage.style_sync import StyleSync

        bundles = StyleSync(storage, instance_file(instance, "style-cache"))
        sources += bundles.sources()
    sources.append(StyleSource(styles_dir, "user"))
    job_store = None
    if store:
        database = instance_file(instance, config["DATABASE"])
        if config["JOB_BACKEND"] == "sqs":
            from webapp.jobs.remote import RemoteStatus, SyncedJobStore

            job_store = SyncedJobStore(database, RemoteStatus(storage),
                                       on_new_style=lambda: bundles.sync(force=True))
        else:
            job_store = JobStore(database)
    registry = StyleRegistry(sources, refresh=bundles.sync if bundles else None)
    presets = config["TRAINING_PRESETS"]
    if presets is None:
        from training.pipeline import PRESETS

        presets = PRESETS
    return Services(store=job_store, storage=storage, registry=registry, styles_dir=styles_dir,
                    training_dir=instance_file(instance, config["TRAINING_DIR"]),
                    render_audio=bool(config["RENDER_AUDIO"]),
                    renderer=Renderer(config["RENDER_PROCESSES"]),
                    generation_batch=max(1, int(config["GENERATION_BATCH"])),
                    training_presets=dict(presets), bundles=bundles,
                    checkpoint_seconds=float(config["CHECKPOINT_SYNC_SECONDS"]))


def limit_sampler_threads(config: dict) -> None:
    """Applies SAMPLER_THREADS on a machine that generates (before TensorFlow starts)."""
    from perfrnn.sampler import use_cpu_threads

    if not use_cpu_threads(config["SAMPLER_THREADS"]):
        log.info("SAMPLER_THREADS not applied: TensorFlow had already started")


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
    """The app's own threads (expiry, preloading) and the event that ends them."""

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


def init_app(app: Flask) -> None:
    """Builds the services and queue for `app.config`, then starts the
    background work: jobs a stopped server had waiting go back on the queue,
    old results expire hourly, and the styles are preloaded if
    PRELOAD_STYLES is set."""
    from webapp.jobs.queues import QueueFull

    config = app.config
    services = build_services(config, app.instance_path)
    queue = build_queue(config, services)
    background = Background()
    app.extensions["perfrnn"] = services
    app.extensions["perfrnn_queue"] = queue
    app.extensions["perfrnn_background"] = background

    from webapp.jobs.runner import discard_leftovers
    from webapp.jobs.store import RUNNING

    stopped = services.store.ids((RUNNING,))  # jobs a stopped server was running
    for job in services.store.recover():  # jobs a stopped server had waiting
        try:
            queue.submit(job)
        except QueueFull:
            services.store.fail(job.id, "the server restarted with too many waiting jobs; "
                                        "start it again")
    for job_id in stopped:  # their partial files: a result is whole or absent
        job = services.store.get(job_id)
        if job is not None and job.finished:  # (with SQS, running jobs are the workers')
            discard_leftovers(services, job)
    background.start(_remove_expired_regularly, services, config["RESULT_RETENTION_HOURS"],
                     background.stopping, name="expire-results")
    if services.bundles is not None:
        services.bundles.sync(force=True)
    if config["PRELOAD_STYLES"]:
        background.start(_preload, services, background.stopping, name="preload-styles")


def shutdown(app: Flask) -> None:
    """Stops the app's worker threads and background work (a job running now
    finishes first, up to the queue's wait)."""
    app.extensions["perfrnn_background"].stop()
    app.extensions["perfrnn_queue"].stop()
    app.extensions["perfrnn"].renderer.shutdown()
    if "perfrnn_radio" in app.extensions:
        app.extensions["perfrnn_radio"].stop_all()


def get_services() -> Services:
    """The job store, storage and styles of the running app."""
    return current_app.extensions["perfrnn"]


def get_queue():
    """The running app's job queue (webapp.jobs.queues or webapp.jobs.sqs)."""
    return current_app.extensions["perfrnn_queue"]


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
