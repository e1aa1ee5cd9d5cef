"""Who is asking, and which jobs they may see.

A browser gets a random id, kept in Flask's signed session cookie, so it sees
its own recent generations. A program (no session cookie) is known by its
address, or by an `X-Client-Id` it names itself with, bound to its address.
Ids derived from an address are an HMAC keyed with the server's secret, so
no client can choose another's id. A job is shown, downloaded and cancelled
only for the identities of the client that made it.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

from flask import current_app, request, session

from webapp.web.security import client_key


def _bound(claim: str) -> str:
    """An id no client can choose: `claim` and the client's address, keyed."""
    key = str(current_app.config["SECRET_KEY"]).encode("utf-8")
    text = f"{client_key()}\n{claim}".encode()
    return "client-" + hmac.new(key, text, hashlib.sha256).hexdigest()[:32]


def owner_id() -> str:
    """The id a new job is recorded under: the API client's own id, else the
    browser's (made on first use), else a program's address."""
    given = request.headers.get("X-Client-Id", "").strip()
    if given:
        return _bound(given[:64])
    if "owner" not in session:
        if request.path.startswith("/api/"):  # a program: no cookie to keep an id in
            return _bound("")
        session["owner"] = uuid.uuid4().hex
        session.permanent = True
    return session["owner"]


def may_see(job) -> bool:
    """Whether the client asking made `job` (a job without an owner is anyone's)."""
    if job.owner is None:
        return True
    mine = {_bound("")}
    if session.get("owner"):
        mine.add(session["owner"])
    given = request.headers.get("X-Client-Id", "").strip()
    if given:
        mine.add(_bound(given[:64]))
    return any(hmac.compare_digest(job.owner, identity) for identity in mine)
