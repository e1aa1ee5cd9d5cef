"""Protection for a site on the open internet, for every page and API route.

- **Cross-site requests**: a state-changing request (POST, PUT, PATCH, DELETE)
  that a browser says comes from another site (`Sec-Fetch-Site`, `Origin` or
  `Referer`) is refused with 403, so no other page can drive this server.
  Programs (curl, scripts) send none of these headers and are not affected;
  the pages' forms also carry CSRF tokens (Flask-WTF).
- **Security headers**: a Content-Security-Policy without inline script or
  style, no framing, no MIME sniffing, no referrer to other sites.
- **Rate limits**: a token bucket per client address for every request
  (429 with Retry-After when empty), and a growing wait after wrong training
  tokens.
- **Event streams**: at most MAX_EVENT_STREAMS open at once (503 beyond).

`init_app` installs all of it; its settings are in webapp/config.py.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Flask, current_app, request

from webapp.web.errors import api_error

STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
    "img-src 'self' data: https:; media-src 'self' blob: https:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'")
"""https: for images and audio: with S3 storage they are presigned S3 URLs.
'wasm-unsafe-eval' lets pages compile WebAssembly, and nothing else (no JavaScript
eval): the vendored synthesizer (static/vendor/spessasynth) instantiates its Vorbis
decoder when it loads, in the page and in its AudioWorklet."""
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
MAX_CLIENTS_TRACKED = 10_000  # client buckets kept in memory, oldest dropped first


class Refused(Exception):
    """A request over a limit: `status` 429 (this client) or 503 (the server),
    `retry_after` in seconds."""

    def __init__(self, status: int, message: str, retry_after: float):
        super().__init__(message)
        self.status = status
        self.retry_after = max(1, math.ceil(retry_after))


class TokenBuckets:
    """A token bucket per key: `rate` tokens a second, holding at most `burst`
    (a rate of 0 or less: no limit).

    Memory is bounded: at most MAX_CLIENTS_TRACKED keys, the least recently
    seen dropped first (a dropped key starts again with a full bucket).
    """

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = float(rate), float(burst), clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, cost: float = 1.0) -> float:
        """Takes `cost` tokens; returns 0, or the seconds to wait when too few are left."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            tokens, then = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            wait = 0.0
            if tokens >= cost:
                tokens -= cost
            else:
                wait = (cost - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > MAX_CLIENTS_TRACKED:
                self._buckets.popitem(last=False)
            return wait


class FailureBackoff:
    """After `free` wrong attempts from a key, each further attempt must wait
    twice as long as the one before (from 1 s up to `longest`); a right one
    clears the key."""

    def __init__(self, free: int = 5, longest: float = 300.0,
                 clock: Callable[[], float] = time.monotonic):
        self.free, self.longest, self.clock = free, longest, clock
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, key: str) -> float:
        """Seconds `key` must still wait before its next attempt (0: none)."""
        with self._lock:
            count, last = self._failures.get(key, (0, 0.0))
            if count < self.free:
                return 0.0
            delay = min(self.longest, 2.0 ** (count - self.free))
            return max(0.0, last + delay - self.clock())

    def failed(self, key: str) -> None:
        with self._lock:
            count, _ = self._failures.pop(key, (0, 0.0))
            self._failures[key] = (count + 1, self.clock())
            while len(self._failures) > MAX_CLIENTS_TRACKED:
                self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


class StreamSlots:
    """At most `limit` event streams open at once."""

    def __init__(self, limit: int):
        self.limit = int(limit)
        self._free = threading.BoundedSemaphore(self.limit)

    def take(self) -> Callable[[], None]:
        """Takes a slot; returns the function that gives it back (once, however
        often it is called). Give it to `Response.call_on_close`: the WSGI
        server closes every response, streamed to its end or not (a client
        that leaves, a HEAD request that never reads the body).

        Raises:
          Refused: every slot is taken (503).
        """
        if not self._free.acquire(blocking=False):
            raise Refused(503, f"{self.limit} progress streams are open on this server; poll "
                               "the job instead, or try again shortly", 5)
        given_back = threading.Event()

        def give_back() -> None:
            if not given_back.is_set():
                given_back.set()
                self._free.release()

        return give_back


def client_key() -> str:
    """Who a request counts against: its address (behind TRUSTED_PROXIES
    proxies, the address they say they serve; see webapp/config.py)."""
    return request.remote_addr or "unknown"


def training_token_is_right(given: str) -> bool:
    """Whether `given` is this server's TRAINING_TOKEN (compared in constant
    time), for the pages and the API alike. A wrong token counts against the
    client, which must then wait longer and longer before its next try; an
    empty one is not a try and counts for nothing.

    Raises:
      Refused: (429) the client is still waiting after wrong tokens.
    """
    backoff: FailureBackoff = current_app.extensions["perfrnn_token_backoff"]
    key = client_key()
    wait = backoff.wait(key)
    if wait:
        raise Refused(429, "too many wrong training tokens from this address; wait and "
                           "try again", wait)
    if not given:
        return False
    expected = str(current_app.config["TRAINING_TOKEN"])
    right = hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
    if right:
        backoff.succeeded(key)
    else:
        backoff.failed(key)
    return right


def cross_site_problem() -> str | None:
    """Why the current request looks sent by another site's page (None: it does not)."""
    fetch_site = request.headers.get("Sec-Fetch-Site", "").lower()
    if fetch_site in ("cross-site", "same-site"):
        return f"the browser says this request came from another site ({fetch_site})"
    here = urlsplit(request.host_url)
    for header in ("Origin", "Referer"):
        value = request.headers.get(header)
        if not value:
            continue
        if value == "null":
            return f"the request's {header} is hidden (null)"
        there = urlsplit(value)
        if (there.scheme, there.netloc) != (here.scheme, here.netloc):
            return f"the request comes from {there.scheme}://{there.netloc}, another site"
        return None  # the first header present decides
    return None


def init_app(app: Flask) -> None:
    """Installs the checks and headers on every request of `app`."""
    config = app.config
    if int(config["TRUSTED_PROXIES"]):
        from werkzeug.middleware.proxy_fix import ProxyFix

        proxies = int(config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    requests = TokenBuckets(config["RATE_LIMIT_PER_SECOND"], config["RATE_LIMIT_BURST"])
    app.extensions["perfrnn_rate_limit"] = requests
    app.extensions["perfrnn_token_backoff"] = FailureBackoff()
    app.extensions["perfrnn_streams"] = StreamSlots(config["MAX_EVENT_STREAMS"])

    @app.before_request
    def refuse_cross_site_and_floods():
        if request.method in STATE_CHANGING:
            problem = cross_site_problem()
            if problem:
                return _refusal(403, f"{problem}; this server takes changes only from its own "
                                     "pages or from programs", "cross_site")
        if request.endpoint == "static":
            return None
        wait = requests.take(client_key())
        if wait:
            return _refusal(429, "too many requests from this address; slow down", None,
                            wait)
        return None

    @app.errorhandler(Refused)
    def refused(error: Refused):
        return _refusal(error.status, str(error), None, error.retry_after)

    @app.after_request
    def security_headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.pop("Server", None)
        return response


def _refusal(status: int, message: str, code: str | None, retry_after: float | None = None):
    """A refusal as JSON under /api/, else as a page."""
    from flask import render_template

    if request.path.startswith("/api/"):
        response, status = api_error(status, message, code)
    else:
        response = current_app.make_response(
            (render_template("error.html", status=status, message=message), status))
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response, status
