"""CSRF on every form, the portal's strict headers (rlm_hotspot.web), no caching, trusted client address.

The CSRF token lives in the signed session cookie (HttpOnly, SameSite=Strict, Secure unless configured
off) and must come back with every POST as a form field (or a header, for the page's own script).
"""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

from rlm_hotspot.web import CSRF_FIELD, check_csrf, csrf_token, security_headers


def _headers(response: Response) -> Response:
    response.headers.update(security_headers())
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"  # PINs and balances stay out of every cache
    return response


def init_security(app: Flask, *, cookie_secure: bool, proxy_hops: int) -> None:
    app.config.update(
        SESSION_COOKIE_NAME="hotspot_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=cookie_secure,
        SESSION_COOKIE_SAMESITE="Strict",
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.before_request(check_csrf)
    app.after_request(_headers)
    app.jinja_env.globals.update(csrf_token=csrf_token, csrf_field=CSRF_FIELD)
    if proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxy_hops, x_proto=proxy_hops, x_host=proxy_hops)  # type: ignore[method-assign]  # Flask's way to add WSGI middleware


def client_address() -> str:
    return request.remote_addr or "unknown"
