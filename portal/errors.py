"""No stack trace ever reaches a guest: every failure becomes a short page (or JSON) in their language.

A database that cannot be reached is a 503 "try again in a moment" and one log line; anything unexpected
is logged with its traceback for the operator and shown to the guest as a plain apology.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from portal.metrics import count_error
from rlm_hotspot.logs import first_line
from rlm_hotspot.pins import PinKeyError

log = logging.getLogger(__name__)
JSON_PATHS = ("/heartbeat", "/api/")


def _page(status: int, message: str) -> Response:
    if request.path.startswith(JSON_PATHS):
        response = jsonify(error=message)
    else:
        response = Response(render_template("error.html", message=message, status=status), mimetype="text/html")
    response.status_code = status
    return response


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status == 400 and exc.description == "csrf":
        message = gettext("This page was open too long or was opened elsewhere. Please try again.")
    elif status == 404:
        message = gettext("There is no such page.")
    elif status == 413:
        message = gettext("That was too much text.")
    else:
        message = gettext("The request could not be handled. Please try again.")
    return _page(status, message)


def _database_down(exc: Exception) -> Response:
    # one line per request while the database is away: an outage is an expected fault, not a bug
    count_error("database_unavailable")
    log.error("database unavailable: %s: %s", exc.__class__.__name__, first_line(exc))
    response = _page(503, gettext("The service is busy for a moment. Please try again in a few seconds."))
    response.headers["Retry-After"] = "10"
    return response


def _key_fault(exc: PinKeyError) -> Response:
    # the key file does not open the cards' PINs (not the cards' own): the operator's fault, one line; the
    # guest's try is not counted as a wrong PIN
    count_error("unexpected")
    log.error("PIN key fault: %s", exc)
    return _page(500, gettext("Something went wrong on our side. Please try again."))


def _unexpected(exc: Exception) -> Response:
    count_error("unexpected")
    log.error("unexpected error on %s %s", request.method, request.path, exc_info=exc)
    return _page(500, gettext("Something went wrong on our side. Please try again."))


def init_errors(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DBAPIError, _database_down)
    app.register_error_handler(PoolTimeout, _database_down)
    app.register_error_handler(PinKeyError, _key_fault)
    app.register_error_handler(Exception, _unexpected)
