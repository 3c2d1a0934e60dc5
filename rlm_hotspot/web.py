"""What every web adapter (the portal, the console) answers with: the same strict headers and the same
CSRF token comparison; how each is served, under gunicorn, and how gunicorn logs."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import abort, request, session
from gunicorn import glogging
from gunicorn.app.base import BaseApplication

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
