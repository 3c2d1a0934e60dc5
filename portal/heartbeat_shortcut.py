"""POST /heartbeat without Flask's request cycle, for the common case.

Every guest's open status page sends a heartbeat every few seconds, so thousands of guests online make
hundreds of heartbeats a second on a small box, and Flask's full cycle (request context, session
object, before/after hooks, response object) costs more CPU than the heartbeat's own work. This WSGI
layer answers a heartbeat that carries a valid signed cookie with a session token and the matching CSRF
header, with what the Flask view answers (`status.heartbeat_reply`, the same headers). Anything else —
another host, no cookie, a RADIUS-mode card login, a wrong CSRF token, a form body, a session that is
gone, a database error — goes on to Flask, which answers it as it answers every request. A heartbeat is
a guarded, idempotent write, so passing one on after a failed try bills nothing twice. Trusted proxies'
X-Forwarded-* headers are applied outside it (`security.trust_proxies`).
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from itsdangerous import BadSignature
from werkzeug.http import parse_cookie

from portal.context import PortalContext
from portal.guest import money_moved_at
from portal.i18n import LANGUAGE_COOKIE, WORDINGS, choose_language
from portal.status import heartbeat_reply, page_is_open
from rlm_hotspot.web import csrf_matches, security_headers

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask

log = logging.getLogger(__name__)
PATH = "/heartbeat"
VERIFIED_COOKIES = 20_000  # about 3 MB per worker; more guests than this only cost a re-verification


class HeartbeatShortcut:
    """Wraps the Flask app's WSGI callable (`app.wsgi_app = HeartbeatShortcut(app)`)."""

    def __init__(self, app: Flask) -> None:
        self.flask: WSGIApplication = app.wsgi_app
        self._context: PortalContext = app.extensions["hotspot_portal"]
        self._serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
        self._cookie = app.config["SESSION_COOKIE_NAME"]
        self._max_age = int(app.permanent_session_lifetime.total_seconds())
        self._verified: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._headers = [
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-store"),
            ("Vary", "Cookie"),
            *security_headers().items(),
        ]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == PATH:
            body = self._answer(environ)
            if body is not None:
                start_response("200 OK", [*self._headers, ("Content-Length", str(len(body)))])
                return [body]
        return self.flask(environ, start_response)

    def _answer(self, environ: WSGIEnvironment) -> bytes | None:
        """The reply's body, or None: Flask answers this one."""
        if environ.get("CONTENT_LENGTH") not in (None, "", "0"):
            return None  # a form post: its CSRF field and size limit are Flask's business
        cookies = parse_cookie(environ)
        cookie = self._guest(cookies.get(self._cookie))
        token, gate_ip = cookie.get("token"), cookie.get("ip")
        if not isinstance(token, str) or not csrf_matches(cookie.get("csrf"), environ.get("HTTP_X_CSRF_TOKEN", "")):
            return None
        words = WORDINGS[choose_language(cookies.get(LANGUAGE_COOKIE), environ.get("HTTP_ACCEPT_LANGUAGE"))]
        context = self._context
        try:
            with context.without_transaction() as db:
                if environ.get("HTTP_HOST", "").lower() != self._portal_host(context.public_url(context.hotspot(db))):
                    return None  # another site's (Flask redirects it to the portal)
                current = page_is_open(
                    context,
                    db,
                    token,
                    gate_ip if isinstance(gate_ip, str) else None,
                    heartbeat=True,
                    money_moved_at=money_moved_at(cookie),
                )
        except Exception:  # Flask answers it with its error pages (and logs what is unexpected)
            log.debug("heartbeat passed on to Flask", exc_info=True)
            return None
        if current is None:
            return None
        reply = heartbeat_reply(current, context.heartbeat_interval(current[2]), words)
        return json.dumps(reply, separators=(",", ":")).encode()

    @staticmethod
    @lru_cache(maxsize=8)
    def _portal_host(url: str) -> str:
        return urlsplit(url).netloc.lower()

    def _guest(self, value: str | None) -> dict[str, Any]:
        """The signed cookie's contents; empty when it is missing, forged or too old.

        A browser sends the same cookie with every heartbeat, so a cookie verified once is remembered
        (bounded) with the time it was signed: its age is still checked every time.
        """
        if not value or self._serializer is None:
            return {}
        known = self._verified.get(value)
        if known is not None:
            signed_at, data = known
            return data if time.time() - signed_at <= self._max_age else {}
        try:
            data, signed = self._serializer.loads(value, max_age=self._max_age, return_timestamp=True)
        except BadSignature:
            return {}
        if not isinstance(data, dict):
            return {}
        self._verified[value] = (signed.timestamp(), data)
        if len(self._verified) > VERIFIED_COOKIES:
            self._verified.popitem(last=False)
        return data
