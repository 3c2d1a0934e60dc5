"""No stack trace ever reaches a guest: every failure becomes a short page (or JSON) in their language.

A database that cannot be reached is a 503 "try again in a moment" and one log line; anything unexpected
is logged with its traceback for the operator and shown to the guest as a plain apology.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import lazy_gettext

from portal.metrics import count_error
from rlm_hotspot.pins import PinKeyError
from rlm_hotspot.web import init_error_pages

log = logging.getLogger(__name__)

JSON_PATHS = ("/heartbeat", "/api/")
WORDS: dict[int | str, object] = {
    "csrf": lazy_gettext("This page was open too long or was opened elsewhere. Please try again."),
    404: lazy_gettext("There is no such page."),
    413: lazy_gettext("That was too much text."),
    "other": lazy_gettext("The request could not be handled. Please try again."),
    "database": lazy_gettext("The service is busy for a moment. Please try again in a few seconds."),
    "unexpected": lazy_gettext("Something went wrong on our side. Please try again."),
}


def _page(status: int, message: str) -> Response:
    if request.path.startswith(JSON_PATHS):
        response = jsonify(error=message)
    else:
        response = Response(render_template("error.html", message=message, status=status), mimetype="text/html")
    response.status_code = status
    return response


def _key_fault(exc: PinKeyError) -> Response:
    # the key file does not open the cards' PINs (not the cards' own): the operator's fault, one line; the
    # guest's try is not counted as a wrong PIN
    count_error("unexpected")
    log.error("PIN key fault: %s", exc)
    return _page(500, str(WORDS["unexpected"]))


def init_errors(app: Flask) -> None:
    init_error_pages(app, _page, WORDS, count_error)
    app.register_error_handler(PinKeyError, _key_fault)
