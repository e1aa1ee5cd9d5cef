"""The website: `create_app` builds it (Flask's application factory).

Run it with `python -m webapp` or `flask --app webapp run`.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from pathlib import Path

from flask import Flask, current_app

from webapp.config import DEFAULTS, PROJECT_ROOT, from_environment

log = logging.getLogger(__name__)


def create_app(test_config: dict | None = None) -> Flask:
    """Builds the app: settings from DEFAULTS, then `instance/config.py`, then
    environment variables, then `test_config`; then the job store, storage,
    styles and worker pool.

    The instance folder (database, results, trained styles) is `instance/`
    in the project, or $PERFRNN_INSTANCE.
    """
    instance = os.environ.get("PERFRNN_INSTANCE") or str(PROJECT_ROOT / "instance")
    if test_config and test_config.get("INSTANCE_PATH"):
        instance = test_config["INSTANCE_PATH"]
    app = Flask(__name__, instance_path=str(Path(instance).resolve()),
                instance_relative_config=True)
    app.config.from_mapping(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_mapping(from_environment())
    if test_config:
        app.config.from_mapping(test_config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(Path(app.instance_path))

    from flask_bootstrap import Bootstrap5
    from flask_wtf.csrf import CSRFProtect

    Bootstrap5(app)
    csrf = CSRFProtect(app)

    from webapp import api, errors, pages

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)
    errors.register(app)

    _start_services(app)
    return app


def _instance_secret(instance: Path) -> str:
    """A secret key kept in the instance folder, made on first start."""
    path = instance / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _start_services(app: Flask) -> None:
    from webapp.jobs import QueueFull
    from webapp.services import build_queue, build_services

    config = app.config
    services = build_services(config, app.instance_path)
    queue = build_queue(config, services)
    app.extensions["perfrnn"] = services
    app.extensions["perfrnn_queue"] = queue

    for job in services.store.recover():  # jobs a stopped server had waiting
        try:
            queue.submit(job)
        except QueueFull:
            services.store.fail(job.id, "the server restarted with too many waiting jobs; "
                                        "start it again")
    threading.Thread(target=_remove_expired_every_hour,
                     args=(services, config["RESULT_RETENTION_HOURS"]), daemon=True,
                     name="expire-results").start()
    if services.bundles is not None:
        services.bundles.sync(force=True)
    if config["PRELOAD_STYLES"]:
        threading.Thread(target=_preload, args=(services,), daemon=True,
                         name="preload-styles").start()


def _remove_expired_every_hour(services, retention_hours: float) -> None:
    """Deletes results older than the retention time, now and then hourly."""
    from webapp.actions import remove_expired

    while True:
        try:
            removed = remove_expired(services, retention_hours)
            if removed:
                log.info("removed %d expired results", removed)
        except Exception as error:  # a full disk or a locked database: try again later
            log.warning("could not remove expired results: %s", error)
        time.sleep(3600)


def _preload(services) -> None:
    """Loads every style and compiles its sampler, so the first request is quick."""
    from perfrnn.options import GenerationOptions

    for style in services.registry.styles(load=False):
        try:
            services.registry.sampler(style.name).generate(
                GenerationOptions(seconds=1.0, seed=0))
        except Exception as error:  # a broken bundle shows on the bundles page instead
            log.warning("could not preload style %s: %s", style.name, error)


def get_services():
    """The job store, storage and styles of the running app."""
    return current_app.extensions["perfrnn"]


def get_queue():
    return current_app.extensions["perfrnn_queue"]
