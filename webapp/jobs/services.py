"""The resources a job runs with: the job store, storage, styles and settings
(`Services`), built once per process from the settings by `build_services`,
for the web server (webapp.services) and for the worker
(`python -m webapp.jobs.worker`). Nothing here imports Flask.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from webapp.config import instance_file
from webapp.jobs.rendering import Renderer
from webapp.jobs.store import JobStore
from webapp.storage.base import Storage

if TYPE_CHECKING:  # the registry loads TensorFlow: imported when the services are built
    from perfrnn.registry import StyleRegistry

log = logging.getLogger(__name__)

JOB_BACKENDS = ("local", "sqs")
STORAGES = ("local", "s3")


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
    """Where results and uploads live: the instance folder, or the S3 bucket."""
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
    from perfrnn.registry import StyleRegistry, StyleSource

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
