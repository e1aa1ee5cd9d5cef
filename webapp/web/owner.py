"""Who is asking: a random id per browser, kept in Flask's signed session
cookie, so each browser sees its own recent generations."""

from __future__ import annotations

import uuid

from flask import request, session


def owner_id() -> str:
    """The browser's id (made on first use); API clients may send X-Client-Id."""
    given = request.headers.get("X-Client-Id", "").strip()
    if given:
        return given[:64]
    if "owner" not in session:
        session["owner"] = uuid.uuid4().hex
        session.permanent = True
    return session["owner"]
