"""Who is asking: a random id per browser, kept in Flask's signed session
cookie, so each browser sees its own recent generations.

An API client may name itself with `X-Client-Id` to group its jobs; the id
is bound to the client's address (an HMAC of both, keyed with the server's
secret), so no client can take another's id and read its history.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

from flask import current_app, request, session

from webapp.web.security import client_key


def owner_id() -> str:
    """The browser's id (made on first use), or the API client's own one."""
    given = request.headers.get("X-Client-Id", "").strip()
    if given:
        key = str(current_app.config["SECRET_KEY"]).encode("utf-8")
        claim = f"{client_key()}\n{given[:64]}".encode()
        return "client-" + hmac.new(key, claim, hashlib.sha256).hexdigest()[:32]
    if "owner" not in session:
        session["owner"] = uuid.uuid4().hex
        session.permanent = True
    return session["owner"]
