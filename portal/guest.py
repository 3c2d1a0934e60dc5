"""What the portal remembers about one guest, in the signed session cookie: the session token (or, in
RADIUS mode, the verified card number), the address the gate was opened for, where they wanted to go, and
when they last moved money."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import request, session

from portal.context import portal
from rlm_hotspot.db.engine import Executor
from rlm_hotspot.services import portal as portal_service

MAX_URL_LENGTH = 2048
# Where the NAS (or an operator's link) puts the page the guest first asked for.
DESTINATION_PARAMETERS = ("url", "userurl", "link-orig")
MONEY_MOVED = "moved"
NAS_SESSION = "nas_session"  # RADIUS mode: the token of the NAS session last found for the guest's card


def safe_destination(text: str | None) -> str | None:
    """An absolute http(s) URL fit to show as a link, or None (never a javascript: or relative URL)."""
    if not text or len(text) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in text):
        return None
    parts = urlsplit(text)
    return text if parts.scheme in ("http", "https") and parts.netloc else None


def remember_destination() -> None:
    for name in DESTINATION_PARAMETERS:
        url = safe_destination(request.args.get(name))
        if url:
            session["url"] = url
            return


def destination() -> str | None:
    return safe_destination(session.get("url"))


def remember_login(*, token: str | None, card_number: str | None, ip: str) -> None:
    forget_login()
    if token:
        session["token"] = token
    if card_number:
        session["card"] = card_number
    session["ip"] = ip


def forget_login() -> None:
    for key in ("token", "card", "ip", NAS_SESSION):
        session.pop(key, None)


def remember_money_moved(at: datetime) -> None:
    """Remember a top-up: a gunicorn worker that kept this session's view from before `at` must read it
    again (a browser's connections, and so its heartbeats, reach either worker)."""
    session[MONEY_MOVED] = at.timestamp()


def money_moved_at(cookie: Mapping[str, object] | None = None) -> datetime | None:
    """When the guest last moved money, from this request's cookie (or `cookie`, already verified)."""
    value = (session if cookie is None else cookie).get(MONEY_MOVED)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return None


def gate_address() -> str | None:
    """The address the gate was opened for at login (the guest's address may change later)."""
    ip = session.get("ip")
    return ip if isinstance(ip, str) else None


def current_token(db: Executor) -> str | None:
    """This guest's session: the portal's own (standalone), or the one the NAS opened for their card.

    RADIUS mode: the NAS's live session for the card, remembered once found (`NAS_SESSION`), so that
    after the NAS ends it (its own limit, a Disconnect, CoovaChilli's logoff) the status page still finds
    it and says why.
    """
    token = session.get("token")
    if isinstance(token, str):
        return token
    card = session.get("card")
    if not isinstance(card, str):
        return None
    context = portal()
    live = portal_service.live_token_for_card(db, context.hotspot(db), card)
    if live is not None:
        session[NAS_SESSION] = live
        return live
    seen = session.get(NAS_SESSION)
    return seen if isinstance(seen, str) else None
