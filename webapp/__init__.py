"""The website: `create_app` builds it (Flask's application factory).

Run it with `python -m webapp` or `flask --app webapp run`. Importing this
package loads no Flask (a worker imports webapp.jobs without it); `create_app`
does.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from webapp.config import DEFAULTS, PROJECT_ROOT, from_environment

if TYPE_CHECKING:
    from flask import Flask


def create_app(test_config: dict | None = None) -> Flask:
    """Builds the app: settings from DEFAULTS, then `instance/config.py`, then
    environment variables, then `test_config`; then the job store, storage,
    styles and worker pool.

    The instance folder (database, results, trained styles) is `instance/`
    in the project, or $PERFRNN_INSTANCE.
    """
    from flask import Flask

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

    from webapp import radio, services
    from webapp.web import api, errors, pages, security

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)
    errors.register(app)
    security.init_app(app)

    services.init_app(app)
    radio.init_app(app)
    return app


def _instance_secret(instance: Path) -> str:
    """A secret key kept in the instance folder, made on first start."""
    path = instance / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()
