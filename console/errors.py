"""No stack trace reaches the desk: every failure is a short page in the staff member's language."""

from __future__ import annotations

import logging

from flask import Flask, render_template, request
from flask_babel import gettext
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from rlm_hotspot.logs import first_line
from rlm_hotspot.services.errors import ServiceError

log = logging.getLogger(__name__)


def _page(status: int, message: str) -> tuple[str, int]:
    return render_template("error.html", message=message, status=status), status


def _http_error(exc: HTTPException) -> tuple[str, int]:
    status = exc.code or 500
    messages = {
        403: gettext("Your role does not open this page. Ask a manager or an administrator."),
        404: gettext("There is no such page."),
        413: gettext("That was too much text."),
    }
    if status == 400 and exc.description == "csrf":
        return _page(400, gettext("This page was open too long. Please go back, reload it and try again."))
    return _page(status, messages.get(status, gettext("The request could not be handled. Please try again.")))


def _refused(exc: ServiceError) -> tuple[str, int]:
    """A rule refused what was asked (the service's sentence says why)."""
    return _page(400, str(exc))


def _database_down(exc: DBAPIError) -> tuple[str, int]:
    log.error("database unavailable: %s: %s", exc.__class__.__name__, first_line(exc))  # expected: no traceback
    return _page(503, gettext("The database cannot be reached. Please try again in a moment."))


def _unexpected(exc: Exception) -> tuple[str, int]:
    log.error("unexpected error on %s %s", request.method, request.path, exc_info=exc)
    return _page(500, gettext("Something went wrong on our side. Nothing was changed. Please try again."))


def init_errors(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(ServiceError, _refused)
    app.register_error_handler(DBAPIError, _database_down)
    app.register_error_handler(Exception, _unexpected)
