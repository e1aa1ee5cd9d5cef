"""Errors as users see them: JSON `{"error": code, "message": text}` under
/api/, a page elsewhere; never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

MESSAGES = {
    404: "there is nothing at this address",
    405: "this address does not take that method",
    413: "the upload is larger than this server accepts (MAX_CONTENT_LENGTH) or has too many "
         "files in it (MAX_FORM_PARTS); send fewer or smaller files, or put them in one zip",
}


_names = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported",
          422: "invalid", 429: "too_many_requests", 500: "internal_error", 503: "busy"}


def api_error(status: int, message: str, code: str | None = None, **extra):
    """A JSON error response for the API."""
    body = {"error": code or _names.get(status, "error"), "message": message, **extra}
    return jsonify(body), status


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error):
        message = "the form has expired or came from elsewhere; reload the page and try again"
        if _wants_json():
            return api_error(400, message, "csrf")
        return render_template("error.html", status=400, message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        default = type(error).description  # werkzeug's own text for the status
        message = (error.description if error.description and error.description != default
                   else MESSAGES.get(error.code) or error.description or error.name)
        if _wants_json():
            response, status = api_error(error.code or 500, message)
            return response, status
        return render_template("error.html", status=error.code, message=message), error.code

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        message = "something went wrong on the server; the details are in its log"
        if _wants_json():
            return api_error(500, message)
        return render_template("error.html", status=500, message=message), 500
