"""What every web adapter (the portal, the console) answers with: the same strict headers, the same
CSRF token comparison and the same error pages (each app with its own words and page); how each is
served, under gunicorn, and how gunicorn logs."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask, abort, make_response, request, session
from flask.typing import ResponseReturnValue
from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from jinja2 import BaseLoader, ChoiceLoader, PackageLoader
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from rlm_hotspot.logs import first_line

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def csrf_token() -> str:
    """This browser's token, made on first use (templates put it in every form)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def check_csrf() -> None:
    """Before every request: a request that changes something carries this browser's token (form or header)."""
    if request.method in _UNSAFE_METHODS and not csrf_matches(
        session.get("csrf"), request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    ):
        abort(400, description="csrf")


def csrf_matches(expected: object, sent: str) -> bool:
    """The token the form or header sent is the one in this browser's signed cookie."""
    return isinstance(expected, str) and hmac.compare_digest(expected.encode(), sent.encode())


def security_headers(form_action_extra: str | None = None) -> dict[str, str]:
    """The headers every response carries (the page's own files only, no framing, no referrer)."""
    form_action = " ".join(filter(None, ("'self'", form_action_extra)))
    return {
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }


class GunicornLogs(glogging.Logger):
    """gunicorn's own lines (start, workers, access log) through `rlm_hotspot.logs.setup`'s handler: one format."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True


class GunicornServer(BaseApplication):
    """gunicorn with `build_app`'s application built in each worker (an engine per process, never shared
    by a fork), configured by `options` (gunicorn's setting names)."""

    def __init__(self, build_app: Callable[[], WSGIApplication], options: dict[str, object]) -> None:
        self.build_app = build_app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    # gunicorn's stub types the environ as a MutableMapping, typeshed's WSGI types as the dict gunicorn passes
    def load(self) -> WSGIApplication:  # type: ignore[override]
        return self.build_app()


ErrorPage = Callable[[int, str], ResponseReturnValue]


def init_error_pages(
    app: Flask, page: ErrorPage, words: Mapping[int | str, object], count: Callable[[str], None] | None = None
) -> None:
    """No stack trace reaches a visitor: every failure is `page(status, message)` in their language.

    `words` holds the app's (lazily translated) sentences: by HTTP status, "csrf" (a form open too long),
    "other", "database" (503: one log line, an expected fault) and "unexpected" (500: logged with its
    traceback for the operator). `count` counts the last two by kind (the portal's metrics). The log
    lines are the app's (`portal.errors`, `console.errors`)."""
    log = logging.getLogger(f"{app.import_name}.errors")

    def http_error(exc: HTTPException) -> ResponseReturnValue:
        status = exc.code or 500
        key: int | str = "csrf" if status == 400 and exc.description == "csrf" else status
        return page(status, str(words.get(key, words["other"])))

    def database_down(exc: Exception) -> Response:
        if count:
            count("database_unavailable")
        log.error("database unavailable: %s: %s", exc.__class__.__name__, first_line(exc))
        response = make_response(page(503, str(words["database"])))
        response.headers["Retry-After"] = "10"
        return response

    def unexpected(exc: Exception) -> ResponseReturnValue:
        if count:
            count("unexpected")
        log.error("unexpected error on %s %s", request.method, request.path, exc_info=exc)
        return page(500, str(words["unexpected"]))

    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(DBAPIError, database_down)
    app.register_error_handler(PoolTimeout, database_down)
    app.register_error_handler(Exception, unexpected)


def share_templates(app: Flask) -> None:
    """The app's own templates first, then the shared ones (rlm_hotspot/web_templates: the page skeleton
    its base.html extends)."""
    own: list[BaseLoader] = [app.jinja_loader] if app.jinja_loader is not None else []
    app.jinja_loader = ChoiceLoader([*own, PackageLoader("rlm_hotspot", "web_templates")])
