"""The app's resources: the job store, storage, styles and job queue.

`init_app` builds them for the app's settings (webapp.jobs.services and
webapp.jobs.server, which import no Flask) and starts the background work;
`shutdown` stops it. A request gets them from `get_services` and
`get_queue`, the way flaskr's db.py hands out its connection.
"""

from __future__ import annotations

from flask import Flask, current_app

from webapp.jobs.server import build_queue, start_background_work
from webapp.jobs.services import Services, build_services


def init_app(app: Flask) -> None:
    """Builds the services and queue for `app.config`, then starts the
    background work: jobs a stopped server had waiting go back on the queue,
    old results expire hourly, and the styles are preloaded if
    PRELOAD_STYLES is set."""
    services = build_services(app.config, app.instance_path)
    queue = build_queue(app.config, services)
    app.extensions["perfrnn"] = services
    app.extensions["perfrnn_queue"] = queue
    app.extensions["perfrnn_background"] = start_background_work(app.config, services, queue)


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
