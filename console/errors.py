"""No stack trace reaches the desk: every failure is a short page in the staff member's language
(rlm_hotspot.web's error pages, in the desk's words); a rule the services refuse says why."""

from __future__ import annotations

from flask import Flask, render_template
from flask_babel import lazy_gettext

from rlm_hotspot.services.errors import ServiceError
from rlm_hotspot.web import init_error_pages

WORDS: dict[int | str, object] = {
    "csrf": lazy_gettext("This page was open too long. Please go back, reload it and try again."),
    403: lazy_gettext("Your role does not open this page. Ask a manager or an administrator."),
    404: lazy_gettext("There is no such page."),
    413: lazy_gettext("That was too much text."),
    "other": lazy_gettext("The request could not be handled. Please try again."),
    "database": lazy_gettext("The database cannot be reached. Please try again in a moment."),
    "unexpected": lazy_gettext("Something went wrong on our side. Nothing was changed. Please try again."),
}


def _page(status: int, message: str) -> tuple[str, int]:
    return render_template("error.html", message=message, status=status), status


def _refused(exc: ServiceError) -> tuple[str, int]:
    """A rule refused what was asked (the service's sentence says why)."""
    return _page(400, str(exc))


def init_errors(app: Flask) -> None:
    init_error_pages(app, _page, WORDS)
    app.register_error_handler(ServiceError, _refused)
