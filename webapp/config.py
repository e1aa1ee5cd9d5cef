"""The website's settings: defaults here, then the instance file
`instance/config.py`, then environment variables of the same names."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULTS = {
    # Where jobs run and results live. "local" is the embedded default; the
    # AWS backends ("sqs", "s3") come with their own settings.
    "JOB_BACKEND": "local",
    "STORAGE": "local",
    # Paths; relative ones are inside the instance folder.
    "DATABASE": "perfrnn.sqlite3",
    "STORAGE_DIR": "storage",
    "STYLES_DIR": "styles",
    "TRAINING_DIR": "training",
    "BUNDLES_DIR": str(PROJECT_ROOT / "bundles"),
    # Local worker pool: threads per kind of job and the queue's bound.
    "GENERATION_WORKERS": 2,
    "TRAINING_WORKERS": 1,
    "QUEUE_LIMIT": 32,
    # The most generations of one style a worker (a local thread, or a GPU
    # worker taking SQS messages, at most 10 a receive) samples as one batch.
    "GENERATION_BATCH": 8,
    # Threads TensorFlow gives its work (0: its own choice, a thread per core).
    # One wastes nothing on threads waiting for each other, but a lone request
    # waits longer; on the 2-core test machine neither served a crowd better.
    "SAMPLER_THREADS": 0,
    # Load every style (and compile its sampler) when the server starts.
    "PRELOAD_STYLES": True,
    # How long results stay downloadable.
    "RESULT_RETENTION_HOURS": 168,
    # When set, the train page and training API ask for this token.
    "TRAINING_TOKEN": None,
    # Render WAV and MP3 audio of results when downloaded (needs tinysoundfont
    # and a soundfont).
    "RENDER_AUDIO": True,
    # Processes that make a result's audio, piano roll and stems when first
    # downloaded, beside the server (webapp.jobs.rendering); 0 makes them in
    # the request's thread, holding the GIL the sampler's threads need.
    "RENDER_PROCESSES": 1,
    # Uploads: the largest request body (MIDI files and zips, bundles), and the
    # most parts in one form: the training files (webapp.web.submit.MAX_TRAINING_FILES,
    # 2000) and the fields beside them; Flask's default, 1000, is fewer.
    "MAX_CONTENT_LENGTH": 300 * 1024 * 1024,
    "MAX_FORM_PARTS": 2100,
    # Bootstrap, its icons and our scripts are served from this server.
    "BOOTSTRAP_SERVE_LOCAL": True,
    "WTF_CSRF_TIME_LIMIT": None,
    # Training presets by name (None: training.pipeline.PRESETS).
    "TRAINING_PRESETS": None,
    # With STORAGE=s3: seconds between uploads of a training run's checkpoints,
    # and (on workers) between looks for a spot interruption notice.
    "CHECKPOINT_SYNC_SECONDS": 30,
    "SPOT_CHECK_SECONDS": 5,
    # Limits per client address (webapp.web.security): requests a second, and
    # the burst allowed above that; jobs one client may have waiting or running.
    "RATE_LIMIT_PER_SECOND": 20,
    "RATE_LIMIT_BURST": 200,
    "MAX_JOBS_PER_CLIENT": 4,
    # Progress streams (Server-Sent Events) open at once, and the longest one
    # lasts before the browser reconnects; the WSGI server's threads.
    "MAX_EVENT_STREAMS": 32,
    # Radio streams playing at once (webapp.radio; each holds a thread and about
    # a tenth of a core); beyond it POST /streams answers 503.
    "MAX_RADIO_STREAMS": 6,
    "SSE_MAX_SECONDS": 600,
    "SERVER_THREADS": 48,
    # Behind this many reverse proxies (nginx on AWS), trust their
    # X-Forwarded-For and -Proto for the client's address; 0 when exposed directly.
    "TRUSTED_PROXIES": 0,
    # The session cookie goes only with this site's own requests and navigations.
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_HTTPONLY": True,
}

INTEGER_SETTINGS = {"GENERATION_WORKERS", "TRAINING_WORKERS", "QUEUE_LIMIT", "GENERATION_BATCH",
                    "RENDER_PROCESSES", "SAMPLER_THREADS",
                    "RESULT_RETENTION_HOURS", "MAX_CONTENT_LENGTH", "MAX_FORM_PARTS",
                    "CHECKPOINT_SYNC_SECONDS", "SPOT_CHECK_SECONDS",
                    "RATE_LIMIT_PER_SECOND", "RATE_LIMIT_BURST", "MAX_JOBS_PER_CLIENT",
                    "MAX_EVENT_STREAMS", "SSE_MAX_SECONDS", "SERVER_THREADS",
                    "MAX_RADIO_STREAMS",
                    "TRUSTED_PROXIES"}
BOOLEAN_SETTINGS = {"PRELOAD_STYLES", "RENDER_AUDIO"}
STRING_SETTINGS = {"JOB_BACKEND", "STORAGE", "DATABASE", "STORAGE_DIR", "STYLES_DIR",
                   "TRAINING_DIR", "BUNDLES_DIR", "TRAINING_TOKEN", "SECRET_KEY",
                   "S3_BUCKET", "SQS_GENERATION_QUEUE_URL", "SQS_TRAINING_QUEUE_URL",
                   "AWS_REGION", "AWS_ENDPOINT_URL", "SPOT_NOTICE_URL"}


def from_environment(environ=os.environ) -> dict:
    """The settings given as environment variables, converted to their types.

    Raises:
      ValueError: a value does not parse (the message names the variable).
    """
    found = {}
    for name in INTEGER_SETTINGS | BOOLEAN_SETTINGS | STRING_SETTINGS:
        if name not in environ:
            continue
        text = environ[name]
        if name in INTEGER_SETTINGS:
            try:
                found[name] = int(text)
            except ValueError:
                raise ValueError(f"environment variable {name} must be a whole number, "
                                 f"got {text!r}") from None
        elif name in BOOLEAN_SETTINGS:
            lowered = text.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(f"environment variable {name} must be true or false, "
                                 f"got {text!r}")
            found[name] = lowered in ("1", "true", "yes", "on")
        else:
            found[name] = text or None
    return found


def load_settings(instance_path: str | Path, environ=os.environ) -> dict:
    """Settings without Flask (for the worker): DEFAULTS, then the instance's
    config.py, then the environment."""
    import runpy

    settings = dict(DEFAULTS)
    path = Path(instance_path) / "config.py"
    if path.is_file():
        settings.update({name: value for name, value in runpy.run_path(str(path)).items()
                         if name.isupper()})
    settings.update(from_environment(environ))
    return settings


def instance_file(instance_path: str | Path, setting: str) -> Path:
    """A path setting resolved against the instance folder."""
    path = Path(setting).expanduser()
    return path if path.is_absolute() else Path(instance_path) / path
