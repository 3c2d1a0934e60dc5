"""What keeps the portal safe: CSRF tokens on every form, strict response headers, trusted client address.

The CSRF token lives in the signed session cookie (HttpOnly, SameSite=Lax, Secure unless configured off)
and must come back with every POST, as a form field or (for the JavaScript heartbeat) a header. The CSP
allows only the portal's own files: no inline script, no framing, no referrer to other sites.
"""

from __future__ import annotations

import re

from flask import Flask, Response, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from rlm_hotspot.web import CSRF_FIELD, check_csrf, csrf_token, security_headers

# A path on this site as the portal's own links give it (`request.path`): one leading slash, then plain
# segments. Nothing a browser could read as another host: no `//`, backslash, percent-escape, control
# character (browsers drop tabs and newlines from URLs, so `/\t/evil` is `//evil`), scheme or non-ASCII.
_SAME_SITE_PATH = re.compile(r"/(?:[A-Za-z0-9_.~-]+(?:/[A-Za-z0-9_.~-]+)*/?)?", re.ASCII)


def same_site_path(text: str | None) -> str:
    """Where to send the guest back to (`?next=`): `text` if it is a plain path on this site, else `/`."""
    if text and len(text) <= 256 and _SAME_SITE_PATH.fullmatch(text):
        return text
    return "/"




def allow_form_target(origin: str) -> None:
    """Let this response's form post to another origin (RADIUS mode: the NAS's login page)."""
    g.form_action_extra = origin


def _headers(response: Response) -> Response:
    response.headers.update(security_headers(g.get("form_action_extra")))
    if request.endpoint != "static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_security(app: Flask, *, cookie_secure: bool) -> None:
    app.config.update(
        SESSION_COOKIE_NAME="hotspot_portal",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=cookie_secure,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=16 * 1024,
    )
    app.before_request(check_csrf)
    app.after_request(_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["csrf_field"] = CSRF_FIELD


def trust_proxies(app: Flask, hops: int) -> None:
    """Take the client's address, scheme and host from the `hops` reverse proxies in front (outermost
    layer: everything inside, the heartbeat shortcut included, sees what the guest sent)."""
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]  # Flask's way to add WSGI middleware


def client_address() -> str:
    """The guest's IP address as the portal sees it (after trusted proxies)."""
    return request.remote_addr or "0.0.0.0"  # noqa: S104 - a placeholder, never bound
