"""Building the job store, storage, styles and queue from the settings, for
the web server (`create_app`) and the worker (`python -m webapp.worker`)."""

from __future__ import annotations

from pathlib import Path

from perfrnn.registry import StyleRegistry, StyleSource
from webapp.config import instance_file
from webapp.db import JobStore
from webapp.tasks import Services

JOB_BACKENDS = ("local", "sqs")
STORAGES = ("local", "s3")


def build_storage(config: dict, instance: str | Path):
    if config["STORAGE"] not in STORAGES:
        raise ValueError(f"STORAGE must be one of {', '.join(STORAGES)}, "
                         f"got {config['STORAGE']!r}")
    if config["STORAGE"] == "s3":
        from webapp.s3 import S3Storage, aws_client

        return S3Storage(config.get("S3_BUCKET"), aws_client("s3", config))
    from webapp.storage import LocalStorage

    return LocalStorage(instance_file(instance, config["STORAGE_DIR"]))


def build_services(config: dict, instance: str | Path, store: bool = True) -> Services:
    """Services for the settings; `store=False` for a worker, whose job
    records are the shared status objects (see webapp.remote)."""
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
        from webapp.bundle_sync import BundleSync

        bundles = BundleSync(storage, instance_file(instance, "style-cache"))
        sources += bundles.sources()
    sources.append(StyleSource(styles_dir, "user"))
    job_store = None
    if store:
        database = instance_file(instance, config["DATABASE"])
        if config["JOB_BACKEND"] == "sqs":
            from webapp.remote import RemoteStatus, SyncedJobStore

            job_store = SyncedJobStore(database, RemoteStatus(storage),
                                       on_new_style=lambda: bundles.sync(force=True))
        else:
            job_store = JobStore(database)
    registry = StyleRegistry(sources, refresh=bundles.sync if bundles else None)
    return Services(store=job_store, storage=storage, registry=registry, styles_dir=styles_dir,
                    training_dir=instance_file(instance, config["TRAINING_DIR"]),
                    render_audio=bool(config["RENDER_AUDIO"]),
                    training_presets=config["TRAINING_PRESETS"], bundles=bundles,
                    checkpoint_seconds=float(config["CHECKPOINT_SYNC_SECONDS"]))


def build_queue(config: dict, services: Services):
    """The local worker pool, or the SQS queues."""
    if config["JOB_BACKEND"] == "sqs":
        from webapp.s3 import aws_client
        from webapp.sqs import SqsQueue

        return SqsQueue(aws_client("sqs", config),
                        {"generation": config.get("SQS_GENERATION_QUEUE_URL"),
                         "training": config.get("SQS_TRAINING_QUEUE_URL")},
                        config["QUEUE_LIMIT"])
    from webapp.jobs import LocalQueue
    from webapp.tasks import run_job

    return LocalQueue(lambda job_id: run_job(services, job_id),
                      {"generation": config["GENERATION_WORKERS"],
                       "training": config["TRAINING_WORKERS"]},
                      config["QUEUE_LIMIT"],
                      count_waiting=lambda kind: services.store.count(("queued",), kind))
