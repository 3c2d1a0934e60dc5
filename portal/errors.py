"""No stack trace ever reaches a guest: every failure becomes a short page (or JSON) in their language.

A database that cannot be reached is a 503 "try again in a moment" and one log line; anything unexpected
is logged with its traceback for the operator and shown to the guest as a plain apology.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import lazy_gettext

from portal.metrics import count_error
from rlm_hotspot.web import init_error_pages

JSON_PATHS = ("/heartbeat", "/api/")
WORDS = {
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


def init_errors(app: Flask) -> None:
    init_error_pages(app, _page, WORDS, count_error)
